// Package v1beta1 holds the subset of CDI's cdi.kubevirt.io/v1beta1 API that
// cclm implements: DataVolume, with blank, http, registry and pvc sources.
// Group, version, kind and JSON field names are CDI's.
//
// +kubebuilder:object:generate=true
// +groupName=cdi.kubevirt.io
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "cdi.kubevirt.io", Version: "v1beta1"}

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
