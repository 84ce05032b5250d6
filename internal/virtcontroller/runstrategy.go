package virtcontroller

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// vmiAction is what the VM controller does to the VM's VMI.
type vmiAction string

const (
	keepVMI   vmiAction = "Keep"
	createVMI vmiAction = "Create"
	deleteVMI vmiAction = "Delete"
)

// Reasons a VM has no VMI (the Ready condition's reason then).
const (
	reasonHalted               = "Halted"
	reasonManual               = "ManualRunStrategy"
	reasonWaitingForVolumes    = "WaitingForDataVolumes"
	reasonDataVolumeError      = "DataVolumeError"
	reasonCrashLoopBackOff     = "CrashLoopBackOff"
	reasonVMIEnded             = "VMIEnded"
	reasonVMIDeleting          = "VMIDeleting"
	reasonVMINotControlled     = "VMINotControlled"
	reasonVMDeleting           = "VMDeleting"
	reasonRunStrategySatisfied = "RunStrategySatisfied"
	// reasonMigratedAway: the VMI's guest left for another cluster.
	reasonMigratedAway = "MigratedAway"
	// reasonMigrationReceived: a receiver's incoming migration succeeded.
	reasonMigrationReceived = "MigrationReceived"
)

// vmiDecision is the VM controller's decision about the VMI, with the why
// for events and the VM's conditions.
type vmiDecision struct {
	Action vmiAction
	// Receiver: create the VMI as the target of an incoming migration.
	Receiver bool
	// Reason (CamelCase) and Message explain the decision.
	Reason  string
	Message string
	// RetryAfter > 0: nothing now, look again after this long (crash-loop
	// backoff).
	RetryAfter time.Duration
	// RunStrategy, when set, is the VM's new spec.runStrategy: Halted for a
	// VM whose guest migrated to another cluster, the restored strategy
	// for a receiver whose incoming migration succeeded.
	RunStrategy kubevirtv1.VirtualMachineRunStrategy
}

// volumeReadiness is what the VM's DataVolumes allow: a VMI is created
// only when none failed and none is still provisioning.
type volumeReadiness struct {
	// Failed and Pending explain each DataVolume that is not ready.
	Failed  []string
	Pending []string
	// Referenced: the VM uses DataVolumes at all.
	Referenced bool
}

func (v volumeReadiness) ready() bool { return len(v.Failed) == 0 && len(v.Pending) == 0 }

// runInput is everything the run-strategy decision depends on.
type runInput struct {
	Strategy   kubevirtv1.VirtualMachineRunStrategy
	VMDeleting bool
	// RestoreRunStrategy is the VM's kubevirt.io/restore-run-strategy
	// annotation: a receiver's run strategy once its migration succeeded.
	RestoreRunStrategy string
	// VMI is the VMI of the VM's name, nil if none; VMIControlled says
	// whether this VM is its controller (it may be a leftover of an
	// earlier VM of the same name, or hand-made).
	VMI           *kubevirtv1.VirtualMachineInstance
	VMIControlled bool
	Volumes       volumeReadiness
	// RetryAt: crash-loop backoff, no new VMI before this time.
	RetryAt time.Time
	Now     time.Time
}

// decideVMI applies the run strategy: upstream's semantics per strategy.
func decideVMI(in runInput) vmiDecision {
	if in.VMI != nil {
		return decideExistingVMI(in)
	}
	if in.VMDeleting {
		return keep(reasonVMDeleting, "the VM is being deleted")
	}
	switch in.Strategy {
	case kubevirtv1.RunStrategyHalted:
		return keep(reasonHalted, "runStrategy is Halted: the VM is stopped")
	case kubevirtv1.RunStrategyManual:
		return keep(reasonManual, "runStrategy is Manual: the controller neither starts nor stops the VM")
	}
	return decideStart(in)
}

func decideExistingVMI(in runInput) vmiDecision {
	vmi := in.VMI
	switch {
	case vmi.DeletionTimestamp != nil:
		return keep(reasonVMIDeleting, fmt.Sprintf("waiting for VMI %s to be deleted", vmi.Name))
	case !in.VMIControlled:
		return keep(reasonVMINotControlled, fmt.Sprintf("VMI %s exists but is not controlled by this VM; delete the VMI to let the VM create its own", vmi.Name))
	case in.VMDeleting:
		return remove("the VM is being deleted")
	case vmi.MigratedAway():
		return decideMigratedAway(in)
	case in.Strategy == kubevirtv1.RunStrategyWaitAsReceiver && received(vmi):
		return decideReceived(in)
	}
	phase := vmi.Status.Phase
	switch in.Strategy {
	case kubevirtv1.RunStrategyHalted:
		return remove("runStrategy is Halted")
	case kubevirtv1.RunStrategyAlways:
		if phase.IsFinal() {
			return remove(fmt.Sprintf("the VMI ended (%s) and runStrategy Always restarts it", phase))
		}
	case kubevirtv1.RunStrategyRerunOnFailure:
		if phase == kubevirtv1.Failed {
			return remove("the VMI failed and runStrategy RerunOnFailure restarts it")
		}
		if phase == kubevirtv1.Succeeded {
			return keep(reasonVMIEnded, "the VMI succeeded; runStrategy RerunOnFailure restarts only after a failure")
		}
	case kubevirtv1.RunStrategyOnce:
		if phase.IsFinal() {
			return keep(reasonVMIEnded, fmt.Sprintf("the VMI ended (%s); runStrategy Once runs it only once", phase))
		}
	}
	// Manual and WaitAsReceiver leave an existing VMI alone, ended or not:
	// a failed receiver is not retried (upstream: the source keeps running).
	return keep(reasonRunStrategySatisfied, "")
}

// decideMigratedAway: the guest runs in another cluster now. Its VMI here
// stays (the record of where it went; a new VMI would start a second copy
// of the guest), and a run strategy that would restart it becomes Halted.
func decideMigratedAway(in runInput) vmiDecision {
	state := in.VMI.Status.MigrationState
	d := keep(reasonMigratedAway, fmt.Sprintf(
		"the guest was live-migrated to node %s of another cluster and runs there; this VM keeps its VMI %s, volumes and spec, and does not start again here",
		state.TargetNode, in.VMI.Name))
	switch in.Strategy {
	case kubevirtv1.RunStrategyAlways, kubevirtv1.RunStrategyRerunOnFailure:
		d.RunStrategy = kubevirtv1.RunStrategyHalted
	}
	return d
}

// received: the receiver VMI took over the guest of a decentralized
// migration that succeeded.
func received(vmi *kubevirtv1.VirtualMachineInstance) bool {
	state := vmi.Status.MigrationState
	return vmi.Status.Phase == kubevirtv1.Running && state.IsDecentralizedTarget() && state.Succeeded()
}

// decideReceived: the incoming migration succeeded, so the VM stops
// waiting and runs as its restore-run-strategy annotation says.
func decideReceived(in runInput) vmiDecision {
	strategy, why := restoredRunStrategy(in.RestoreRunStrategy)
	d := keep(reasonMigrationReceived, fmt.Sprintf("the incoming migration succeeded and the guest runs here; runStrategy becomes %s, %s", strategy, why))
	d.RunStrategy = strategy
	return d
}

// restorableRunStrategies are what a receiver may become; not
// WaitAsReceiver, which would wait for a migration that already came.
var restorableRunStrategies = []kubevirtv1.VirtualMachineRunStrategy{
	kubevirtv1.RunStrategyAlways, kubevirtv1.RunStrategyHalted, kubevirtv1.RunStrategyManual,
	kubevirtv1.RunStrategyRerunOnFailure, kubevirtv1.RunStrategyOnce,
}

// restoredRunStrategy is the run strategy the restore-run-strategy
// annotation names, and why: an absent or unknown value gives Always.
func restoredRunStrategy(annotation string) (kubevirtv1.VirtualMachineRunStrategy, string) {
	for _, strategy := range restorableRunStrategies {
		if annotation == string(strategy) {
			return strategy, fmt.Sprintf("as annotation %s says", kubevirtv1.RestoreRunStrategyAnnotation)
		}
	}
	if annotation == "" {
		return kubevirtv1.RunStrategyAlways, fmt.Sprintf("the default, as the VM has no annotation %s", kubevirtv1.RestoreRunStrategyAnnotation)
	}
	names := make([]string, 0, len(restorableRunStrategies))
	for _, strategy := range restorableRunStrategies {
		names = append(names, string(strategy))
	}
	return kubevirtv1.RunStrategyAlways, fmt.Sprintf("the default, as annotation %s is %q, not one of %s",
		kubevirtv1.RestoreRunStrategyAnnotation, annotation, strings.Join(names, ", "))
}

// decideStart: the strategy wants a VMI and there is none.
func decideStart(in runInput) vmiDecision {
	if len(in.Volumes.Failed) > 0 {
		return keep(reasonDataVolumeError, "no VMI while a DataVolume failed: "+strings.Join(in.Volumes.Failed, "; "))
	}
	if len(in.Volumes.Pending) > 0 {
		return keep(reasonWaitingForVolumes, "waiting for DataVolumes: "+strings.Join(in.Volumes.Pending, "; "))
	}
	receiver := in.Strategy == kubevirtv1.RunStrategyWaitAsReceiver
	if wait := in.RetryAt.Sub(in.Now); wait > 0 && !receiver {
		d := keep(reasonCrashLoopBackOff, fmt.Sprintf("the VMI keeps failing; next start at %s", in.RetryAt.UTC().Format(time.RFC3339)))
		d.RetryAfter = wait
		return d
	}
	message := fmt.Sprintf("runStrategy %s wants the VM running", in.Strategy)
	if receiver {
		message = "runStrategy WaitAsReceiver: a receiver VMI waits for the incoming migration"
	}
	return vmiDecision{Action: createVMI, Receiver: receiver, Reason: "Starting", Message: message}
}

func keep(reason, message string) vmiDecision {
	return vmiDecision{Action: keepVMI, Reason: reason, Message: message}
}

func remove(message string) vmiDecision {
	return vmiDecision{Action: deleteVMI, Reason: "Stopping", Message: message}
}

// restartsAfterFailure: the strategies that create a new VMI after one
// failed, and so can crash-loop.
func restartsAfterFailure(strategy kubevirtv1.VirtualMachineRunStrategy) bool {
	return strategy == kubevirtv1.RunStrategyAlways || strategy == kubevirtv1.RunStrategyRerunOnFailure
}

// startFailure is the crash-loop bookkeeping, upstream's
// vm.status.startFailure (same field names), kept in StartFailureAnnotation.
type startFailure struct {
	ConsecutiveFailCount int         `json:"consecutiveFailCount"`
	LastFailedVMIUID     types.UID   `json:"lastFailedVMIUID,omitempty"`
	RetryAfterTimestamp  metav1.Time `json:"retryAfterTimestamp,omitempty"`
}

// backoffPolicy says how long to wait before restarting a failing VMI.
type backoffPolicy struct {
	// Base is the wait after the second consecutive failure; it doubles
	// with each further one up to Max. The first failure restarts at once.
	Base, Max time.Duration
	// StableRun: a VMI that ran at least this long before failing starts a
	// new count instead of adding to the old one.
	StableRun time.Duration
}

// delay is the wait before the next start after failures consecutive
// failures.
func (p backoffPolicy) delay(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	wait := p.Base
	for i := 2; i < failures && wait < p.Max; i++ {
		wait *= 2
	}
	return min(wait, p.Max)
}

// observeFailure updates the bookkeeping with the VMI as it is now: a VMI
// that failed and was not counted yet adds one (or restarts the count at
// one if it had run stably). changed says whether prev must be saved.
func observeFailure(prev startFailure, vmi *kubevirtv1.VirtualMachineInstance, now time.Time, policy backoffPolicy) (next startFailure, changed bool) {
	if vmi == nil || vmi.Status.Phase != kubevirtv1.Failed || vmi.UID == prev.LastFailedVMIUID {
		return prev, false
	}
	count := prev.ConsecutiveFailCount + 1
	if ranStably(vmi, now, policy.StableRun) {
		count = 1
	}
	return startFailure{
		ConsecutiveFailCount: count,
		LastFailedVMIUID:     vmi.UID,
		RetryAfterTimestamp:  metav1.NewTime(now.Add(policy.delay(count)).Truncate(time.Second)),
	}, true
}

// ranStably: the VMI was Running for at least stableRun before it ended.
// Without phase timestamps it counts as a start failure.
func ranStably(vmi *kubevirtv1.VirtualMachineInstance, now time.Time, stableRun time.Duration) bool {
	running := phaseEntered(vmi, kubevirtv1.Running)
	if running.IsZero() {
		return false
	}
	ended := phaseEntered(vmi, kubevirtv1.Failed)
	if ended.IsZero() {
		ended = now
	}
	return ended.Sub(running) >= stableRun
}

func phaseEntered(vmi *kubevirtv1.VirtualMachineInstance, phase kubevirtv1.VirtualMachineInstancePhase) time.Time {
	var entered time.Time
	for _, transition := range vmi.Status.PhaseTransitionTimestamps {
		if transition.Phase == phase {
			entered = transition.PhaseTransitionTimestamp.Time
		}
	}
	return entered
}
