package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DataVolume is a PVC together with how to fill it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=datavolumes,shortName=dv;dvs,categories=all,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=".status.progress"
// +kubebuilder:printcolumn:name="Restarts",type=integer,JSONPath=".status.restartCount"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type DataVolume struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec DataVolumeSpec `json:"spec"`
	// +optional
	Status DataVolumeStatus `json:"status,omitempty"`
}

// DataVolumeList is a list of DataVolume.
//
// +kubebuilder:object:root=true
type DataVolumeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataVolume `json:"items"`
}

// DataVolumeSpec describes the volume and its source. Either storage (CDI
// fills in what is left out) or pvc (taken as the PVC spec verbatim) is
// given, as in CDI.
//
// +kubebuilder:validation:XValidation:rule="has(self.storage) != has(self.pvc)",message="set exactly one of spec.storage or spec.pvc (spec.storage is preferred)"
// +kubebuilder:validation:XValidation:rule="!has(self.source) || !has(self.source.blank) || (has(self.storage) && has(self.storage.resources) && has(self.storage.resources.requests) && 'storage' in self.storage.resources.requests) || (has(self.pvc) && has(self.pvc.resources) && has(self.pvc.resources.requests) && 'storage' in self.pvc.resources.requests)",message="a blank DataVolume needs a size: set spec.storage.resources.requests.storage, e.g. 1Gi"
type DataVolumeSpec struct {
	// Source of the data. Required here (upstream also allows sourceRef,
	// which cclm does not implement); omitempty so that a Go caller that
	// forgets it gets "Required value" rather than a null type error.
	// +required
	Source *DataVolumeSource `json:"source,omitempty"`

	// Storage is the PVC to create, with CDI-style defaulting: access and
	// volume mode may be left out.
	// +optional
	Storage *StorageSpec `json:"storage,omitempty"`

	// PVC is the PVC spec to create, used as is.
	// +optional
	PVC *corev1.PersistentVolumeClaimSpec `json:"pvc,omitempty"`
}

// DataVolumeSource says where the data comes from. Exactly one member is
// set.
//
// +kubebuilder:validation:XValidation:rule="[has(self.blank), has(self.http), has(self.registry), has(self.pvc)].filter(x, x).size() == 1",message="set exactly one of blank, http, registry or pvc in spec.source"
type DataVolumeSource struct {
	// Blank creates an empty volume (e.g. the target disk of a
	// cross-cluster migration).
	// +optional
	Blank *DataVolumeBlankImage `json:"blank,omitempty"`
	// HTTP imports a disk image from a URL.
	// +optional
	HTTP *DataVolumeSourceHTTP `json:"http,omitempty"`
	// Registry imports a disk image from a container image.
	// +optional
	Registry *DataVolumeSourceRegistry `json:"registry,omitempty"`
	// PVC clones another PVC.
	// +optional
	PVC *DataVolumeSourcePVC `json:"pvc,omitempty"`
}

// DataVolumeBlankImage selects a blank volume. It has no fields.
type DataVolumeBlankImage struct{}

// DataVolumeSourceHTTP imports from an http(s) URL.
type DataVolumeSourceHTTP struct {
	// URL of the image (raw, qcow2, optionally compressed).
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.startsWith('http://') || self.startsWith('https://')",message="source.http.url must start with http:// or https://"
	URL string `json:"url"`
}

// DataVolumeSourceRegistry imports from a container image holding a disk.
type DataVolumeSourceRegistry struct {
	// URL of the image, e.g. docker://quay.io/containerdisks/fedora:latest.
	// Upstream's field is a *string (imageStream is the alternative there);
	// cclm knows no image streams, so the URL is required.
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.startsWith('docker://') || self.startsWith('oci-archive://')",message="source.registry.url must start with docker:// (or oci-archive://), e.g. docker://quay.io/containerdisks/fedora:latest"
	URL string `json:"url"`
}

// DataVolumeSourcePVC names the PVC to clone.
type DataVolumeSourcePVC struct {
	// Namespace of the source PVC.
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// Name of the source PVC.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// StorageSpec is the PVC of a DataVolume, CDI's variant of the PVC spec.
type StorageSpec struct {
	// AccessModes of the volume; defaulted from the storage class when
	// left out.
	// +optional
	// +listType=atomic
	AccessModes []corev1.PersistentVolumeAccessMode `json:"accessModes,omitempty"`
	// Resources; resources.requests.storage is the volume size.
	// +optional
	Resources corev1.VolumeResourceRequirements `json:"resources,omitempty"`
	// StorageClassName of the volume; the default class when unset. A
	// pointer because "" (no class) differs from unset (default class).
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
	// VolumeMode is Filesystem or Block.
	// +optional
	VolumeMode *corev1.PersistentVolumeMode `json:"volumeMode,omitempty"`
}

// DataVolumePhase is the phase of a DataVolume.
type DataVolumePhase string

// DataVolume phases (CDI values).
const (
	PhaseUnset           DataVolumePhase = ""
	Pending              DataVolumePhase = "Pending"
	PVCBound             DataVolumePhase = "PVCBound"
	ImportScheduled      DataVolumePhase = "ImportScheduled"
	ImportInProgress     DataVolumePhase = "ImportInProgress"
	CloneScheduled       DataVolumePhase = "CloneScheduled"
	CloneInProgress      DataVolumePhase = "CloneInProgress"
	Succeeded            DataVolumePhase = "Succeeded"
	Failed               DataVolumePhase = "Failed"
	Unknown              DataVolumePhase = "Unknown"
	WaitForFirstConsumer DataVolumePhase = "WaitForFirstConsumer"
	PendingPopulation    DataVolumePhase = "PendingPopulation"
)

// DataVolumeProgress is the import progress as a percentage string, e.g.
// "45.5%", or "N/A".
type DataVolumeProgress string

// DataVolumeStatus is the observed state of a DataVolume.
type DataVolumeStatus struct {
	// ClaimName is the PVC backing the DataVolume.
	// +optional
	ClaimName string `json:"claimName,omitempty"`
	// +optional
	Phase DataVolumePhase `json:"phase,omitempty"`
	// +optional
	Progress DataVolumeProgress `json:"progress,omitempty"`
	// RestartCount is how often the importer restarted.
	// +optional
	RestartCount int32 `json:"restartCount,omitempty"`
	// +optional
	Conditions []DataVolumeCondition `json:"conditions,omitempty"`
}

// DataVolumeConditionType is the type of a DataVolume condition.
type DataVolumeConditionType string

// DataVolume condition types.
const (
	DataVolumeReady   DataVolumeConditionType = "Ready"
	DataVolumeBound   DataVolumeConditionType = "Bound"
	DataVolumeRunning DataVolumeConditionType = "Running"
)

// DataVolumeCondition is a DataVolume condition, CDI shape.
type DataVolumeCondition struct {
	Type   DataVolumeConditionType `json:"type"`
	Status corev1.ConditionStatus  `json:"status"`
	// +optional
	// +nullable
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	// +optional
	// +nullable
	LastHeartbeatTime metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

func init() {
	knownTypes = append(knownTypes, &DataVolume{}, &DataVolumeList{})
}
