package migrationcontroller

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Step decides the next move of one migration, in-cluster or either half
// of a decentralized one, from what is observed now. It is pure: no I/O,
// no clock but obs.Now. One call makes at most one phase transition; the
// write of its decision brings the next call.
func Step(obs Observed) Decision {
	s := newStepper(obs)
	s.decide()
	return s.d
}

// stepper holds one Step's inputs and the decision being built.
type stepper struct {
	obs      Observed
	m        *kubevirtv1.VirtualMachineInstanceMigration
	role     role
	vmi      *kubevirtv1.VirtualMachineInstance
	now      metav1.Time
	timeouts Timeouts
	d        Decision
}

func newStepper(obs Observed) *stepper {
	s := &stepper{
		obs:      obs,
		m:        obs.Migration,
		role:     roleOf(obs.Migration),
		vmi:      obs.VMI,
		now:      metav1.NewTime(obs.Now),
		timeouts: obs.Timeouts.withDefaults(),
	}
	s.d.Status = *s.m.Status.DeepCopy()
	s.d.Finalizer = slices.Contains(s.m.Finalizers, MigrationFinalizer)
	s.d.Watermark = watermarkOf(s.m)
	// Visibility: the VMIM always shows its migration's latest state,
	// including what the synchronization controller wrote before the
	// controller claimed the state.
	if state := s.visibleState(); state != nil {
		s.d.Status.MigrationState = state.DeepCopy()
	}
	return s
}

func (s *stepper) decide() {
	switch {
	case s.m.DeletionTimestamp != nil:
		s.cancel()
	case s.m.IsFinal():
		s.d.Status.Conditions = removeCondition(s.d.Status.Conditions, ConditionWaiting)
		s.end()
	default:
		s.d.Finalizer = true
		s.advance()
		s.placeReceiverClaims()
	}
}

func (s *stepper) advance() {
	phase := s.m.Status.Phase
	if phase != kubevirtv1.MigrationPhaseUnset && !slices.Contains(s.role.phases(), phase) {
		s.fail(ReasonUnsupportedPhase, fmt.Sprintf("phase %s does not belong to a migration of role %s, whose phases are %s",
			phase, s.role, phaseList(s.role.phases())))
		return
	}
	switch phase {
	case kubevirtv1.MigrationPhaseUnset:
		s.enter(kubevirtv1.MigrationPending, fmt.Sprintf("migration of VMI %s accepted (%s)", s.m.Spec.VMIName, s.role))
	case kubevirtv1.MigrationPending:
		s.pending()
	case kubevirtv1.MigrationScheduling:
		s.scheduling()
	case kubevirtv1.MigrationWaitingForSync:
		s.waitingForSync()
	default:
		s.inFlight()
	}
}

func phaseList(phases []kubevirtv1.VirtualMachineInstanceMigrationPhase) string {
	names := make([]string, len(phases))
	for i, phase := range phases {
		names[i] = string(phase)
	}
	return strings.Join(names, ", ")
}

// ---- decision building ----

// enter moves to phase, records when, ends any wait and says so.
func (s *stepper) enter(phase kubevirtv1.VirtualMachineInstanceMigrationPhase, message string) {
	s.setPhase(phase)
	s.d.Status.Conditions = removeCondition(s.d.Status.Conditions, ConditionWaiting)
	s.event(corev1.EventTypeNormal, string(phase), message)
}

func (s *stepper) setPhase(phase kubevirtv1.VirtualMachineInstanceMigrationPhase) {
	if s.d.Status.Phase == phase {
		return
	}
	s.d.Status.Phase = phase
	s.d.Status.PhaseTransitionTimestamps = append(s.d.Status.PhaseTransitionTimestamps,
		kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp{Phase: phase, PhaseTransitionTimestamp: s.now})
}

// fail ends the migration as Failed with why, in a condition and an event.
// A decentralized half also tells its peer (through the state the
// synchronization controller pushes) and a receiver VMI that waited for
// it.
func (s *stepper) fail(reason, message string) {
	s.setPhase(kubevirtv1.MigrationFailed)
	s.d.Status.Conditions = removeCondition(s.d.Status.Conditions, ConditionWaiting)
	s.d.Status.Conditions = setCondition(s.d.Status.Conditions, kubevirtv1.VirtualMachineInstanceMigrationCondition{
		Type: ConditionFailed, Status: corev1.ConditionTrue, Reason: reason, Message: message,
	}, s.now)
	s.event(corev1.EventTypeWarning, EventFailed, reason+": "+message)
	s.publishFailure(message)
	s.failReceiver(reason, message)
	s.end()
}

func (s *stepper) succeed(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.setPhase(kubevirtv1.MigrationSucceeded)
	s.d.Status.Conditions = removeCondition(s.d.Status.Conditions, ConditionWaiting)
	s.event(corev1.EventTypeNormal, string(kubevirtv1.MigrationSucceeded), s.successMessage(state))
	s.end()
}

// end: a final VMIM needs neither the finalizer nor the watermark.
func (s *stepper) end() {
	s.d.Finalizer = false
	s.d.Watermark = nil
	s.d.RequeueAfter = 0
}

func (s *stepper) successMessage(state *kubevirtv1.VirtualMachineInstanceMigrationState) string {
	var message string
	switch vmi := s.m.Spec.VMIName; s.role {
	case roleSource:
		message = fmt.Sprintf("VMI %s migrated from node %s to node %s of the target cluster", vmi, state.SourceNode, state.TargetNode)
	case roleTarget:
		message = fmt.Sprintf("VMI %s received from node %s of the source cluster on node %s", vmi, state.SourceNode, state.TargetNode)
	default:
		message = fmt.Sprintf("VMI %s migrated from node %s to node %s", vmi, state.SourceNode, state.TargetNode)
	}
	if state.StartTimestamp != nil && state.EndTimestamp != nil {
		message += " in " + state.EndTimestamp.Sub(state.StartTimestamp.Time).String()
	}
	if p := state.Progress; p != nil && p.DowntimeMs > 0 {
		message += fmt.Sprintf(" (downtime %d ms)", p.DowntimeMs)
	}
	return message
}

// wait records what the migration waits for (an event when that changes)
// and looks again at the deadline, if there is one.
func (s *stepper) wait(reason, message string, deadline time.Time) {
	previous := findCondition(s.m.Status.Conditions, ConditionWaiting)
	if previous == nil || previous.Reason != reason {
		eventType := corev1.EventTypeNormal
		if reason == ReasonUnschedulable {
			eventType = corev1.EventTypeWarning
		}
		s.event(eventType, reason, message)
	}
	s.setWaiting(reason, message, deadline)
}

// setWaiting records the wait without an event.
func (s *stepper) setWaiting(reason, message string, deadline time.Time) {
	s.d.Status.Conditions = setCondition(s.d.Status.Conditions, kubevirtv1.VirtualMachineInstanceMigrationCondition{
		Type: ConditionWaiting, Status: corev1.ConditionTrue, Reason: reason, Message: message,
	}, s.now)
	if !deadline.IsZero() {
		s.requeueAt(deadline)
	}
}

// waitingSince is when the current wait for reason began (now if it has
// not yet).
func (s *stepper) waitingSince(reason string) time.Time {
	c := findCondition(s.m.Status.Conditions, ConditionWaiting)
	if c != nil && c.Status == corev1.ConditionTrue && c.Reason == reason && !c.LastTransitionTime.IsZero() {
		return c.LastTransitionTime.Time
	}
	return s.now.Time
}

func (s *stepper) writeState(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.d.MigrationState = state
	s.d.Status.MigrationState = state.DeepCopy()
}

func (s *stepper) event(eventType, reason, message string) {
	s.d.Events = append(s.d.Events, Event{Type: eventType, Reason: reason, Message: message})
}

// requeueAt looks again at t (at least a second from now), keeping an
// earlier requeue.
func (s *stepper) requeueAt(t time.Time) {
	s.requeueIn(t.Sub(s.now.Time))
}

func (s *stepper) requeueIn(d time.Duration) {
	d = max(d, time.Second)
	if s.d.RequeueAfter == 0 || d < s.d.RequeueAfter {
		s.d.RequeueAfter = d
	}
}

// ---- reading ----

// ownState is the VMI's migrationState if it is this migration's.
func (s *stepper) ownState() *kubevirtv1.VirtualMachineInstanceMigrationState {
	if s.vmi == nil || s.vmi.Status.MigrationState == nil || s.vmi.Status.MigrationState.MigrationUID != s.m.UID {
		return nil
	}
	return s.vmi.Status.MigrationState
}

// config is the configuration the migration started with, as recorded in
// its state, so that a KubeVirt CR change does not move a running
// migration's deadlines; fields it lacks take the defaults.
func (s *stepper) config(state *kubevirtv1.VirtualMachineInstanceMigrationState) *kubevirtv1.MigrationConfiguration {
	if state.MigrationConfiguration == nil {
		return s.obs.Config.DeepCopy()
	}
	kv := &kubevirtv1.KubeVirt{}
	kv.Spec.Configuration.MigrationConfiguration = state.MigrationConfiguration
	config := kv.EffectiveMigrationConfiguration()
	return &config
}

// started is when the migration was handed to the agents.
func (s *stepper) started(state *kubevirtv1.VirtualMachineInstanceMigrationState) time.Time {
	if state.StartTimestamp != nil {
		return state.StartTimestamp.Time
	}
	return s.phaseSince(s.role.handoffPhase())
}

// phaseSince is when the migration last entered phase (its creation if
// that was not recorded).
func (s *stepper) phaseSince(phase kubevirtv1.VirtualMachineInstanceMigrationPhase) time.Time {
	stamps := s.m.Status.PhaseTransitionTimestamps
	for i := len(stamps) - 1; i >= 0; i-- {
		if stamps[i].Phase == phase {
			return stamps[i].PhaseTransitionTimestamp.Time
		}
	}
	return s.m.CreationTimestamp.Time
}

func (s *stepper) passed(deadline time.Time) bool {
	return !s.now.Time.Before(deadline)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func derefOr[T any](p *T, fallback T) T {
	if p == nil {
		return fallback
	}
	return *p
}

func phaseName(p kubevirtv1.VirtualMachineInstanceMigrationPhase) string {
	if p == kubevirtv1.MigrationPhaseUnset {
		return "not yet set"
	}
	return string(p)
}

func vmiPhaseName(p kubevirtv1.VirtualMachineInstancePhase) string {
	if p == kubevirtv1.VmPhaseUnset {
		return "without a phase"
	}
	return string(p)
}
