package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
)

// VirtualMachine is a stateful virtual machine: it owns the VMI that runs
// it, per its run strategy, and the DataVolumes of its dataVolumeTemplates.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=virtualmachines,shortName=vm;vms,categories=all,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=".status.printableStatus"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
type VirtualMachine struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VirtualMachineSpec `json:"spec"`
	// +optional
	Status VirtualMachineStatus `json:"status,omitempty"`
}

// VirtualMachineList is a list of VirtualMachine.
//
// +kubebuilder:object:root=true
type VirtualMachineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualMachine `json:"items"`
}

// VirtualMachineRunStrategy says when the VM's VMI should run.
//
// +kubebuilder:validation:Enum=Always;Halted;Manual;RerunOnFailure;Once;WaitAsReceiver
type VirtualMachineRunStrategy string

// Run strategies.
const (
	RunStrategyUnknown        VirtualMachineRunStrategy = ""
	RunStrategyAlways         VirtualMachineRunStrategy = "Always"
	RunStrategyHalted         VirtualMachineRunStrategy = "Halted"
	RunStrategyManual         VirtualMachineRunStrategy = "Manual"
	RunStrategyRerunOnFailure VirtualMachineRunStrategy = "RerunOnFailure"
	RunStrategyOnce           VirtualMachineRunStrategy = "Once"
	// RunStrategyWaitAsReceiver creates a receiver VMI that waits for an
	// incoming decentralized migration; once it has succeeded the VM
	// switches to the run strategy in the kubevirt.io/restore-run-strategy
	// annotation. Needs the DecentralizedLiveMigration gate.
	RunStrategyWaitAsReceiver VirtualMachineRunStrategy = "WaitAsReceiver"
)

// VirtualMachineSpec describes a VM.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.running) && has(self.runStrategy))",message="spec.running and spec.runStrategy are mutually exclusive; remove spec.running (deprecated) and keep spec.runStrategy"
// +kubebuilder:validation:XValidation:rule="has(self.instancetype) || !has(self.template) || (has(self.template.spec.domain.memory) && has(self.template.spec.domain.memory.guest)) || (has(self.template.spec.domain.resources) && ((has(self.template.spec.domain.resources.requests) && 'memory' in self.template.spec.domain.resources.requests) || (has(self.template.spec.domain.resources.limits) && 'memory' in self.template.spec.domain.resources.limits)))",message="no memory requested: set spec.template.spec.domain.memory.guest or resources.requests.memory (e.g. 128Mi), or name an instancetype in spec.instancetype"
// +kubebuilder:validation:XValidation:rule="!has(self.instancetype) || !has(self.template) || !has(self.template.spec.domain.memory) || !has(self.template.spec.domain.memory.guest)",message="spec.template.spec.domain.memory.guest conflicts with spec.instancetype, which sets the guest memory: remove one"
// +kubebuilder:validation:XValidation:rule="!has(self.instancetype) || !has(self.template) || !has(self.template.spec.domain.cpu) || (!has(self.template.spec.domain.cpu.sockets) && !has(self.template.spec.domain.cpu.cores) && !has(self.template.spec.domain.cpu.threads))",message="spec.template.spec.domain.cpu sockets, cores and threads conflict with spec.instancetype, which sets the vCPUs: remove them or the instancetype"
type VirtualMachineSpec struct {
	// Running is the deprecated boolean form of runStrategy (true = Always,
	// false = Halted). A pointer so that "unset" differs from false.
	// Deprecated: use runStrategy.
	// +optional
	Running *bool `json:"running,omitempty"`

	// RunStrategy is Always, Halted, Manual, RerunOnFailure, Once or
	// WaitAsReceiver. A pointer, as upstream, so that "unset" (fall back to
	// running, else Halted) differs from any value.
	// +optional
	RunStrategy *VirtualMachineRunStrategy `json:"runStrategy,omitempty"`

	// Template is the VMI the VM runs.
	Template *VirtualMachineInstanceTemplateSpec `json:"template"`

	// Instancetype names the VirtualMachineInstancetype or
	// VirtualMachineClusterInstancetype that sizes the VM: its vCPUs,
	// memory and CPU model, applied to the VMI when it is created.
	// +optional
	Instancetype *InstancetypeMatcher `json:"instancetype,omitempty"`

	// Preference names the VirtualMachinePreference or
	// VirtualMachineClusterPreference whose defaults fill what the
	// template leaves unset.
	// +optional
	Preference *PreferenceMatcher `json:"preference,omitempty"`

	// DataVolumeTemplates are DataVolumes created with, and owned by, the VM.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	DataVolumeTemplates []DataVolumeTemplateSpec `json:"dataVolumeTemplates,omitempty"`
}

// Kinds an InstancetypeMatcher or PreferenceMatcher may name.
const (
	ClusterSingularResourceName = "VirtualMachineClusterInstancetype"
	SingularResourceName        = "VirtualMachineInstancetype"
	ClusterSingularPreference   = "VirtualMachineClusterPreference"
	SingularPreference          = "VirtualMachinePreference"
)

// InstancetypeMatcher names an instancetype.
type InstancetypeMatcher struct {
	// Name of the instancetype.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Kind is VirtualMachineClusterInstancetype (the default) or
	// VirtualMachineInstancetype (in the VM's namespace).
	// +optional
	// +kubebuilder:validation:Enum=VirtualMachineClusterInstancetype;VirtualMachineInstancetype;virtualmachineclusterinstancetype;virtualmachineinstancetype
	Kind string `json:"kind,omitempty"`
}

// PreferenceMatcher names a preference.
type PreferenceMatcher struct {
	// Name of the preference.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`

	// Kind is VirtualMachineClusterPreference (the default) or
	// VirtualMachinePreference (in the VM's namespace).
	// +optional
	// +kubebuilder:validation:Enum=VirtualMachineClusterPreference;VirtualMachinePreference;virtualmachineclusterpreference;virtualmachinepreference
	Kind string `json:"kind,omitempty"`
}

// IsNamespaced: the matcher names an instancetype in the VM's namespace.
func (m *InstancetypeMatcher) IsNamespaced() bool {
	return m.Kind == SingularResourceName || m.Kind == "virtualmachineinstancetype"
}

// IsNamespaced: the matcher names a preference in the VM's namespace.
func (m *PreferenceMatcher) IsNamespaced() bool {
	return m.Kind == SingularPreference || m.Kind == "virtualmachinepreference"
}

// TemplateObjectMeta is the metadata allowed in templates: labels and
// annotations (and the name, for DataVolume templates). Upstream keeps the
// whole ObjectMeta there with unknown fields preserved; cclm rejects what it
// would ignore.
type TemplateObjectMeta struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// CreationTimestamp is accepted only so that manifests produced by
	// kubectl/virtctl (which emit "creationTimestamp: null") apply as is;
	// it is ignored.
	// +optional
	// +nullable
	CreationTimestamp *metav1.Time `json:"creationTimestamp,omitempty"`
}

// VirtualMachineInstanceTemplateSpec is the template of a VM's VMI.
type VirtualMachineInstanceTemplateSpec struct {
	// +optional
	ObjectMeta TemplateObjectMeta `json:"metadata,omitempty"`
	// Spec of the VMI.
	Spec VirtualMachineInstanceSpec `json:"spec"`
}

// DataVolumeTemplateObjectMeta is the metadata of a DataVolume template; the
// name is required because the VM's volumes refer to it.
type DataVolumeTemplateObjectMeta struct {
	// Name of the DataVolume to create.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// CreationTimestamp is accepted and ignored; see TemplateObjectMeta.
	// +optional
	// +nullable
	CreationTimestamp *metav1.Time `json:"creationTimestamp,omitempty"`
}

// DataVolumeTemplateSpec is a DataVolume the VM creates and owns.
type DataVolumeTemplateSpec struct {
	ObjectMeta DataVolumeTemplateObjectMeta `json:"metadata"`
	// Spec of the DataVolume.
	Spec cdiv1beta1.DataVolumeSpec `json:"spec"`
}

// VirtualMachinePrintableStatus is a human-readable summary of a VM's state.
type VirtualMachinePrintableStatus string

// Printable statuses (upstream values).
const (
	VirtualMachineStatusStopped                 VirtualMachinePrintableStatus = "Stopped"
	VirtualMachineStatusProvisioning            VirtualMachinePrintableStatus = "Provisioning"
	VirtualMachineStatusStarting                VirtualMachinePrintableStatus = "Starting"
	VirtualMachineStatusRunning                 VirtualMachinePrintableStatus = "Running"
	VirtualMachineStatusPaused                  VirtualMachinePrintableStatus = "Paused"
	VirtualMachineStatusStopping                VirtualMachinePrintableStatus = "Stopping"
	VirtualMachineStatusTerminating             VirtualMachinePrintableStatus = "Terminating"
	VirtualMachineStatusCrashLoopBackOff        VirtualMachinePrintableStatus = "CrashLoopBackOff"
	VirtualMachineStatusMigrating               VirtualMachinePrintableStatus = "Migrating"
	VirtualMachineStatusUnknown                 VirtualMachinePrintableStatus = "Unknown"
	VirtualMachineStatusUnschedulable           VirtualMachinePrintableStatus = "ErrorUnschedulable"
	VirtualMachineStatusErrImagePull            VirtualMachinePrintableStatus = "ErrImagePull"
	VirtualMachineStatusImagePullBackOff        VirtualMachinePrintableStatus = "ImagePullBackOff"
	VirtualMachineStatusPvcNotFound             VirtualMachinePrintableStatus = "ErrorPvcNotFound"
	VirtualMachineStatusDataVolumeError         VirtualMachinePrintableStatus = "DataVolumeError"
	VirtualMachineStatusWaitingForVolumeBinding VirtualMachinePrintableStatus = "WaitingForVolumeBinding"
	// VirtualMachineStatusWaitingForReceiver: a receiver VM whose VMI waits
	// for the incoming migration.
	VirtualMachineStatusWaitingForReceiver VirtualMachinePrintableStatus = "WaitingForReceiver"
)

// VirtualMachineStatus is the observed state of a VM.
type VirtualMachineStatus struct {
	// Created: the VM's VMI exists.
	// +optional
	Created bool `json:"created,omitempty"`
	// Ready: the VM's VMI is running and ready.
	// +optional
	Ready bool `json:"ready,omitempty"`
	// PrintableStatus summarizes the state for humans.
	// +optional
	PrintableStatus VirtualMachinePrintableStatus `json:"printableStatus,omitempty"`
	// RunStrategy is the last run strategy the controller acted on.
	// +optional
	RunStrategy VirtualMachineRunStrategy `json:"runStrategy,omitempty"`
	// ObservedGeneration is the VM generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	Conditions []VirtualMachineCondition `json:"conditions,omitempty"`
}

// VirtualMachineConditionType is the type of a VM condition.
type VirtualMachineConditionType string

// VM condition types.
const (
	VirtualMachineFailure VirtualMachineConditionType = "Failure"
	VirtualMachineReady   VirtualMachineConditionType = "Ready"
	VirtualMachinePaused  VirtualMachineConditionType = "Paused"
)

// VirtualMachineCondition is a VM condition, upstream shape.
type VirtualMachineCondition struct {
	Type   VirtualMachineConditionType `json:"type"`
	Status corev1.ConditionStatus      `json:"status"`
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

// EffectiveRunStrategy returns the run strategy the VM asks for: runStrategy
// if set, else Always/Halted from the deprecated running, else Halted (as
// upstream's VirtualMachine.RunStrategy, minus the error for both set, which
// the CRD already refuses).
func (vm *VirtualMachine) EffectiveRunStrategy() VirtualMachineRunStrategy {
	switch {
	case vm.Spec.RunStrategy != nil:
		return *vm.Spec.RunStrategy
	case vm.Spec.Running != nil && *vm.Spec.Running:
		return RunStrategyAlways
	default:
		return RunStrategyHalted
	}
}

func init() {
	knownTypes = append(knownTypes, &VirtualMachine{}, &VirtualMachineList{})
}
