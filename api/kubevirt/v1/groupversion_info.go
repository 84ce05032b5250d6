// Package v1 holds the subset of the kubevirt.io/v1 API that cclm implements:
// KubeVirt, VirtualMachine, VirtualMachineInstance and
// VirtualMachineInstanceMigration. Group, version, kinds and JSON field names
// are KubeVirt's (v1.6/v1.7), so manifests written for KubeVirt apply
// unchanged as long as they stay within the subset; anything outside it is
// rejected by the CRD schema instead of being silently dropped.
//
// +kubebuilder:object:generate=true
// +groupName=kubevirt.io
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "kubevirt.io", Version: "v1"}

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
