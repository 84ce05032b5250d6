package migrationcontroller

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Scheduled through Running: following the node agents.

func (s *stepper) inFlight() {
	if reason, message := s.vmiUnavailable(); reason != "" {
		s.abortAndFail(reason, fmt.Sprintf("%s; the migration was %s", message, s.m.Status.Phase))
		return
	}
	state := s.ownState()
	if state == nil {
		s.stateMissing()
		return
	}
	switch {
	case state.Failed:
		s.fail(ReasonNodeAgentFailure, agentFailureMessage(state))
		return
	case s.abortRequested():
		s.awaitAbort(state)
		return
	}
	switch s.m.Status.Phase {
	case kubevirtv1.MigrationScheduled:
		s.enter(kubevirtv1.MigrationPreparingTarget, fmt.Sprintf("waiting for the node agent on %s to prepare the target", state.TargetNode))
	case kubevirtv1.MigrationPreparingTarget:
		s.preparingTarget(state)
	case kubevirtv1.MigrationTargetReady:
		s.targetReady(state)
	case kubevirtv1.MigrationRunning:
		s.running(state)
	}
}

// stateMissing: the VMI does not show this migration's state. Right after
// Scheduled that is a write the cache does not show yet, or one that was
// lost: write it again (the write is conditional on the VMI observed, so
// it cannot overwrite anything newer). Later it means someone replaced it.
func (s *stepper) stateMissing() {
	current := s.vmi.Status.MigrationState
	recorded := s.m.Status.MigrationState
	canRewrite := s.m.Status.Phase == kubevirtv1.MigrationScheduled && recorded != nil &&
		recorded.MigrationUID == s.m.UID && !unfinishedElsewhere(current, s.m.UID)
	if canRewrite {
		s.writeState(recorded.DeepCopy())
		s.wait(ReasonStateNotVisibleYet, "writing this migration's state into the VMI's status.migrationState", time.Time{})
		s.requeueIn(time.Second)
		return
	}
	owner := "nothing"
	if current != nil {
		owner = "migration " + string(current.MigrationUID)
	}
	s.fail(ReasonMigrationStateLost, fmt.Sprintf("VMI %s's status.migrationState no longer belongs to this migration (it now shows %s)", s.vmi.Name, owner))
}

func (s *stepper) preparingTarget(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	if state.TargetNodeAddress != "" && state.TargetNodeDomainDetected {
		s.enter(kubevirtv1.MigrationTargetReady, fmt.Sprintf("target node %s is ready at %s", state.TargetNode, state.TargetNodeAddress))
		return
	}
	deadline := s.started(state).Add(s.timeouts.TargetReady)
	if s.passed(deadline) {
		s.giveUp(state, ReasonTargetNotReady, fmt.Sprintf("the node agent on target node %s did not get ready within %s of the migration's start (%s)",
			state.TargetNode, s.timeouts.TargetReady, missingTargetFields(state)))
		return
	}
	s.wait(ReasonWaitingForTarget, fmt.Sprintf("waiting for the node agent on %s to report targetNodeAddress and targetNodeDomainDetected, until %s",
		state.TargetNode, stamp(deadline)), deadline)
}

func missingTargetFields(state *kubevirtv1.VirtualMachineInstanceMigrationState) string {
	switch {
	case state.TargetNodeAddress == "" && !state.TargetNodeDomainDetected:
		return "no targetNodeAddress, domain not detected"
	case state.TargetNodeAddress == "":
		return "no targetNodeAddress"
	default:
		return "targetNodeAddress " + state.TargetNodeAddress + " but domain not detected"
	}
}

func (s *stepper) targetReady(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	if state.Progress != nil || state.Completed || s.onTarget(state) {
		s.enter(kubevirtv1.MigrationRunning, fmt.Sprintf("the node agent on %s is sending VMI %s to node %s", state.SourceNode, s.vmi.Name, state.TargetNode))
		return
	}
	deadline := s.phaseSince(kubevirtv1.MigrationTargetReady).Add(s.timeouts.SourceStart)
	if s.passed(deadline) {
		s.requestAbort(state, ReasonSourceNotStarted, fmt.Sprintf("the node agent on source node %s did not start sending within %s of the target being ready",
			state.SourceNode, s.timeouts.SourceStart))
		return
	}
	s.wait(ReasonWaitingForSource, fmt.Sprintf("waiting for the node agent on %s to start sending (progress), until %s", state.SourceNode, stamp(deadline)), deadline)
}

func (s *stepper) running(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	if s.finished(state) {
		return
	}
	if state.Mode == kubevirtv1.MigrationPostCopy {
		// Post-copy cannot be undone: the guest already runs on the target
		// and pulls its memory from the source. There is nothing to abort;
		// the agents end it.
		s.wait(ReasonPostCopy, fmt.Sprintf("in post-copy to node %s: it cannot be aborted; waiting for the node agents to finish", state.TargetNode), time.Time{})
		return
	}
	config := s.config(state)
	progressDeadline, stalled := s.trackProgress(state, config)
	if stalled != "" {
		s.requestAbort(state, ReasonProgressTimeout, stalled)
		return
	}
	budget := completionTimeout(*config.CompletionTimeoutPerGiB, s.vmi, s.obs.VMIClaims)
	completionDeadline := s.started(state).Add(budget)
	if s.passed(completionDeadline) {
		if state.Mode != kubevirtv1.MigrationPaused {
			s.onCompletionTimeout(state, config, budget)
			return
		}
		// Paused already: the completion timeout has done what it can.
		completionDeadline = time.Time{}
	}
	s.wait(ReasonMigrating, migratingMessage(state.TargetNode, completionDeadline, progressDeadline), completionDeadline)
	if !progressDeadline.IsZero() {
		s.requeueAt(progressDeadline)
	}
}

func migratingMessage(target string, completionDeadline, progressDeadline time.Time) string {
	message := "migrating to node " + target
	if !completionDeadline.IsZero() {
		message += "; completion deadline " + stamp(completionDeadline)
	}
	if !progressDeadline.IsZero() {
		message += "; progress deadline " + stamp(progressDeadline)
	}
	return message
}

// trackProgress moves the progress watermark and says, once the migration
// has not got further for progressTimeout, why it stalled.
func (s *stepper) trackProgress(state *kubevirtv1.VirtualMachineInstanceMigrationState, config *kubevirtv1.MigrationConfiguration) (deadline time.Time, stalled string) {
	if state.Progress == nil {
		return time.Time{}, ""
	}
	watermark := nextWatermark(s.d.Watermark, state.Progress, s.now)
	s.d.Watermark = watermark
	deadline = watermark.Since.Add(time.Duration(*config.ProgressTimeout) * time.Second)
	if !s.passed(deadline) {
		return deadline, ""
	}
	return deadline, stalledMessage(watermark, state.Progress, config, s.now.Sub(watermark.Since.Time))
}

// onCompletionTimeout does what upstream does when a migration takes too
// long: switch to post-copy if allowed, else pause the guest if workload
// disruption is allowed, else abort.
func (s *stepper) onCompletionTimeout(state *kubevirtv1.VirtualMachineInstanceMigrationState, config *kubevirtv1.MigrationConfiguration, budget time.Duration) {
	why := fmt.Sprintf("the migration did not complete within %s (completionTimeoutPerGiB %d for %s of memory and disks)",
		budget, *config.CompletionTimeoutPerGiB, bytesString(max(guestMemory(s.vmi)+claimsSize(s.vmi, s.obs.VMIClaims), gib)))
	switch {
	case isTrue(config.AllowPostCopy):
		s.switchMode(state, kubevirtv1.MigrationPostCopy, why+": switching to post-copy (allowPostCopy)")
	case isTrue(config.AllowWorkloadDisruption):
		s.switchMode(state, kubevirtv1.MigrationPaused, why+": pausing the guest to let it converge (allowWorkloadDisruption)")
	default:
		s.requestAbort(state, ReasonCompletionTimeout, why+"; enable allowPostCopy or allowWorkloadDisruption, or raise completionTimeoutPerGiB")
	}
}

func (s *stepper) switchMode(state *kubevirtv1.VirtualMachineInstanceMigrationState, mode kubevirtv1.MigrationMode, message string) {
	next := state.DeepCopy()
	next.Mode = mode
	s.writeState(next)
	s.event(corev1.EventTypeWarning, ReasonModeSwitchRequested, message)
	s.wait(ReasonMigrating, message, time.Time{})
}

// finished handles a migration the agents reported as ended, or half
// ended: the target took the VMI over (status.nodeName) and the source
// reported completed. Each without the other is waited for, with a
// deadline. It reports whether it decided.
func (s *stepper) finished(state *kubevirtv1.VirtualMachineInstanceMigrationState) bool {
	onTarget := s.onTarget(state)
	switch {
	case state.Completed && onTarget:
		s.succeed(state)
		return true
	case !state.Completed && !onTarget:
		return false
	}
	deadline := s.waitingSince(ReasonHandover).Add(s.timeouts.Handover)
	switch {
	case s.passed(deadline) && onTarget:
		// The guest runs on the target; the migration did happen.
		s.event(corev1.EventTypeWarning, ReasonSourceUnconfirmed, fmt.Sprintf("the guest runs on node %s but the node agent on %s did not report the migration completed within %s; check that node agent",
			state.TargetNode, state.SourceNode, s.timeouts.Handover))
		s.succeed(state)
	case s.passed(deadline):
		s.fail(ReasonHandoverTimeout, fmt.Sprintf("the node agent on %s reported the migration completed but VMI status.nodeName is still %s, not %s, after %s: the node agent on %s did not take the VMI over",
			state.SourceNode, s.vmi.Status.NodeName, state.TargetNode, s.timeouts.Handover, state.TargetNode))
	case onTarget:
		s.wait(ReasonHandover, fmt.Sprintf("the guest runs on node %s; waiting for the node agent on %s to report completed, until %s", state.TargetNode, state.SourceNode, stamp(deadline)), deadline)
	default:
		s.wait(ReasonHandover, fmt.Sprintf("the migration completed; waiting for the node agent on %s to take the VMI over, until %s", state.TargetNode, stamp(deadline)), deadline)
	}
	return true
}

func (s *stepper) onTarget(state *kubevirtv1.VirtualMachineInstanceMigrationState) bool {
	return s.vmi != nil && state.TargetNode != "" && s.vmi.Status.NodeName == state.TargetNode
}
