package v1

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Annotations and labels with upstream names and meanings.
const (
	// RestoreRunStrategyAnnotation on a receiver VM (runStrategy
	// WaitAsReceiver) names the run strategy to switch to once the incoming
	// migration has succeeded.
	RestoreRunStrategyAnnotation = "kubevirt.io/restore-run-strategy"
	// CreateMigrationTargetAnnotation marks a receiver VMI ("true"): it is
	// created as an empty migration target, not booted.
	CreateMigrationTargetAnnotation = "kubevirt.io/create-migration-target"
	// NodeNameLabel on a VMI names the node it runs on.
	NodeNameLabel = "kubevirt.io/nodeName"
	// StartFailureAnnotation on a VM holds cclm's virt controller's
	// crash-loop bookkeeping (upstream keeps it in status.startFailure):
	// the controller's own, it does not travel with a migrated VM.
	StartFailureAnnotation = "cclm.io/start-failure"
)

// VirtualMachineInstance is a running (or about to run) virtual machine.
//
// +kubebuilder:validation:XValidation:rule="(has(self.spec.domain.memory) && has(self.spec.domain.memory.guest)) || (has(self.spec.domain.resources) && ((has(self.spec.domain.resources.requests) && 'memory' in self.spec.domain.resources.requests) || (has(self.spec.domain.resources.limits) && 'memory' in self.spec.domain.resources.limits)))",message="no memory requested: set spec.domain.memory.guest or spec.domain.resources.requests.memory (e.g. 128Mi)"
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=virtualmachineinstances,shortName=vmi;vmis,categories=all,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="IP",type=string,JSONPath=".status.interfaces[0].ipAddress"
// +kubebuilder:printcolumn:name="NodeName",type=string,JSONPath=".status.nodeName"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Live-Migratable",type=string,JSONPath=".status.conditions[?(@.type=='LiveMigratable')].status",priority=1
type VirtualMachineInstance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VirtualMachineInstanceSpec `json:"spec"`
	// +optional
	Status VirtualMachineInstanceStatus `json:"status,omitempty"`
}

// VirtualMachineInstanceList is a list of VirtualMachineInstance.
//
// +kubebuilder:object:root=true
type VirtualMachineInstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualMachineInstance `json:"items"`
}

// VirtualMachineInstanceSpec describes a virtual machine.
type VirtualMachineInstanceSpec struct {
	// Domain is the virtual hardware.
	Domain DomainSpec `json:"domain"`

	// NodeSelector must match a node's labels for the VMI to be scheduled
	// there.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Networks the interfaces of spec.domain.devices.interfaces connect to,
	// matched by name.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Networks []Network `json:"networks,omitempty"`

	// Volumes the disks of spec.domain.devices.disks are backed by,
	// matched by name.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Volumes []Volume `json:"volumes,omitempty"`

	// TerminationGracePeriodSeconds is how long the guest gets to shut down
	// after an ACPI power-off before it is killed. A pointer because 0
	// (kill at once) differs from unset (upstream default 30 s).
	// +optional
	// +kubebuilder:validation:Minimum=0
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

// DomainSpec is the virtual hardware of a VMI. A VMI must request memory
// (the VirtualMachineInstance's rule); a VM's template need not when the
// VM names an instancetype (the VirtualMachineSpec's rule).
type DomainSpec struct {
	// Resources are the compute resources requested for the VMI.
	// +optional
	Resources ResourceRequirements `json:"resources,omitempty"`

	// CPU topology and model.
	// +optional
	CPU *CPU `json:"cpu,omitempty"`

	// Memory is the guest memory.
	// +optional
	Memory *Memory `json:"memory,omitempty"`

	// Machine is the emulated machine type.
	// +optional
	Machine *Machine `json:"machine,omitempty"`

	// Firmware of the guest.
	// +optional
	Firmware *Firmware `json:"firmware,omitempty"`

	// Devices attached to the guest.
	Devices Devices `json:"devices"`
}

// Firmware is the guest's firmware (the subset cclm implements).
type Firmware struct {
	// UUID is the guest's SMBIOS UUID, which the guest sees and a live
	// migration checks on both sides. The VM controller sets it from the
	// VM's name (upstream's rule) when the template does not, so that a VM
	// of the same name in another cluster receives the same guest.
	// +optional
	UUID types.UID `json:"uuid,omitempty"`

	// KernelBoot holds what the guest's kernel is booted with.
	// +optional
	KernelBoot *KernelBoot `json:"kernelBoot,omitempty"`
}

// KernelBoot is upstream's direct kernel boot. cclm guests always boot
// the built-in guest image's kernel directly, so only its arguments can be
// set; upstream's container (a kernel from an image) is refused by name.
type KernelBoot struct {
	// KernelArgs are added to the kernel command line, after cclm's own
	// (console, quiet, the guest's address).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	KernelArgs string `json:"kernelArgs,omitempty"`
}

// ResourceRequirements are the compute resources of a VMI.
type ResourceRequirements struct {
	// Requests are the minimum resources; requests.memory is the guest
	// memory unless memory.guest is set.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!('memory' in self) || !isQuantity(string(self['memory'])) || quantity(string(self['memory'])).isGreaterThan(quantity('0'))",message="requests.memory must be greater than 0; set it to the guest's memory, e.g. 128Mi"
	Requests corev1.ResourceList `json:"requests,omitempty"`

	// Limits are the maximum resources.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!('memory' in self) || !isQuantity(string(self['memory'])) || quantity(string(self['memory'])).isGreaterThan(quantity('0'))",message="limits.memory must be greater than 0; set it to at least the guest's memory, e.g. 128Mi, or remove it"
	Limits corev1.ResourceList `json:"limits,omitempty"`
}

// CPU describes the guest's vCPU topology and model.
type CPU struct {
	// Cores per socket. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Cores uint32 `json:"cores,omitempty"`

	// Sockets. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Sockets uint32 `json:"sockets,omitempty"`

	// Threads per core. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Threads uint32 `json:"threads,omitempty"`

	// Model is the CPU model: a QEMU model name (e.g. Haswell-v4),
	// host-model or host-passthrough. Defaults to the cluster's cpuModel.
	// +optional
	Model string `json:"model,omitempty"`

	// Features to enable or disable on top of the model.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Features []CPUFeature `json:"features,omitempty"`
}

// CPUFeature is a CPU feature flag and what to do with it.
type CPUFeature struct {
	// Name is the feature's name, e.g. vmx.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Policy is force, require, optional, disable or forbid. Defaults to
	// require.
	// +optional
	// +kubebuilder:validation:Enum=force;require;optional;disable;forbid
	Policy string `json:"policy,omitempty"`
}

// Memory is the guest memory.
type Memory struct {
	// Guest is the amount of memory the guest sees.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || quantity(string(self)).isGreaterThan(quantity('0'))",message="memory.guest must be greater than 0; set it to the guest's memory, e.g. 128Mi"
	Guest *resource.Quantity `json:"guest,omitempty"`
}

// Machine is the emulated machine type.
type Machine struct {
	// Type is the QEMU machine type, e.g. q35.
	// +optional
	Type string `json:"type,omitempty"`
}

// Devices are the guest's devices.
type Devices struct {
	// Disks, each backed by the volume of the same name.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Disks []Disk `json:"disks,omitempty"`

	// Interfaces, each connected to the network of the same name.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Interfaces []Interface `json:"interfaces,omitempty"`
}

// Disk is a guest disk.
type Disk struct {
	// Name matches the volume that backs the disk.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Disk attaches the volume as a hard disk.
	// +optional
	Disk *DiskTarget `json:"disk,omitempty"`

	// Serial is the disk's serial number as the guest sees it.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.+-]+$`
	Serial string `json:"serial,omitempty"`

	// BootOrder is the disk's position in the boot order (1 first). A
	// pointer because unset means "not bootable by order".
	// +optional
	// +kubebuilder:validation:Minimum=1
	BootOrder *uint `json:"bootOrder,omitempty"`
}

// DiskTarget says how a disk is attached.
type DiskTarget struct {
	// Bus is virtio, sata, scsi or usb. Defaults to virtio.
	// +optional
	// +kubebuilder:validation:Enum=virtio;sata;scsi;usb
	Bus string `json:"bus,omitempty"`
}

// Interface is a guest network interface.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.bridge) && has(self.masquerade))",message="set only one of bridge or masquerade on an interface"
type Interface struct {
	// Name matches the network the interface connects to.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Bridge connects the interface to its network through a bridge; the
	// guest gets the network's address. Used with multus networks.
	// +optional
	Bridge *InterfaceBridge `json:"bridge,omitempty"`

	// Masquerade connects the interface to the pod network through NAT.
	// +optional
	Masquerade *InterfaceMasquerade `json:"masquerade,omitempty"`

	// MacAddress is the interface's MAC address, e.g. 02:00:00:00:00:01.
	// Random when unset.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$`
	MacAddress string `json:"macAddress,omitempty"`

	// Model is the emulated NIC model, e.g. virtio or e1000e. Defaults to
	// virtio.
	// +optional
	Model string `json:"model,omitempty"`
}

// InterfaceBridge selects bridge binding. It has no fields.
type InterfaceBridge struct{}

// InterfaceMasquerade selects masquerade (NAT) binding. It has no fields.
type InterfaceMasquerade struct{}

// Network is a network a VMI interface can connect to.
//
// +kubebuilder:validation:XValidation:rule="has(self.pod) != has(self.multus)",message="set exactly one of pod or multus on a network"
type Network struct {
	// Name is what the interface of the same name connects to.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Pod is the pod network.
	// +optional
	Pod *PodNetwork `json:"pod,omitempty"`

	// Multus is a secondary network from a NetworkAttachmentDefinition.
	// +optional
	Multus *MultusNetwork `json:"multus,omitempty"`
}

// PodNetwork is the pod network. It has no fields in cclm.
type PodNetwork struct{}

// MultusNetwork refers to a NetworkAttachmentDefinition.
type MultusNetwork struct {
	// NetworkName is the NetworkAttachmentDefinition's name, optionally
	// prefixed with its namespace ("namespace/name").
	// +kubebuilder:validation:MinLength=1
	NetworkName string `json:"networkName"`
}

// Volume is a source of disk data.
//
// +kubebuilder:validation:XValidation:rule="[has(self.containerDisk), has(self.dataVolume), has(self.persistentVolumeClaim), has(self.cloudInitNoCloud), has(self.secret), has(self.configMap), has(self.sysprep)].filter(x, x).size() == 1",message="set exactly one of containerDisk, dataVolume, persistentVolumeClaim, cloudInitNoCloud, secret, configMap or sysprep on a volume"
type Volume struct {
	// Name matches the disk the volume backs.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// ContainerDisk is an ephemeral disk from an image.
	// +optional
	ContainerDisk *ContainerDiskSource `json:"containerDisk,omitempty"`

	// DataVolume is a disk backed by the DataVolume of this name.
	// +optional
	DataVolume *DataVolumeSource `json:"dataVolume,omitempty"`

	// PersistentVolumeClaim is a disk backed by a PVC.
	// +optional
	PersistentVolumeClaim *PersistentVolumeClaimVolumeSource `json:"persistentVolumeClaim,omitempty"`

	// CloudInitNoCloud is a NoCloud cloud-init data disk.
	// +optional
	CloudInitNoCloud *CloudInitNoCloudSource `json:"cloudInitNoCloud,omitempty"`

	// Secret is a read-only disk (an ISO 9660 image) holding one file per
	// key of the Secret of this name in the VMI's namespace.
	// +optional
	Secret *SecretVolumeSource `json:"secret,omitempty"`

	// ConfigMap is a read-only disk (an ISO 9660 image) holding one file
	// per key of the ConfigMap of this name in the VMI's namespace.
	// +optional
	ConfigMap *ConfigMapVolumeSource `json:"configMap,omitempty"`

	// Sysprep is a read-only disk with a Windows answer file (the
	// Secret's or ConfigMap's keys, e.g. unattend.xml), as an ISO 9660
	// image.
	// +optional
	Sysprep *SysprepSource `json:"sysprep,omitempty"`
}

// LocalObjectReference names an object in the VMI's namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// SecretVolumeSource is a Secret as a disk.
type SecretVolumeSource struct {
	// SecretName is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	SecretName string `json:"secretName"`
	// Optional: a missing Secret gives an empty disk instead of keeping
	// the VMI from starting.
	// +optional
	Optional *bool `json:"optional,omitempty"`
	// VolumeLabel is the ISO's volume label (default cfgdata).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	VolumeLabel string `json:"volumeLabel,omitempty"`
}

// ConfigMapVolumeSource is a ConfigMap as a disk.
type ConfigMapVolumeSource struct {
	// Name is the ConfigMap's name.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Optional: a missing ConfigMap gives an empty disk instead of
	// keeping the VMI from starting.
	// +optional
	Optional *bool `json:"optional,omitempty"`
	// VolumeLabel is the ISO's volume label (default cfgdata).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	VolumeLabel string `json:"volumeLabel,omitempty"`
}

// SysprepSource names the Secret or ConfigMap with the answer file.
//
// +kubebuilder:validation:XValidation:rule="has(self.secret) != has(self.configMap)",message="set exactly one of secret or configMap on sysprep"
type SysprepSource struct {
	// +optional
	Secret *LocalObjectReference `json:"secret,omitempty"`
	// +optional
	ConfigMap *LocalObjectReference `json:"configMap,omitempty"`
}

// ContainerDiskSource is an ephemeral disk built from an image. Its
// content is lost when the VMI stops; it is copied along during live
// migration.
type ContainerDiskSource struct {
	// Image is the image reference.
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`
}

// DataVolumeSource refers to a DataVolume in the VMI's namespace.
type DataVolumeSource struct {
	// Name of the DataVolume.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// PersistentVolumeClaimVolumeSource refers to a PVC in the VMI's namespace.
type PersistentVolumeClaimVolumeSource struct {
	// ClaimName is the PVC's name.
	// +kubebuilder:validation:MinLength=1
	ClaimName string `json:"claimName"`

	// ReadOnly attaches the disk read-only.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
}

// CloudInitNoCloudSource is NoCloud cloud-init data, inline or from a
// Secret (key userdata or userData; networkdata or networkData). The cclm
// guest runs no cloud-init, so the data reaches no guest; the Secrets must
// exist for the VMI to start, and travel with a migrated VM.
//
// +kubebuilder:validation:XValidation:rule="[has(self.userData), has(self.userDataBase64), has(self.secretRef)].filter(x, x).size() <= 1",message="set only one of userData, userDataBase64 or secretRef"
// +kubebuilder:validation:XValidation:rule="[has(self.networkData), has(self.networkDataBase64), has(self.networkDataSecretRef)].filter(x, x).size() <= 1",message="set only one of networkData, networkDataBase64 or networkDataSecretRef"
type CloudInitNoCloudSource struct {
	// UserData is the cloud-init user data, as text.
	// +optional
	UserData string `json:"userData,omitempty"`

	// UserDataBase64 is the cloud-init user data, base64-encoded.
	// +optional
	UserDataBase64 string `json:"userDataBase64,omitempty"`

	// SecretRef names a Secret with the user data.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// NetworkData is the cloud-init network configuration, as text.
	// +optional
	NetworkData string `json:"networkData,omitempty"`

	// NetworkDataBase64 is the network configuration, base64-encoded.
	// +optional
	NetworkDataBase64 string `json:"networkDataBase64,omitempty"`

	// NetworkDataSecretRef names a Secret with the network configuration.
	// +optional
	NetworkDataSecretRef *LocalObjectReference `json:"networkDataSecretRef,omitempty"`
}

// ObjectRef is a Secret or ConfigMap a volume references, by kind.
type ObjectRef struct {
	// Kind is Secret or ConfigMap.
	Kind string
	Name string
	// Optional: the volume does without it.
	Optional bool
}

// ReferencedObjects are the Secrets and ConfigMaps the spec's volumes
// reference, in volume order.
func (spec *VirtualMachineInstanceSpec) ReferencedObjects() []ObjectRef {
	var refs []ObjectRef
	for _, v := range spec.Volumes {
		switch {
		case v.Secret != nil:
			refs = append(refs, ObjectRef{Kind: "Secret", Name: v.Secret.SecretName, Optional: v.Secret.Optional != nil && *v.Secret.Optional})
		case v.ConfigMap != nil:
			refs = append(refs, ObjectRef{Kind: "ConfigMap", Name: v.ConfigMap.Name, Optional: v.ConfigMap.Optional != nil && *v.ConfigMap.Optional})
		case v.Sysprep != nil && v.Sysprep.Secret != nil:
			refs = append(refs, ObjectRef{Kind: "Secret", Name: v.Sysprep.Secret.Name})
		case v.Sysprep != nil && v.Sysprep.ConfigMap != nil:
			refs = append(refs, ObjectRef{Kind: "ConfigMap", Name: v.Sysprep.ConfigMap.Name})
		case v.CloudInitNoCloud != nil:
			for _, ref := range []*LocalObjectReference{v.CloudInitNoCloud.SecretRef, v.CloudInitNoCloud.NetworkDataSecretRef} {
				if ref != nil {
					refs = append(refs, ObjectRef{Kind: "Secret", Name: ref.Name})
				}
			}
		}
	}
	return refs
}

// ConfigDiskRef is the Secret or ConfigMap a volume turns into a read-only
// disk (secret, configMap, sysprep), and whether a volume does.
func (v Volume) ConfigDiskRef() (ObjectRef, bool) {
	if v.Secret == nil && v.ConfigMap == nil && v.Sysprep == nil {
		return ObjectRef{}, false
	}
	spec := VirtualMachineInstanceSpec{Volumes: []Volume{v}}
	return spec.ReferencedObjects()[0], true
}

// VirtualMachineInstancePhase is the lifecycle phase of a VMI.
type VirtualMachineInstancePhase string

// VMI phases.
const (
	VmPhaseUnset VirtualMachineInstancePhase = ""
	Pending      VirtualMachineInstancePhase = "Pending"
	Scheduling   VirtualMachineInstancePhase = "Scheduling"
	Scheduled    VirtualMachineInstancePhase = "Scheduled"
	Running      VirtualMachineInstancePhase = "Running"
	Succeeded    VirtualMachineInstancePhase = "Succeeded"
	Failed       VirtualMachineInstancePhase = "Failed"
	Unknown      VirtualMachineInstancePhase = "Unknown"
	// WaitingForSync: a receiver VMI waits for the source cluster to
	// synchronize the migration state.
	WaitingForSync VirtualMachineInstancePhase = "WaitingForSync"
)

// VirtualMachineInstanceStatus is the observed state of a VMI.
type VirtualMachineInstanceStatus struct {
	// Phase is the VMI's lifecycle phase.
	// +optional
	Phase VirtualMachineInstancePhase `json:"phase,omitempty"`

	// PhaseTransitionTimestamps records when each phase was entered.
	// +optional
	// +listType=atomic
	PhaseTransitionTimestamps []VirtualMachineInstancePhaseTransitionTimestamp `json:"phaseTransitionTimestamps,omitempty"`

	// NodeName is the node the VMI runs on.
	// +optional
	NodeName string `json:"nodeName,omitempty"`

	// Reason is a brief CamelCase reason for the current state.
	// +optional
	Reason string `json:"reason,omitempty"`

	// Conditions of the VMI.
	// +optional
	Conditions []VirtualMachineInstanceCondition `json:"conditions,omitempty"`

	// Interfaces are the guest's network interfaces as observed.
	// +optional
	Interfaces []VirtualMachineInstanceNetworkInterface `json:"interfaces,omitempty"`

	// GuestOSInfo is reported by the guest agent.
	// +optional
	GuestOSInfo *VirtualMachineInstanceGuestOSInfo `json:"guestOSInfo,omitempty"`

	// MigrationState is the state of the current or last live migration.
	// +optional
	MigrationState *VirtualMachineInstanceMigrationState `json:"migrationState,omitempty"`

	// MigrationMethod is BlockMigration when disks are copied along with
	// memory (always the case across clusters), LiveMigration otherwise.
	// +optional
	MigrationMethod VirtualMachineInstanceMigrationMethod `json:"migrationMethod,omitempty"`
}

// VirtualMachineInstancePhaseTransitionTimestamp records when a phase was
// entered.
type VirtualMachineInstancePhaseTransitionTimestamp struct {
	// +optional
	Phase VirtualMachineInstancePhase `json:"phase,omitempty"`
	// +optional
	// +nullable
	PhaseTransitionTimestamp metav1.Time `json:"phaseTransitionTimestamp,omitempty"`
}

// VirtualMachineInstanceMigrationMethod says whether disks are copied.
type VirtualMachineInstanceMigrationMethod string

// Migration methods.
const (
	BlockMigration VirtualMachineInstanceMigrationMethod = "BlockMigration"
	LiveMigration  VirtualMachineInstanceMigrationMethod = "LiveMigration"
)

// VirtualMachineInstanceConditionType is the type of a VMI condition.
type VirtualMachineInstanceConditionType string

// VMI condition types (upstream names).
const (
	VirtualMachineInstanceProvisioning                      VirtualMachineInstanceConditionType = "Provisioning"
	VirtualMachineInstanceReady                             VirtualMachineInstanceConditionType = "Ready"
	VirtualMachineInstanceSynchronized                      VirtualMachineInstanceConditionType = "Synchronized"
	VirtualMachineInstancePaused                            VirtualMachineInstanceConditionType = "Paused"
	VirtualMachineInstanceAgentConnected                    VirtualMachineInstanceConditionType = "AgentConnected"
	VirtualMachineInstanceIsMigratable                      VirtualMachineInstanceConditionType = "LiveMigratable"
	VirtualMachineInstanceIsStorageLiveMigratable           VirtualMachineInstanceConditionType = "StorageLiveMigratable"
	VirtualMachineInstanceDataVolumesReady                  VirtualMachineInstanceConditionType = "DataVolumesReady"
	VirtualMachineInstanceDecentralizedLiveMigrationFailure VirtualMachineInstanceConditionType = "DecentralizedLiveMigrationFailure"
)

// VirtualMachineInstanceCondition is a VMI condition, upstream shape.
type VirtualMachineInstanceCondition struct {
	Type   VirtualMachineInstanceConditionType `json:"type"`
	Status corev1.ConditionStatus              `json:"status"`
	// +optional
	// +nullable
	LastProbeTime metav1.Time `json:"lastProbeTime,omitempty"`
	// +optional
	// +nullable
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// VirtualMachineInstanceNetworkInterface is an observed guest interface.
type VirtualMachineInstanceNetworkInterface struct {
	// Name of the interface in the VMI spec (and of its network).
	// +optional
	Name string `json:"name,omitempty"`
	// IP is the first entry of IPs.
	// +optional
	IP string `json:"ipAddress,omitempty"`
	// IPs are all addresses of the interface.
	// +optional
	IPs []string `json:"ipAddresses,omitempty"`
	// MAC address.
	// +optional
	MAC string `json:"mac,omitempty"`
	// InterfaceName is the interface's name inside the guest, e.g. eth0.
	// +optional
	InterfaceName string `json:"interfaceName,omitempty"`
}

// VirtualMachineInstanceGuestOSInfo is the guest OS as the agent reports it.
type VirtualMachineInstanceGuestOSInfo struct {
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	KernelRelease string `json:"kernelRelease,omitempty"`
	// +optional
	Version string `json:"version,omitempty"`
	// +optional
	PrettyName string `json:"prettyName,omitempty"`
	// +optional
	VersionID string `json:"versionId,omitempty"`
	// +optional
	KernelVersion string `json:"kernelVersion,omitempty"`
	// +optional
	Machine string `json:"machine,omitempty"`
	// +optional
	ID string `json:"id,omitempty"`
}

func init() {
	knownTypes = append(knownTypes, &VirtualMachineInstance{}, &VirtualMachineInstanceList{})
}

// GuestMemoryBytes is the memory the guest gets: memory.guest, else the
// memory request, else the limit; 0 when none is set. The scheduler, the
// migration controller and the node agent all count memory this way.
func (s *VirtualMachineInstanceSpec) GuestMemoryBytes() int64 {
	domain := s.Domain
	if domain.Memory != nil && domain.Memory.Guest != nil {
		return domain.Memory.Guest.Value()
	}
	if q, ok := domain.Resources.Requests[corev1.ResourceMemory]; ok {
		return q.Value()
	}
	if q, ok := domain.Resources.Limits[corev1.ResourceMemory]; ok {
		return q.Value()
	}
	return 0
}

// ClaimName is the PVC behind the volume: its claim, or a DataVolume's
// PVC, which has the DataVolume's name; "" for other volumes.
func (v Volume) ClaimName() string {
	switch {
	case v.PersistentVolumeClaim != nil:
		return v.PersistentVolumeClaim.ClaimName
	case v.DataVolume != nil:
		return v.DataVolume.Name
	}
	return ""
}

// ClaimNames are the PVCs the spec's volumes use, sorted, each once.
func (spec *VirtualMachineInstanceSpec) ClaimNames() []string {
	var names []string
	for _, volume := range spec.Volumes {
		if name := volume.ClaimName(); name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
