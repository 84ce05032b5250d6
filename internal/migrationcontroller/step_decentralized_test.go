package migrationcontroller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// The decentralized fixtures. On the source cluster, migration m1
// (spec.sendTo: migrationID x, connectURL 10.0.0.1:9185) sends vm from
// node a to node t1 of the target cluster, whose migration has UID uid-t.
// On the target cluster, migration m1 (spec.receive: migrationID x)
// receives vm, a receiver VMI waiting on no node, from node s1 of the
// source cluster, whose migration has UID uid-s.

const (
	waitingForSync = kubevirtv1.MigrationWaitingForSync
	synchronizing  = kubevirtv1.MigrationSynchronizing
)

func receive(m *kubevirtv1.VirtualMachineInstanceMigration) {
	m.Spec.Receive = &kubevirtv1.VirtualMachineInstanceMigrationTarget{MigrationID: "x"}
}

func syncAddress(address string) migrationOption {
	return func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		m.Status.SynchronizationAddresses = []string{address}
	}
}

func sourceMigration(phase kubevirtv1.VirtualMachineInstanceMigrationPhase, options ...migrationOption) *kubevirtv1.VirtualMachineInstanceMigration {
	return migration(phase, append([]migrationOption{sendTo}, options...)...)
}

func receiveMigration(phase kubevirtv1.VirtualMachineInstanceMigrationPhase, options ...migrationOption) *kubevirtv1.VirtualMachineInstanceMigration {
	return migration(phase, append([]migrationOption{receive}, options...)...)
}

// receiverVMI is vm as WaitAsReceiver leaves it: WaitingForSync, on no
// node, without conditions.
func receiverVMI(options ...vmiOption) *kubevirtv1.VirtualMachineInstance {
	return runningVMI(append([]vmiOption{vmiPhase(kubevirtv1.WaitingForSync), onNode(""), noConditions}, options...)...)
}

func startedAt(d time.Duration) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) { s.StartTimestamp = mtp(d) }
}

func failureReason(reason string) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) { s.FailureReason = reason }
}

// endedAt is a state the controller ended before handoff at d.
func endedAt(d time.Duration, reason string) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		s.AbortRequested, s.Failed, s.Completed, s.EndTimestamp = true, true, true, mtp(d)
		if s.FailureReason == "" {
			s.FailureReason = reason
		}
	}
}

func common(uid types.UID, node string) kubevirtv1.VirtualMachineInstanceCommonMigrationState {
	return kubevirtv1.VirtualMachineInstanceCommonMigrationState{MigrationUID: uid, Node: node}
}

// asSource is the source's state as the controller writes it on
// Synchronizing: no target yet, sourceState naming m1 and node a.
func asSource(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.TargetNode = ""
	s.SourceState = &kubevirtv1.VirtualMachineInstanceMigrationSourceState{VirtualMachineInstanceCommonMigrationState: common(uid, "a")}
}

// targetAnswered is what the target cluster's first pushes add: its half
// and its node t1.
func targetAnswered(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.TargetState = &kubevirtv1.VirtualMachineInstanceMigrationTargetState{VirtualMachineInstanceCommonMigrationState: common("uid-t", "t1")}
	s.TargetNode = "t1"
}

// targetClusterReady: the target cluster's node t1 listens.
func targetClusterReady(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	targetAnswered(s)
	targetListening(s)
}

func peerCancelled(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.AbortRequested = true
	s.FailureReason = "cancelled by the peer cluster"
}

// unclaimed is a VMI's migrationState as the synchronization controller
// writes it before the migration controller claimed it.
func unclaimed(options ...stateOption) *kubevirtv1.VirtualMachineInstanceMigrationState {
	s := &kubevirtv1.VirtualMachineInstanceMigrationState{}
	for _, option := range options {
		option(s)
	}
	return s
}

// sourcePushed: the source cluster's half, as its pushes carry it.
func sourcePushed(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.SourceState = &kubevirtv1.VirtualMachineInstanceMigrationSourceState{VirtualMachineInstanceCommonMigrationState: common("uid-s", "s1")}
	s.SourceState.SyncAddress = ptr.To("10.0.0.2:9185")
	s.SourceState.MigrationConfiguration = &kubevirtv1.MigrationConfiguration{ParallelMigrationThreads: ptr.To[uint32](2)}
}

// fromOlderSource: the source cluster's half carries no configuration (a
// cclm from before sourceState.migrationConfiguration).
func fromOlderSource(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.SourceState.MigrationConfiguration = nil
}

func sourceNeeds(labels map[string]string) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) { s.SourceState.NodeSelectors = labels }
}

// ownTargetHalf: the target's synchronization controller's own half,
// written before the controller claimed the state.
func ownTargetHalf(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.TargetState = &kubevirtv1.VirtualMachineInstanceMigrationTargetState{VirtualMachineInstanceCommonMigrationState: common(uid, "")}
	s.TargetState.SyncAddress = ptr.To("10.0.0.1:9185")
}

// asTargetOn is the receiver's state as the controller claims it, with
// target node node: the source's half kept.
func asTargetOn(node string) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		sourcePushed(s)
		s.SourceNode, s.TargetNode = "s1", node
		s.TargetState = &kubevirtv1.VirtualMachineInstanceMigrationTargetState{VirtualMachineInstanceCommonMigrationState: common(uid, node)}
	}
}

var asTarget = asTargetOn("b")

func syncTimeout(d time.Duration) observedOption {
	return func(obs *Observed) { obs.Timeouts.Sync = d }
}

func sourceCases() []stepCase {
	const mib = int64(1) << 20
	synchronizingAt10s := state(asSource, startedAt(10*time.Second))
	sourceWaits := func(requeue time.Duration, says ...string) expect {
		return expect{phase: synchronizing, finalizer: true, waiting: ReasonWaitingForTargetCluster, events: []string{ReasonWaitingForTargetCluster}, requeue: requeue, says: says}
	}
	syncGaveUp := "the target cluster did not get ready within 5m0s of the migration's start (the target cluster has not answered): " +
		"check that the target cluster has a migration with spec.receive.migrationID x for the VMI of a VM with runStrategy WaitAsReceiver, " +
		"that spec.sendTo.connectURL 10.0.0.1:9185 is that migration's status.synchronizationAddresses[0] and reachable over the migration network, " +
		"and that each cluster's CA is in the other's ConfigMap kubevirt-external-ca"
	earlyPushes := unclaimed(func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		s.SourceState = &kubevirtv1.VirtualMachineInstanceMigrationSourceState{VirtualMachineInstanceCommonMigrationState: common(uid, "a")}
		s.SourceState.SyncAddress = ptr.To("10.0.0.3:9185")
	}, targetClusterReady)
	notMigratable := "VMI vm is not live-migratable: it has no LiveMigratable condition yet (its node agent sets it)"
	return []stepCase{
		{"Pending: the state is written with sourceState, and the migration synchronizes",
			observe(sourceMigration(pending), runningVMI(), 10*time.Second),
			expect{phase: synchronizing, finalizer: true, state: synchronizingAt10s, events: []string{"Synchronizing"}}},
		{"Pending: a matched MigrationPolicy's configuration and name are in the state offered",
			observe(sourceMigration(pending), runningVMI(), 10*time.Second, underGoldPolicy),
			expect{phase: synchronizing, finalizer: true, state: state(asSource, startedAt(10*time.Second), byGoldPolicy), events: []string{"Synchronizing"}}},
		{"Pending: an earlier migration's finished state is replaced",
			observe(sourceMigration(pending), runningVMI(withState(state(ownedBy("uid-m0"), completedAt(time.Second)))), 10*time.Second),
			expect{phase: synchronizing, finalizer: true, state: synchronizingAt10s, events: []string{"Synchronizing"}}},
		{"Pending: what the synchronization controller wrote before is kept (its address, the target's early pushes)",
			observe(sourceMigration(pending), runningVMI(withState(earlyPushes)), 10*time.Second),
			expect{phase: synchronizing, finalizer: true, events: []string{"Synchronizing"},
				state: state(startedAt(10*time.Second), targetClusterReady, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.SourceState = earlyPushes.SourceState.DeepCopy()
				})}},
		{"Pending: the limits hold as for an in-cluster migration",
			observe(sourceMigration(pending), runningVMI(), 10*time.Second, active(3, 2)),
			expect{phase: pending, finalizer: true, waiting: ReasonNodeLimit, events: []string{ReasonNodeLimit}, requeue: capacityRetry}},
		{"Pending: refused as an in-cluster migration would be",
			observe(sourceMigration(pending), runningVMI(noConditions), 10*time.Second),
			expect{phase: failed, failed: ReasonNotLiveMigratable, events: []string{EventFailed}}},
		{"Pending, refused while the synchronization controller talks to the peer: the failure is published for it",
			observe(sourceMigration(pending), runningVMI(noConditions, withState(earlyPushes)), 10*time.Second),
			expect{phase: failed, failed: ReasonNotLiveMigratable, events: []string{EventFailed},
				state: state(targetClusterReady, endedAt(10*time.Second, notMigratable), func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.SourceState, s.StartTimestamp, s.Mode, s.MigrationConfiguration = earlyPushes.SourceState.DeepCopy(), nil, "", nil
				})}},
		{"Pending, the peer cancelled already: Failed at once with its reason",
			observe(sourceMigration(pending), runningVMI(withState(unclaimed(targetAnswered, peerCancelled))), 10*time.Second),
			expect{phase: failed, failed: ReasonCancelledByPeer, events: []string{EventFailed}, says: []string{"cancelled by the peer cluster"}}},
		{"Pending, the synchronization controller failed it (the peer was silent)",
			observe(sourceMigration(pending), runningVMI(withState(unclaimed(failedWith("no contact with the target cluster's synchronization controller at 10.0.0.1:9185 for 1m0s")))), 10*time.Second),
			expect{phase: failed, failed: ReasonSynchronizationFailed, events: []string{EventFailed}, says: []string{"no contact with the target cluster"}}},
		{"Synchronizing, the target cluster has not answered: waits until startTimestamp + Sync",
			observe(sourceMigration(synchronizing), runningVMI(withState(state(asSource))), 30*time.Second),
			sourceWaits(270*time.Second, "synchronization controller at 10.0.0.1:9185, migrationID x", "the target cluster has not answered", "until 2026-05-01T12:05:00Z")},
		{"Synchronizing, the target answered but is not ready: says how far it got",
			observe(sourceMigration(synchronizing), runningVMI(withState(state(asSource, targetAnswered))), 30*time.Second),
			sourceWaits(270*time.Second, "target node t1: no targetNodeAddress, domain not detected")},
		{"Synchronizing, Sync shortened to 1m",
			observe(sourceMigration(synchronizing), runningVMI(withState(state(asSource))), 30*time.Second, syncTimeout(time.Minute)),
			sourceWaits(30*time.Second, "until 2026-05-01T12:01:00Z")},
		{"Synchronizing, the target cluster's node is ready: TargetReady",
			observe(sourceMigration(synchronizing), runningVMI(withState(state(asSource, targetClusterReady))), 30*time.Second),
			expect{phase: targetReady, finalizer: true, events: []string{"TargetReady"}}},
		{"Synchronizing, the Sync deadline without a target address: Failed, the state marked failed by the controller",
			observe(sourceMigration(synchronizing), runningVMI(withState(state(asSource))), 5*time.Minute),
			expect{phase: failed, failed: ReasonSyncTimeout, events: []string{EventFailed}, says: []string{syncGaveUp},
				state: state(asSource, endedAt(5*time.Minute, syncGaveUp))}},
		{"Synchronizing, the Sync deadline with an address but no domain: the agents are asked to abort",
			observe(sourceMigration(synchronizing), runningVMI(withState(state(asSource, targetAnswered, addressOnly))), 5*time.Minute),
			expect{phase: synchronizing, finalizer: true, abort: ReasonSyncTimeout, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				state: state(asSource, targetAnswered, addressOnly, abortFlag, failureReason(
					"the target cluster did not get ready within 5m0s of the migration's start (target node t1: targetNodeAddress 192.168.201.2 but domain not detected): "+
						"check that the target cluster has a migration with spec.receive.migrationID x for the VMI of a VM with runStrategy WaitAsReceiver, "+
						"that spec.sendTo.connectURL 10.0.0.1:9185 is that migration's status.synchronizationAddresses[0] and reachable over the migration network, "+
						"and that each cluster's CA is in the other's ConfigMap kubevirt-external-ca"))}},
		{"Synchronizing, the target cluster failed",
			observe(sourceMigration(synchronizing), runningVMI(withState(state(asSource, targetAnswered, failedWith("the target cluster's side of the migration failed: no node fits")))), 30*time.Second),
			expect{phase: failed, failed: ReasonNodeAgentFailure, events: []string{EventFailed}, says: []string{"no node fits"}}},
		{"Synchronizing, the peer cancelled before any data moved: Failed at once",
			observe(sourceMigration(synchronizing), runningVMI(withState(state(asSource, targetAnswered, peerCancelled))), 30*time.Second),
			expect{phase: failed, failed: ReasonCancelledByPeer, events: []string{EventFailed}, says: []string{"cancelled by the peer cluster"},
				state: state(asSource, targetAnswered, peerCancelled, endedAt(30*time.Second, ""))}},
		{"Synchronizing, the state not visible yet: written again from the mirror",
			observe(sourceMigration(synchronizing, mirrored(state(asSource))), runningVMI(), time.Second),
			expect{phase: synchronizing, finalizer: true, waiting: ReasonStateNotVisibleYet, state: state(asSource), events: []string{ReasonStateNotVisibleYet}, requeue: time.Second}},
		{"Synchronizing, deleted before the target was ready: the controller ends it",
			observe(sourceMigration(synchronizing, deleted), runningVMI(withState(state(asSource, targetAnswered))), 30*time.Second),
			expect{phase: failed, failed: ReasonCancelled, events: []string{EventFailed},
				state: state(asSource, targetAnswered, endedAt(30*time.Second, "the migration was deleted before the target was ready"))}},
		{"TargetReady: progress from the source agent: Running",
			observe(sourceMigration(targetReady), runningVMI(withState(state(asSource, targetClusterReady, progress(600*mib, 400*mib, 0)))), time.Minute),
			expect{phase: running, finalizer: true, events: []string{"Running"}}},
		{"TargetReady: the source agent does not start: SourceStart as in-cluster",
			observe(sourceMigration(targetReady), runningVMI(withState(state(asSource, targetClusterReady))), 2*time.Minute),
			expect{phase: targetReady, finalizer: true, abort: ReasonSourceNotStarted, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				state: state(asSource, targetClusterReady, abortFlag, failureReason("the node agent on source node a did not start sending within 2m0s of the target being ready"))}},
		{"Running: a target node named like the source's node is no sign of success",
			observe(sourceMigration(running), runningVMI(withState(state(asSource, targetClusterReady, progress(600*mib, 400*mib, 0), func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
				s.TargetNode = "a"
			}))), time.Minute),
			expect{phase: running, finalizer: true, waiting: ReasonMigrating, events: []string{ReasonMigrating}, requeue: 90 * time.Second,
				watermark: &Watermark{RemainingBytes: 600 * mib, TransferredBytes: 400 * mib, Since: mt(time.Minute)}}},
		{"Running: completed and the VMI Succeeded (the source QEMU is gone): Succeeded",
			observe(runningMigration(sendTo), runningVMI(vmiPhase(kubevirtv1.Succeeded), withState(state(asSource, targetAnswered, completedAt(90*time.Second)))), 100*time.Second),
			expect{phase: succeeded, events: []string{"Succeeded"}}},
		{"Running: completed but the source still runs: waits for the source agent",
			observe(runningMigration(sendTo), runningVMI(withState(state(asSource, targetAnswered, completedAt(90*time.Second)))), 100*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonHandover, events: []string{ReasonHandover}, requeue: time.Minute,
				says: []string{"the guest runs on node t1 of the target cluster; waiting for the node agent on a to stop the source and set VMI vm Succeeded"}}},
		{"Running: completed, the source agent never stopped the source: Succeeded with a warning",
			observe(runningMigration(sendTo, withCondition(ConditionWaiting, ReasonHandover, 100*time.Second)), runningVMI(withState(state(asSource, targetAnswered, completedAt(90*time.Second)))), 160*time.Second),
			expect{phase: succeeded, events: []string{ReasonSourceUnconfirmed, "Succeeded"}}},
		{"Running: the VMI Succeeded without the migration completing (the guest shut down): Failed",
			observe(runningMigration(sendTo), runningVMI(vmiPhase(kubevirtv1.Succeeded), withState(state(asSource, targetClusterReady, progress(1, 1, 0)))), 100*time.Second),
			expect{phase: failed, failed: ReasonVMINotRunning, events: []string{EventFailed},
				state: state(asSource, targetClusterReady, progress(1, 1, 0), abortFlag, failureReason("VMI ns/vm is Succeeded, not Running: only a running VMI can be live-migrated; the migration was Running"))}},
		{"Running: the peer cancelled after data moved: the agents abort, within the abort deadline",
			observe(runningMigration(sendTo), runningVMI(withState(state(asSource, targetClusterReady, progress(1, 1, 0), peerCancelled))), 100*time.Second),
			expect{phase: running, finalizer: true, abort: ReasonCancelledByPeer, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute}},
		{"Running: the target failed after the source's QEMU finished: Failed",
			observe(runningMigration(sendTo), runningVMI(withState(state(asSource, targetClusterReady, progress(0, 1, 0), failedWith("the target cluster's side of the migration failed: guest did not resume")))), 100*time.Second),
			expect{phase: failed, failed: ReasonNodeAgentFailure, events: []string{EventFailed}, says: []string{"guest did not resume"}}},
	}
}

func targetCases() []stepCase {
	unboundDisk, _ := claim("disk", "1Gi", "")
	placedDisk, _ := claim("disk", "1Gi", "")
	placedDisk.Annotations = map[string]string{SelectedNodeAnnotation: "b"}
	withDisk := storage([]corev1.PersistentVolumeClaim{unboundDisk}, nil)
	claimedAt10s := func(node string) *kubevirtv1.VirtualMachineInstanceMigrationState {
		return state(asTargetOn(node), startedAt(10*time.Second))
	}
	onlyB := map[string]string{"cpu-model-migration.node.kubevirt.io/Skylake": "true"}
	labelled := func(n corev1.Node) corev1.Node {
		n.Labels["cpu-model-migration.node.kubevirt.io/Skylake"] = "true"
		return n
	}
	receiverFailed := func(reason string, says ...string) expect {
		return expect{phase: failed, failed: reason, failVMI: reason, events: []string{EventFailed, ReasonReceiverFailed}, says: says}
	}
	targetGaveUp := "the node agent on target node b did not get ready within 2m0s of the migration's start (no targetNodeAddress, domain not detected)"
	noSourceConfiguration := "the node agent on target node b did not get ready within 2m0s of the migration's start (no targetNodeAddress: " +
		"the source cluster's migration configuration (status.migrationState.sourceState.migrationConfiguration) has not arrived, and the receiving node agent needs it " +
		"to expect the source's stream; update cclm in the source cluster, whose synchronization controller sends it)"
	return []stepCase{
		{"a new receive migration is accepted as Pending",
			observe(receiveMigration(unset), receiverVMI(), 0),
			expect{phase: pending, finalizer: true, events: []string{"Pending"}}},
		{"Pending, the receiver waits: WaitingForSync, without taking a slot",
			observe(receiveMigration(pending), receiverVMI(), time.Second, active(5, 2)),
			expect{phase: waitingForSync, finalizer: true, events: []string{"WaitingForSync"}}},
		{"Pending, no VMI", observe(receiveMigration(pending), nil, time.Second),
			expect{phase: failed, failed: ReasonVMINotFound, events: []string{EventFailed}}},
		{"Pending, a running VMI is no receiver (and is not marked failed)",
			observe(receiveMigration(pending), runningVMI(), time.Second),
			expect{phase: failed, failed: ReasonVMINotReceiving, events: []string{EventFailed}, says: []string{"VMI ns/vm is Running, not WaitingForSync"}}},
		{"Pending, another receive migration holds the VMI: this one fails, the VMI is left to the other",
			observe(receiveMigration(pending), receiverVMI(), time.Second, withSiblings(receiveMigration(waitingForSync, named("m0", "uid-m0", -time.Second)))),
			expect{phase: failed, failed: ReasonInFlight, events: []string{EventFailed}, says: []string{"migration m0 (phase WaitingForSync)"}}},
		{"WaitingForSync, the source has not synchronized: waits until entering + Sync, saying where the source must connect",
			observe(receiveMigration(waitingForSync, syncAddress("10.0.0.1:9185")), receiverVMI(), time.Minute),
			expect{phase: waitingForSync, finalizer: true, waiting: ReasonWaitingForSourceCluster, events: []string{ReasonWaitingForSourceCluster}, requeue: 4 * time.Minute,
				says: []string{"migrationID x (its spec.sendTo.connectURL must be 10.0.0.1:9185), until 2026-05-01T12:05:00Z"}}},
		{"WaitingForSync, only its own half written yet: still waiting",
			observe(receiveMigration(waitingForSync, withCondition(ConditionWaiting, ReasonWaitingForSourceCluster, 0)), receiverVMI(withState(unclaimed(ownTargetHalf))), time.Minute),
			expect{phase: waitingForSync, finalizer: true, waiting: ReasonWaitingForSourceCluster, requeue: 4 * time.Minute, says: []string{"not published yet"}}},
		{"WaitingForSync deadline: Failed, and the receiver VMI too",
			observe(receiveMigration(waitingForSync), receiverVMI(), 5*time.Minute),
			receiverFailed(ReasonSyncTimeout, "no source cluster synchronized migrationID x within 5m0s", "spec.sendTo.migrationID x")},
		{"WaitingForSync deadline with Sync shortened to 30s",
			observe(receiveMigration(waitingForSync), receiverVMI(), 30*time.Second, syncTimeout(30*time.Second)),
			receiverFailed(ReasonSyncTimeout, "within 30s")},
		{"WaitingForSync deadline with the own half written: the failure is published for the synchronization controller",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(ownTargetHalf))), 5*time.Minute),
			expect{phase: failed, failed: ReasonSyncTimeout, failVMI: ReasonSyncTimeout, events: []string{EventFailed, ReasonReceiverFailed},
				state: unclaimed(ownTargetHalf, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.MigrationUID = uid
					endedAt(5*time.Minute, "no source cluster synchronized migrationID x within 5m0s: check that the source cluster has a migration with spec.sendTo.migrationID x and spec.sendTo.connectURL this migration's status.synchronizationAddresses[0], not published yet (is the synchronization controller running?), that the migration network reaches this cluster, and that each cluster's CA is in the other's ConfigMap kubevirt-external-ca")(s)
				})}},
		{"WaitingForSync, the source synchronized: a node is chosen, the state written keeping sourceState, the claims placed",
			observe(receiveMigration(waitingForSync), receiverVMI(withClaim("disk"), withState(unclaimed(sourcePushed))), 10*time.Second, withDisk),
			expect{phase: scheduled, finalizer: true, events: []string{"Scheduled"}, state: claimedAt10s("a"),
				claims: &ClaimPlacement{Node: "a", Claims: []string{"disk"}}}},
		{"WaitingForSync, the source answered but has not started (no configuration in its half: it waits for a slot there): waits without a deadline, taking no slot and no node",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed, fromOlderSource))), 10*time.Minute),
			expect{phase: waitingForSync, finalizer: true, waiting: ReasonWaitingForSourceStart, events: []string{ReasonWaitingForSourceStart}, requeue: capacityRetry,
				says: []string{"the source cluster's migration uid-s has not started", "takes no slot until it does"}}},
		{"WaitingForSync, synchronized, but this cluster runs parallelMigrationsPerCluster migrations: waits for a slot, without a deadline",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed))), 10*time.Minute, limits(1, 2), active(1, 0)),
			expect{phase: waitingForSync, finalizer: true, waiting: ReasonClusterLimit, events: []string{ReasonClusterLimit}, requeue: capacityRetry,
				says: []string{"1 migration is in progress in the cluster and parallelMigrationsPerCluster is 1"}}},
		{"WaitingForSync, synchronized, every node receives parallelOutboundMigrationsPerNode migrations: waits for a slot",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed))), 10*time.Second, limits(5, 1), active(2, 0), arriving(map[string]int{"a": 1, "b": 1})),
			expect{phase: waitingForSync, finalizer: true, waiting: ReasonInboundNodeLimit, events: []string{ReasonInboundNodeLimit}, requeue: capacityRetry,
				says: []string{"a (1), b (1)"}}},
		{"WaitingForSync, synchronized: a node at its arrival limit is passed over",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed))), 10*time.Second, active(2, 0), arriving(map[string]int{"a": 2})),
			expect{phase: scheduled, finalizer: true, events: []string{"Scheduled"}, state: claimedAt10s("b")}},
		{"WaitingForSync, synchronized, a MigrationPolicy matches the receiver: its configuration and name are recorded",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed))), 10*time.Second, underGoldPolicy),
			expect{phase: scheduled, finalizer: true, events: []string{"Scheduled"}, state: state(asTargetOn("a"), startedAt(10*time.Second), byGoldPolicy)}},
		{"WaitingForSync, synchronized: the own half the synchronization controller wrote is kept",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed, ownTargetHalf))), 10*time.Second),
			expect{phase: scheduled, finalizer: true, events: []string{"Scheduled"},
				state: state(asTargetOn("a"), startedAt(10*time.Second), func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.TargetState.SyncAddress = ptr.To("10.0.0.1:9185")
				})}},
		{"WaitingForSync, synchronized: the source's node selectors are required",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed, sourceNeeds(onlyB)))), 10*time.Second,
				nodes(node("a", "8Gi"), labelled(node("b", "8Gi")))),
			expect{phase: scheduled, finalizer: true, events: []string{"Scheduled"},
				state: state(asTargetOn("b"), startedAt(10*time.Second), sourceNeeds(onlyB))}},
		{"WaitingForSync, synchronized but no node has the source's labels: unschedulable, retried",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed, sourceNeeds(onlyB)))), 10*time.Second),
			expect{phase: waitingForSync, finalizer: true, waiting: ReasonUnschedulable, events: []string{ReasonUnschedulable}, requeue: unschedulableRetry,
				says: []string{"no node to receive the migration", "retrying until 2026-05-01T12:02:10Z"}}},
		{"WaitingForSync, unschedulable for 2m: Failed, and the receiver VMI too",
			observe(receiveMigration(waitingForSync, withCondition(ConditionWaiting, ReasonUnschedulable, 10*time.Second)), receiverVMI(withState(unclaimed(sourcePushed, sourceNeeds(onlyB)))), 130*time.Second),
			expect{phase: failed, failed: ReasonUnschedulable, failVMI: ReasonUnschedulable, events: []string{EventFailed, ReasonReceiverFailed},
				state: unclaimed(sourcePushed, sourceNeeds(onlyB), func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
					s.MigrationUID = uid
					s.TargetState = &kubevirtv1.VirtualMachineInstanceMigrationTargetState{VirtualMachineInstanceCommonMigrationState: common(uid, "")}
					endedAt(130*time.Second, "no node to receive the migration: 0/2 nodes are available: 2 node(s) didn't match the VMI's node selector. "+
						"a: lacks label cpu-model-migration.node.kubevirt.io/Skylake=true; b: lacks label cpu-model-migration.node.kubevirt.io/Skylake=true. (gave up after 2m0s)")(s)
				})}},
		{"WaitingForSync, the peer cancelled before it started: Failed at once, and the receiver VMI too",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed, peerCancelled))), 10*time.Second),
			receiverFailed(ReasonCancelledByPeer, "cancelled by the peer cluster")},
		{"WaitingForSync, the source failed before it started",
			observe(receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed, failedWith("the source cluster's side of the migration failed: not live-migratable")))), 10*time.Second),
			receiverFailed(ReasonSynchronizationFailed, "not live-migratable")},
		{"WaitingForSync, the state already claimed (the VMIM write was lost): Scheduled, the claims placed",
			observe(receiveMigration(waitingForSync), receiverVMI(withClaim("disk"), withState(state(asTarget))), 10*time.Second, withDisk),
			expect{phase: scheduled, finalizer: true, events: []string{"Scheduled"}, claims: &ClaimPlacement{Node: "b", Claims: []string{"disk"}}}},
		{"WaitingForSync, the receiver was deleted: Failed, nothing to mark",
			observe(receiveMigration(waitingForSync), receiverVMI(vmiDeleting), 10*time.Second),
			expect{phase: failed, failed: ReasonVMINotRunning, events: []string{EventFailed}}},
		{"WaitingForSync, deleted before it started: Failed, and the receiver VMI too",
			observe(receiveMigration(waitingForSync, deleted), receiverVMI(), 10*time.Second),
			receiverFailed(ReasonCancelled, "deleted before it started")},
		{"Scheduled: the target prepares; claims not yet placed are placed",
			observe(receiveMigration(scheduled), receiverVMI(withClaim("disk"), withState(state(asTarget))), time.Second, withDisk),
			expect{phase: preparingTarget, finalizer: true, events: []string{"PreparingTarget"}, claims: &ClaimPlacement{Node: "b", Claims: []string{"disk"}}}},
		{"Scheduled: placed claims are left alone",
			observe(receiveMigration(scheduled), receiverVMI(withClaim("disk"), withState(state(asTarget))), time.Second,
				storage([]corev1.PersistentVolumeClaim{placedDisk}, nil)),
			expect{phase: preparingTarget, finalizer: true, events: []string{"PreparingTarget"}}},
		{"PreparingTarget: the target listens: TargetReady",
			observe(receiveMigration(preparingTarget), receiverVMI(withState(state(asTarget, targetListening))), 30*time.Second),
			expect{phase: targetReady, finalizer: true, events: []string{"TargetReady"}}},
		{"PreparingTarget deadline: Failed, the state ended, the receiver VMI Failed",
			observe(receiveMigration(preparingTarget), receiverVMI(withState(state(asTarget))), 2*time.Minute),
			expect{phase: failed, failed: ReasonTargetNotReady, failVMI: ReasonTargetNotReady, events: []string{EventFailed, ReasonReceiverFailed},
				state: state(asTarget, endedAt(2*time.Minute, targetGaveUp))}},
		{"PreparingTarget deadline without the source's configuration: the failure says what is missing",
			observe(receiveMigration(preparingTarget), receiverVMI(withState(state(asTarget, fromOlderSource))), 2*time.Minute),
			expect{phase: failed, failed: ReasonTargetNotReady, failVMI: ReasonTargetNotReady, events: []string{EventFailed, ReasonReceiverFailed},
				state: state(asTarget, fromOlderSource, endedAt(2*time.Minute, noSourceConfiguration))}},
		{"PreparingTarget, the peer cancelled before the target listened: Failed at once",
			observe(receiveMigration(preparingTarget), receiverVMI(withState(state(asTarget, peerCancelled))), 30*time.Second),
			expect{phase: failed, failed: ReasonCancelledByPeer, failVMI: ReasonCancelledByPeer, events: []string{EventFailed, ReasonReceiverFailed},
				state: state(asTarget, peerCancelled, endedAt(30*time.Second, ""))}},
		{"TargetReady: Running at once, the source sends",
			observe(receiveMigration(targetReady), receiverVMI(withState(state(asTarget, targetListening))), 40*time.Second),
			expect{phase: running, finalizer: true, events: []string{"Running"}}},
		{"Running without progress: only the completion backstop (150s + Abort) bounds it",
			observe(runningMigration(receive), receiverVMI(withState(state(asTarget, targetListening))), 150*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonMigrating, requeue: time.Minute, says: []string{"completion deadline 2026-05-01T12:03:30Z"}}},
		{"Running past the backstop: abort requested (the source had its own completion timeout)",
			observe(runningMigration(receive), receiverVMI(withState(state(asTarget, targetListening))), 210*time.Second),
			expect{phase: running, finalizer: true, abort: ReasonCompletionTimeout, waiting: ReasonWaitingForAbort, events: []string{EventAbortRequested}, requeue: time.Minute,
				state: state(asTarget, targetListening, abortFlag, failureReason(
					"the migration did not complete within 2m30s (completionTimeoutPerGiB 150 for 1 GiB of memory and disks), nor did the source cluster end it within 1m0s more"))}},
		{"Running, completed and the VMI on the target node: Succeeded",
			observe(runningMigration(receive), receiverVMI(vmiPhase(kubevirtv1.Running), onNode("b"), withState(state(asTarget, completedAt(80*time.Second)))), 90*time.Second),
			expect{phase: succeeded, events: []string{"Succeeded"}}},
		{"Running, completed but the VMI on no node: waits for the takeover",
			observe(runningMigration(receive), receiverVMI(withState(state(asTarget, completedAt(80*time.Second)))), 90*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonHandover, events: []string{ReasonHandover}, requeue: time.Minute,
				says: []string{"waiting for the node agent on b to take the VMI over"}}},
		{"Running, the VMI on the target node but not completed: waits for the target agent",
			observe(runningMigration(receive), receiverVMI(vmiPhase(kubevirtv1.Running), onNode("b"), withState(state(asTarget, targetListening))), 90*time.Second),
			expect{phase: running, finalizer: true, waiting: ReasonHandover, events: []string{ReasonHandover}, requeue: time.Minute,
				says: []string{"the guest runs on node b; waiting for its node agent to report the migration completed"}}},
		{"Running, the source failed: Failed, and the waiting receiver VMI too",
			observe(runningMigration(receive), receiverVMI(withState(state(asTarget, targetListening, failedWith("the source cluster's side of the migration failed: connection reset")))), 90*time.Second),
			receiverFailed(ReasonNodeAgentFailure, "connection reset")},
		{"Running, the VMI on a node when the migration fails: the VMI is not marked",
			observe(runningMigration(receive), receiverVMI(vmiPhase(kubevirtv1.Running), onNode("b"), withState(state(asTarget, targetListening, failedWith("boom")))), 90*time.Second),
			expect{phase: failed, failed: ReasonNodeAgentFailure, events: []string{EventFailed}}},
		{"Running, the VMI Running on another node: Failed, not marked",
			observe(runningMigration(receive), receiverVMI(vmiPhase(kubevirtv1.Running), onNode("c"), withState(state(asTarget, targetListening))), 90*time.Second),
			expect{phase: failed, failed: ReasonVMINotReceiving, events: []string{EventFailed},
				state: state(asTarget, targetListening, abortFlag, failureReason("VMI ns/vm is Running, not WaitingForSync: only the VMI of a VM with runStrategy WaitAsReceiver can receive a migration; the migration was Running"))}},
		{"a receive migration in a phase of the source side fails",
			observe(receiveMigration(synchronizing), receiverVMI(), time.Second),
			receiverFailed(ReasonUnsupportedPhase, "does not belong to a migration of role target (spec.receive)")},
	}
}

func TestNeedsCluster(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *kubevirtv1.VirtualMachineInstanceMigration
		vmi  *kubevirtv1.VirtualMachineInstance
		want bool
	}{
		{"classic Scheduling", migration(schedulingPhase), runningVMI(), true},
		{"classic Scheduling, deleted", migration(schedulingPhase, deleted), runningVMI(), false},
		{"classic Pending: it chooses as soon as a slot is free", migration(pending), runningVMI(), true},
		{"classic Scheduled", migration(scheduled), runningVMI(), false},
		{"receiver waiting, not synchronized", receiveMigration(waitingForSync), receiverVMI(), false},
		{"receiver waiting, only its own half", receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(ownTargetHalf))), false},
		{"receiver waiting, synchronized", receiveMigration(waitingForSync), receiverVMI(withState(unclaimed(sourcePushed))), true},
		{"receiver waiting, no VMI", receiveMigration(waitingForSync), nil, false},
		{"source Synchronizing", sourceMigration(synchronizing), runningVMI(), false},
	} {
		if got := NeedsCluster(tc.m, tc.vmi); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestChooseTargetRequiredLabels(t *testing.T) {
	cluster := &Cluster{Nodes: []corev1.Node{node("a", "8Gi"), node("b", "8Gi")}}
	vmi := receiverVMI(func(vmi *kubevirtv1.VirtualMachineInstance) { vmi.Spec.NodeSelector = map[string]string{"zone": "1"} })
	node, reason := chooseTarget(vmi, cluster, map[string]string{"zone": "2"})
	if node != "" || reason != "no node to receive the migration: the VMI's nodeSelector wants zone=1 but the source needs zone=2" {
		t.Errorf("a conflicting label: %q, %q", node, reason)
	}
	if vmi.Spec.NodeSelector["zone"] != "1" || len(vmi.Spec.NodeSelector) != 1 {
		t.Errorf("the VMI was modified: %v", vmi.Spec.NodeSelector)
	}
	if node, _ := chooseTarget(receiverVMI(), cluster, nil); node != "a" {
		t.Errorf("a receiver on no node may go anywhere: got %q, want a", node)
	}
}

// TestStepGridDecentralized runs both halves over every phase and VMI
// kind and checks the invariants, as TestStepGrid does for in-cluster
// migrations.
func TestStepGridDecentralized(t *testing.T) {
	phases := []kubevirtv1.VirtualMachineInstanceMigrationPhase{unset, pending, schedulingPhase, scheduled, preparingTarget, targetReady, running, succeeded, failed,
		waitingForSync, synchronizing}
	vmis := map[string]*kubevirtv1.VirtualMachineInstance{
		"none":                 nil,
		"running":              runningVMI(),
		"receiver":             receiverVMI(),
		"receiver deleting":    receiverVMI(vmiDeleting),
		"receiver synced":      receiverVMI(withState(unclaimed(sourcePushed))),
		"receiver own half":    receiverVMI(withState(unclaimed(ownTargetHalf))),
		"receiver cancelled":   receiverVMI(withState(unclaimed(sourcePushed, peerCancelled))),
		"receiver claimed":     receiverVMI(withState(state(asTarget))),
		"receiver listening":   receiverVMI(withState(state(asTarget, targetListening))),
		"receiver completed":   receiverVMI(withState(state(asTarget, completedAt(time.Second)))),
		"received":             receiverVMI(vmiPhase(kubevirtv1.Running), onNode("b"), withState(state(asTarget, completedAt(time.Second)))),
		"receiver peer abort":  receiverVMI(withState(state(asTarget, targetListening, peerCancelled))),
		"receiver failed":      receiverVMI(vmiPhase(kubevirtv1.Failed), withState(state(asTarget, failedWith("x")))),
		"source early pushes":  runningVMI(withState(unclaimed(targetClusterReady))),
		"source cancelled":     runningVMI(withState(unclaimed(targetAnswered, peerCancelled))),
		"source claimed":       runningVMI(withState(state(asSource))),
		"source ready":         runningVMI(withState(state(asSource, targetClusterReady))),
		"source progress":      runningVMI(withState(state(asSource, targetClusterReady, progress(1<<20, 1<<20, 0)))),
		"source peer abort":    runningVMI(withState(state(asSource, targetClusterReady, progress(1, 1, 0), peerCancelled))),
		"source completed":     runningVMI(withState(state(asSource, targetClusterReady, completedAt(time.Second)))),
		"source migrated away": runningVMI(vmiPhase(kubevirtv1.Succeeded), withState(state(asSource, targetClusterReady, completedAt(time.Second)))),
		"source failed":        runningVMI(withState(state(asSource, targetAnswered, failedWith("x")))),
		"other unfinished":     runningVMI(withState(state(ownedBy("uid-m0"), progress(1, 1, 1)))),
	}
	variants := map[string][]migrationOption{
		"plain":         nil,
		"deleted":       {deleted},
		"abort asked":   {abortRequestedAt(ReasonCancelled, 0)},
		"deleted asked": {deleted, abortRequestedAt(ReasonCancelled, 0)},
		"mirrored src":  {mirrored(state(asSource))},
		"mirrored tgt":  {mirrored(state(asTarget))},
		"handover":      {withCondition(ConditionWaiting, ReasonHandover, 0)},
	}
	sides := map[string]migrationOption{"source": sendTo, "target": receive}
	nows := []time.Duration{0, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 24 * time.Hour}
	for side, sideOption := range sides {
		for _, phase := range phases {
			for vmiName, vmi := range vmis {
				for variant, options := range variants {
					for _, now := range nows {
						m := migration(phase, append([]migrationOption{sideOption}, options...)...)
						obs := observe(m, vmi, now, withSiblings(migration(pending, named("m2", "uid-m2", time.Second))))
						t.Run(side+"/"+string(phase)+"/"+vmiName+"/"+variant+"/"+now.String(), func(t *testing.T) {
							checkInvariants(t, obs, Step(obs))
						})
					}
				}
			}
		}
	}
}
