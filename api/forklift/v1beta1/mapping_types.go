package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProviderPair names the source and destination providers.
type ProviderPair struct {
	// Source provider.
	Source corev1.ObjectReference `json:"source"`
	// Destination provider.
	Destination corev1.ObjectReference `json:"destination"`
}

// NetworkMap maps source networks to destination networks.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=networkmaps,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type NetworkMap struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec NetworkMapSpec `json:"spec"`
	// +optional
	Status MapStatus `json:"status,omitempty"`
}

// NetworkMapList is a list of NetworkMap.
//
// +kubebuilder:object:root=true
type NetworkMapList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkMap `json:"items"`
}

// NetworkMapSpec is the providers and the network pairs.
type NetworkMapSpec struct {
	Provider ProviderPair `json:"provider"`
	// Map of source to destination networks.
	// +kubebuilder:validation:MaxItems=1024
	Map []NetworkPair `json:"map"`
}

// NetworkPair maps one source network.
type NetworkPair struct {
	// Source network: {type: pod} for the pod network, else the
	// NetworkAttachmentDefinition's namespace and name (or id = its UID).
	Source Ref `json:"source"`
	// Destination network.
	Destination DestinationNetwork `json:"destination"`
}

// DestinationNetwork is where a source network maps to.
//
// +kubebuilder:validation:XValidation:rule="self.type != 'multus' || (has(self.name) && size(self.name) > 0)",message="destination.name is required when destination.type is multus: set it to the NetworkAttachmentDefinition's name"
type DestinationNetwork struct {
	// Type is pod (the pod network), multus (a NetworkAttachmentDefinition)
	// or ignored (the interface is not migrated).
	// +kubebuilder:validation:Enum=pod;multus;ignored
	Type string `json:"type"`
	// Namespace of the NetworkAttachmentDefinition (multus only).
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Name of the NetworkAttachmentDefinition (multus only).
	// +optional
	Name string `json:"name,omitempty"`
}

// StorageMap maps source storage classes to destination storage.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=storagemaps,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type StorageMap struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec StorageMapSpec `json:"spec"`
	// +optional
	Status MapStatus `json:"status,omitempty"`
}

// StorageMapList is a list of StorageMap.
//
// +kubebuilder:object:root=true
type StorageMapList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StorageMap `json:"items"`
}

// StorageMapSpec is the providers and the storage pairs.
type StorageMapSpec struct {
	Provider ProviderPair `json:"provider"`
	// Map of source to destination storage.
	// +kubebuilder:validation:MaxItems=1024
	Map []StoragePair `json:"map"`
}

// StoragePair maps one source storage class.
type StoragePair struct {
	// Source storage: name is the source storage class (id its UID).
	Source Ref `json:"source"`
	// Destination storage.
	Destination DestinationStorage `json:"destination"`
}

// DestinationStorage is the storage a source class maps to.
type DestinationStorage struct {
	// StorageClass on the destination.
	// +kubebuilder:validation:MinLength=1
	StorageClass string `json:"storageClass"`
	// VolumeMode is Filesystem or Block; the class default when unset.
	// +optional
	// +kubebuilder:validation:Enum=Filesystem;Block
	VolumeMode corev1.PersistentVolumeMode `json:"volumeMode,omitempty"`
	// AccessMode is ReadWriteOnce, ReadWriteMany or ReadOnlyMany; the class
	// default when unset.
	// +optional
	// +kubebuilder:validation:Enum=ReadWriteOnce;ReadWriteMany;ReadOnlyMany
	AccessMode corev1.PersistentVolumeAccessMode `json:"accessMode,omitempty"`
}

// MapStatus is the observed state of a map.
type MapStatus struct {
	// +optional
	Conditions []Condition `json:"conditions,omitempty"`
	// References are the resolved source objects.
	// +optional
	References []Ref `json:"references,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

func init() {
	knownTypes = append(knownTypes, &NetworkMap{}, &NetworkMapList{}, &StorageMap{}, &StorageMapList{})
}
