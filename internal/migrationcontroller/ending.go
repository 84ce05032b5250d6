package migrationcontroller

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Ending a migration: failures, aborts and cancellation.

// giveUp ends a migration that missed a deadline. Before the target
// published its address no source can have started, so the controller
// ends the migration itself; after, only the agents can, and are asked to.
func (s *stepper) giveUp(state *kubevirtv1.VirtualMachineInstanceMigrationState, reason, message string) {
	if state.TargetNodeAddress == "" {
		s.endBeforeHandoff(state, reason, message)
		return
	}
	s.requestAbort(state, reason, message)
}

// endBeforeHandoff marks the migration failed in the VMI's state, as
// upstream's controller does for a migration its handler never took:
// completed and failed, with an end time, and abortRequested so that a
// target agent that is still preparing tears down.
func (s *stepper) endBeforeHandoff(state *kubevirtv1.VirtualMachineInstanceMigrationState, reason, message string) {
	s.writeState(s.endedNow(state.DeepCopy(), message))
	s.fail(reason, message)
}

// endedNow marks state ended as failed now (keeping an earlier failure
// reason), with abortRequested for any agent still at it.
func (s *stepper) endedNow(state *kubevirtv1.VirtualMachineInstanceMigrationState, message string) *kubevirtv1.VirtualMachineInstanceMigrationState {
	now := s.now
	state.AbortRequested, state.Failed, state.Completed = true, true, true
	state.EndTimestamp = &now
	if state.FailureReason == "" {
		state.FailureReason = message
	}
	return state
}

// requestAbort asks the agents to stop; awaitAbort then waits for them.
func (s *stepper) requestAbort(state *kubevirtv1.VirtualMachineInstanceMigrationState, reason, message string) {
	next := state.DeepCopy()
	next.AbortRequested = true
	if next.FailureReason == "" {
		next.FailureReason = message
	}
	s.writeState(next)
	s.recordAbort(reason, message)
}

// recordAbort notes an abort request in the VMIM (condition
// migrationAbortRequested, whose transition time starts the abort
// deadline) and says so.
func (s *stepper) recordAbort(reason, message string) {
	s.d.Status.Conditions = setCondition(s.d.Status.Conditions, kubevirtv1.VirtualMachineInstanceMigrationCondition{
		Type: ConditionAbortRequested, Status: corev1.ConditionTrue, Reason: reason, Message: message,
	}, s.now)
	eventType := corev1.EventTypeWarning
	if reason == ReasonCancelled || reason == ReasonCancelledByPeer {
		eventType = corev1.EventTypeNormal
	}
	s.event(eventType, EventAbortRequested, message)
	deadline := s.now.Add(s.timeouts.Abort)
	// The AbortRequested event says it all; the wait needs no event of its own.
	s.setWaiting(ReasonWaitingForAbort, fmt.Sprintf("abort requested (%s); waiting for the node agents to report the outcome, until %s", reason, stamp(deadline)), deadline)
}

func (s *stepper) abortRequested() bool {
	c := findCondition(s.m.Status.Conditions, ConditionAbortRequested)
	return c != nil && c.Status == corev1.ConditionTrue
}

// abortRequestedAt is when the controller asked; the abort deadline
// counts from it.
func (s *stepper) abortRequestedAt() time.Time {
	if c := findCondition(s.m.Status.Conditions, ConditionAbortRequested); c != nil && !c.LastTransitionTime.IsZero() {
		return c.LastTransitionTime.Time
	}
	return s.now.Time
}

// awaitAbort waits for the agents' answer to an abort request: failed
// (the usual), or completed if the migration won the race.
func (s *stepper) awaitAbort(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	if state.Failed {
		s.fail(ReasonNodeAgentFailure, agentFailureMessage(state))
		return
	}
	if s.finished(state) {
		return
	}
	c := findCondition(s.m.Status.Conditions, ConditionAbortRequested)
	deadline := s.abortRequestedAt().Add(s.timeouts.Abort)
	if s.passed(deadline) {
		s.fail(ReasonAbortTimeout, fmt.Sprintf("abort requested at %s (%s) but the node agents on %s and %s did not report failed or completed within %s; the VMI's migrationState is left to them",
			stamp(s.abortRequestedAt()), c.Message, state.SourceNode, state.TargetNode, s.timeouts.Abort))
		return
	}
	s.wait(ReasonWaitingForAbort, fmt.Sprintf("abort requested (%s); waiting for the node agents to report the outcome, until %s", c.Reason, stamp(deadline)), deadline)
}

// abortAndFail fails the migration and, if the agents may still be busy
// with it, asks them to stop.
func (s *stepper) abortAndFail(reason, message string) {
	if state := s.ownState(); state != nil && !state.Failed && !state.Completed && s.vmi.DeletionTimestamp == nil {
		next := state.DeepCopy()
		next.AbortRequested = true
		if next.FailureReason == "" {
			next.FailureReason = message
		}
		s.writeState(next)
	}
	s.fail(reason, message)
}

func agentFailureMessage(state *kubevirtv1.VirtualMachineInstanceMigrationState) string {
	if state.FailureReason == "" {
		return "the node agents reported the migration failed without a reason"
	}
	return state.FailureReason
}

// ---- cancellation ----

// cancel handles a deleted VMIM: it is let go at once unless the agents
// are at work, who are then asked to abort and given AbortTimeout.
func (s *stepper) cancel() {
	s.d.Watermark = nil
	if !s.d.Finalizer {
		return
	}
	if s.m.IsFinal() {
		s.d.Finalizer = false
		return
	}
	state := s.ownState()
	switch {
	case !holdsSlot(s.m.Status.Phase) || s.m.Status.Phase == kubevirtv1.MigrationScheduling:
		s.fail(ReasonCancelled, "the migration was deleted before it started")
	case s.vmi == nil:
		s.fail(ReasonCancelled, "the migration was deleted; its VMI is gone")
	case state == nil:
		s.cancelUnseenState()
	case state.Failed:
		s.fail(ReasonNodeAgentFailure, agentFailureMessage(state))
	case s.moved(state) || s.ended(state):
		s.finished(state) // too late to cancel: it moved, or is moving
	case state.Mode == kubevirtv1.MigrationPostCopy:
		s.awaitPostCopyEnd(state)
	case state.TargetNodeAddress == "":
		s.endBeforeHandoff(state, ReasonCancelled, "the migration was deleted before the target was ready")
	case !s.abortRequested():
		s.requestAbort(state, ReasonCancelled, "the migration was deleted")
	default:
		s.awaitCancelledAbort(state)
	}
}

// cancelUnseenState cancels a migration whose state the VMI does not show.
// Right after the handoff (Scheduled; a source: Synchronizing) the cache
// may just lag behind the write: the state recorded in the VMIM is
// written ended, conditional on the VMI observed, so that agents that did
// see it stand down (a VMI that moved on meanwhile makes the write fail
// and the next look sees the truth).
func (s *stepper) cancelUnseenState() {
	recorded := s.m.Status.MigrationState
	if s.m.Status.Phase != s.role.handoffPhase() || recorded == nil || recorded.MigrationUID != s.m.UID ||
		unfinishedElsewhere(s.vmi.Status.MigrationState, s.m.UID) {
		s.fail(ReasonCancelled, "the migration was deleted; the VMI shows no state of it")
		return
	}
	s.endBeforeHandoff(recorded, ReasonCancelled, "the migration was deleted before the target was ready")
}

// awaitPostCopyEnd: a post-copy migration cannot be aborted (the guest
// runs on the target already, with part of its memory on the source), so
// a deleted one is let run to its end, for AbortTimeout at most.
func (s *stepper) awaitPostCopyEnd(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	deadline := s.m.DeletionTimestamp.Add(s.timeouts.Abort)
	if !s.passed(deadline) {
		s.wait(ReasonPostCopy, fmt.Sprintf("the migration was deleted, but it is in post-copy and cannot be aborted; waiting for it to end, until %s", stamp(deadline)), deadline)
		return
	}
	s.fail(ReasonAbortTimeout, fmt.Sprintf("the migration was deleted while in post-copy, which cannot be aborted, and did not end within %s", s.timeouts.Abort))
	s.event(corev1.EventTypeWarning, ReasonFinalizerForced, fmt.Sprintf("removed finalizer %s of a post-copy migration still in progress between nodes %s and %s; check their node agents",
		MigrationFinalizer, state.SourceNode, state.TargetNode))
}

func (s *stepper) awaitCancelledAbort(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	deadline := s.abortRequestedAt().Add(s.timeouts.Abort)
	if !s.passed(deadline) {
		s.wait(ReasonWaitingForAbort, fmt.Sprintf("the migration was deleted; waiting for the node agents to confirm the abort, until %s", stamp(deadline)), deadline)
		return
	}
	s.fail(ReasonAbortTimeout, fmt.Sprintf("the migration was deleted and an abort requested at %s, but the node agents on %s and %s did not report failed or completed within %s",
		stamp(s.abortRequestedAt()), state.SourceNode, state.TargetNode, s.timeouts.Abort))
	s.event(corev1.EventTypeWarning, ReasonFinalizerForced, fmt.Sprintf("removed finalizer %s without the node agents' confirmation after %s: the migration may still be in progress on nodes %s and %s; check their node agents",
		MigrationFinalizer, s.timeouts.Abort, state.SourceNode, state.TargetNode))
}
