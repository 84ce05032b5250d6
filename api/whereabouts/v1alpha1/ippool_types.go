package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPPool records which addresses of a range are allocated to whom. Updates
// use the object's resourceVersion for optimistic locking, so two
// allocators never hand out the same address.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=ippools,scope=Namespaced
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPPoolSpec `json:"spec"`
}

// IPPoolList is a list of IPPool.
//
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPPool `json:"items"`
}

// IPPoolSpec is the range and its allocations.
type IPPoolSpec struct {
	// Range is the pool's CIDR, e.g. 192.168.201.0/24.
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="spec.range must be a CIDR, e.g. 192.168.201.0/24"
	// +kubebuilder:validation:MaxLength=64
	Range string `json:"range"`

	// Allocations maps the decimal offset of an address within the range
	// (as a string, e.g. "5" for .5 of a /24 starting at .0) to its
	// holder.
	Allocations map[string]IPAllocation `json:"allocations"`
}

// IPAllocation is the holder of one address.
type IPAllocation struct {
	// ContainerID is the holder's container (sandbox) ID; cclm uses the
	// holder's unique ID.
	ContainerID string `json:"id"`
	// PodRef is the holder as "namespace/name".
	PodRef string `json:"podref"`
	// IfName is the interface the address is on, e.g. migration0.
	// +optional
	IfName string `json:"ifname,omitempty"`
}

func init() {
	knownTypes = append(knownTypes, &IPPool{}, &IPPoolList{})
}
