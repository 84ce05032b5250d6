package toolkit

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

// The Migration-level decisions, pure like StepVM: whether a new
// Migration may start, and its conditions from its VMs.

// MigrationOutcome is the Migration's Succeeded, Failed or Canceled
// condition that is True, or nil while it has not ended.
func MigrationOutcome(m *forkliftv1beta1.Migration) *forkliftv1beta1.Condition {
	for _, t := range []string{forkliftv1beta1.ConditionSucceeded, forkliftv1beta1.ConditionFailed, forkliftv1beta1.ConditionCanceled} {
		if c := forkliftv1beta1.FindCondition(m.Status.Conditions, t); c != nil && c.Status == forkliftv1beta1.ConditionTrue {
			return c
		}
	}
	return nil
}

// MigrationEnded reports whether a Migration ended: Succeeded, Failed or
// Canceled is True.
func MigrationEnded(m *forkliftv1beta1.Migration) bool { return MigrationOutcome(m) != nil }

// migrationRunning: started and not ended.
func migrationRunning(m *forkliftv1beta1.Migration) bool {
	return m.Status.Started != nil && !MigrationEnded(m)
}

// StartObserved is what StartMigration decides on.
type StartObserved struct {
	Migration *forkliftv1beta1.Migration
	// Plan is the Migration's Plan, nil if absent.
	Plan *forkliftv1beta1.Plan
	// Others are the plan's other Migrations.
	Others   []forkliftv1beta1.Migration
	Now      time.Time
	Timeouts Timeouts
}

// StartMigration decides for a Migration that has not started: it starts
// (status.started, one VM status per plan VM, Running) once its Plan is
// Ready; it fails at once when the Plan is absent, archived, found not
// Ready, or already executing another Migration, and after
// Timeouts.PlanReady when the Plan was never evaluated. The returned
// duration is when to look again (0: not needed).
func StartMigration(obs StartObserved) (forkliftv1beta1.MigrationStatus, time.Duration) {
	m, plan := obs.Migration, obs.Plan
	t := obs.Timeouts.withDefaults()
	status := *m.Status.DeepCopy()
	now := metav1.NewTime(obs.Now)
	fail := func(reason, message string) (forkliftv1beta1.MigrationStatus, time.Duration) {
		status.Completed = &now
		status.Conditions = setCondition(status.Conditions, forkliftv1beta1.Condition{
			Type: forkliftv1beta1.ConditionFailed, Status: forkliftv1beta1.ConditionTrue, Reason: reason,
			Category: forkliftv1beta1.CategoryCritical, Message: message,
		}, now)
		status.Conditions = removeCondition(status.Conditions, forkliftv1beta1.ConditionRunning)
		return status, 0
	}
	switch {
	case plan == nil:
		return fail("PlanNotFound", fmt.Sprintf("Plan %s does not exist", refName(m.Spec.Plan, m.Namespace)))
	case plan.Spec.Archived:
		return fail("PlanArchived", fmt.Sprintf("Plan %s/%s is archived: archived plans are not executed", plan.Namespace, plan.Name))
	}
	for i := range obs.Others {
		other := &obs.Others[i]
		if other.UID == m.UID || MigrationEnded(other) {
			continue
		}
		if other.Status.Started != nil || older(other, m) {
			return fail("PlanExecuting", fmt.Sprintf("Plan %s/%s is already executing Migration %s: wait for it to end, or cancel it", plan.Namespace, plan.Name, other.Name))
		}
	}
	ready := forkliftv1beta1.FindCondition(plan.Status.Conditions, forkliftv1beta1.ConditionReady)
	evaluated := ready != nil && ready.Reason != "NotEvaluated" && plan.Status.ObservedGeneration == plan.Generation
	switch {
	case evaluated && ready.Status == forkliftv1beta1.ConditionTrue:
	case evaluated:
		return fail("PlanNotReady", fmt.Sprintf("Plan %s/%s is not Ready: %s", plan.Namespace, plan.Name, criticalMessages(plan.Status.Conditions)))
	default:
		waited := obs.Now.Sub(m.CreationTimestamp.Time)
		if waited >= t.PlanReady {
			return fail("PlanNotReady", fmt.Sprintf("Plan %s/%s was not evaluated within %s: is the toolkit's plan controller running?", plan.Namespace, plan.Name, t.PlanReady))
		}
		status.Conditions = setCondition(status.Conditions, forkliftv1beta1.Condition{
			Type: forkliftv1beta1.ConditionRunning, Status: forkliftv1beta1.ConditionFalse, Reason: "WaitingForPlan",
			Category: forkliftv1beta1.CategoryAdvisory, Message: fmt.Sprintf("waiting for Plan %s/%s to be evaluated", plan.Namespace, plan.Name),
		}, now)
		return status, min(2*time.Second, t.PlanReady-waited)
	}
	status.Started = &now
	status.VMs = make([]forkliftv1beta1.VMStatus, len(plan.Spec.VMs))
	for i, vm := range plan.Spec.VMs {
		status.VMs[i] = forkliftv1beta1.VMStatus{Ref: vm.Ref, Pipeline: NewPipeline(), Phase: PhaseStarted}
	}
	status.Conditions = setCondition(status.Conditions, forkliftv1beta1.Condition{
		Type: forkliftv1beta1.ConditionRunning, Status: forkliftv1beta1.ConditionTrue, Reason: "Started",
		Category: forkliftv1beta1.CategoryAdvisory, Message: fmt.Sprintf("migrating %d VMs", len(status.VMs)),
	}, now)
	return status, afterAction
}

// older: a was created before b (same second: the smaller name).
func older(a, b *forkliftv1beta1.Migration) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

func criticalMessages(conditions []forkliftv1beta1.Condition) string {
	var messages []string
	for _, c := range conditions {
		if c.Category == forkliftv1beta1.CategoryCritical && c.Status == forkliftv1beta1.ConditionTrue {
			messages = append(messages, c.Type+": "+c.Message)
		}
	}
	if len(messages) == 0 {
		return "no reason given"
	}
	return strings.Join(messages, "; ")
}

// AggregateMigration sets a started Migration's conditions from its VMs:
// Running while one has not ended; then Failed if one failed, else
// Canceled if one was canceled, else Succeeded; and status.completed.
func AggregateMigration(status forkliftv1beta1.MigrationStatus, now time.Time) forkliftv1beta1.MigrationStatus {
	at := metav1.NewTime(now)
	outcomes := map[string][]string{}
	running := 0
	for _, vm := range status.VMs {
		outcome := VMOutcome(vm)
		if outcome == "" {
			running++
			continue
		}
		outcomes[outcome] = append(outcomes[outcome], vmRefName(vm.Ref))
	}
	if running > 0 {
		status.Conditions = setCondition(status.Conditions, forkliftv1beta1.Condition{
			Type: forkliftv1beta1.ConditionRunning, Status: forkliftv1beta1.ConditionTrue, Reason: "Started",
			Category: forkliftv1beta1.CategoryAdvisory, Message: fmt.Sprintf("%d of %d VMs migrating", running, len(status.VMs)),
		}, at)
		return status
	}
	var final forkliftv1beta1.Condition
	switch {
	case len(outcomes[VMFailed]) > 0:
		final = forkliftv1beta1.Condition{Type: forkliftv1beta1.ConditionFailed, Reason: "VMFailed", Category: forkliftv1beta1.CategoryCritical}
	case len(outcomes[VMCanceled]) > 0:
		final = forkliftv1beta1.Condition{Type: forkliftv1beta1.ConditionCanceled, Reason: "Canceled", Category: forkliftv1beta1.CategoryAdvisory}
	default:
		final = forkliftv1beta1.Condition{Type: forkliftv1beta1.ConditionSucceeded, Reason: "Completed", Category: forkliftv1beta1.CategoryAdvisory}
	}
	final.Status = forkliftv1beta1.ConditionTrue
	var parts []string
	for _, outcome := range []string{VMSucceeded, VMFailed, VMCanceled} {
		if names := outcomes[outcome]; len(names) > 0 {
			sort.Strings(names)
			parts = append(parts, fmt.Sprintf("%s: %s", strings.ToLower(outcome), strings.Join(names, ", ")))
		}
	}
	final.Message = strings.Join(parts, "; ")
	status.Conditions = removeCondition(status.Conditions, forkliftv1beta1.ConditionRunning)
	status.Conditions = setCondition(status.Conditions, final, at)
	if status.Completed == nil {
		status.Completed = &at
	}
	return status
}

// setCondition puts c in, keeping the transition time of an unchanged
// status.
func setCondition(conditions []forkliftv1beta1.Condition, c forkliftv1beta1.Condition, now metav1.Time) []forkliftv1beta1.Condition {
	c.LastTransitionTime = now
	for i := range conditions {
		if conditions[i].Type == c.Type {
			if conditions[i].Status == c.Status {
				c.LastTransitionTime = conditions[i].LastTransitionTime
			}
			conditions[i] = c
			return conditions
		}
	}
	return append(conditions, c)
}

func removeCondition(conditions []forkliftv1beta1.Condition, condType string) []forkliftv1beta1.Condition {
	return slices.DeleteFunc(slices.Clone(conditions), func(c forkliftv1beta1.Condition) bool { return c.Type == condType })
}
