package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// VirtualMachineInstanceMigration asks for one live migration of a VMI.
// Without sendTo/receive it is a classic in-cluster migration. With sendTo
// it is the source half of a decentralized (cross-cluster) migration, with
// receive the target half; the two halves are paired by migrationID.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=virtualmachineinstancemigrations,shortName=vmim;vmims,categories=all,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="VMI",type=string,JSONPath=".spec.vmiName"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type VirtualMachineInstanceMigration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VirtualMachineInstanceMigrationSpec `json:"spec"`
	// +optional
	Status VirtualMachineInstanceMigrationStatus `json:"status,omitempty"`
}

// VirtualMachineInstanceMigrationList is a list of
// VirtualMachineInstanceMigration.
//
// +kubebuilder:object:root=true
type VirtualMachineInstanceMigrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualMachineInstanceMigration `json:"items"`
}

// VirtualMachineInstanceMigrationSpec says which VMI to migrate and, for a
// decentralized migration, which side this object is.
//
// The spec is immutable, as upstream: a migration is cancelled by deleting
// it, and retried by creating a new one.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable; delete this migration and create a new one"
// +kubebuilder:validation:XValidation:rule="!(has(self.sendTo) && has(self.receive)) || self.sendTo.migrationID == self.receive.migrationID",message="spec.sendTo.migrationID and spec.receive.migrationID must be equal when both are set"
type VirtualMachineInstanceMigrationSpec struct {
	// VMIName is the VMI to migrate, in the migration's namespace. Upstream
	// tags it omitempty but requires it; here the schema says so.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="size(self) > 0",message="spec.vmiName must not be empty; set it to the name of the VirtualMachineInstance to migrate"
	VMIName string `json:"vmiName"`

	// SendTo makes this the source half of a decentralized migration.
	// +optional
	SendTo *VirtualMachineInstanceMigrationSource `json:"sendTo,omitempty"`

	// Receive makes this the target half of a decentralized migration.
	// +optional
	Receive *VirtualMachineInstanceMigrationTarget `json:"receive,omitempty"`
}

// VirtualMachineInstanceMigrationSource is the source side of a
// decentralized migration.
type VirtualMachineInstanceMigrationSource struct {
	// MigrationID identifies the migration; the target's receive.migrationID
	// must be the same.
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="size(self) > 0",message="spec.sendTo.migrationID must not be empty; set it to the ID the target migration's spec.receive.migrationID carries"
	MigrationID string `json:"migrationID"`

	// ConnectURL is the host:port of the target cluster's synchronization
	// controller, usually the target VMIM's
	// status.synchronizationAddresses[0]. IPv6 hosts are bracketed.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule=`!self.contains('://')`,message="spec.sendTo.connectURL must be host:port without a scheme, e.g. 192.168.201.129:9185; remove the \"scheme://\" prefix"
	// +kubebuilder:validation:XValidation:rule=`self.contains('://') || (self.matches('^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$') && int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)`,message="spec.sendTo.connectURL must be host:port with a port from 1 to 65535, e.g. 192.168.201.129:9185 or [fd00::1]:9185; use the target migration's status.synchronizationAddresses[0]"
	ConnectURL string `json:"connectURL"`
}

// VirtualMachineInstanceMigrationTarget is the target side of a
// decentralized migration.
type VirtualMachineInstanceMigrationTarget struct {
	// MigrationID identifies the migration; the source's sendTo.migrationID
	// must be the same.
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="size(self) > 0",message="spec.receive.migrationID must not be empty; set it to the ID the source migration's spec.sendTo.migrationID carries"
	MigrationID string `json:"migrationID"`
}

// VirtualMachineInstanceMigrationPhase is the phase of a migration.
type VirtualMachineInstanceMigrationPhase string

// Migration phases.
const (
	MigrationPhaseUnset      VirtualMachineInstanceMigrationPhase = ""
	MigrationPending         VirtualMachineInstanceMigrationPhase = "Pending"
	MigrationScheduling      VirtualMachineInstanceMigrationPhase = "Scheduling"
	MigrationScheduled       VirtualMachineInstanceMigrationPhase = "Scheduled"
	MigrationPreparingTarget VirtualMachineInstanceMigrationPhase = "PreparingTarget"
	MigrationTargetReady     VirtualMachineInstanceMigrationPhase = "TargetReady"
	MigrationRunning         VirtualMachineInstanceMigrationPhase = "Running"
	MigrationSucceeded       VirtualMachineInstanceMigrationPhase = "Succeeded"
	MigrationFailed          VirtualMachineInstanceMigrationPhase = "Failed"
	// MigrationWaitingForSync: a target migration waits for the source to
	// connect and synchronize.
	MigrationWaitingForSync VirtualMachineInstanceMigrationPhase = "WaitingForSync"
	// MigrationSynchronizing: a source migration exchanges state with the
	// target before the transfer starts.
	MigrationSynchronizing VirtualMachineInstanceMigrationPhase = "Synchronizing"
)

// VirtualMachineInstanceMigrationStatus is the observed state of a migration.
type VirtualMachineInstanceMigrationStatus struct {
	// +optional
	Phase VirtualMachineInstanceMigrationPhase `json:"phase,omitempty"`

	// PhaseTransitionTimestamps records when each phase was entered.
	// +optional
	// +listType=atomic
	PhaseTransitionTimestamps []VirtualMachineInstanceMigrationPhaseTransitionTimestamp `json:"phaseTransitionTimestamps,omitempty"`

	// +optional
	Conditions []VirtualMachineInstanceMigrationCondition `json:"conditions,omitempty"`

	// MigrationState mirrors the VMI's status.migrationState.
	// +optional
	MigrationState *VirtualMachineInstanceMigrationState `json:"migrationState,omitempty"`

	// SynchronizationAddresses are the host:port addresses of this
	// cluster's synchronization controller; a source migration's
	// sendTo.connectURL is the target migration's first address.
	// +optional
	// +listType=atomic
	SynchronizationAddresses []string `json:"synchronizationAddresses,omitempty"`
}

// VirtualMachineInstanceMigrationPhaseTransitionTimestamp records when a
// phase was entered.
type VirtualMachineInstanceMigrationPhaseTransitionTimestamp struct {
	// +optional
	Phase VirtualMachineInstanceMigrationPhase `json:"phase,omitempty"`
	// +optional
	// +nullable
	PhaseTransitionTimestamp metav1.Time `json:"phaseTransitionTimestamp,omitempty"`
}

// VirtualMachineInstanceMigrationConditionType is the type of a migration
// condition.
type VirtualMachineInstanceMigrationConditionType string

// Migration condition types (upstream names, lower camel case as upstream).
const (
	VirtualMachineInstanceMigrationAbortRequested       VirtualMachineInstanceMigrationConditionType = "migrationAbortRequested"
	VirtualMachineInstanceDecentralizedMigrationBlocked VirtualMachineInstanceMigrationConditionType = "decentralizedMigrationBlocked"
)

// VirtualMachineInstanceMigrationCondition is a migration condition,
// upstream shape.
type VirtualMachineInstanceMigrationCondition struct {
	Type   VirtualMachineInstanceMigrationConditionType `json:"type"`
	Status corev1.ConditionStatus                       `json:"status"`
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

// MigrationAbortStatus is the outcome of an abort request.
type MigrationAbortStatus string

// Abort statuses.
const (
	MigrationAbortSucceeded  MigrationAbortStatus = "Succeeded"
	MigrationAbortFailed     MigrationAbortStatus = "Failed"
	MigrationAbortInProgress MigrationAbortStatus = "Aborting"
)

// MigrationMode is pre-copy, post-copy or paused.
type MigrationMode string

// Migration modes.
const (
	MigrationPreCopy  MigrationMode = "PreCopy"
	MigrationPostCopy MigrationMode = "PostCopy"
	MigrationPaused   MigrationMode = "Paused"
)

// VirtualMachineInstanceMigrationState is the state of a VMI's current or
// last migration (VMI status.migrationState, mirrored in the VMIM status).
//
// The flat fields are upstream's original ones and stay filled for
// decentralized migrations too. SourceState and TargetState are each written
// by one side and exchanged by the synchronization controllers.
type VirtualMachineInstanceMigrationState struct {
	// StartTimestamp is when the migration began.
	// +optional
	// +nullable
	StartTimestamp *metav1.Time `json:"startTimestamp,omitempty"`
	// EndTimestamp is when the migration ended.
	// +optional
	// +nullable
	EndTimestamp *metav1.Time `json:"endTimestamp,omitempty"`

	// TargetNodeDomainReadyTimestamp is when the target saw the domain
	// become active.
	// +optional
	// +nullable
	TargetNodeDomainReadyTimestamp *metav1.Time `json:"targetNodeDomainReadyTimestamp,omitempty"`
	// TargetNodeDomainDetected: the target node has seen the domain start.
	// +optional
	TargetNodeDomainDetected bool `json:"targetNodeDomainDetected,omitempty"`
	// TargetNodeAddress is the address the source streams to.
	// +optional
	TargetNodeAddress string `json:"targetNodeAddress,omitempty"`
	// TargetDirectMigrationNodePorts maps ports opened on the target node
	// to their use (upstream: port -> 0 for the main stream, else disk).
	// +optional
	TargetDirectMigrationNodePorts map[string]int `json:"targetDirectMigrationNodePorts,omitempty"`
	// TargetNode is the node the VMI moves to.
	// +optional
	TargetNode string `json:"targetNode,omitempty"`
	// TargetPod is the pod (in cclm: the target node agent's VMI instance)
	// the VMI moves to.
	// +optional
	TargetPod string `json:"targetPod,omitempty"`
	// TargetAttachmentPodUID is the UID of the target's hotplug attachment
	// pod; unused by cclm, kept for shape compatibility.
	// +optional
	TargetAttachmentPodUID types.UID `json:"targetAttachmentPodUID,omitempty"`

	// SourceNode is the node the VMI moves from.
	// +optional
	SourceNode string `json:"sourceNode,omitempty"`
	// SourcePod is the pod the VMI moves from.
	// +optional
	SourcePod string `json:"sourcePod,omitempty"`

	// Completed: the migration finished (successfully or not).
	// +optional
	Completed bool `json:"completed,omitempty"`
	// Failed: the migration failed.
	// +optional
	Failed bool `json:"failed,omitempty"`
	// AbortRequested: an abort was requested.
	// +optional
	AbortRequested bool `json:"abortRequested,omitempty"`
	// AbortStatus is the outcome of the abort.
	// +optional
	AbortStatus MigrationAbortStatus `json:"abortStatus,omitempty"`
	// FailureReason says why the migration failed.
	// +optional
	FailureReason string `json:"failureReason,omitempty"`
	// MigrationUID is the UID of the VMIM that drives this migration.
	// +optional
	MigrationUID types.UID `json:"migrationUid,omitempty"`
	// Mode is PreCopy, PostCopy or Paused.
	// +optional
	Mode MigrationMode `json:"mode,omitempty"`
	// MigrationPolicyName is the MigrationPolicy (migrations.kubevirt.io)
	// that matched the VMI when the migration started, whose settings
	// migrationConfiguration includes; unset when none matched.
	// +optional
	MigrationPolicyName *string `json:"migrationPolicyName,omitempty"`
	// MigrationConfiguration is the resolved configuration the migration
	// runs with (upstream type VMIMConfigurationOptions, same field names).
	// +optional
	MigrationConfiguration *MigrationConfiguration `json:"migrationConfiguration,omitempty"`

	// SourceState is written by the source side.
	// +optional
	SourceState *VirtualMachineInstanceMigrationSourceState `json:"sourceState,omitempty"`
	// TargetState is written by the target side.
	// +optional
	TargetState *VirtualMachineInstanceMigrationTargetState `json:"targetState,omitempty"`

	// Progress is a cclm extension, not an upstream field: live transfer
	// figures of the running migration, so that progress is observable in
	// status. Upstream KubeVirt has no equivalent and would drop it.
	// +optional
	Progress *MigrationProgress `json:"progress,omitempty"`
}

// VirtualMachineInstanceCommonMigrationState is what each side of a
// decentralized migration says about itself.
type VirtualMachineInstanceCommonMigrationState struct {
	// Node the side's VMI runs on.
	// +optional
	Node string `json:"node,omitempty"`
	// Pod of the side's VMI.
	// +optional
	Pod string `json:"pod,omitempty"`
	// MigrationUID is the UID of the side's VMIM.
	// +optional
	MigrationUID types.UID `json:"migrationUID,omitempty"`
	// DomainName is the side's domain (QEMU instance) name. Pointers here
	// follow upstream: unset differs from empty during synchronization.
	// +optional
	DomainName *string `json:"domainName,omitempty"`
	// DomainNamespace is the namespace part of the domain name.
	// +optional
	DomainNamespace *string `json:"domainNamespace,omitempty"`
	// SyncAddress is the host:port of the side's synchronization
	// controller. Set only for decentralized migrations.
	// +optional
	SyncAddress *string `json:"syncAddress,omitempty"`
	// VirtualMachineInstanceUID is the UID of the side's VMI.
	// +optional
	VirtualMachineInstanceUID *types.UID `json:"virtualMachineInstanceUID,omitempty"`
}

// VirtualMachineInstanceMigrationSourceState is the source side's state.
type VirtualMachineInstanceMigrationSourceState struct {
	VirtualMachineInstanceCommonMigrationState `json:",inline"`

	// NodeSelectors the target needs to place the receiving VMI (CPU model
	// labels of the source node).
	// +optional
	NodeSelectors map[string]string `json:"nodeSelectors,omitempty"`

	// MigrationConfiguration is a cclm extension: the configuration the
	// source cluster migrates with (its KubeVirt CR and MigrationPolicy,
	// as in the source's migrationState.migrationConfiguration). The
	// receiving side's QEMU must expect the stream the source sends
	// (multifd channels, post-copy), which that configuration decides.
	// +optional
	MigrationConfiguration *MigrationConfiguration `json:"migrationConfiguration,omitempty"`
}

// VirtualMachineInstanceMigrationTargetState is the target side's state.
type VirtualMachineInstanceMigrationTargetState struct {
	VirtualMachineInstanceCommonMigrationState `json:",inline"`

	// DomainReadyTimestamp is when the target saw the domain become active.
	// +optional
	// +nullable
	DomainReadyTimestamp *metav1.Time `json:"domainReadyTimestamp,omitempty"`
	// DomainDetected: the target has seen the domain start.
	// +optional
	DomainDetected bool `json:"domainDetected,omitempty"`
	// NodeAddress is the target node's migration address.
	// +optional
	NodeAddress *string `json:"nodeAddress,omitempty"`
	// DirectMigrationNodePorts are the ports opened on the target node.
	// +optional
	DirectMigrationNodePorts map[string]int `json:"directMigrationNodePorts,omitempty"`
}

// MigrationProgress is a cclm extension: the transfer figures of a running
// migration as QEMU reports them. Byte counts include migrated disks.
type MigrationProgress struct {
	// TransferredBytes sent so far.
	// +optional
	TransferredBytes int64 `json:"transferredBytes,omitempty"`
	// RemainingBytes still to send in the current pass.
	// +optional
	RemainingBytes int64 `json:"remainingBytes,omitempty"`
	// TotalBytes to send in one full pass.
	// +optional
	TotalBytes int64 `json:"totalBytes,omitempty"`
	// DirtyRateBytesPerSecond is the rate the guest dirties memory at.
	// +optional
	DirtyRateBytesPerSecond int64 `json:"dirtyRateBytesPerSecond,omitempty"`
	// Iteration is the memory pass number (1 = first full copy).
	// +optional
	Iteration int64 `json:"iteration,omitempty"`
	// ExpectedDowntimeMs is QEMU's estimate of the switchover pause.
	// +optional
	ExpectedDowntimeMs int64 `json:"expectedDowntimeMs,omitempty"`
	// DowntimeMs is the measured switchover pause, once completed.
	// +optional
	DowntimeMs int64 `json:"downtimeMs,omitempty"`
	// UpdatedTimestamp is when these figures were sampled.
	// +optional
	// +nullable
	UpdatedTimestamp *metav1.Time `json:"updatedTimestamp,omitempty"`
}

// IsDecentralized reports whether m is one half of a decentralized
// migration: exactly one of sendTo and receive is set (upstream semantics).
func (m *VirtualMachineInstanceMigration) IsDecentralized() bool {
	return (m.Spec.SendTo != nil) != (m.Spec.Receive != nil)
}

// IsDecentralizedSource reports whether m is the source half.
func (m *VirtualMachineInstanceMigration) IsDecentralizedSource() bool {
	return m.IsDecentralized() && m.Spec.SendTo != nil
}

// IsDecentralizedTarget reports whether m is the target half.
func (m *VirtualMachineInstanceMigration) IsDecentralizedTarget() bool {
	return m.IsDecentralized() && m.Spec.Receive != nil
}

// IsFinal reports whether the migration has succeeded or failed.
// MigrationFailedCondition is the condition of a failed migration; its
// message says why, also for a migration that failed before it had a
// migrationState.
const MigrationFailedCondition VirtualMachineInstanceMigrationConditionType = "migrationFailed"

// FailureMessage is why m failed: migrationState.failureReason, else the
// message of its migrationFailed condition; "" if it did not fail.
func (m *VirtualMachineInstanceMigration) FailureMessage() string {
	if state := m.Status.MigrationState; state != nil && state.FailureReason != "" {
		return state.FailureReason
	}
	for _, c := range m.Status.Conditions {
		if c.Type == MigrationFailedCondition && c.Status == corev1.ConditionTrue {
			return c.Message
		}
	}
	return ""
}

func (m *VirtualMachineInstanceMigration) IsFinal() bool {
	return m.Status.Phase == MigrationSucceeded || m.Status.Phase == MigrationFailed
}

// IsDecentralizedSource reports whether the state is the source cluster's
// half of a decentralized migration: the local VMIM (MigrationUID) is the
// one the source half names. The migration controller writes both at once,
// and the synchronization controller keeps them so.
func (s *VirtualMachineInstanceMigrationState) IsDecentralizedSource() bool {
	return s != nil && s.MigrationUID != "" && s.SourceState != nil && s.SourceState.MigrationUID == s.MigrationUID
}

// IsDecentralizedTarget reports whether the state is the target cluster's
// half of a decentralized migration.
func (s *VirtualMachineInstanceMigrationState) IsDecentralizedTarget() bool {
	return s != nil && s.MigrationUID != "" && s.TargetState != nil && s.TargetState.MigrationUID == s.MigrationUID
}

// Succeeded reports whether the migration completed without failing.
func (s *VirtualMachineInstanceMigrationState) Succeeded() bool {
	return s != nil && s.Completed && !s.Failed
}

// MigratedAway reports whether the VMI left its cluster: its decentralized
// migration to another cluster succeeded and its QEMU here has ended. Such
// a VMI must never be started again here (the guest runs in the other
// cluster).
func (vmi *VirtualMachineInstance) MigratedAway() bool {
	state := vmi.Status.MigrationState
	return vmi.Status.Phase == Succeeded && state.IsDecentralizedSource() && state.Succeeded()
}

func init() {
	knownTypes = append(knownTypes, &VirtualMachineInstanceMigration{}, &VirtualMachineInstanceMigrationList{})
}

// IsFinal reports whether a VMI in this phase has ended: Succeeded or
// Failed.
func (p VirtualMachineInstancePhase) IsFinal() bool { return p == Succeeded || p == Failed }

// IsMigrating reports whether the VMI is in a migration that started and
// has not ended; false for a nil VMI.
func (vmi *VirtualMachineInstance) IsMigrating() bool {
	if vmi == nil || vmi.Status.MigrationState == nil {
		return false
	}
	state := vmi.Status.MigrationState
	return state.StartTimestamp != nil && state.EndTimestamp == nil && !state.Completed
}
