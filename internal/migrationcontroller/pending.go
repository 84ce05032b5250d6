package migrationcontroller

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Pending and Scheduling: may the migration start, and where to.

// capacityRetry is how often a migration waiting for a free slot looks
// again on its own; a migration that ends wakes the waiting ones earlier.
const capacityRetry = 10 * time.Second

// unschedulableRetry is how often an unschedulable migration tries again;
// node changes wake it earlier.
const unschedulableRetry = 5 * time.Second

// ---- Pending ----

func (s *stepper) pending() {
	if reason, message := s.refusal(); reason != "" {
		s.fail(reason, message)
		return
	}
	if s.role == roleTarget {
		// A receiver takes no slot while it waits: it moves nothing yet.
		s.awaitSource()
		return
	}
	if reason, message := s.overLimit(); reason != "" {
		s.waitForSlot(reason, message)
		return
	}
	if s.role == roleSource {
		s.startSynchronizing()
		return
	}
	s.enter(kubevirtv1.MigrationScheduling, fmt.Sprintf("a migration slot is free; choosing a target node for VMI %s", s.vmi.Name))
	// Chosen at once: another reconcile for it would only add a round
	// trip through the API to every migration's start. The phase still
	// passes Scheduling (phaseTransitionTimestamps, events), as upstream's.
	s.scheduling()
}

// refusal says why this migration cannot happen at all, upstream's
// admission checks: the VMI runs (or, for a receiver, waits), can move,
// and nothing else moves it; a decentralized one also must not have been
// failed or cancelled by its peer already.
func (s *stepper) refusal() (reason, message string) {
	if reason, message := s.vmiUnavailable(); reason != "" {
		return reason, message
	}
	if ok, c := vmiConditionTrue(s.vmi, kubevirtv1.VirtualMachineInstanceIsMigratable); !ok && s.role != roleTarget {
		return ReasonNotLiveMigratable, notMigratableMessage(s.vmi.Name, c)
	}
	if other := s.activeSibling(); other != nil {
		return ReasonInFlight, fmt.Sprintf("in-flight migration detected: migration %s (phase %s) is already in progress for VMI %s; wait for it to end or delete it, then create a new migration",
			other.Name, phaseName(other.Status.Phase), s.vmi.Name)
	}
	if state := s.vmi.Status.MigrationState; unfinishedElsewhere(state, s.m.UID) {
		return ReasonInFlight, fmt.Sprintf("VMI %s still shows migration %s from node %s to node %s in flight (neither completed nor failed); its node agents must end it before another migration can start",
			s.vmi.Name, state.MigrationUID, state.SourceNode, state.TargetNode)
	}
	return s.endedBeforeClaim()
}

// vmiUnavailable says why the VMI cannot be (or stay) migrated: it is
// gone, going, or not running on a node. A receiver instead must wait for
// the migration (or have taken it over); a source VMI that migrated away
// is where its migration ends.
func (s *stepper) vmiUnavailable() (reason, message string) {
	vmi, name := s.vmi, s.m.Namespace+"/"+s.m.Spec.VMIName
	switch {
	case vmi == nil:
		return ReasonVMINotFound, fmt.Sprintf("VMI %s does not exist", name)
	case vmi.DeletionTimestamp != nil:
		return ReasonVMINotRunning, fmt.Sprintf("VMI %s is being deleted", name)
	case s.role == roleTarget:
		return s.receiverUnavailable()
	case s.migratedAway():
		return "", ""
	case vmi.Status.Phase != kubevirtv1.Running:
		return ReasonVMINotRunning, fmt.Sprintf("VMI %s is %s, not Running: only a running VMI can be live-migrated", name, vmiPhaseName(vmi.Status.Phase))
	case vmi.Status.NodeName == "":
		return ReasonVMINotRunning, fmt.Sprintf("VMI %s is Running but on no node (status.nodeName is empty)", name)
	}
	return "", ""
}

func notMigratableMessage(vmi string, c *kubevirtv1.VirtualMachineInstanceCondition) string {
	if c == nil {
		return fmt.Sprintf("VMI %s is not live-migratable: it has no LiveMigratable condition yet (its node agent sets it)", vmi)
	}
	return fmt.Sprintf("VMI %s is not live-migratable: LiveMigratable is %s (%s: %s)", vmi, c.Status, c.Reason, c.Message)
}

// activeSibling is another unfinished migration of the same VMI that
// holds it: one past Pending, or one that came first (by creation time,
// then name). The later of two therefore fails, as upstream's admission
// refuses it.
func (s *stepper) activeSibling() *kubevirtv1.VirtualMachineInstanceMigration {
	for i := range s.obs.Siblings {
		other := &s.obs.Siblings[i]
		if other.UID == s.m.UID || other.IsFinal() {
			continue
		}
		if holdsSlot(other.Status.Phase) || other.IsDecentralized() || createdBefore(other, s.m) {
			return other
		}
	}
	return nil
}

func createdBefore(a, b *kubevirtv1.VirtualMachineInstanceMigration) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// holdsSlot: the phases that count against the parallel limits. A
// receiver waiting for its source (WaitingForSync) holds none.
func holdsSlot(phase kubevirtv1.VirtualMachineInstanceMigrationPhase) bool {
	switch phase {
	case kubevirtv1.MigrationScheduling, kubevirtv1.MigrationSynchronizing, kubevirtv1.MigrationScheduled,
		kubevirtv1.MigrationPreparingTarget, kubevirtv1.MigrationTargetReady, kubevirtv1.MigrationRunning:
		return true
	}
	return false
}

// unfinishedElsewhere: the state is another migration's that started and
// has not ended on the node agents.
func unfinishedElsewhere(state *kubevirtv1.VirtualMachineInstanceMigrationState, self types.UID) bool {
	return state != nil && state.MigrationUID != self && state.MigrationUID != "" &&
		state.StartTimestamp != nil && state.EndTimestamp == nil && !state.Completed && !state.Failed
}

// overLimit says why no slot is free for this migration to leave its
// node.
func (s *stepper) overLimit() (reason, message string) {
	if reason, message := s.overClusterLimit(); reason != "" {
		return reason, message
	}
	if n, perNode := s.obs.Active.FromSourceNode, s.perNodeLimit(); n >= perNode {
		return ReasonNodeLimit, fmt.Sprintf("%s leaving node %s and parallelOutboundMigrationsPerNode is %d; waiting for one to end", migrationsAre(n), s.vmi.Status.NodeName, perNode)
	}
	return "", ""
}

// overClusterLimit says why the cluster has no slot free: it runs
// parallelMigrationsPerCluster migrations. A receiving half counts as one
// on its cluster, as a sending half does on its own: each cluster bounds
// the migrations its nodes and network carry, whichever end they are.
func (s *stepper) overClusterLimit() (reason, message string) {
	perCluster := int(derefOr(s.obs.Config.ParallelMigrationsPerCluster, kubevirtv1.DefaultParallelMigrationsPerCluster))
	if n := s.obs.Active.InCluster; n >= perCluster {
		return ReasonClusterLimit, fmt.Sprintf("%s in progress in the cluster and parallelMigrationsPerCluster is %d; waiting for one to end", migrationsAre(n), perCluster)
	}
	return "", ""
}

// perNodeLimit is parallelOutboundMigrationsPerNode. cclm applies it to
// the migrations arriving at a node as well as to those leaving it
// (upstream KubeVirt bounds only the leaving ones): a node's network and
// CPU carry a receiving QEMU as much as a sending one.
func (s *stepper) perNodeLimit() int {
	return int(derefOr(s.obs.Config.ParallelOutboundMigrationsPerNode, kubevirtv1.DefaultParallelOutboundMigrationsPerNode))
}

// placeWithinLimits chooses the node that receives the VMI (with the
// extra required labels) among the nodes that receive fewer migrations
// than the per-node limit. atLimit: a node would fit but every such node
// is at the limit; the migration then waits for a slot instead of being
// unschedulable.
func (s *stepper) placeWithinLimits(requiredLabels map[string]string) (node, why string, atLimit bool) {
	cluster := s.obs.Cluster
	if cluster == nil {
		cluster = &Cluster{}
	}
	perNode := s.perNodeLimit()
	within := *cluster
	within.Nodes = nil
	var full []string
	for _, n := range cluster.Nodes {
		if s.obs.Active.IntoNode[n.Name] >= perNode {
			full = append(full, fmt.Sprintf("%s (%d)", n.Name, s.obs.Active.IntoNode[n.Name]))
			continue
		}
		within.Nodes = append(within.Nodes, n)
	}
	node, why = chooseTarget(s.vmi, &within, requiredLabels)
	if node != "" || len(full) == 0 {
		return node, why, false
	}
	if fits, _ := chooseTarget(s.vmi, cluster, requiredLabels); fits == "" {
		return "", why, false
	}
	return "", fmt.Sprintf("the nodes that fit receive migrations already, %s, and parallelOutboundMigrationsPerNode, which cclm applies to arriving migrations too, is %d; waiting for one to end",
		strings.Join(full, ", "), perNode), true
}

// waitForSlot waits, without a deadline, for a migration to end and free
// a slot; that wakes it, or capacityRetry passes.
func (s *stepper) waitForSlot(reason, message string) {
	s.wait(reason, message, time.Time{})
	s.requeueIn(capacityRetry)
}

func migrationsAre(n int) string {
	if n == 1 {
		return "1 migration is"
	}
	return fmt.Sprintf("%d migrations are", n)
}

// ---- Scheduling ----

func (s *stepper) scheduling() {
	if reason, message := s.vmiUnavailable(); reason != "" {
		s.fail(reason, message)
		return
	}
	if state := s.vmi.Status.MigrationState; unfinishedElsewhere(state, s.m.UID) {
		// Appeared since Pending looked (a decentralized migration, say).
		s.fail(ReasonInFlight, fmt.Sprintf("VMI %s now shows migration %s in flight; it is not overwritten", s.vmi.Name, state.MigrationUID))
		return
	}
	if state := s.ownState(); state != nil {
		// The VMI already has this migration's state (the VMIM's write
		// after it was lost): go on with the target recorded there.
		s.enter(kubevirtv1.MigrationScheduled, fmt.Sprintf("VMI %s moves from node %s to node %s", s.vmi.Name, state.SourceNode, state.TargetNode))
		return
	}
	node, why, atLimit := s.placeWithinLimits(nil)
	switch {
	case atLimit:
		s.waitForSlot(ReasonInboundNodeLimit, why)
		return
	case node == "":
		s.unschedulable(why, s.phaseSince(kubevirtv1.MigrationScheduling))
		return
	}
	s.writeState(s.claimedState(s.vmi.Status.NodeName, node))
	s.enter(kubevirtv1.MigrationScheduled, fmt.Sprintf("VMI %s moves from node %s to node %s: %s", s.vmi.Name, s.vmi.Status.NodeName, node, why))
}

// unschedulable keeps trying until the deadline (counted from since),
// then fails with the scheduler's reason.
func (s *stepper) unschedulable(why string, since time.Time) {
	deadline := since.Add(s.timeouts.Unschedulable)
	if s.passed(deadline) {
		s.fail(ReasonUnschedulable, fmt.Sprintf("%s (gave up after %s)", why, s.timeouts.Unschedulable))
		return
	}
	s.wait(ReasonUnschedulable, fmt.Sprintf("%s; retrying until %s", why, stamp(deadline)), deadline)
	s.requeueIn(unschedulableRetry)
}

// claimedState is the migrationState that hands the migration to the
// agents, naming this migration. It replaces whatever an earlier
// migration left, but keeps what the synchronization controller already
// wrote for this one (unclaimedState: the peer's half, its own half's
// address), which the peer would not send again until it changes.
// targetNode "" keeps the target the peer reported, if any.
func (s *stepper) claimedState(sourceNode, targetNode string) *kubevirtv1.VirtualMachineInstanceMigrationState {
	state := &kubevirtv1.VirtualMachineInstanceMigrationState{}
	if unclaimed := s.unclaimedState(); unclaimed != nil {
		state = unclaimed.DeepCopy()
		clearOutcome(state)
	}
	now := s.now
	state.MigrationUID = s.m.UID
	state.SourceNode = sourceNode
	if targetNode != "" {
		state.TargetNode = targetNode
	}
	state.StartTimestamp = &now
	state.Mode = kubevirtv1.MigrationPreCopy
	state.MigrationConfiguration = s.obs.Config.DeepCopy()
	state.MigrationPolicyName = nil
	if s.obs.PolicyName != "" {
		state.MigrationPolicyName = ptr.To(s.obs.PolicyName)
	}
	s.claimOwnHalf(state)
	return state
}
