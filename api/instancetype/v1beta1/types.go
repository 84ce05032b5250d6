package v1beta1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VirtualMachineInstancetype is a namespaced size of VM: vCPUs and memory
// (and where it may run) for the VMs of its namespace that name it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=virtualmachineinstancetypes,shortName=vminstancetype;vminstancetypes;vmf;vmfs,categories=all,scope=Namespaced
type VirtualMachineInstancetype struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VirtualMachineInstancetypeSpec `json:"spec"`
}

// VirtualMachineInstancetypeList is a list of VirtualMachineInstancetype.
//
// +kubebuilder:object:root=true
type VirtualMachineInstancetypeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualMachineInstancetype `json:"items"`
}

// VirtualMachineClusterInstancetype is the cluster-wide
// VirtualMachineInstancetype, the default kind a VM's spec.instancetype
// names.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=virtualmachineclusterinstancetypes,shortName=vmclusterinstancetype;vmclusterinstancetypes;vmcf;vmcfs,categories=all,scope=Cluster
type VirtualMachineClusterInstancetype struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VirtualMachineInstancetypeSpec `json:"spec"`
}

// VirtualMachineClusterInstancetypeList is a list of
// VirtualMachineClusterInstancetype.
//
// +kubebuilder:object:root=true
type VirtualMachineClusterInstancetypeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualMachineClusterInstancetype `json:"items"`
}

// VirtualMachineInstancetypeSpec is what an instancetype gives the VMI.
type VirtualMachineInstancetypeSpec struct {
	// CPU: the guest's vCPUs (and model).
	CPU CPUInstancetype `json:"cpu"`

	// Memory: the guest's memory.
	Memory MemoryInstancetype `json:"memory"`

	// NodeSelector is added to the VMI's; a VM whose template sets one
	// too conflicts.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Annotations are added to the VMI's; one the template sets to
	// another value conflicts.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// CPUInstancetype is the CPU an instancetype gives.
type CPUInstancetype struct {
	// Guest is the number of vCPUs the guest sees; their topology comes
	// from the preference's preferredCPUTopology (sockets by default).
	// +kubebuilder:validation:Minimum=1
	Guest uint32 `json:"guest"`

	// Model is the CPU model, as spec.domain.cpu.model.
	// +optional
	Model string `json:"model,omitempty"`
}

// MemoryInstancetype is the memory an instancetype gives.
type MemoryInstancetype struct {
	// Guest is the memory the guest sees.
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || quantity(string(self)).isGreaterThan(quantity('0'))",message="memory.guest must be greater than 0, e.g. 128Mi"
	Guest resource.Quantity `json:"guest"`
}

// VirtualMachinePreference is a namespaced set of defaults for the VMs
// of its namespace that name it: applied only where the VM leaves a field
// unset.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=virtualmachinepreferences,shortName=vmpref;vmprefs;vmp;vmps,categories=all,scope=Namespaced
type VirtualMachinePreference struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VirtualMachinePreferenceSpec `json:"spec"`
}

// VirtualMachinePreferenceList is a list of VirtualMachinePreference.
//
// +kubebuilder:object:root=true
type VirtualMachinePreferenceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualMachinePreference `json:"items"`
}

// VirtualMachineClusterPreference is the cluster-wide
// VirtualMachinePreference, the default kind a VM's spec.preference names.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=virtualmachineclusterpreferences,shortName=vmcp;vmcps,categories=all,scope=Cluster
type VirtualMachineClusterPreference struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VirtualMachinePreferenceSpec `json:"spec"`
}

// VirtualMachineClusterPreferenceList is a list of
// VirtualMachineClusterPreference.
//
// +kubebuilder:object:root=true
type VirtualMachineClusterPreferenceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualMachineClusterPreference `json:"items"`
}

// VirtualMachinePreferenceSpec is what a preference defaults.
type VirtualMachinePreferenceSpec struct {
	// CPU preferences.
	// +optional
	CPU *CPUPreferences `json:"cpu,omitempty"`

	// Devices preferences.
	// +optional
	Devices *DevicePreferences `json:"devices,omitempty"`

	// Machine preferences.
	// +optional
	Machine *MachinePreferences `json:"machine,omitempty"`

	// PreferredTerminationGracePeriodSeconds is the VMI's
	// terminationGracePeriodSeconds when the template sets none.
	// +optional
	// +kubebuilder:validation:Minimum=0
	PreferredTerminationGracePeriodSeconds *int64 `json:"preferredTerminationGracePeriodSeconds,omitempty"`
}

// PreferredCPUTopology says how an instancetype's vCPUs are laid out.
//
// +kubebuilder:validation:Enum=sockets;cores;threads;preferSockets;preferCores;preferThreads
type PreferredCPUTopology string

// Topologies; the prefer* spellings are upstream's older ones.
const (
	Sockets       PreferredCPUTopology = "sockets"
	Cores         PreferredCPUTopology = "cores"
	Threads       PreferredCPUTopology = "threads"
	PreferSockets PreferredCPUTopology = "preferSockets"
	PreferCores   PreferredCPUTopology = "preferCores"
	PreferThreads PreferredCPUTopology = "preferThreads"
)

// CPUPreferences are CPU defaults.
type CPUPreferences struct {
	// PreferredCPUTopology lays an instancetype's vCPUs out as sockets
	// (the default), cores or threads.
	// +optional
	PreferredCPUTopology PreferredCPUTopology `json:"preferredCPUTopology,omitempty"`
}

// DevicePreferences are device defaults.
type DevicePreferences struct {
	// PreferredDiskBus is the bus of disks that name none.
	// +optional
	// +kubebuilder:validation:Enum=virtio;sata;scsi;usb
	PreferredDiskBus string `json:"preferredDiskBus,omitempty"`

	// PreferredInterfaceModel is the model of interfaces that name none.
	// +optional
	PreferredInterfaceModel string `json:"preferredInterfaceModel,omitempty"`
}

// MachinePreferences are machine defaults.
type MachinePreferences struct {
	// PreferredMachineType is the machine type when the template sets
	// none.
	// +optional
	PreferredMachineType string `json:"preferredMachineType,omitempty"`
}
