package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MigrationType is the kind of migration a plan performs. Forklift knows
// cold, warm, live and conversion; cclm implements only live.
//
// +kubebuilder:validation:Enum=live
type MigrationType string

// Migration types.
const (
	MigrationLive MigrationType = "live"
)

// Plan is a set of VMs to migrate from a source to a destination provider,
// with the network and storage maps to apply.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=plans,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Executing",type=string,JSONPath=".status.conditions[?(@.type=='Executing')].status"
// +kubebuilder:printcolumn:name="Succeeded",type=string,JSONPath=".status.conditions[?(@.type=='Succeeded')].status"
// +kubebuilder:printcolumn:name="Failed",type=string,JSONPath=".status.conditions[?(@.type=='Failed')].status"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type Plan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec PlanSpec `json:"spec"`
	// +optional
	Status PlanStatus `json:"status,omitempty"`
}

// PlanList is a list of Plan.
//
// +kubebuilder:object:root=true
type PlanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Plan `json:"items"`
}

// PlanSpec describes a migration plan.
//
// +kubebuilder:validation:XValidation:rule="has(self.type)",message="spec.type is required: set spec.type: live (cclm implements only live migration)"
// +kubebuilder:validation:XValidation:rule="!has(self.warm) || !self.warm",message="spec.warm is not supported: cclm implements only live migration; remove spec.warm and set spec.type: live"
type PlanSpec struct {
	// Description of the plan.
	// +optional
	Description string `json:"description,omitempty"`

	// Type of migration: live. Forklift makes it optional (cold when
	// unset); cclm requires it because it implements live only.
	// +optional
	Type MigrationType `json:"type,omitempty"`

	// Warm is Forklift's older boolean for warm migration; accepted only as
	// false.
	// +optional
	Warm bool `json:"warm,omitempty"`

	// Provider pair.
	Provider ProviderPair `json:"provider"`

	// Map names the NetworkMap and StorageMap to apply.
	Map PlanMap `json:"map"`

	// TargetNamespace the VMs are created in on the destination.
	// +kubebuilder:validation:MinLength=1
	TargetNamespace string `json:"targetNamespace"`

	// VMs to migrate.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1024
	VMs []PlanVM `json:"vms"`

	// Archived plans are kept for the record and no longer executed; their
	// leftovers are cleaned up.
	// +optional
	Archived bool `json:"archived,omitempty"`

	// TargetLabels are added to the labels of each target VM's template
	// (and so of its VMI); the toolkit's own labels win on a clash.
	// +optional
	TargetLabels map[string]string `json:"targetLabels,omitempty"`

	// TargetNodeSelector is added to each target VM's node selector; a
	// key the VM sets to another value fails that VM.
	// +optional
	TargetNodeSelector map[string]string `json:"targetNodeSelector,omitempty"`

	// The fields below are Forklift's, kept with its names and shapes so
	// that a user's Plan applies; the toolkit refuses by name (condition
	// PlanFieldNotSupported) those set to what a live migration by cclm
	// cannot do, and says which have no effect on an OpenShift source.

	// TargetAffinity is the target VMs' affinity (cclm's VM API has none).
	// +optional
	TargetAffinity *corev1.Affinity `json:"targetAffinity,omitempty"`
	// ConvertorLabels, ConvertorNodeSelector and ConvertorAffinity place
	// virt-v2v pods of cold migrations; a live one has none.
	// +optional
	ConvertorLabels map[string]string `json:"convertorLabels,omitempty"`
	// +optional
	ConvertorNodeSelector map[string]string `json:"convertorNodeSelector,omitempty"`
	// +optional
	ConvertorAffinity *corev1.Affinity `json:"convertorAffinity,omitempty"`
	// TransferNetwork carries the disks of cold migrations.
	// +optional
	TransferNetwork *corev1.ObjectReference `json:"transferNetwork,omitempty"`
	// PreserveClusterCPUModel (oVirt sources) and PreserveStaticIPs
	// (vSphere sources) have no effect on an OpenShift source, as in
	// Forklift; PreserveStaticIPs defaults to true there.
	// +optional
	PreserveClusterCPUModel bool `json:"preserveClusterCpuModel,omitempty"`
	// +optional
	PreserveStaticIPs bool `json:"preserveStaticIPs,omitempty"`
	// DiskBus is Forklift's deprecated disk bus of converted VMs.
	// +optional
	DiskBus string `json:"diskBus,omitempty"`
	// PVCNameTemplate, VolumeNameTemplate and NetworkNameTemplate rename
	// what a live migration must keep.
	// +optional
	PVCNameTemplate string `json:"pvcNameTemplate,omitempty"`
	// +optional
	PVCNameTemplateUseGenerateName *bool `json:"pvcNameTemplateUseGenerateName,omitempty"`
	// +optional
	VolumeNameTemplate string `json:"volumeNameTemplate,omitempty"`
	// +optional
	NetworkNameTemplate string `json:"networkNameTemplate,omitempty"`
	// MigrateSharedDisks: whether shared disks are migrated (cclm has no
	// shared disks; true, Forklift's default, is accepted).
	// +optional
	MigrateSharedDisks *bool `json:"migrateSharedDisks,omitempty"`
	// DeleteGuestConversionPod, InstallLegacyDrivers, SkipGuestConversion
	// and UseCompatibilityMode concern virt-v2v conversion, which a live
	// migration does not do.
	// +optional
	DeleteGuestConversionPod bool `json:"deleteGuestConversionPod,omitempty"`
	// +optional
	InstallLegacyDrivers *bool `json:"installLegacyDrivers,omitempty"`
	// +optional
	SkipGuestConversion bool `json:"skipGuestConversion,omitempty"`
	// +optional
	UseCompatibilityMode *bool `json:"useCompatibilityMode,omitempty"`
	// DeleteVmOnFailMigration: a failed migration deletes the target VM.
	// cclm always removes what a failed migration made on the target
	// (unless the guest runs there), so true is what it does.
	// +optional
	DeleteVmOnFailMigration bool `json:"deleteVmOnFailMigration,omitempty"`
	// TargetPowerState is the target VMs' power state after the migration:
	// on, off or auto (the source's). A live migration keeps the guest
	// running: off is refused.
	// +optional
	// +kubebuilder:validation:Enum=on;off;auto
	TargetPowerState TargetPowerState `json:"targetPowerState,omitempty"`
	// RunPreflightInspection concerns warm migrations.
	// +optional
	RunPreflightInspection *bool `json:"runPreflightInspection,omitempty"`
}

// PlanMap names the maps a plan applies.
type PlanMap struct {
	// Network map.
	Network corev1.ObjectReference `json:"network"`
	// Storage map.
	Storage corev1.ObjectReference `json:"storage"`
}

// PlanVM is a VM of a plan. For an OpenShift source: id is the VM's UID,
// name and namespace its name and namespace. The other fields are
// Forklift's, with its names and shapes, so that a user's Plan carries
// over; the toolkit refuses by name (a Critical condition) those it cannot
// honour for a live migration, rather than ignore them.
type PlanVM struct {
	Ref `json:",inline"`
	// Hooks to run at pipeline steps (refused: hooks run as Jobs).
	// +optional
	Hooks []HookRef `json:"hooks,omitempty"`
	// LUKS names the Secret with disk decryption keys (cold migrations).
	// +optional
	LUKS *corev1.ObjectReference `json:"luks,omitempty"`
	// NbdeClevis: unlock the disks with Clevis (cold migrations).
	// +optional
	NbdeClevis bool `json:"nbdeClevis,omitempty"`
	// RootDisk is the disk the VM boots from (cold migrations).
	// +optional
	RootDisk string `json:"rootDisk,omitempty"`
	// InstanceType overrides the VM's instance type on the target.
	// +optional
	InstanceType string `json:"instanceType,omitempty"`
	// PVCNameTemplate names the target PVCs (Go template).
	// +optional
	PVCNameTemplate string `json:"pvcNameTemplate,omitempty"`
	// VolumeNameTemplate names the target VM's volumes (Go template).
	// +optional
	VolumeNameTemplate string `json:"volumeNameTemplate,omitempty"`
	// NetworkNameTemplate names the target VM's interfaces (Go template).
	// +optional
	NetworkNameTemplate string `json:"networkNameTemplate,omitempty"`
	// TargetName is the VM's name on the target (default: its own).
	// +optional
	TargetName string `json:"targetName,omitempty"`
	// TargetPowerState is the target VM's power state after the migration:
	// on, off or auto (the source's).
	// +optional
	// +kubebuilder:validation:Enum=on;off;auto
	TargetPowerState TargetPowerState `json:"targetPowerState,omitempty"`
	// DeleteVmOnFailMigration: a failed migration deletes the target VM.
	// +optional
	DeleteVmOnFailMigration bool `json:"deleteVmOnFailMigration,omitempty"`
	// MigrateSharedDisks: whether the VM's shared disks are migrated.
	// +optional
	MigrateSharedDisks *bool `json:"migrateSharedDisks,omitempty"`
	// EnableNestedVirtualization forces nested virtualization on or off on
	// the target VM.
	// +optional
	EnableNestedVirtualization *bool `json:"enableNestedVirtualization,omitempty"`
}

// HookRef runs a Hook at a pipeline step (Forklift's plan.HookRef).
type HookRef struct {
	// Step is the pipeline step (PreHook, PostHook).
	Step string `json:"step"`
	// Hook is the Hook to run.
	Hook corev1.ObjectReference `json:"hook"`
}

// TargetPowerState is a target VM's power state after its migration.
type TargetPowerState string

// Target power states (Forklift's).
const (
	TargetPowerStateOn   TargetPowerState = "on"
	TargetPowerStateOff  TargetPowerState = "off"
	TargetPowerStateAuto TargetPowerState = "auto"
)

// PlanStatus is the observed state of a plan.
type PlanStatus struct {
	// +optional
	Conditions []Condition `json:"conditions,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Migration is the state of the plan's current or last execution.
	// +optional
	Migration PlanMigrationStatus `json:"migration,omitempty"`
}

// PlanMigrationStatus is the state of a plan's execution (Forklift's
// plan.MigrationStatus).
type PlanMigrationStatus struct {
	Timed `json:",inline"`
	// VMs, one status per VM of the plan.
	// +optional
	VMs []VMStatus `json:"vms,omitempty"`
}

func init() {
	knownTypes = append(knownTypes, &Plan{}, &PlanList{})
}
