package migrationcontroller

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Phase names, short.
const (
	unset           = kubevirtv1.MigrationPhaseUnset
	pending         = kubevirtv1.MigrationPending
	schedulingPhase = kubevirtv1.MigrationScheduling
	scheduled       = kubevirtv1.MigrationScheduled
	preparingTarget = kubevirtv1.MigrationPreparingTarget
	targetReady     = kubevirtv1.MigrationTargetReady
	running         = kubevirtv1.MigrationRunning
	succeeded       = kubevirtv1.MigrationSucceeded
	failed          = kubevirtv1.MigrationFailed
)

// expect is what a Step decision must hold. Unset fields mean "none":
// no waiting/failed/abort condition, no VMI write, no events, no requeue.
type expect struct {
	phase     kubevirtv1.VirtualMachineInstanceMigrationPhase
	finalizer bool
	waiting   string // ConditionWaiting's reason
	failed    string // ConditionFailed's reason
	abort     string // ConditionAbortRequested's reason
	state     *kubevirtv1.VirtualMachineInstanceMigrationState
	events    []string // reasons, in order
	requeue   time.Duration
	says      []string   // in the waiting or failed condition's message
	watermark *Watermark // nil: none kept
	claims    *ClaimPlacement
	failVMI   string // FailVMI's reason
}

type stepCase struct {
	name string
	obs  Observed
	want expect
}

func TestStep(t *testing.T) {
	groups := map[string][]stepCase{
		"unset":           unsetCases(),
		"pending":         pendingCases(),
		"scheduling":      schedulingCases(),
		"scheduled":       scheduledCases(),
		"preparingTarget": preparingTargetCases(),
		"targetReady":     targetReadyCases(),
		"running":         runningCases(),
		"abort":           abortCases(),
		"final":           finalCases(),
		"cancel":          cancelCases(),
		"source":          sourceCases(),
		"target":          targetCases(),
	}
	for group, cases := range groups {
		for _, tc := range cases {
			t.Run(group+"/"+tc.name, func(t *testing.T) {
				d := Step(tc.obs)
				checkDecision(t, tc.obs, d, tc.want)
				checkInvariants(t, tc.obs, d)
			})
		}
	}
}

func unsetCases() []stepCase {
	return []stepCase{
		{"a new migration is accepted as Pending with the finalizer", observe(migration(unset), runningVMI(), 0),
			expect{phase: pending, finalizer: true, events: []string{"Pending"}}},
		{"even without its VMI: Pending checks that next", observe(migration(unset), nil, 0),
			expect{phase: pending, finalizer: true, events: []string{"Pending"}}},
	}
}

func pendingCases() []stepCase {
	refused := func(reason string, says ...string) expect {
		return expect{phase: failed, failed: reason, events: []string{EventFailed}, says: says}
	}
	// A free slot: Scheduling, and the target is chosen in the same step.
	toScheduled := expect{phase: scheduled, finalizer: true, state: scheduledAt(10*time.Second, "b"), events: []string{"Scheduling", "Scheduled"}}
	other := func(name string, created time.Duration, phase kubevirtv1.VirtualMachineInstanceMigrationPhase, options ...migrationOption) *kubevirtv1.VirtualMachineInstanceMigration {
		return migration(phase, append([]migrationOption{named(name, types.UID("uid-"+name), created)}, options...)...)
	}
	queued := func(reason string, says ...string) expect {
		return expect{phase: pending, finalizer: true, waiting: reason, events: []string{reason}, requeue: capacityRetry, says: says}
	}
	return []stepCase{
		{"no VMI", observe(migration(pending), nil, 10*time.Second),
			refused(ReasonVMINotFound, "VMI ns/vm does not exist")},
		{"VMI being deleted", observe(migration(pending), runningVMI(vmiDeleting), 10*time.Second),
			refused(ReasonVMINotRunning, "is being deleted")},
		{"VMI not running yet", observe(migration(pending), runningVMI(vmiPhase(kubevirtv1.Scheduled)), 10*time.Second),
			refused(ReasonVMINotRunning, "is Scheduled, not Running")},
		{"VMI stopped", observe(migration(pending), runningVMI(vmiPhase(kubevirtv1.Succeeded)), 10*time.Second),
			refused(ReasonVMINotRunning, "is Succeeded, not Running")},
		{"VMI running on no node", observe(migration(pending), runningVMI(onNode("")), 10*time.Second),
			refused(ReasonVMINotRunning, "on no node")},
		{"VMI without LiveMigratable", observe(migration(pending), runningVMI(noConditions), 10*time.Second),
			refused(ReasonNotLiveMigratable, "no LiveMigratable condition")},
		{"VMI not live-migratable", observe(migration(pending), runningVMI(migratable(corev1.ConditionFalse, "HostDeviceNotLiveMigratable", "has a host device")), 10*time.Second),
			refused(ReasonNotLiveMigratable, "LiveMigratable is False (HostDeviceNotLiveMigratable: has a host device)")},
		{"an older pending migration of the VMI: this second one fails",
			observe(migration(pending), runningVMI(), 10*time.Second, withSiblings(other("m0", -time.Second, pending))),
			refused(ReasonInFlight, "in-flight migration detected: migration m0 (phase Pending) is already in progress for VMI vm")},
		{"an older migration not yet seen by the controller",
			observe(migration(pending), runningVMI(), 10*time.Second, withSiblings(other("m0", -time.Second, unset))),
			refused(ReasonInFlight, "migration m0 (phase not yet set)")},
		{"a newer pending migration: this one goes first",
			observe(migration(pending), runningVMI(), 10*time.Second, withSiblings(other("m2", time.Second, pending))), toScheduled},
		{"a newer migration already running (a race lost): this one fails",
			observe(migration(pending), runningVMI(), 10*time.Second, withSiblings(other("m2", time.Second, running))),
			refused(ReasonInFlight, "migration m2 (phase Running)")},
		{"a decentralized migration of the VMI",
			observe(migration(pending), runningVMI(), 10*time.Second, withSiblings(other("m2", time.Second, kubevirtv1.MigrationSynchronizing, sendTo))),
			refused(ReasonInFlight, "migration m2 (phase Synchronizing)")},
		{"older migrations that ended do not count",
			observe(migration(pending), runningVMI(), 10*time.Second, withSiblings(other("m0", -time.Minute, succeeded), other("m00", -time.Minute, failed))), toScheduled},
		{"same creation second: the smaller name wins (this is m1, the other m0)",
			observe(migration(pending), runningVMI(), 10*time.Second, withSiblings(other("m0", 0, pending))),
			refused(ReasonInFlight, "migration m0")},
		{"same creation second: the smaller name wins (this is m1, the other m2)",
			observe(migration(pending), runningVMI(), 10*time.Second, withSiblings(other("m2", 0, pending))), toScheduled},
		{"the VMI still shows another migration in flight",
			observe(migration(pending), runningVMI(withState(state(ownedBy("uid-m0"), addressOnly))), 10*time.Second),
			refused(ReasonInFlight, "still shows migration uid-m0 from node a to node b in flight")},
		{"the VMI shows another migration that completed",
			observe(migration(pending), runningVMI(withState(state(ownedBy("uid-m0"), completedAt(time.Second)))), 10*time.Second), toScheduled},
		{"the VMI shows another migration that failed",
			observe(migration(pending), runningVMI(withState(state(ownedBy("uid-m0"), failedWith("boom")))), 10*time.Second), toScheduled},
		{"cluster limit (default 5) reached: stays Pending and says why",
			observe(migration(pending), runningVMI(), 10*time.Second, active(5, 0)),
			queued(ReasonClusterLimit, "5 migrations are in progress in the cluster and parallelMigrationsPerCluster is 5")},
		{"outbound limit (default 2) of the source node reached",
			observe(migration(pending), runningVMI(), 10*time.Second, active(3, 2)),
			queued(ReasonNodeLimit, "2 migrations are leaving node a and parallelOutboundMigrationsPerNode is 2")},
		{"configured cluster limit",
			observe(migration(pending), runningVMI(), 10*time.Second, limits(1, 1), active(1, 0)),
			queued(ReasonClusterLimit, "1 migration is in progress in the cluster and parallelMigrationsPerCluster is 1")},
		{"configured node limit",
			observe(migration(pending), runningVMI(), 10*time.Second, limits(3, 1), active(1, 1)),
			queued(ReasonNodeLimit, "parallelOutboundMigrationsPerNode is 1")},
		{"still queued: no second event",
			observe(migration(pending, withCondition(ConditionWaiting, ReasonClusterLimit, 0)), runningVMI(), 10*time.Second, active(5, 0)),
			expect{phase: pending, finalizer: true, waiting: ReasonClusterLimit, requeue: capacityRetry}},
		{"queued for the node, then for the cluster: the change is an event",
			observe(migration(pending, withCondition(ConditionWaiting, ReasonNodeLimit, 0)), runningVMI(), 10*time.Second, active(5, 0)),
			queued(ReasonClusterLimit)},
		{"a free slot but no node fits: Scheduling, waiting for one",
			observe(migration(pending), runningVMI(), 10*time.Second, nodes(node("a", "8Gi"))),
			expect{phase: schedulingPhase, finalizer: true, waiting: ReasonUnschedulable, events: []string{"Scheduling", ReasonUnschedulable}, requeue: unschedulableRetry}},
		{"just below both limits", observe(migration(pending), runningVMI(), 10*time.Second, active(4, 1)), toScheduled},
		{"the only other node receives 2 migrations (the per-node limit, applied to arrivals too): Scheduling, waiting for a slot, no deadline",
			observe(migration(pending), runningVMI(), 10*time.Second, active(2, 0), arriving(map[string]int{"b": 2})),
			expect{phase: schedulingPhase, finalizer: true, waiting: ReasonInboundNodeLimit, events: []string{"Scheduling", ReasonInboundNodeLimit}, requeue: capacityRetry,
				says: []string{"receive migrations already, b (2), and parallelOutboundMigrationsPerNode, which cclm applies to arriving migrations too, is 2"}}},
		{"a node at the arrival limit is passed over for one below it",
			observe(migration(pending), runningVMI(), 10*time.Second, active(2, 0), arriving(map[string]int{"b": 2}), nodes(node("a", "8Gi"), node("b", "8Gi"), node("c", "8Gi"))),
			expect{phase: scheduled, finalizer: true, state: scheduledAt(10*time.Second, "c"), events: []string{"Scheduling", "Scheduled"}}},
		{"one arriving below the configured limit", observe(migration(pending), runningVMI(), 10*time.Second, limits(5, 2), active(1, 0), arriving(map[string]int{"b": 1})), toScheduled},
		{"a slot freed: the wait ends", observe(migration(pending, withCondition(ConditionWaiting, ReasonClusterLimit, 0)), runningVMI(), 10*time.Second, active(4, 1)), toScheduled},
	}
}

// scheduledAt is the state handed to the agents at now, target chosen.
func scheduledAt(now time.Duration, target string) *kubevirtv1.VirtualMachineInstanceMigrationState {
	return state(func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		s.StartTimestamp, s.TargetNode = mtp(now), target
	})
}

func schedulingCases() []stepCase {
	toScheduled := func(target string) expect {
		return expect{phase: scheduled, finalizer: true, state: scheduledAt(10*time.Second, target), events: []string{"Scheduled"}}
	}
	pinnedPVC, pinnedPVs := claim("disk", "1Gi", "a")
	bigPVC, _ := claim("disk", "30Gi", "")
	return []stepCase{
		{"the other node is chosen and the migration handed to the agents",
			observe(migration(schedulingPhase), runningVMI(), 10*time.Second), toScheduled("b")},
		{"an earlier migration's finished state is replaced",
			observe(migration(schedulingPhase), runningVMI(withState(state(ownedBy("uid-m0"), completedAt(time.Second), abortFlag))), 10*time.Second), toScheduled("b")},
		{"a matched MigrationPolicy: its configuration and name are handed to the agents",
			observe(migration(schedulingPhase), runningVMI(), 10*time.Second, underGoldPolicy),
			expect{phase: scheduled, finalizer: true, events: []string{"Scheduled"},
				state: state(byGoldPolicy, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) { s.StartTimestamp = mtp(10 * time.Second) })}},
		{"the node with memory to spare is chosen",
			observe(migration(schedulingPhase), runningVMI(), 10*time.Second, nodes(node("a", "8Gi"), node("b", "512Mi"), node("c", "8Gi"))), toScheduled("c")},
		{"a disk bound to a PV on the source node does not pin the VMI there",
			observe(migration(schedulingPhase), runningVMI(withClaim("disk")), 10*time.Second, storage([]corev1.PersistentVolumeClaim{pinnedPVC}, pinnedPVs)), toScheduled("b")},
		{"but the target must have room for the disk's copy",
			observe(migration(schedulingPhase), runningVMI(withClaim("disk")), 10*time.Second, storage([]corev1.PersistentVolumeClaim{bigPVC}, nil)),
			expect{phase: schedulingPhase, finalizer: true, waiting: ReasonUnschedulable, events: []string{ReasonUnschedulable}, requeue: unschedulableRetry,
				says: []string{"did not have enough free storage", "need 30Gi"}}},
		{"only the source node fits: unschedulable, retried",
			observe(migration(schedulingPhase), runningVMI(), 10*time.Second, nodes(node("a", "8Gi"), notReady(node("c", "8Gi")))),
			expect{phase: schedulingPhase, finalizer: true, waiting: ReasonUnschedulable, events: []string{ReasonUnschedulable}, requeue: unschedulableRetry,
				says: []string{"source node a excluded", "0/1 nodes are available: 1 node(s) were not ready", "retrying until 2026-05-01T12:02:00Z"}}},
		{"unschedulable close to the deadline: looks again at the deadline",
			observe(migration(schedulingPhase, withCondition(ConditionWaiting, ReasonUnschedulable, 0)), runningVMI(), 118*time.Second, nodes(node("a", "8Gi"))),
			expect{phase: schedulingPhase, finalizer: true, waiting: ReasonUnschedulable, requeue: 2 * time.Second}},
		{"unschedulable at the deadline: fails with the scheduler's reason",
			observe(migration(schedulingPhase), runningVMI(), 2*time.Minute, nodes(node("a", "8Gi"))),
			expect{phase: failed, failed: ReasonUnschedulable, events: []string{EventFailed}, says: []string{"0/0 nodes are available", "gave up after 2m0s"}}},
		{"no cluster observed counts as no nodes",
			observe(migration(schedulingPhase), runningVMI(), 10*time.Second, noCluster),
			expect{phase: schedulingPhase, finalizer: true, waiting: ReasonUnschedulable, events: []string{ReasonUnschedulable}, requeue: unschedulableRetry, says: []string{"0/0 nodes"}}},
		{"the VMI already has this migration's state (the VMIM write was lost): adopted",
			observe(migration(schedulingPhase), runningVMI(withState(state())), 10*time.Second),
			expect{phase: scheduled, finalizer: true, events: []string{"Scheduled"}}},
		{"another migration's state appeared since Pending: it is not overwritten",
			observe(migration(schedulingPhase), runningVMI(withState(state(ownedBy("uid-m0"), addressOnly))), 10*time.Second),
			expect{phase: failed, failed: ReasonInFlight, events: []string{EventFailed}, says: []string{"now shows migration uid-m0 in flight"}}},
		{"the VMI went away", observe(migration(schedulingPhase), nil, 10*time.Second),
			expect{phase: failed, failed: ReasonVMINotFound, events: []string{EventFailed}}},
		{"the VMI stopped", observe(migration(schedulingPhase), runningVMI(vmiPhase(kubevirtv1.Failed)), 10*time.Second),
			expect{phase: failed, failed: ReasonVMINotRunning, events: []string{EventFailed}}},
	}
}

func scheduledCases() []stepCase {
	return []stepCase{
		{"the state is visible: the target prepares",
			observe(migration(scheduled, mirrored(state())), runningVMI(withState(state())), time.Second),
			expect{phase: preparingTarget, finalizer: true, events: []string{"PreparingTarget"}}},
		{"the state is not visible yet: written again from the mirror",
			observe(migration(scheduled, mirrored(state())), runningVMI(), time.Second),
			expect{phase: scheduled, finalizer: true, waiting: ReasonStateNotVisibleYet, state: state(), events: []string{ReasonStateNotVisibleYet}, requeue: time.Second}},
		{"the state is neither on the VMI nor recorded",
			observe(migration(scheduled), runningVMI(), time.Second),
			expect{phase: failed, failed: ReasonMigrationStateLost, events: []string{EventFailed}, says: []string{"now shows nothing"}}},
		{"another migration's unfinished state is never overwritten",
			observe(migration(scheduled, mirrored(state())), runningVMI(withState(state(ownedBy("uid-m0")))), time.Second),
			expect{phase: failed, failed: ReasonMigrationStateLost, events: []string{EventFailed}, says: []string{"now shows migration uid-m0"}}},
		{"the agents failed it already",
			observe(migration(scheduled), runningVMI(withState(state(failedWith("target node b: no disk space")))), time.Second),
			expect{phase: failed, failed: ReasonNodeAgentFailure, events: []string{EventFailed}, says: []string{"target node b: no disk space"}}},
	}
}

func preparingTargetCases() []stepCase {
	waitingForTarget := func(requeue time.Duration, says ...string) expect {
		return expect{phase: preparingTarget, finalizer: true, waiting: ReasonWaitingForTarget, events: []string{ReasonWaitingForTarget}, requeue: requeue, says: says}
	}
	gaveUp := "the node agent on target node b did not get ready within 2m0s of the migration's start (no targetNodeAddress, domain not detected)"
	return []stepCase{
		{"the target listens and has the domain: TargetReady",
			observe(migration(preparingTarget), runningVMI(withState(state(targetListening))), 30*time.Second),
			expect{phase: targetReady, finalizer: true, events: []string{"TargetReady"}}},
		{"an address alone is not ready",
			observe(migration(preparingTarget), runningVMI(withState(state(addressOnly))), 30*time.Second),
			waitingForTarget(90*time.Second, "until 2026-05-01T12:02:00Z")},
		{"nothing yet: waits until startTimestamp + 2m",
			observe(migration(preparingTarget), runningVMI(withState(state())), 30*time.Second),
			waitingForTarget(90*time.Second, "waiting for the node agent on b to report targetNodeAddress and targetNodeDomainDetected")},
		{"no target at the deadline: nothing can have started, so the controller ends it",
			observe(migration(preparingTarget), runningVMI(withState(state())), 2*time.Minute),
			expect{phase: failed, failed: ReasonTargetNotReady, events: []string{EventFailed}, says: []string{gaveUp},
				state: state(func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.AbortRequested, s.Failed, s.Completed, s.EndTimestamp, s.FailureReason = true, true, true, mtp(2*time.Minute), gaveUp
				})}},
		{"an address but no domain at the deadline: the source may be sending, so the agents are asked to abort",
			observe(migration(preparingTarget), runningVMI(withState(state(addressOnly))), 2*time.Minute),
			expect{phase: preparingTarget, finalizer: true, abort: ReasonTargetNotReady, waiting: ReasonWaitingForAbort,
				events: []string{EventAbortRequested}, requeue: time.Minute,
				state: state(addressOnly, abortFlag, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.FailureReason = "the node agent on target node b did not get ready within 2m0s of the migration's start (targetNodeAddress 192.168.201.2 but domain not detected)"
				})}},
		{"the target agent failed: its reason is the migration's",
			observe(migration(preparingTarget), runningVMI(withState(state(failedWith("target node b: disk: no space left on device")))), 30*time.Second),
			expect{phase: failed, failed: ReasonNodeAgentFailure, events: []string{EventFailed}, says: []string{"no space left on device"}}},
		{"the VMI was deleted meanwhile",
			observe(migration(preparingTarget), nil, 30*time.Second),
			expect{phase: failed, failed: ReasonVMINotFound, events: []string{EventFailed}, says: []string{"VMI ns/vm does not exist; the migration was PreparingTarget"}}},
		{"the VMI stopped meanwhile: the target is told to go away",
			observe(migration(preparingTarget), runningVMI(vmiPhase(kubevirtv1.Failed), withState(state())), 30*time.Second),
			expect{phase: failed, failed: ReasonVMINotRunning, events: []string{EventFailed},
				state: state(abortFlag, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.FailureReason = "VMI ns/vm is Failed, not Running: only a running VMI can be live-migrated; the migration was PreparingTarget"
				})}},
		{"someone else's migration replaced the state",
			observe(migration(preparingTarget), runningVMI(withState(state(ownedBy("uid-m9")))), 30*time.Second),
			expect{phase: failed, failed: ReasonMigrationStateLost, events: []string{EventFailed}}},
	}
}

func targetReadyCases() []stepCase {
	m := func(options ...migrationOption) *kubevirtv1.VirtualMachineInstanceMigration {
		return migration(targetReady, append([]migrationOption{enteredAt(30 * time.Second)}, options...)...)
	}
	toRunning := expect{phase: running, finalizer: true, events: []string{"Running"}}
	return []stepCase{
		{"progress: the source is sending", observe(m(), runningVMI(withState(state(progress(100<<20, 10<<20, 0)))), 40*time.Second), toRunning},
		{"completed before any progress was seen", observe(m(), runningVMI(onNode("b"), withState(state(completedAt(35*time.Second)))), 40*time.Second), toRunning},
		{"the target took over before any progress was seen", observe(m(), runningVMI(onNode("b"), withState(state(targetListening))), 40*time.Second), toRunning},
		{"no progress yet: waits 2m from TargetReady",
			observe(m(), runningVMI(withState(state(targetListening))), time.Minute),
			expect{phase: targetReady, finalizer: true, waiting: ReasonWaitingForSource, events: []string{ReasonWaitingForSource}, requeue: 90 * time.Second,
				says: []string{"waiting for the node agent on a to start sending", "until 2026-05-01T12:02:30Z"}}},
		{"no progress by the deadline: abort requested",
			observe(m(), runningVMI(withState(state(targetListening))), 150*time.Second),
			expect{phase: targetReady, finalizer: true, abort: ReasonSourceNotStarted, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				state: state(targetListening, abortFlag, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.FailureReason = "the node agent on source node a did not start sending within 2m0s of the target being ready"
				})}},
	}
}

// runningMigration is m1 Running since 40 s, waiting for the migration to
// end (as the previous Step left it).
func runningMigration(options ...migrationOption) *kubevirtv1.VirtualMachineInstanceMigration {
	return migration(running, append([]migrationOption{enteredAt(40 * time.Second), withCondition(ConditionWaiting, ReasonMigrating, 40*time.Second)}, options...)...)
}

func runningCases() []stepCase {
	const mib = int64(1) << 20
	longCompletion := configured(func(c *kubevirtv1.MigrationConfiguration) { c.CompletionTimeoutPerGiB = ptr.To[int64](1000) })
	diskPVC, _ := claim("disk", "2Gi", "")
	migrating := func(requeue time.Duration, watermark *Watermark, says ...string) expect {
		return expect{phase: running, finalizer: true, waiting: ReasonMigrating, requeue: requeue, watermark: watermark, says: says}
	}
	stalled := "migration made no progress for 2m30s (remaining 60 MiB, dirty rate 80 MiB/s, transfer rate 50 MiB/s): the guest dirties memory faster than it is sent; enable allowAutoConverge or enable allowPostCopy"
	return []stepCase{
		{"completed and on the target: Succeeded",
			observe(runningMigration(), runningVMI(onNode("b"), withState(state(completedAt(time.Minute)))), 61*time.Second),
			expect{phase: succeeded, events: []string{"Succeeded"}}},
		{"completed but the target has not taken over: handover wait",
			observe(runningMigration(), runningVMI(withState(state(completedAt(time.Minute)))), 61*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonHandover, events: []string{ReasonHandover}, requeue: time.Minute,
				says: []string{"waiting for the node agent on b to take the VMI over"}}},
		{"completed, the target never took over: Failed",
			observe(runningMigration(withCondition(ConditionWaiting, ReasonHandover, time.Minute)), runningVMI(withState(state(completedAt(time.Minute)))), 2*time.Minute),
			expect{phase: failed, failed: ReasonHandoverTimeout, events: []string{EventFailed}, says: []string{"VMI status.nodeName is still a, not b"}}},
		{"the guest runs on the target, the source has not said completed: handover wait, no abort",
			observe(runningMigration(), runningVMI(onNode("b"), withState(state(progress(0, 1<<30, 0)))), 61*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonHandover, events: []string{ReasonHandover}, requeue: time.Minute,
				says: []string{"the guest runs on node b; waiting for the node agent on a to report completed"}}},
		{"the guest runs on the target, the source never confirmed: Succeeded with a warning",
			observe(runningMigration(withCondition(ConditionWaiting, ReasonHandover, time.Minute)), runningVMI(onNode("b"), withState(state(progress(0, 1<<30, 0)))), 10*time.Minute),
			expect{phase: succeeded, events: []string{ReasonSourceUnconfirmed, "Succeeded"}}},
		{"the agents failed it",
			observe(runningMigration(), runningVMI(withState(state(progress(0, 0, 0), failedWith("source node a: migration ended failed: connection reset")))), time.Minute),
			expect{phase: failed, failed: ReasonNodeAgentFailure, events: []string{EventFailed}, says: []string{"connection reset"}}},
		{"first progress: the watermark starts",
			observe(runningMigration(), runningVMI(withState(state(progress(600*mib, 400*mib, 0)))), time.Minute),
			migrating(90*time.Second, &Watermark{RemainingBytes: 600 * mib, TransferredBytes: 400 * mib, Since: mt(time.Minute)},
				"completion deadline 2026-05-01T12:02:30Z", "progress deadline 2026-05-01T12:03:30Z")},
		{"first progress with nothing counted yet (remaining 0 at a pass's start): no watermark, no progress deadline",
			observe(runningMigration(), runningVMI(withState(state(progress(0, 400*mib, 0)))), time.Minute),
			migrating(90*time.Second, nil, "completion deadline 2026-05-01T12:02:30Z")},
		{"less remaining than ever: the watermark moves",
			observe(runningMigration(watermarkAt(600*mib, 400*mib, 50*time.Second)), runningVMI(withState(state(longCompletion, progress(500*mib, 500*mib, 0)))), 100*time.Second),
			migrating(150*time.Second, &Watermark{RemainingBytes: 500 * mib, TransferredBytes: 500 * mib, Since: mt(100 * time.Second)})},
		{"more remaining (a new pass): the watermark stays",
			observe(runningMigration(watermarkAt(60*mib, 0, 0)), runningVMI(withState(state(longCompletion, progress(900*mib, 1000*mib, 0)))), 100*time.Second),
			migrating(50*time.Second, &Watermark{RemainingBytes: 60 * mib, TransferredBytes: 0, Since: mt(0)})},
		{"no new low for progressTimeout (150s): abort, saying why and what helps",
			observe(runningMigration(watermarkAt(60*mib, 0, 0)), runningVMI(withState(state(longCompletion, progress(70*mib, 7500*mib, 80*mib)))), 150*time.Second),
			expect{phase: running, finalizer: true, abort: ReasonProgressTimeout, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				watermark: &Watermark{RemainingBytes: 60 * mib, Since: mt(0)},
				state:     state(longCompletion, progress(70*mib, 7500*mib, 80*mib), abortFlag, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) { s.FailureReason = stalled })}},
		{"the recorded configuration rules, not the CR's: progressTimeout 10s",
			observe(runningMigration(watermarkAt(60*mib, 0, 0)), runningVMI(withState(state(progress(70*mib, 0, 0), configured(func(c *kubevirtv1.MigrationConfiguration) { c.ProgressTimeout = ptr.To[int64](10) })))), 10*time.Second),
			expect{phase: running, finalizer: true, abort: ReasonProgressTimeout, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				watermark: &Watermark{RemainingBytes: 60 * mib, Since: mt(0)},
				state: state(progress(70*mib, 0, 0), configured(func(c *kubevirtv1.MigrationConfiguration) { c.ProgressTimeout = ptr.To[int64](10) }), abortFlag,
					func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
						s.FailureReason = "migration made no progress for 10s (remaining 60 MiB): the guest dirties memory faster than it is sent; enable allowAutoConverge or enable allowPostCopy"
					})}},
		{"completion timeout (150s for 1Gi): abort",
			observe(runningMigration(), runningVMI(withState(state(progress(10*mib, 0, 0)))), 150*time.Second),
			expect{phase: running, finalizer: true, abort: ReasonCompletionTimeout, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				watermark: &Watermark{RemainingBytes: 10 * mib, Since: mt(150 * time.Second)},
				state: state(progress(10*mib, 0, 0), abortFlag, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.FailureReason = "the migration did not complete within 2m30s (completionTimeoutPerGiB 150 for 1 GiB of memory and disks); enable allowPostCopy or allowWorkloadDisruption, or raise completionTimeoutPerGiB"
				})}},
		{"completion timeout with allowPostCopy: switch to post-copy",
			observe(runningMigration(), runningVMI(withState(state(progress(10*mib, 0, 0), configured(func(c *kubevirtv1.MigrationConfiguration) { c.AllowPostCopy = ptr.To(true) })))), 150*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonMigrating, events: []string{ReasonModeSwitchRequested},
				watermark: &Watermark{RemainingBytes: 10 * mib, Since: mt(150 * time.Second)},
				state:     state(progress(10*mib, 0, 0), configured(func(c *kubevirtv1.MigrationConfiguration) { c.AllowPostCopy = ptr.To(true) }), mode(kubevirtv1.MigrationPostCopy))}},
		{"completion timeout with allowWorkloadDisruption only: pause the guest",
			observe(runningMigration(), runningVMI(withState(state(progress(10*mib, 0, 0), configured(func(c *kubevirtv1.MigrationConfiguration) { c.AllowWorkloadDisruption = ptr.To(true) })))), 150*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonMigrating, events: []string{ReasonModeSwitchRequested},
				watermark: &Watermark{RemainingBytes: 10 * mib, Since: mt(150 * time.Second)},
				state:     state(progress(10*mib, 0, 0), configured(func(c *kubevirtv1.MigrationConfiguration) { c.AllowWorkloadDisruption = ptr.To(true) }), mode(kubevirtv1.MigrationPaused))}},
		{"paused after the completion timeout: only the progress timeout is left",
			observe(runningMigration(watermarkAt(10*mib, 0, 150*time.Second)), runningVMI(withState(state(progress(10*mib, 0, 0), mode(kubevirtv1.MigrationPaused)))), 200*time.Second),
			migrating(100*time.Second, &Watermark{RemainingBytes: 10 * mib, Since: mt(150 * time.Second)}, "progress deadline 2026-05-01T12:05:00Z")},
		{"post-copy is never aborted, however long",
			observe(runningMigration(watermarkAt(10*mib, 0, 0)), runningVMI(withState(state(progress(10*mib, 0, 0), mode(kubevirtv1.MigrationPostCopy)))), time.Hour),
			expect{phase: running, finalizer: true, waiting: ReasonPostCopy, events: []string{ReasonPostCopy}, watermark: &Watermark{RemainingBytes: 10 * mib, Since: mt(0)},
				says: []string{"cannot be aborted"}}},
		{"disks count toward the completion budget: 1Gi + 2Gi = 450s, not yet",
			observe(runningMigration(), runningVMI(withClaim("disk"), withState(state(progress(10*mib, 0, 0)))), 400*time.Second, storage([]corev1.PersistentVolumeClaim{diskPVC}, nil)),
			migrating(50*time.Second, &Watermark{RemainingBytes: 10 * mib, Since: mt(400 * time.Second)})},
		{"disks count toward the completion budget: 450s reached",
			observe(runningMigration(), runningVMI(withClaim("disk"), withState(state(progress(10*mib, 0, 0)))), 450*time.Second, storage([]corev1.PersistentVolumeClaim{diskPVC}, nil)),
			expect{phase: running, finalizer: true, abort: ReasonCompletionTimeout, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				watermark: &Watermark{RemainingBytes: 10 * mib, Since: mt(450 * time.Second)},
				state: state(progress(10*mib, 0, 0), abortFlag, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.FailureReason = "the migration did not complete within 7m30s (completionTimeoutPerGiB 150 for 3 GiB of memory and disks); enable allowPostCopy or allowWorkloadDisruption, or raise completionTimeoutPerGiB"
				})}},
	}
}

func abortCases() []stepCase {
	const mib = int64(1) << 20
	aborting := func(options ...migrationOption) *kubevirtv1.VirtualMachineInstanceMigration {
		return runningMigration(append([]migrationOption{abortRequestedAt(ReasonProgressTimeout, time.Minute), withCondition(ConditionWaiting, ReasonWaitingForAbort, time.Minute)}, options...)...)
	}
	abortedState := state(progress(70*mib, 0, 0), abortFlag)
	return []stepCase{
		{"abort requested, no answer yet: waits until the abort deadline",
			observe(aborting(), runningVMI(withState(abortedState)), 90*time.Second),
			expect{phase: running, finalizer: true, abort: ReasonProgressTimeout, waiting: ReasonWaitingForAbort, requeue: 30 * time.Second}},
		{"abort requested, no answer by the deadline: Failed, the state left to the agents",
			observe(aborting(), runningVMI(withState(abortedState)), 2*time.Minute),
			expect{phase: failed, failed: ReasonAbortTimeout, abort: ReasonProgressTimeout, events: []string{EventFailed},
				says: []string{"did not report failed or completed within 1m0s"}}},
		{"abort requested, the agents report failed",
			observe(aborting(), runningVMI(withState(state(progress(70*mib, 0, 0), abortFlag, failedWith("aborted: no progress")))), 90*time.Second),
			expect{phase: failed, failed: ReasonNodeAgentFailure, abort: ReasonProgressTimeout, events: []string{EventFailed}, says: []string{"aborted: no progress"}}},
		{"abort requested, but the migration won the race",
			observe(aborting(), runningVMI(onNode("b"), withState(state(abortFlag, completedAt(80*time.Second)))), 90*time.Second),
			expect{phase: succeeded, abort: ReasonProgressTimeout, events: []string{"Succeeded"}}},
	}
}

func finalCases() []stepCase {
	return []stepCase{
		{"Succeeded: the finalizer goes, the mirror follows the VMI",
			observe(migration(succeeded, watermarkAt(1, 1, 0)), runningVMI(onNode("b"), withState(state(completedAt(time.Minute)))), 2*time.Minute),
			expect{phase: succeeded}},
		{"Failed without finalizer: nothing to do", observe(migration(failed, withoutFinalizer), runningVMI(), time.Minute),
			expect{phase: failed}},
		{"Failed, VMI gone: nothing to do", observe(migration(failed), nil, time.Minute),
			expect{phase: failed}},
	}
}

func cancelCases() []stepCase {
	const mib = int64(1) << 20
	cancelledEarly := expect{phase: failed, failed: ReasonCancelled, events: []string{EventFailed}, says: []string{"deleted before it started"}}
	deletedRunning := func(options ...migrationOption) *kubevirtv1.VirtualMachineInstanceMigration {
		return runningMigration(append([]migrationOption{deleted}, options...)...)
	}
	abortedAt60 := []migrationOption{abortRequestedAt(ReasonCancelled, time.Minute), withCondition(ConditionWaiting, ReasonWaitingForAbort, time.Minute)}
	return []stepCase{
		{"Pending", observe(migration(pending, deleted), runningVMI(), time.Second), cancelledEarly},
		{"unset", observe(migration(unset, deleted, func(m *kubevirtv1.VirtualMachineInstanceMigration) { m.Finalizers = []string{MigrationFinalizer} }), runningVMI(), time.Second), cancelledEarly},
		{"Scheduling", observe(migration(schedulingPhase, deleted), runningVMI(), time.Second), cancelledEarly},
		{"Scheduled, target not ready: the controller ends it",
			observe(migration(scheduled, deleted), runningVMI(withState(state())), time.Second),
			expect{phase: failed, failed: ReasonCancelled, events: []string{EventFailed},
				state: state(func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.AbortRequested, s.Failed, s.Completed, s.EndTimestamp = true, true, true, mtp(time.Second)
					s.FailureReason = "the migration was deleted before the target was ready"
				})}},
		{"Scheduled, the state not visible yet: the recorded one is written ended",
			observe(migration(scheduled, deleted, mirrored(state())), runningVMI(), time.Second),
			expect{phase: failed, failed: ReasonCancelled, events: []string{EventFailed},
				state: state(func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.AbortRequested, s.Failed, s.Completed, s.EndTimestamp = true, true, true, mtp(time.Second)
					s.FailureReason = "the migration was deleted before the target was ready"
				})}},
		{"Scheduled, no state anywhere", observe(migration(scheduled, deleted), runningVMI(), time.Second),
			expect{phase: failed, failed: ReasonCancelled, events: []string{EventFailed}, says: []string{"the VMI shows no state of it"}}},
		{"PreparingTarget with an address: the agents are asked",
			observe(migration(preparingTarget, deleted), runningVMI(withState(state(addressOnly))), time.Second),
			expect{phase: preparingTarget, finalizer: true, abort: ReasonCancelled, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				state: state(addressOnly, abortFlag, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.FailureReason = "the migration was deleted"
				})}},
		{"Running: abort requested, the finalizer stays",
			observe(deletedRunning(), runningVMI(withState(state(progress(70*mib, 0, 0)))), 61*time.Second),
			expect{phase: running, finalizer: true, abort: ReasonCancelled, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				state: state(progress(70*mib, 0, 0), abortFlag, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.FailureReason = "the migration was deleted"
				})}},
		{"Running, abort requested, no answer yet",
			observe(deletedRunning(abortedAt60...), runningVMI(withState(state(progress(70*mib, 0, 0), abortFlag))), 90*time.Second),
			expect{phase: running, finalizer: true, abort: ReasonCancelled, waiting: ReasonWaitingForAbort, requeue: 30 * time.Second}},
		{"Running, the agents aborted: the finalizer goes",
			observe(deletedRunning(abortedAt60...), runningVMI(withState(state(progress(70*mib, 0, 0), abortFlag, failedWith("aborted")))), 90*time.Second),
			expect{phase: failed, failed: ReasonNodeAgentFailure, abort: ReasonCancelled, events: []string{EventFailed}}},
		{"Running, it completed anyway: the finalizer goes",
			observe(deletedRunning(abortedAt60...), runningVMI(onNode("b"), withState(state(abortFlag, completedAt(80*time.Second)))), 90*time.Second),
			expect{phase: succeeded, abort: ReasonCancelled, events: []string{"Succeeded"}}},
		{"Running, no answer by the deadline: the finalizer goes anyway, and an event says so",
			observe(deletedRunning(abortedAt60...), runningVMI(withState(state(progress(70*mib, 0, 0), abortFlag))), 2*time.Minute),
			expect{phase: failed, failed: ReasonAbortTimeout, abort: ReasonCancelled, events: []string{EventFailed, ReasonFinalizerForced}}},
		{"Running, the guest already runs on the target: no abort, the handover is awaited",
			observe(deletedRunning(), runningVMI(onNode("b"), withState(state(progress(0, 1<<30, 0)))), 61*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonHandover, events: []string{ReasonHandover}, requeue: time.Minute}},
		{"Running in post-copy: never aborted, awaited",
			observe(deletedRunning(), runningVMI(withState(state(progress(1, 1, 1), mode(kubevirtv1.MigrationPostCopy)))), 30*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonPostCopy, events: []string{ReasonPostCopy}, requeue: 30 * time.Second, says: []string{"cannot be aborted"}}},
		{"Running in post-copy, not ended by the deadline: the finalizer goes, an event says so",
			observe(deletedRunning(), runningVMI(withState(state(progress(1, 1, 1), mode(kubevirtv1.MigrationPostCopy)))), time.Minute),
			expect{phase: failed, failed: ReasonAbortTimeout, events: []string{EventFailed, ReasonFinalizerForced}}},
		{"Running, the VMI is gone", observe(deletedRunning(), nil, time.Minute),
			expect{phase: failed, failed: ReasonCancelled, events: []string{EventFailed}}},
		{"without the finalizer: nothing to do", observe(deletedRunning(withoutFinalizer), runningVMI(withState(state(progress(1, 0, 0)))), time.Minute),
			expect{phase: running, waiting: ReasonMigrating}},
		{"final with the finalizer: it goes", observe(migration(succeeded, deleted), runningVMI(), time.Minute),
			expect{phase: succeeded}},
		{"a classic migration in a decentralized phase fails", observe(migration(kubevirtv1.MigrationWaitingForSync), runningVMI(), time.Minute),
			expect{phase: failed, failed: ReasonUnsupportedPhase, events: []string{EventFailed}}},
	}
}

func checkDecision(t *testing.T, obs Observed, d Decision, want expect) {
	t.Helper()
	if d.Phase() != want.phase {
		t.Errorf("phase %q, want %q (conditions %+v)", d.Phase(), want.phase, d.Status.Conditions)
	}
	if d.Finalizer != want.finalizer {
		t.Errorf("finalizer %v, want %v", d.Finalizer, want.finalizer)
	}
	for _, c := range []struct {
		kind kubevirtv1.VirtualMachineInstanceMigrationConditionType
		want string
	}{{ConditionWaiting, want.waiting}, {ConditionFailed, want.failed}, {ConditionAbortRequested, want.abort}} {
		got := ""
		if cond := findCondition(d.Status.Conditions, c.kind); cond != nil {
			got = cond.Reason
		}
		if got != c.want {
			t.Errorf("condition %s reason %q, want %q (%+v)", c.kind, got, c.want, findCondition(d.Status.Conditions, c.kind))
		}
	}
	if !equality.Semantic.DeepEqual(d.MigrationState, want.state) {
		t.Errorf("VMI migrationState written:\n got %s\nwant %s", show(d.MigrationState), show(want.state))
	}
	if got := eventReasons(d.Events); !slices.Equal(got, want.events) {
		t.Errorf("events %v, want %v (%+v)", got, want.events, d.Events)
	}
	if d.RequeueAfter != want.requeue {
		t.Errorf("requeue after %s, want %s", d.RequeueAfter, want.requeue)
	}
	if !equality.Semantic.DeepEqual(d.Watermark, want.watermark) {
		t.Errorf("watermark %+v, want %+v", d.Watermark, want.watermark)
	}
	if !equality.Semantic.DeepEqual(d.PlaceClaims, want.claims) {
		t.Errorf("claims to place %+v, want %+v", d.PlaceClaims, want.claims)
	}
	if got := failVMIReason(d); got != want.failVMI {
		t.Errorf("VMI marked failed with reason %q, want %q (%+v)", got, want.failVMI, d.FailVMI)
	}
	messages := conditionMessages(d)
	for _, s := range want.says {
		if !strings.Contains(messages, s) {
			t.Errorf("conditions do not say %q:\n%s", s, messages)
		}
	}
}

// checkInvariants holds for every decision.
func checkInvariants(t *testing.T, obs Observed, d Decision) {
	t.Helper()
	m := obs.Migration
	final := d.Phase() == succeeded || d.Phase() == failed
	if final && d.Finalizer {
		t.Error("a final migration keeps the finalizer")
	}
	if final && d.Watermark != nil {
		t.Error("a final migration keeps its watermark")
	}
	hasFailedCondition := findCondition(d.Status.Conditions, ConditionFailed) != nil
	if hasFailedCondition && d.Phase() != failed || d.Phase() == failed && m.Status.Phase != failed && !hasFailedCondition {
		t.Error("Failed and condition migrationFailed go together")
	}
	if vmi := obs.VMI; d.FailVMI != nil && (!m.IsDecentralizedTarget() || d.Phase() != failed || vmi == nil ||
		vmi.Status.NodeName != "" || vmi.Status.Phase != kubevirtv1.WaitingForSync) {
		t.Errorf("marked the VMI Failed, which only a failed receive migration does to a waiting receiver (decision %s)", d.Phase())
	}
	if d.PlaceClaims != nil && (!m.IsDecentralizedTarget() || final) {
		t.Error("claims placed by a migration that is not an unfinished receive migration")
	}
	if final && findCondition(d.Status.Conditions, ConditionWaiting) != nil {
		t.Error("a final migration still waits")
	}
	if m.DeletionTimestamp != nil && d.Finalizer && !slices.Contains(m.Finalizers, MigrationFinalizer) {
		t.Error("a finalizer added to a deleted migration")
	}
	if d.Phase() != m.Status.Phase {
		stamps := d.Status.PhaseTransitionTimestamps
		if len(stamps) == 0 || stamps[len(stamps)-1].Phase != d.Phase() || !stamps[len(stamps)-1].PhaseTransitionTimestamp.Time.Equal(obs.Now) {
			t.Errorf("phase change to %s not recorded at now: %+v", d.Phase(), stamps)
		}
		if len(d.Events) == 0 {
			t.Error("a phase change without an event")
		}
	}
	if state := d.MigrationState; state != nil {
		if state.MigrationUID != m.UID {
			t.Errorf("wrote a migrationState of migration %q", state.MigrationUID)
		}
		if current := obs.VMI.Status.MigrationState; unfinishedElsewhere(current, m.UID) {
			t.Error("overwrote another migration's unfinished state")
		}
		if !equality.Semantic.DeepEqual(d.Status.MigrationState, state) {
			t.Error("the VMIM does not mirror the state written")
		}
		if state.Completed && !state.Failed {
			t.Error("the controller reported a success the agents did not")
		}
	} else if obs.VMI != nil && obs.VMI.Status.MigrationState != nil && obs.VMI.Status.MigrationState.MigrationUID == m.UID &&
		!equality.Semantic.DeepEqual(d.Status.MigrationState, obs.VMI.Status.MigrationState) {
		t.Error("the VMIM does not mirror the VMI's migrationState")
	}
	if !final && d.Phase() == m.Status.Phase && m.DeletionTimestamp == nil && d.Phase() != unset &&
		d.RequeueAfter == 0 && findCondition(d.Status.Conditions, ConditionWaiting) == nil {
		t.Error("a migration that stays put neither waits nor looks again")
	}
}

func failVMIReason(d Decision) string {
	if d.FailVMI == nil {
		return ""
	}
	return d.FailVMI.Reason
}

func eventReasons(events []Event) []string {
	var reasons []string
	for _, e := range events {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

func conditionMessages(d Decision) string {
	var lines []string
	for _, c := range d.Status.Conditions {
		lines = append(lines, string(c.Type)+": "+c.Message)
	}
	return strings.Join(lines, "\n")
}

func show(state *kubevirtv1.VirtualMachineInstanceMigrationState) string {
	if state == nil {
		return "<none>"
	}
	data, err := json.Marshal(state)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// TestStepWaitsKeepTheirStart: a wait's condition keeps its transition
// time while the wait goes on (deadlines count from it), and an ongoing
// wait makes no event.
func TestStepWaitsKeepTheirStart(t *testing.T) {
	m := migration(pending, withCondition(ConditionWaiting, ReasonClusterLimit, 5*time.Second))
	d := Step(observe(m, runningVMI(), time.Minute, active(9, 0)))
	c := findCondition(d.Status.Conditions, ConditionWaiting)
	if c == nil || !c.LastTransitionTime.Time.Equal(at(5*time.Second)) {
		t.Errorf("waiting condition %+v, want its transition time kept at t0+5s", c)
	}
	if !strings.Contains(c.Message, "9 migrations") || len(d.Events) != 0 {
		t.Errorf("message %q (want the new count), events %+v (want none)", c.Message, d.Events)
	}
}

// TestStepSuccessEventSaysHowLong: the success event tells the duration
// and the downtime.
func TestStepSuccessEventSaysHowLong(t *testing.T) {
	d := Step(observe(runningMigration(), runningVMI(onNode("b"), withState(state(completedAt(3*time.Second)))), 4*time.Second))
	want := "VMI vm migrated from node a to node b in 3s (downtime 25 ms)"
	if len(d.Events) != 1 || d.Events[0].Message != want {
		t.Errorf("events %+v, want one saying %q", d.Events, want)
	}
}

// TestStepGrid runs Step over every phase crossed with every kind of VMI
// and VMI state, deleted or not, before and after every deadline, and
// checks the invariants on each: no combination panics, overwrites
// another migration's state, reports a success the agents did not, or
// stands still without a wait.
func TestStepGrid(t *testing.T) {
	phases := []kubevirtv1.VirtualMachineInstanceMigrationPhase{unset, pending, schedulingPhase, scheduled, preparingTarget, targetReady, running, succeeded, failed,
		kubevirtv1.MigrationWaitingForSync, kubevirtv1.MigrationSynchronizing}
	vmis := map[string]*kubevirtv1.VirtualMachineInstance{
		"none":            nil,
		"running":         runningVMI(),
		"stopped":         runningVMI(vmiPhase(kubevirtv1.Failed)),
		"deleting":        runningVMI(vmiDeleting),
		"not migratable":  runningVMI(noConditions),
		"own fresh":       runningVMI(withState(state())),
		"own listening":   runningVMI(withState(state(targetListening))),
		"own address":     runningVMI(withState(state(addressOnly))),
		"own progress":    runningVMI(withState(state(progress(1<<20, 1<<20, 1<<20)))),
		"own aborting":    runningVMI(withState(state(progress(1<<20, 1<<20, 1<<20), abortFlag))),
		"own failed":      runningVMI(withState(state(failedWith("x")))),
		"own completed":   runningVMI(withState(state(completedAt(time.Second)))),
		"own on target":   runningVMI(onNode("b"), withState(state(completedAt(time.Second)))),
		"own taken over":  runningVMI(onNode("b"), withState(state(progress(0, 1, 0)))),
		"own post-copy":   runningVMI(withState(state(progress(1, 1, 1), mode(kubevirtv1.MigrationPostCopy)))),
		"other unfinish":  runningVMI(withState(state(ownedBy("uid-m0"), progress(1, 1, 1)))),
		"other completed": runningVMI(withState(state(ownedBy("uid-m0"), completedAt(time.Second)))),
	}
	migrationVariants := map[string][]migrationOption{
		"plain":          nil,
		"deleted":        {deleted},
		"no finalizer":   {withoutFinalizer},
		"abort asked":    {abortRequestedAt(ReasonCancelled, 0)},
		"deleted asked":  {deleted, abortRequestedAt(ReasonCancelled, 0)},
		"with watermark": {watermarkAt(1, 0, 0)},
		"mirrored":       {mirrored(state())},
		"handover":       {withCondition(ConditionWaiting, ReasonHandover, 0)},
	}
	nows := []time.Duration{0, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 24 * time.Hour}
	for _, phase := range phases {
		for vmiName, vmi := range vmis {
			for variant, options := range migrationVariants {
				for _, now := range nows {
					for _, crowded := range []bool{false, true} {
						m := migration(phase, options...)
						obsOptions := []observedOption{withSiblings(migration(pending, named("m2", "uid-m2", time.Second)))}
						if crowded {
							obsOptions = append(obsOptions, active(5, 2))
						}
						obs := observe(m, vmi, now, obsOptions...)
						t.Run(string(phase)+"/"+vmiName+"/"+variant+"/"+now.String()+"/"+boolName(crowded, "crowded"), func(t *testing.T) {
							checkInvariants(t, obs, Step(obs))
						})
					}
				}
			}
		}
	}
}

func boolName(b bool, name string) string {
	if b {
		return name
	}
	return "not-" + name
}

func TestCompletionTimeout(t *testing.T) {
	small := runningVMI(func(vmi *kubevirtv1.VirtualMachineInstance) {
		q := resource.MustParse("128Mi")
		vmi.Spec.Domain.Memory.Guest = &q
	})
	withDisk := runningVMI(withClaim("disk"))
	bound, _ := claim("disk", "2Gi", "a")
	bound.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("3Gi")}
	for _, tc := range []struct {
		name   string
		vmi    *kubevirtv1.VirtualMachineInstance
		claims []corev1.PersistentVolumeClaim
		want   time.Duration
	}{
		{"a small guest still counts 1 GiB", small, nil, 150 * time.Second},
		{"1 GiB of memory", runningVMI(), nil, 150 * time.Second},
		{"memory plus the bound capacity of the disk", withDisk, []corev1.PersistentVolumeClaim{bound}, 600 * time.Second},
		{"a missing claim counts nothing", withDisk, nil, 150 * time.Second},
	} {
		if got := completionTimeout(150, tc.vmi, tc.claims); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	if got := completionTimeout(150, runningVMI(func(vmi *kubevirtv1.VirtualMachineInstance) {
		q := resource.MustParse("1536Mi")
		vmi.Spec.Domain.Memory.Guest = &q
	}), nil); got != 225*time.Second {
		t.Errorf("1.5 GiB: %s, want 225s", got)
	}
}

func TestRemedies(t *testing.T) {
	config := (*kubevirtv1.KubeVirt)(nil).EffectiveMigrationConfiguration()
	if got, want := remedies(&config), "enable allowAutoConverge or enable allowPostCopy"; got != want {
		t.Errorf("defaults: %q, want %q", got, want)
	}
	limited := resource.MustParse("64Mi")
	config.BandwidthPerMigration = &limited
	if got, want := remedies(&config), "enable allowAutoConverge, enable allowPostCopy or raise bandwidthPerMigration (now 64Mi/s)"; got != want {
		t.Errorf("with a bandwidth limit: %q, want %q", got, want)
	}
	config.AllowAutoConverge, config.AllowPostCopy, config.BandwidthPerMigration = ptr.To(true), ptr.To(true), nil
	if got := remedies(&config); !strings.Contains(got, "reduce the guest's write load") {
		t.Errorf("with everything allowed: %q", got)
	}
}

func TestBytesString(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 60 << 20: "60 MiB", 1536 << 20: "1.5 GiB"} {
		if got := bytesString(n); got != want {
			t.Errorf("bytesString(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWatermarkAnnotationRoundTrip(t *testing.T) {
	w := &Watermark{RemainingBytes: 5, TransferredBytes: 7, Since: mt(3 * time.Second)}
	m := migration(running, func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		m.Annotations = map[string]string{WatermarkAnnotation: w.annotationValue()}
	})
	if got := watermarkOf(m); !equality.Semantic.DeepEqual(got, w) {
		t.Errorf("read back %+v, want %+v", got, w)
	}
	m.Annotations[WatermarkAnnotation] = "not json"
	if got := watermarkOf(m); got != nil {
		t.Errorf("garbage read as %+v, want nil", got)
	}
}
