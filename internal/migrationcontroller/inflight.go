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
	case state.AbortRequested && s.role.decentralized():
		s.abortedByPeer(state)
		return
	}
	switch s.m.Status.Phase {
	case kubevirtv1.MigrationSynchronizing:
		s.synchronizing(state)
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
// the handoff (Scheduled; a source: Synchronizing) that is a write the
// cache does not show yet, or one that was lost: write it again (the
// write is conditional on the VMI observed, so it cannot overwrite
// anything newer). Later it means someone replaced it.
func (s *stepper) stateMissing() {
	current := s.vmi.Status.MigrationState
	recorded := s.m.Status.MigrationState
	canRewrite := s.m.Status.Phase == s.role.handoffPhase() && recorded != nil &&
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
	s.wait(ReasonWaitingForTarget, fmt.Sprintf("waiting for the node agent on %s to report targetNodeAddress and targetNodeDomainDetected (%s), until %s",
		state.TargetNode, missingTargetFields(state), stamp(deadline)), deadline)
}

func missingTargetFields(state *kubevirtv1.VirtualMachineInstanceMigrationState) string {
	switch {
	case state.IsDecentralizedTarget() && state.TargetNodeAddress == "" && (state.SourceState == nil || state.SourceState.MigrationConfiguration == nil):
		// The receiving agent builds its QEMU for the source's stream
		// format, which only the source cluster's configuration tells.
		return "no targetNodeAddress: the source cluster's migration configuration (status.migrationState.sourceState.migrationConfiguration) has not arrived, " +
			"and the receiving node agent needs it to expect the source's stream; update cclm in the source cluster, whose synchronization controller sends it"
	case state.TargetNodeAddress == "" && !state.TargetNodeDomainDetected:
		return "no targetNodeAddress, domain not detected"
	case state.TargetNodeAddress == "":
		return "no targetNodeAddress"
	default:
		return "targetNodeAddress " + state.TargetNodeAddress + " but domain not detected"
	}
}

func (s *stepper) targetReady(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	// A receiver has no progress of its own to wait for: the source
	// cluster sends, and its own deadlines watch that.
	if s.role == roleTarget || state.Progress != nil || s.moved(state) || s.ended(state) {
		s.enter(kubevirtv1.MigrationRunning, s.sendingMessage(state))
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

func (s *stepper) sendingMessage(state *kubevirtv1.VirtualMachineInstanceMigrationState) string {
	switch s.role {
	case roleSource:
		return fmt.Sprintf("the node agent on %s is sending VMI %s to node %s of the target cluster", state.SourceNode, s.vmi.Name, state.TargetNode)
	case roleTarget:
		return fmt.Sprintf("node %s of the source cluster is sending VMI %s to node %s", state.SourceNode, s.vmi.Name, state.TargetNode)
	}
	return fmt.Sprintf("the node agent on %s is sending VMI %s to node %s", state.SourceNode, s.vmi.Name, state.TargetNode)
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
	completionDeadline := s.completionDeadline(state, budget)
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

// completionDeadline is when the migration must have completed. The
// source owns the completion timeout (it switches modes or aborts); a
// receiver only backs it up, once the source's abort had its time too.
func (s *stepper) completionDeadline(state *kubevirtv1.VirtualMachineInstanceMigrationState, budget time.Duration) time.Time {
	deadline := s.started(state).Add(budget)
	if s.role == roleTarget {
		deadline = deadline.Add(s.timeouts.Abort)
	}
	return deadline
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
	if watermark == nil {
		// Only remaining 0 seen so far (the start of a pass): nothing to
		// measure progress from yet; the completion timeout still bounds it.
		return time.Time{}, ""
	}
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
	if s.role == roleTarget {
		// Only the source can switch modes; the receiver can only stop.
		s.requestAbort(state, ReasonCompletionTimeout, fmt.Sprintf("%s, nor did the source cluster end it within %s more", why, s.timeouts.Abort))
		return
	}
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
// ended: it moved (the guest runs at the destination) and ended (the
// agent that ends it said so). In a cluster, the target took the VMI over
// (status.nodeName) and the source reported completed; on a decentralized
// source, the target cluster reported completed and the source agent
// stopped the source (VMI phase Succeeded); on a receiver, the target
// agent does both. Each without the other is waited for, with a
// deadline. It reports whether it decided.
func (s *stepper) finished(state *kubevirtv1.VirtualMachineInstanceMigrationState) bool {
	moved, ended := s.moved(state), s.ended(state)
	switch {
	case moved && ended:
		s.succeed(state)
		return true
	case !moved && !ended:
		return false
	}
	deadline := s.waitingSince(ReasonHandover).Add(s.timeouts.Handover)
	text := s.handoverText(state, deadline)
	switch {
	case s.passed(deadline) && moved:
		// The guest runs at the destination; the migration did happen.
		s.event(corev1.EventTypeWarning, ReasonSourceUnconfirmed, text.unconfirmed)
		s.succeed(state)
	case s.passed(deadline):
		s.fail(ReasonHandoverTimeout, text.notMoved)
	case moved:
		s.wait(ReasonHandover, text.awaitEnd, deadline)
	default:
		s.wait(ReasonHandover, text.awaitMove, deadline)
	}
	return true
}

// moved: the guest runs at the destination.
func (s *stepper) moved(state *kubevirtv1.VirtualMachineInstanceMigrationState) bool {
	if s.role == roleSource {
		return state.Completed // set from the target cluster, where it completes
	}
	return s.onTarget(state)
}

// ended: the agent that ends the migration said so.
func (s *stepper) ended(state *kubevirtv1.VirtualMachineInstanceMigrationState) bool {
	if s.role == roleSource {
		return s.vmi != nil && s.vmi.Status.Phase == kubevirtv1.Succeeded
	}
	return state.Completed
}

// handoverText says what a half-ended migration waits for and, at the
// deadline, what went wrong.
type handoverText struct {
	awaitEnd, awaitMove, unconfirmed, notMoved string
}

func (s *stepper) handoverText(state *kubevirtv1.VirtualMachineInstanceMigrationState, deadline time.Time) handoverText {
	source, target, until, after := state.SourceNode, state.TargetNode, stamp(deadline), s.timeouts.Handover
	switch s.role {
	case roleSource:
		return handoverText{
			awaitEnd:    fmt.Sprintf("the guest runs on node %s of the target cluster; waiting for the node agent on %s to stop the source and set VMI %s Succeeded, until %s", target, source, s.vmi.Name, until),
			awaitMove:   fmt.Sprintf("VMI %s is Succeeded; waiting for the target cluster to report the migration completed, until %s", s.vmi.Name, until),
			unconfirmed: fmt.Sprintf("the guest runs on node %s of the target cluster but the node agent on %s did not stop the source (VMI phase Succeeded) within %s; check that node agent", target, source, after),
			notMoved:    fmt.Sprintf("VMI %s is Succeeded but the target cluster did not report the migration completed within %s; check the target cluster's migration", s.vmi.Name, after),
		}
	case roleTarget:
		return handoverText{
			awaitEnd:    fmt.Sprintf("the guest runs on node %s; waiting for its node agent to report the migration completed, until %s", target, until),
			awaitMove:   fmt.Sprintf("the migration completed; waiting for the node agent on %s to take the VMI over, until %s", target, until),
			unconfirmed: fmt.Sprintf("the guest runs on node %s but its node agent did not report the migration completed within %s; check that node agent", target, after),
			notMoved: fmt.Sprintf("the migration was reported completed but VMI status.nodeName is still empty, not %s, after %s: the node agent on %s did not take the VMI over",
				target, after, target),
		}
	}
	return handoverText{
		awaitEnd:    fmt.Sprintf("the guest runs on node %s; waiting for the node agent on %s to report completed, until %s", target, source, until),
		awaitMove:   fmt.Sprintf("the migration completed; waiting for the node agent on %s to take the VMI over, until %s", target, until),
		unconfirmed: fmt.Sprintf("the guest runs on node %s but the node agent on %s did not report the migration completed within %s; check that node agent", target, source, after),
		notMoved: fmt.Sprintf("the node agent on %s reported the migration completed but VMI status.nodeName is still %s, not %s, after %s: the node agent on %s did not take the VMI over",
			source, s.vmi.Status.NodeName, target, after, target),
	}
}

func (s *stepper) onTarget(state *kubevirtv1.VirtualMachineInstanceMigrationState) bool {
	return s.vmi != nil && state.TargetNode != "" && s.vmi.Status.NodeName == state.TargetNode
}
