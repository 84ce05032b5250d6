// Package v1 holds the subset of kubernetes-nmstate's nmstate.io/v1 API
// that cclm implements: NodeNetworkConfigurationPolicy (the OpenShift
// guide's bridge br-2001 on every worker) and the per-node
// NodeNetworkConfigurationEnactment, with upstream's names, conditions and
// reasons. desiredState is typed (upstream's is free form), so that the API
// server refuses a setting cclm does not implement, naming its path.
//
// +kubebuilder:object:generate=true
// +groupName=nmstate.io
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "nmstate.io", Version: "v1"}

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
