// Package v1beta1 holds the subset of Forklift's (Migration Toolkit for
// Virtualization) forklift.konveyor.io/v1beta1 API that cclm implements for
// OpenShift-to-OpenShift live migration: ForkliftController (its live
// migration feature flag), Provider, NetworkMap, StorageMap, Plan and
// Migration. Group, version, kinds and JSON field names are Forklift's.
//
// +kubebuilder:object:generate=true
// +groupName=forklift.konveyor.io
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "forklift.konveyor.io", Version: "v1beta1"}

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
