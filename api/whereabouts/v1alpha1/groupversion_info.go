// Package v1alpha1 holds whereabouts' whereabouts.cni.cncf.io/v1alpha1
// IPPool: the cluster-wide IP allocations of one whereabouts range, which
// cclm's IPAM uses for the migration network, as whereabouts does.
//
// +kubebuilder:object:generate=true
// +groupName=whereabouts.cni.cncf.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "whereabouts.cni.cncf.io", Version: "v1alpha1"}

	// SchemeBuilder adds the kinds of this package to a runtime.Scheme.
	// It is apimachinery's builder rather than controller-runtime's
	// (deprecated) one, so that importing the API pulls in nothing else.
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
