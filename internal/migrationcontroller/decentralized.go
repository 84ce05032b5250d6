package migrationcontroller

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// The two halves of a decentralized (cross-cluster) migration, where they
// differ from an in-cluster one. The synchronization controller carries
// each half's state to the other cluster; see the package documentation.

// ---- the state before the controller claims it ----

// unclaimedState is the VMI's migrationState as the synchronization
// controller wrote it for this decentralized migration before the
// controller claimed it (migrationUid still empty): the peer's half, and
// the own half's address and UIDs. Nil for an in-cluster migration, and
// when the state is another migration's.
func (s *stepper) unclaimedState() *kubevirtv1.VirtualMachineInstanceMigrationState {
	if !s.role.decentralized() || s.vmi == nil {
		return nil
	}
	state := s.vmi.Status.MigrationState
	if state == nil || state.MigrationUID != "" {
		return nil
	}
	if uid := s.ownHalfUID(state); uid != "" && uid != s.m.UID {
		return nil
	}
	return state
}

// ownHalfUID is the migration the local half of state names.
func (s *stepper) ownHalfUID(state *kubevirtv1.VirtualMachineInstanceMigrationState) types.UID {
	switch {
	case s.role == roleSource && state.SourceState != nil:
		return state.SourceState.MigrationUID
	case s.role == roleTarget && state.TargetState != nil:
		return state.TargetState.MigrationUID
	}
	return ""
}

// claimOwnHalf makes the local half of state (sourceState on the source,
// targetState on the target) name this migration and its node, as the
// flat fields do.
func (s *stepper) claimOwnHalf(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	var half *kubevirtv1.VirtualMachineInstanceCommonMigrationState
	node := ""
	switch s.role {
	case roleSource:
		if state.SourceState == nil {
			state.SourceState = &kubevirtv1.VirtualMachineInstanceMigrationSourceState{}
		}
		half, node = &state.SourceState.VirtualMachineInstanceCommonMigrationState, state.SourceNode
	case roleTarget:
		if state.TargetState == nil {
			state.TargetState = &kubevirtv1.VirtualMachineInstanceMigrationTargetState{}
		}
		half, node = &state.TargetState.VirtualMachineInstanceCommonMigrationState, state.TargetNode
	default:
		return
	}
	half.MigrationUID = s.m.UID
	if node != "" {
		half.Node = node
	}
}

// clearOutcome empties what only a started migration can have.
func clearOutcome(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	state.Completed, state.Failed, state.AbortRequested = false, false, false
	state.AbortStatus, state.FailureReason = "", ""
	state.EndTimestamp, state.Progress = nil, nil
}

// endedBeforeClaim says why the migration ended before the controller
// claimed its state: the peer failed or cancelled it, or the
// synchronization controller gave up on the peer.
func (s *stepper) endedBeforeClaim() (reason, message string) {
	state := s.unclaimedState()
	switch {
	case state == nil:
		return "", ""
	case state.Failed:
		return ReasonSynchronizationFailed, failureReasonOr(state, "the synchronization controller marked the migration failed without a reason")
	case state.AbortRequested:
		return ReasonCancelledByPeer, failureReasonOr(state, "the peer cluster cancelled the migration")
	}
	return "", ""
}

func failureReasonOr(state *kubevirtv1.VirtualMachineInstanceMigrationState, fallback string) string {
	if state.FailureReason != "" {
		return state.FailureReason
	}
	return fallback
}

// abortedByPeer: the peer cluster cancelled (the synchronization
// controller set abortRequested without this controller asking). Before
// any data moved the migration ends at once; after, the agents abort it,
// within the abort deadline.
func (s *stepper) abortedByPeer(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	message := failureReasonOr(state, "the peer cluster cancelled the migration")
	if state.TargetNodeAddress == "" {
		s.endBeforeHandoff(state, ReasonCancelledByPeer, message)
		return
	}
	s.recordAbort(ReasonCancelledByPeer, message)
}

// publishFailure: a decentralized half that fails before it claimed the
// VMI's state claims it failed, so that the synchronization controller
// tells the peer, which may be waiting for it. (Failing a claimed state
// is done by the paths that end it: endBeforeHandoff, requestAbort.)
func (s *stepper) publishFailure(message string) {
	if s.d.MigrationState != nil || s.vmi == nil || s.vmi.DeletionTimestamp != nil {
		return
	}
	unclaimed := s.unclaimedState()
	if unclaimed == nil || unclaimed.Failed || unclaimed.AbortRequested {
		return // nobody to tell, or the peer knows
	}
	state := unclaimed.DeepCopy()
	state.MigrationUID = s.m.UID
	if s.role == roleSource {
		state.SourceNode = s.vmi.Status.NodeName
	}
	s.claimOwnHalf(state)
	s.writeState(s.endedNow(state, message))
}

// visibleState is what the VMIM mirrors: the migration's own state, or
// what the synchronization controller wrote for it before it was claimed.
func (s *stepper) visibleState() *kubevirtv1.VirtualMachineInstanceMigrationState {
	if state := s.ownState(); state != nil {
		return state
	}
	return s.unclaimedState()
}

// ---- source: Pending -> Synchronizing -> TargetReady ----

// migratedAway: a source VMI whose QEMU ended because this migration
// moved it to the target cluster.
func (s *stepper) migratedAway() bool {
	return s.role == roleSource && s.vmi.MigratedAway() && s.ownState() != nil
}

// startSynchronizing claims the VMI's state for the source half, which
// the synchronization controller then offers to the target cluster.
func (s *stepper) startSynchronizing() {
	s.writeState(s.claimedState(s.vmi.Status.NodeName, ""))
	s.enter(kubevirtv1.MigrationSynchronizing, fmt.Sprintf("VMI %s on node %s is offered to the target cluster at %s (migrationID %s)",
		s.vmi.Name, s.vmi.Status.NodeName, s.m.Spec.SendTo.ConnectURL, s.m.Spec.SendTo.MigrationID))
}

// synchronizing waits for the target cluster's node to be ready, as the
// synchronization controller copies it from the target's pushes.
func (s *stepper) synchronizing(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	if state.TargetNodeAddress != "" && state.TargetNodeDomainDetected {
		s.enter(kubevirtv1.MigrationTargetReady, fmt.Sprintf("node %s of the target cluster is ready at %s", state.TargetNode, state.TargetNodeAddress))
		return
	}
	sendTo := s.m.Spec.SendTo
	deadline := s.started(state).Add(s.timeouts.Sync)
	if s.passed(deadline) {
		s.giveUp(state, ReasonSyncTimeout, fmt.Sprintf("the target cluster did not get ready within %s of the migration's start (%s): check that the target cluster has a migration with spec.receive.migrationID %s for the VMI of a VM with runStrategy WaitAsReceiver, that spec.sendTo.connectURL %s is that migration's status.synchronizationAddresses[0] and reachable over the migration network, and that each cluster's CA is in the other's ConfigMap kubevirt-external-ca",
			s.timeouts.Sync, targetClusterProgress(state), sendTo.MigrationID, sendTo.ConnectURL))
		return
	}
	s.wait(ReasonWaitingForTargetCluster, fmt.Sprintf("waiting for the target cluster (synchronization controller at %s, migrationID %s) to get a node ready: %s; until %s",
		sendTo.ConnectURL, sendTo.MigrationID, targetClusterProgress(state), stamp(deadline)), deadline)
}

// targetClusterProgress says how far the target cluster got, as its
// pushes told.
func targetClusterProgress(state *kubevirtv1.VirtualMachineInstanceMigrationState) string {
	switch {
	case state.TargetState == nil || state.TargetState.MigrationUID == "":
		return "the target cluster has not answered"
	case state.TargetNode == "":
		return "the target cluster's migration answered but has chosen no node yet"
	}
	return "target node " + state.TargetNode + ": " + missingTargetFields(state)
}

// ---- target: Pending -> WaitingForSync -> Scheduled ----

// receiverUnavailable says why the VMI cannot receive this migration:
// only a receiver waiting for it can (phase WaitingForSync, on no node),
// or one that took it over (Running on the chosen node).
func (s *stepper) receiverUnavailable() (reason, message string) {
	vmi, name := s.vmi, s.m.Namespace+"/"+s.m.Spec.VMIName
	if s.receiverWaiting() {
		return "", ""
	}
	if state := s.ownState(); state != nil && vmi.Status.Phase == kubevirtv1.Running && s.onTarget(state) {
		return "", ""
	}
	if vmi.Status.Phase == kubevirtv1.WaitingForSync {
		return ReasonVMINotReceiving, fmt.Sprintf("receiver VMI %s is WaitingForSync but already on node %s", name, vmi.Status.NodeName)
	}
	return ReasonVMINotReceiving, fmt.Sprintf("VMI %s is %s, not WaitingForSync: only the VMI of a VM with runStrategy WaitAsReceiver can receive a migration",
		name, vmiPhaseName(vmi.Status.Phase))
}

// receiverWaiting: the VMI waits to be received, on no node yet.
func (s *stepper) receiverWaiting() bool {
	vmi := s.vmi
	return vmi != nil && vmi.DeletionTimestamp == nil && vmi.Status.Phase == kubevirtv1.WaitingForSync && vmi.Status.NodeName == ""
}

// awaitSource: Pending -> WaitingForSync.
func (s *stepper) awaitSource() {
	s.enter(kubevirtv1.MigrationWaitingForSync, fmt.Sprintf("receiver VMI %s waits for the source cluster to synchronize migrationID %s",
		s.vmi.Name, s.m.Spec.Receive.MigrationID))
}

// waitingForSync waits for the source's half, then chooses the node that
// receives the VMI and hands the migration to the agents there.
func (s *stepper) waitingForSync() {
	if reason, message := s.vmiUnavailable(); reason != "" {
		s.fail(reason, message)
		return
	}
	if state := s.ownState(); state != nil {
		// Claimed already (the VMIM's write after it was lost): go on.
		s.enter(kubevirtv1.MigrationScheduled, s.receivingMessage(state.SourceNode, state.TargetNode, "its state was already written"))
		return
	}
	if reason, message := s.endedBeforeClaim(); reason != "" {
		s.fail(reason, message)
		return
	}
	if state := s.vmi.Status.MigrationState; unfinishedElsewhere(state, s.m.UID) {
		s.fail(ReasonInFlight, fmt.Sprintf("VMI %s now shows migration %s in flight; it is not overwritten", s.vmi.Name, state.MigrationUID))
		return
	}
	source := s.syncedSource()
	switch {
	case source == nil:
		s.awaitSync()
	case source.MigrationConfiguration == nil:
		s.awaitSourceStart(source.MigrationUID)
	default:
		s.chooseReceivingNode(source)
	}
}

// awaitSourceStart: the source cluster answered, but its migration has
// not started: it writes its configuration into its half when it claims
// the VMI, once it has a slot of its own cluster. Until then this one
// takes no slot either: a receiver holding a slot for a source that waits
// behind the receivers of other sources would deadlock two clusters that
// each allow one migration. The wait has no deadline, as the source's own
// wait for a slot has none; the source's failure or cancel still ends it.
func (s *stepper) awaitSourceStart(source types.UID) {
	s.waitForSlot(ReasonWaitingForSourceStart, fmt.Sprintf("the source cluster's migration %s has not started (it waits there, for a slot within its cluster's limits); "+
		"this one takes no slot until it does (a source whose cclm predates sourceState.migrationConfiguration never starts: update cclm there)",
		source))
}

// syncedSource is the source's half, once the source cluster pushed it.
func (s *stepper) syncedSource() *kubevirtv1.VirtualMachineInstanceMigrationSourceState {
	state := s.unclaimedState()
	if state == nil || state.SourceState == nil || state.SourceState.MigrationUID == "" {
		return nil
	}
	return state.SourceState
}

func (s *stepper) awaitSync() {
	id := s.m.Spec.Receive.MigrationID
	deadline := s.phaseSince(kubevirtv1.MigrationWaitingForSync).Add(s.timeouts.Sync)
	if s.passed(deadline) {
		s.fail(ReasonSyncTimeout, fmt.Sprintf("no source cluster synchronized migrationID %s within %s: check that the source cluster has a migration with spec.sendTo.migrationID %s and spec.sendTo.connectURL %s, that the migration network reaches this cluster, and that each cluster's CA is in the other's ConfigMap kubevirt-external-ca",
			id, s.timeouts.Sync, id, s.syncAddressHint()))
		return
	}
	s.wait(ReasonWaitingForSourceCluster, fmt.Sprintf("waiting for the source cluster to synchronize migrationID %s (its spec.sendTo.connectURL must be %s), until %s",
		id, s.syncAddressHint(), stamp(deadline)), deadline)
}

// syncAddressHint is where the source must connect to.
func (s *stepper) syncAddressHint() string {
	if addresses := s.m.Status.SynchronizationAddresses; len(addresses) > 0 {
		return addresses[0]
	}
	return "this migration's status.synchronizationAddresses[0], not published yet (is the synchronization controller running?)"
}

// chooseReceivingNode picks the node as for an in-cluster migration, with
// the source's node selectors (its CPU model) as extra required labels,
// and claims the state for the target half.
//
// The receiving half takes a slot of this cluster from then on; while
// the cluster or every node that fits is at its limit, it waits here in
// WaitingForSync, and the source cluster's half waits for it in
// Synchronizing (within its synchronization deadline).
func (s *stepper) chooseReceivingNode(source *kubevirtv1.VirtualMachineInstanceMigrationSourceState) {
	if reason, message := s.overClusterLimit(); reason != "" {
		s.waitForSlot(reason, message)
		return
	}
	node, why, atLimit := s.placeWithinLimits(source.NodeSelectors)
	switch {
	case atLimit:
		s.waitForSlot(ReasonInboundNodeLimit, why)
		return
	case node == "":
		s.unschedulable(why, s.waitingSince(ReasonUnschedulable))
		return
	}
	s.writeState(s.claimedState(source.Node, node))
	s.enter(kubevirtv1.MigrationScheduled, s.receivingMessage(source.Node, node, why))
}

func (s *stepper) receivingMessage(source, target, why string) string {
	return fmt.Sprintf("VMI %s is received from node %s of the source cluster on node %s: %s", s.vmi.Name, source, target, why)
}

// placeReceiverClaims: the receiver's unbound claims get the chosen node
// as their selected node, as the scheduler does for a VMI it places, so
// that the node agent's provisioner binds them there for the target
// agent. Asked again until done (the write is idempotent).
func (s *stepper) placeReceiverClaims() {
	if s.role != roleTarget || s.vmi == nil || s.vmi.Status.NodeName != "" || isFinal(s.d.Status.Phase) {
		return
	}
	state := s.d.MigrationState
	if state == nil {
		state = s.ownState()
	}
	if state == nil || state.TargetNode == "" || state.Failed || state.AbortRequested {
		return
	}
	if claims := unplacedClaims(s.vmi, s.obs.VMIClaims); len(claims) > 0 {
		s.d.PlaceClaims = &ClaimPlacement{Node: state.TargetNode, Claims: claims}
	}
}

// unplacedClaims are the VMI's existing claims that are neither bound nor
// placed on a node.
func unplacedClaims(vmi *kubevirtv1.VirtualMachineInstance, claims []corev1.PersistentVolumeClaim) []string {
	var names []string
	for _, name := range vmi.Spec.ClaimNames() {
		for i := range claims {
			pvc := &claims[i]
			if pvc.Namespace == vmi.Namespace && pvc.Name == name && pvc.DeletionTimestamp == nil &&
				pvc.Spec.VolumeName == "" && pvc.Annotations[scheduling.SelectedNodeAnnotation] == "" {
				names = append(names, name)
			}
		}
	}
	return names
}

// failReceiver marks a receiver VMI that waited for this migration Failed:
// its VM (runStrategy WaitAsReceiver) does not retry, and the VMI then
// says why. A VMI on a node, or held by another migration, is left alone.
func (s *stepper) failReceiver(reason, message string) {
	if s.role != roleTarget || !s.receiverWaiting() || !s.receiverIsThis() {
		return
	}
	s.d.FailVMI = &VMIFailure{Reason: reason, Message: message}
	s.event(corev1.EventTypeWarning, ReasonReceiverFailed, fmt.Sprintf("marked receiver VMI %s Failed: %s", s.vmi.Name, message))
}

// receiverIsThis: no other migration holds the receiver VMI.
func (s *stepper) receiverIsThis() bool {
	mine := s.vmi.Status.MigrationState == nil || s.ownState() != nil || s.unclaimedState() != nil
	return mine && s.activeSibling() == nil
}

func isFinal(phase kubevirtv1.VirtualMachineInstanceMigrationPhase) bool {
	return phase == kubevirtv1.MigrationSucceeded || phase == kubevirtv1.MigrationFailed
}
