package virtcontroller

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// vmObservation is everything a VM's status is computed from.
type vmObservation struct {
	VM *kubevirtv1.VirtualMachine
	// VMI is the VM's VMI if the VM controls it, else nil.
	VMI     *kubevirtv1.VirtualMachineInstance
	Volumes volumeReadiness
	// StartFailure is the crash-loop bookkeeping after this sync.
	StartFailure startFailure
	// Decision is what the run strategy said this sync; it explains a
	// missing VMI.
	Decision vmiDecision
	// SyncFailure is set when acting on the decision failed.
	SyncFailure *syncFailure
	Now         time.Time
}

// syncFailure is an API error the VM controller hit, for the Failure
// condition.
type syncFailure struct {
	Reason  string // FailedCreate, FailedDelete, ...
	Message string
}

// Condition types the VM controller sets besides the mirrored VMI ones.
const (
	vmDataVolumesReady kubevirtv1.VirtualMachineConditionType = "DataVolumesReady"
)

// computeVMStatus is the VM's status for an observation.
func computeVMStatus(obs vmObservation) kubevirtv1.VirtualMachineStatus {
	status := kubevirtv1.VirtualMachineStatus{
		Created:            obs.VMI != nil,
		Ready:              vmiReady(obs.VMI),
		PrintableStatus:    printableStatus(obs),
		RunStrategy:        obs.VM.EffectiveRunStrategy(),
		ObservedGeneration: obs.VM.Generation,
		Conditions:         vmConditions(obs),
	}
	carryVMTransitionTimes(obs.VM.Status.Conditions, status.Conditions, metav1.NewTime(obs.Now.Truncate(time.Second)))
	return status
}

// printableStatus summarizes the VM for humans; the first match wins, in
// upstream's order of precedence.
func printableStatus(obs vmObservation) kubevirtv1.VirtualMachinePrintableStatus {
	vm, vmi := obs.VM, obs.VMI
	switch {
	case vm.DeletionTimestamp != nil:
		return kubevirtv1.VirtualMachineStatusTerminating
	case vmi != nil && vmi.DeletionTimestamp != nil:
		return kubevirtv1.VirtualMachineStatusStopping
	case vmi != nil && vmi.MigratedAway():
		// The guest runs in another cluster; here the VM is stopped for good.
		return kubevirtv1.VirtualMachineStatusStopped
	case vmi.IsMigrating():
		return kubevirtv1.VirtualMachineStatusMigrating
	case vmiConditionIs(vmi, kubevirtv1.VirtualMachineInstancePaused, corev1.ConditionTrue):
		return kubevirtv1.VirtualMachineStatusPaused
	case vmi != nil && vmi.Status.Phase == kubevirtv1.Running:
		return kubevirtv1.VirtualMachineStatusRunning
	case len(obs.Volumes.Failed) > 0:
		return kubevirtv1.VirtualMachineStatusDataVolumeError
	case isUnschedulable(vmi):
		return kubevirtv1.VirtualMachineStatusUnschedulable
	case isWaitingAsReceiver(vm.EffectiveRunStrategy(), vmi):
		return kubevirtv1.VirtualMachineStatusWaitingForReceiver
	case len(obs.Volumes.Pending) > 0:
		return kubevirtv1.VirtualMachineStatusProvisioning
	case vmi != nil && !vmi.Status.Phase.IsFinal() && vmi.Status.Phase != kubevirtv1.Unknown:
		return kubevirtv1.VirtualMachineStatusStarting
	case isBackingOff(obs):
		return kubevirtv1.VirtualMachineStatusCrashLoopBackOff
	case vmi == nil || vmi.Status.Phase.IsFinal():
		return kubevirtv1.VirtualMachineStatusStopped
	default:
		return kubevirtv1.VirtualMachineStatusUnknown
	}
}

func isUnschedulable(vmi *kubevirtv1.VirtualMachineInstance) bool {
	c := vmiCondition(vmi, PodScheduled)
	return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ReasonUnschedulable
}

// isWaitingAsReceiver: the VM is (or will be) the target of an incoming
// migration and its VMI has not taken over yet.
func isWaitingAsReceiver(strategy kubevirtv1.VirtualMachineRunStrategy, vmi *kubevirtv1.VirtualMachineInstance) bool {
	if vmi != nil && vmi.Status.Phase == kubevirtv1.WaitingForSync {
		return true
	}
	return strategy == kubevirtv1.RunStrategyWaitAsReceiver && (vmi == nil || !vmi.Status.Phase.IsFinal())
}

// isBackingOff: the last VMI failed and the next start is held back.
func isBackingOff(obs vmObservation) bool {
	if !restartsAfterFailure(obs.VM.EffectiveRunStrategy()) {
		return false
	}
	if obs.VMI != nil && obs.VMI.Status.Phase != kubevirtv1.Failed {
		return false
	}
	return obs.Now.Before(obs.StartFailure.RetryAfterTimestamp.Time)
}

func vmiReady(vmi *kubevirtv1.VirtualMachineInstance) bool {
	return vmi != nil && vmi.DeletionTimestamp == nil && vmi.Status.Phase == kubevirtv1.Running &&
		vmiConditionIs(vmi, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionTrue)
}

// vmConditions: Ready (the VMI's, or why there is none), the VMI's other
// conditions mirrored (upstream does the same; Forklift reads
// StorageLiveMigratable from the VM), DataVolumesReady and Failure.
func vmConditions(obs vmObservation) []kubevirtv1.VirtualMachineCondition {
	conditions := []kubevirtv1.VirtualMachineCondition{readyCondition(obs)}
	if obs.VMI != nil {
		for _, c := range obs.VMI.Status.Conditions {
			if c.Type != kubevirtv1.VirtualMachineInstanceReady {
				conditions = append(conditions, mirror(c))
			}
		}
	}
	if obs.Volumes.Referenced {
		conditions = append(conditions, dataVolumesReadyCondition(obs.Volumes))
	}
	if obs.SyncFailure != nil {
		conditions = append(conditions, kubevirtv1.VirtualMachineCondition{
			Type: kubevirtv1.VirtualMachineFailure, Status: corev1.ConditionTrue,
			Reason: obs.SyncFailure.Reason, Message: obs.SyncFailure.Message,
		})
	}
	return conditions
}

func readyCondition(obs vmObservation) kubevirtv1.VirtualMachineCondition {
	ready := kubevirtv1.VirtualMachineCondition{Type: kubevirtv1.VirtualMachineReady, Status: corev1.ConditionFalse}
	if obs.Decision.Reason == reasonMigratedAway {
		// Says where the guest went, which the ended VMI's own Ready
		// condition only hints at.
		ready.Reason, ready.Message = obs.Decision.Reason, obs.Decision.Message
		return ready
	}
	if c := vmiCondition(obs.VMI, kubevirtv1.VirtualMachineInstanceReady); c != nil {
		return mirror(*c)
	}
	if obs.VMI != nil {
		ready.Reason = "VMINotReady"
		ready.Message = fmt.Sprintf("VMI %s is %s", obs.VMI.Name, phaseOrUnset(obs.VMI.Status.Phase))
		return ready
	}
	ready.Reason, ready.Message = obs.Decision.Reason, obs.Decision.Message
	if ready.Reason == "" || obs.Decision.Action == createVMI {
		ready.Reason, ready.Message = "VMINotExists", "the VM has no VMI yet"
	}
	return ready
}

func mirror(c kubevirtv1.VirtualMachineInstanceCondition) kubevirtv1.VirtualMachineCondition {
	return kubevirtv1.VirtualMachineCondition{
		Type:               kubevirtv1.VirtualMachineConditionType(c.Type),
		Status:             c.Status,
		LastProbeTime:      c.LastProbeTime,
		LastTransitionTime: c.LastTransitionTime,
		Reason:             c.Reason,
		Message:            c.Message,
	}
}

func dataVolumesReadyCondition(volumes volumeReadiness) kubevirtv1.VirtualMachineCondition {
	c := kubevirtv1.VirtualMachineCondition{Type: vmDataVolumesReady, Status: corev1.ConditionTrue, Reason: "AllDVsReady"}
	if !volumes.ready() {
		c.Status, c.Reason = corev1.ConditionFalse, "NotAllDVsReady"
		c.Message = strings.Join(append(append([]string{}, volumes.Failed...), volumes.Pending...), "; ")
	}
	return c
}

func phaseOrUnset(phase kubevirtv1.VirtualMachineInstancePhase) string {
	if phase == "" {
		return "new (no phase yet)"
	}
	return string(phase)
}
