// Package v1beta1 holds the subset of OpenShift Virtualization's
// HyperConverged Cluster Operator API (hco.kubevirt.io/v1beta1) that cclm
// implements: the HyperConverged CR's live-migration settings and the
// decentralized live migration feature gate, which cclm's virt controller
// writes into the KubeVirt CR as the operator does (internal/hco). Group,
// version, kind and JSON field names are upstream's.
//
// +kubebuilder:object:generate=true
// +groupName=hco.kubevirt.io
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "hco.kubevirt.io", Version: "v1beta1"}

	// SchemeBuilder adds the kinds of this package to a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// knownTypes is filled by the init functions of the *_types.go files.
var knownTypes []runtime.Object

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, knownTypes...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
