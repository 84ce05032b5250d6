// Package v1beta1 holds the subset of KubeVirt's instancetype.kubevirt.io
// API that cclm implements: VirtualMachineInstancetype and
// VirtualMachinePreference, namespaced and cluster-wide. A VM names them in
// spec.instancetype and spec.preference; the virt controller applies them
// to the VMI it creates. Group, version, kinds and JSON field names are
// KubeVirt's; a field outside the subset is rejected by the CRD schema.
//
// +kubebuilder:object:generate=true
// +groupName=instancetype.kubevirt.io
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "instancetype.kubevirt.io", Version: "v1beta1"}

	// SchemeBuilder adds the kinds of this package to a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&VirtualMachineInstancetype{}, &VirtualMachineInstancetypeList{},
		&VirtualMachineClusterInstancetype{}, &VirtualMachineClusterInstancetypeList{},
		&VirtualMachinePreference{}, &VirtualMachinePreferenceList{},
		&VirtualMachineClusterPreference{}, &VirtualMachineClusterPreferenceList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
