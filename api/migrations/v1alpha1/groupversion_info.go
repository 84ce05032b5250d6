// Package v1alpha1 holds KubeVirt's migrations.kubevirt.io/v1alpha1
// MigrationPolicy: cluster-scoped migration settings for the VMIs its
// selectors match, overriding the KubeVirt CR's
// spec.configuration.migrations for them. Group, version, kind and JSON
// field names are upstream's (KubeVirt v1.6/v1.7); fields cclm does not
// implement are refused by the CRD schema instead of being dropped.
//
// +kubebuilder:object:generate=true
// +groupName=migrations.kubevirt.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "migrations.kubevirt.io", Version: "v1alpha1"}

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
