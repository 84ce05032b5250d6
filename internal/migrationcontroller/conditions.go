package migrationcontroller

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// MigrationFinalizer keeps an active VMIM until its migration has ended on
// the node agents (upstream's name).
const MigrationFinalizer = "kubevirt.io/migrationJobFinalize"

// VMIM condition types. Upstream has migrationAbortRequested; the other
// two are cclm's, named in the same style.
const (
	// ConditionWaiting is True while the migration waits for something;
	// its reason and message say for what and until when. It is removed
	// when the wait ends.
	ConditionWaiting = kubevirtv1.VirtualMachineInstanceMigrationWaiting
	// ConditionFailed is True on a failed migration, with why.
	ConditionFailed = kubevirtv1.MigrationFailedCondition
	// ConditionAbortRequested is True once the controller asked the node
	// agents to abort; its lastTransitionTime starts the abort deadline.
	ConditionAbortRequested = kubevirtv1.VirtualMachineInstanceMigrationAbortRequested
)

// Reasons of conditions and events.
const (
	// Waits (ConditionWaiting).
	ReasonClusterLimit       = kubevirtv1.MigrationReasonClusterLimit
	ReasonNodeLimit          = kubevirtv1.MigrationReasonNodeLimit
	ReasonInboundNodeLimit   = kubevirtv1.MigrationReasonInboundNodeLimit
	ReasonUnschedulable      = "Unschedulable"
	ReasonWaitingForTarget   = "WaitingForTarget"
	ReasonWaitingForSource   = "WaitingForSource"
	ReasonMigrating          = "Migrating"
	ReasonPostCopy           = "PostCopy"
	ReasonHandover           = "WaitingForHandover"
	ReasonWaitingForAbort    = "WaitingForAbort"
	ReasonStateNotVisibleYet = "WaitingForMigrationState"
	// Decentralized: the source waits for the target cluster's node, the
	// target for the source cluster's first push.
	ReasonWaitingForTargetCluster = "WaitingForTargetCluster"
	ReasonWaitingForSourceCluster = "WaitingForSourceCluster"
	// ReasonWaitingForSourceStart: the source cluster answered, but its
	// migration waits there before it starts (a receiver; no deadline).
	ReasonWaitingForSourceStart = "WaitingForSourceStart"

	// Failures (ConditionFailed, Warning events).
	ReasonVMINotFound         = "VMINotFound"
	ReasonVMINotRunning       = "VMINotRunning"
	ReasonNotLiveMigratable   = "NotLiveMigratable"
	ReasonInFlight            = "MigrationInFlight"
	ReasonTargetNotReady      = "TargetNotReady"
	ReasonSourceNotStarted    = "SourceNotStarted"
	ReasonCompletionTimeout   = "CompletionTimeout"
	ReasonProgressTimeout     = "ProgressTimeout"
	ReasonAbortTimeout        = "AbortTimeout"
	ReasonHandoverTimeout     = "HandoverTimeout"
	ReasonNodeAgentFailure    = "MigrationFailed"
	ReasonMigrationStateLost  = "MigrationStateLost"
	ReasonCancelled           = "Cancelled"
	ReasonUnsupportedPhase    = "UnsupportedPhase"
	ReasonFinalizerForced     = "FinalizerRemovedWithoutConfirmation"
	ReasonModeSwitchRequested = "ModeSwitchRequested"
	ReasonSourceUnconfirmed   = "SourceDidNotConfirm"

	// Decentralized failures.
	// ReasonSyncTimeout: the peer cluster did not synchronize (target) or
	// get ready (source) within Timeouts.Sync.
	ReasonSyncTimeout = "SynchronizationTimeout"
	// ReasonSynchronizationFailed: the synchronization controller failed
	// the migration before it started here (the peer failed, or was silent).
	ReasonSynchronizationFailed = "SynchronizationFailed"
	// ReasonCancelledByPeer: the peer cluster's migration was deleted or
	// aborted.
	ReasonCancelledByPeer = "CancelledByPeer"
	// ReasonVMINotReceiving: a receive migration's VMI is not a receiver
	// waiting for it (phase WaitingForSync, on no node).
	ReasonVMINotReceiving = "VMINotWaitingForSync"
	// ReasonReceiverFailed: the Warning event of a receiver VMI marked
	// Failed because its migration failed.
	ReasonReceiverFailed = "ReceiverVMIFailed"

	// EventFailed is the Warning event of a failed migration (upstream's
	// FailedMigration).
	EventFailed = "FailedMigration"
	// EventAbortRequested is the event of an abort request.
	EventAbortRequested = "AbortRequested"
)

// setCondition sets c in conditions. lastTransitionTime moves when the
// status or the reason changes: it says since when this exact wait (or
// state) holds, which deadlines are counted from. A message change alone
// keeps it.
func setCondition(conditions []kubevirtv1.VirtualMachineInstanceMigrationCondition, c kubevirtv1.VirtualMachineInstanceMigrationCondition, now metav1.Time) []kubevirtv1.VirtualMachineInstanceMigrationCondition {
	c.LastProbeTime = metav1.Time{}
	for i := range conditions {
		if conditions[i].Type != c.Type {
			continue
		}
		c.LastTransitionTime = conditions[i].LastTransitionTime
		if conditions[i].Status != c.Status || conditions[i].Reason != c.Reason || c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
		}
		conditions[i] = c
		return conditions
	}
	c.LastTransitionTime = now
	return append(conditions, c)
}

func removeCondition(conditions []kubevirtv1.VirtualMachineInstanceMigrationCondition, t kubevirtv1.VirtualMachineInstanceMigrationConditionType) []kubevirtv1.VirtualMachineInstanceMigrationCondition {
	return slices.DeleteFunc(slices.Clone(conditions), func(c kubevirtv1.VirtualMachineInstanceMigrationCondition) bool { return c.Type == t })
}

func findCondition(conditions []kubevirtv1.VirtualMachineInstanceMigrationCondition, t kubevirtv1.VirtualMachineInstanceMigrationConditionType) *kubevirtv1.VirtualMachineInstanceMigrationCondition {
	for i := range conditions {
		if conditions[i].Type == t {
			return &conditions[i]
		}
	}
	return nil
}

// vmiConditionTrue: the VMI has condition t with status True.
func vmiConditionTrue(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType) (bool, *kubevirtv1.VirtualMachineInstanceCondition) {
	for i := range vmi.Status.Conditions {
		if vmi.Status.Conditions[i].Type == t {
			return vmi.Status.Conditions[i].Status == corev1.ConditionTrue, &vmi.Status.Conditions[i]
		}
	}
	return false, nil
}
