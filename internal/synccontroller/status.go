package synccontroller

import (
	"bytes"
	"errors"
	"fmt"
	"maps"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	sigsjson "sigs.k8s.io/json"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// The pure part of the protocol: what a pushed VMI status means for the
// local VMI. No I/O here; the server and the pusher drive these functions.

// role is the side of a decentralized migration a VMIM is.
type role int

const (
	roleSource role = iota + 1 // spec.sendTo
	roleTarget                 // spec.receive
)

func (r role) String() string {
	if r == roleSource {
		return "source"
	}
	return "target"
}

// peer is the other side's role.
func (r role) peer() role { return roleSource + roleTarget - r }

// roleOf says which side m is; 0 for an in-cluster migration.
func roleOf(m *kubevirtv1.VirtualMachineInstanceMigration) role {
	switch {
	case m.IsDecentralizedSource():
		return roleSource
	case m.IsDecentralizedTarget():
		return roleTarget
	}
	return 0
}

// migrationIDOf is the ID both halves of m's migration carry.
func migrationIDOf(m *kubevirtv1.VirtualMachineInstanceMigration) string {
	switch roleOf(m) {
	case roleSource:
		return m.Spec.SendTo.MigrationID
	case roleTarget:
		return m.Spec.Receive.MigrationID
	}
	return ""
}

// CancelledByPeerReason is the failureReason of a migration the peer
// cluster cancelled.
const CancelledByPeerReason = "cancelled by the peer cluster"

// maxStatusJSON bounds a pushed status; a real one is a few KiB.
const maxStatusJSON = 1 << 20

// parseVMIStatus reads the VMI status JSON a peer pushed. Fields cclm does
// not know are ignored, since the peer may be a newer KubeVirt; field names
// match case-sensitively, as the API server matches them.
func parseVMIStatus(data []byte) (*kubevirtv1.VirtualMachineInstanceStatus, error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("vmiStatusJson is empty; send the JSON of the VMI's status")
	case len(data) > maxStatusJSON:
		return nil, fmt.Errorf("vmiStatusJson is %d bytes, more than the %d a VMI status may have", len(data), maxStatusJSON)
	case trimmed[0] != '{':
		return nil, errors.New("vmiStatusJson is not a JSON object; send the JSON of the VMI's status")
	}
	status := &kubevirtv1.VirtualMachineInstanceStatus{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(trimmed, status); err != nil {
		return nil, fmt.Errorf("vmiStatusJson is not a VMI status: %w", err)
	}
	return status, nil
}

// sourceHalfOf is what a VMI status says about the source side: its
// sourceState, completed from the flat fields and the node it runs on
// where the source's agents did not fill it. Flat fields of another
// migration than the half's are left out: cclm's own pushes no longer
// carry them (pushedStatus), but a source cluster running an earlier
// cclm, during an upgrade, still does.
func sourceHalfOf(status *kubevirtv1.VirtualMachineInstanceStatus) kubevirtv1.VirtualMachineInstanceMigrationSourceState {
	state := status.MigrationState
	if state != nil && state.SourceState != nil && ofAnotherMigration(state, state.SourceState.MigrationUID) {
		state = &kubevirtv1.VirtualMachineInstanceMigrationState{SourceState: state.SourceState}
	}
	return sourceHalfOfState(state, status.NodeName)
}

// ofAnotherMigration: state names a migration, and not migrationUID.
func ofAnotherMigration(state *kubevirtv1.VirtualMachineInstanceMigrationState, migrationUID types.UID) bool {
	return state.MigrationUID != "" && migrationUID != "" && state.MigrationUID != migrationUID
}

func sourceHalfOfState(state *kubevirtv1.VirtualMachineInstanceMigrationState, nodeName string) kubevirtv1.VirtualMachineInstanceMigrationSourceState {
	var half kubevirtv1.VirtualMachineInstanceMigrationSourceState
	if state == nil {
		state = &kubevirtv1.VirtualMachineInstanceMigrationState{}
	}
	if state.SourceState != nil {
		state.SourceState.DeepCopyInto(&half)
	}
	half.Node = firstSet(half.Node, state.SourceNode, nodeName)
	half.Pod = firstSet(half.Pod, state.SourcePod)
	if half.MigrationConfiguration == nil && state.MigrationConfiguration != nil {
		// The receiver's QEMU must expect the stream this configuration
		// makes the source send.
		half.MigrationConfiguration = state.MigrationConfiguration.DeepCopy()
	}
	return half
}

// targetHalfOf is what a VMI status says about the target side: its
// targetState, completed from the flat fields the target's agents write.
func targetHalfOf(status *kubevirtv1.VirtualMachineInstanceStatus) kubevirtv1.VirtualMachineInstanceMigrationTargetState {
	var half kubevirtv1.VirtualMachineInstanceMigrationTargetState
	state := status.MigrationState
	if state == nil {
		state = &kubevirtv1.VirtualMachineInstanceMigrationState{}
	}
	if state.TargetState != nil {
		state.TargetState.DeepCopyInto(&half)
	}
	half.Node = firstSet(half.Node, state.TargetNode, status.NodeName)
	half.Pod = firstSet(half.Pod, state.TargetPod)
	if half.NodeAddress == nil && state.TargetNodeAddress != "" {
		half.NodeAddress = ptrTo(state.TargetNodeAddress)
	}
	if half.DirectMigrationNodePorts == nil && state.TargetDirectMigrationNodePorts != nil {
		half.DirectMigrationNodePorts = maps.Clone(state.TargetDirectMigrationNodePorts)
	}
	half.DomainDetected = half.DomainDetected || state.TargetNodeDomainDetected
	if half.DomainReadyTimestamp == nil && state.TargetNodeDomainReadyTimestamp != nil {
		half.DomainReadyTimestamp = state.TargetNodeDomainReadyTimestamp.DeepCopy()
	}
	return half
}

// ownSide is what the local controller knows of its own side, beyond the
// VMI's status: the address to publish and the UIDs of its objects.
type ownSide struct {
	role         role
	syncAddress  string
	migrationUID types.UID // of the local VMIM
	vmiUID       types.UID
	vmiName      string
	vmiNamespace string
}

// withOwnHalf fills in status's own half of the migration state: the half
// the agents wrote (or the flat fields), plus the sync address and the UIDs,
// which this controller owns. The result is what the peer is sent.
func withOwnHalf(status *kubevirtv1.VirtualMachineInstanceStatus, own ownSide) {
	state := ensureMigrationState(status)
	common := commonHalf(own)
	if own.role == roleSource {
		half := sourceHalfOf(status)
		fillCommon(&half.VirtualMachineInstanceCommonMigrationState, common)
		state.SourceState = &half
		return
	}
	half := targetHalfOf(status)
	fillCommon(&half.VirtualMachineInstanceCommonMigrationState, common)
	state.TargetState = &half
}

func commonHalf(own ownSide) kubevirtv1.VirtualMachineInstanceCommonMigrationState {
	return kubevirtv1.VirtualMachineInstanceCommonMigrationState{
		MigrationUID:              own.migrationUID,
		SyncAddress:               ptrTo(own.syncAddress),
		VirtualMachineInstanceUID: ptrTo(own.vmiUID),
		DomainName:                ptrTo(own.vmiName),
		DomainNamespace:           ptrTo(own.vmiNamespace),
	}
}

// fillCommon sets the fields this controller owns (address and migration
// UID) and those the agents may not have written (VMI UID, domain).
func fillCommon(half *kubevirtv1.VirtualMachineInstanceCommonMigrationState, known kubevirtv1.VirtualMachineInstanceCommonMigrationState) {
	half.SyncAddress = known.SyncAddress
	half.MigrationUID = known.MigrationUID
	if half.VirtualMachineInstanceUID == nil {
		half.VirtualMachineInstanceUID = known.VirtualMachineInstanceUID
	}
	if half.DomainName == nil {
		half.DomainName = known.DomainName
	}
	if half.DomainNamespace == nil {
		half.DomainNamespace = known.DomainNamespace
	}
}

// notForThisVMI says why a peer's message about migration m must not
// touch vmi, "" when it may. A VMI is found by the migration's spec.vmiName,
// and by then it may be another migration's, or another instance of the
// VM (the one the migration moved crashed and was started again): writing
// an old migration's outcome into it would fail the next migration of the
// VM before it began, with that old reason. Nor does a migration that is
// over take news from its peer any more.
func notForThisVMI(m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance) string {
	if m.IsFinal() {
		return fmt.Sprintf("migration %s/%s is over (%s)", m.Namespace, m.Name, m.Status.Phase)
	}
	return anotherMigrationsVMI(m, vmi)
}

// anotherMigrationsVMI says why vmi, found by m's spec.vmiName, is not m's
// VMI any more; "" when it is (or m has not claimed one yet).
func anotherMigrationsVMI(m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance) string {
	if state := vmi.Status.MigrationState; state != nil && state.MigrationUID != "" && state.MigrationUID != m.UID {
		return fmt.Sprintf("VMI %s/%s now carries migration %s, not %s", vmi.Namespace, vmi.Name, state.MigrationUID, m.UID)
	}
	if uid := ownHalfVMIUID(m); uid != "" && uid != vmi.UID {
		return fmt.Sprintf("VMI %s/%s is a new instance (UID %s; the migration's was %s)", vmi.Namespace, vmi.Name, vmi.UID, uid)
	}
	return ""
}

// pushedStatus is what the peer of migration m is told: the VMI's status
// with the own half filled in. Until the migration controller claims the
// VMI for m, the VMI may still show an earlier migration (the one that
// brought it here, say): that state says nothing about m (completed,
// failed, its configuration, which tells a target that the source has
// started), so m's peer gets the VMI without it.
func pushedStatus(m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, address string) *kubevirtv1.VirtualMachineInstanceStatus {
	status := vmi.Status.DeepCopy()
	switch {
	case m.IsFinal():
		endedStatus(m, vmi, status)
	case anotherMigrationsVMI(m, vmi) != "":
		status.MigrationState = nil
	}
	withOwnHalf(status, ownSide{
		role: roleOf(m), syncAddress: address,
		migrationUID: m.UID, vmiUID: vmi.UID, vmiName: vmi.Name, vmiNamespace: vmi.Namespace,
	})
	return status
}

// endedStatus is what a migration that ended tells its peer: its own
// mirrored state rather than its VMI's when the VMI is another
// migration's or instance's now (the VM crashed and was started again),
// and, when it failed, that it failed and why, whatever the VMI says. A
// peer still waiting would otherwise wait for a VMI that will never
// report this migration again.
func endedStatus(m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, status *kubevirtv1.VirtualMachineInstanceStatus) {
	if anotherMigrationsVMI(m, vmi) != "" {
		*status = kubevirtv1.VirtualMachineInstanceStatus{MigrationState: m.Status.MigrationState.DeepCopy()}
	}
	if m.Status.Phase != kubevirtv1.MigrationFailed {
		return
	}
	reason := m.FailureMessage()
	if reason == "" {
		reason = fmt.Sprintf("migration %s/%s failed", m.Namespace, m.Name)
	}
	markFailed(ensureMigrationState(status), reason)
}

// ownHalfVMIUID is the UID of the VMI the migration's own half named, as
// its status mirrors it; "" before it did.
func ownHalfVMIUID(m *kubevirtv1.VirtualMachineInstanceMigration) types.UID {
	state := m.Status.MigrationState
	var half *kubevirtv1.VirtualMachineInstanceCommonMigrationState
	switch {
	case state == nil:
		return ""
	case roleOf(m) == roleSource && state.SourceState != nil:
		half = &state.SourceState.VirtualMachineInstanceCommonMigrationState
	case roleOf(m) == roleTarget && state.TargetState != nil:
		half = &state.TargetState.VirtualMachineInstanceCommonMigrationState
	}
	if half == nil || half.VirtualMachineInstanceUID == nil {
		return ""
	}
	return *half.VirtualMachineInstanceUID
}

// applyPeerStatus copies into local what the peer's pushed status says
// about the peer's side. Only the peer's half and the outcome fields are
// touched; local's own half stays as its agents wrote it.
func applyPeerStatus(local, peerStatus *kubevirtv1.VirtualMachineInstanceStatus, peerRole role) {
	state := ensureMigrationState(local)
	if peerRole == roleSource {
		half := sourceHalfOf(peerStatus)
		state.SourceState = &half
		applySourceProgress(state, peerStatus.MigrationState)
	} else {
		applyTargetHalf(state, targetHalfOf(peerStatus))
		applyTargetCompletion(state, peerStatus.MigrationState)
	}
	propagateFailure(state, peerStatus.MigrationState, peerRole)
}

// applyTargetHalf sets targetState and, on the source cluster, the flat
// fields the source's node agent acts on (where it streams to). A field
// the target has not reported yet does not clear a local value.
func applyTargetHalf(state *kubevirtv1.VirtualMachineInstanceMigrationState, half kubevirtv1.VirtualMachineInstanceMigrationTargetState) {
	state.TargetState = &half
	state.TargetNode = firstSet(half.Node, state.TargetNode)
	state.TargetPod = firstSet(half.Pod, state.TargetPod)
	if half.NodeAddress != nil {
		state.TargetNodeAddress = *half.NodeAddress
	}
	if half.DirectMigrationNodePorts != nil {
		state.TargetDirectMigrationNodePorts = maps.Clone(half.DirectMigrationNodePorts)
	}
	state.TargetNodeDomainDetected = state.TargetNodeDomainDetected || half.DomainDetected
	if half.DomainReadyTimestamp != nil {
		state.TargetNodeDomainReadyTimestamp = half.DomainReadyTimestamp.DeepCopy()
	}
}

// applySourceProgress copies the source's transfer figures (progress, a
// cclm extension) into the target's state: the source's node agent is the
// one that sees them, and the target's VMIM shows them live. A push
// without figures keeps the last ones.
func applySourceProgress(state, source *kubevirtv1.VirtualMachineInstanceMigrationState) {
	if source == nil || source.Progress == nil {
		return
	}
	state.Progress = source.Progress.DeepCopy()
}

// applyTargetCompletion: the target is where a migration completes, so the
// source learns it from there.
func applyTargetCompletion(state, target *kubevirtv1.VirtualMachineInstanceMigrationState) {
	if target == nil || !target.Completed {
		return
	}
	state.Completed = true
	if state.EndTimestamp == nil && target.EndTimestamp != nil {
		state.EndTimestamp = target.EndTimestamp.DeepCopy()
	}
}

// propagateFailure fails the local side when the peer's failed; the first
// reason stays, so that two sides failing each other do not loop.
func propagateFailure(state, peerState *kubevirtv1.VirtualMachineInstanceMigrationState, peerRole role) {
	if peerState == nil || !peerState.Failed || state.Completed {
		// A completed migration stays completed: the guest runs at the
		// target, whatever the peer concluded since (a source that gave up
		// waiting for the word of it keeps its QEMU paused).
		return
	}
	reason := firstSet(peerState.FailureReason, "no reason given")
	markFailed(state, fmt.Sprintf("the %s cluster's side of the migration failed: %s", peerRole, reason))
}

// markFailed fails the migration unless it failed already.
func markFailed(state *kubevirtv1.VirtualMachineInstanceMigrationState, reason string) {
	if state.Failed {
		return
	}
	state.Failed = true
	state.FailureReason = reason
}

// applyCancel aborts the local side at the peer's request. A migration
// that already completed successfully has nothing left to abort.
func applyCancel(status *kubevirtv1.VirtualMachineInstanceStatus) (aborted bool) {
	state := ensureMigrationState(status)
	if state.Completed && !state.Failed {
		return false
	}
	state.AbortRequested = true
	if !state.Failed {
		state.FailureReason = CancelledByPeerReason
	}
	return true
}

// isOver reports whether a migration state is past the point where the
// peers need to hear from each other: completed, failed or aborting.
func isOver(state *kubevirtv1.VirtualMachineInstanceMigrationState) bool {
	return state != nil && (state.Completed || state.Failed || state.AbortRequested)
}

// peerAddressOf is where the local side pushes to: the source pushes to
// the connectURL it was given, the target to the address the source's
// pushes carried.
func peerAddressOf(m *kubevirtv1.VirtualMachineInstanceMigration, status *kubevirtv1.VirtualMachineInstanceStatus) string {
	if roleOf(m) == roleSource {
		return m.Spec.SendTo.ConnectURL
	}
	if state := status.MigrationState; state != nil && state.SourceState != nil && state.SourceState.SyncAddress != nil {
		return *state.SourceState.SyncAddress
	}
	return ""
}

// peerMigrationUIDOf is the UID of the peer's VMIM, as its pushes said.
func peerMigrationUIDOf(r role, status *kubevirtv1.VirtualMachineInstanceStatus) string {
	state := status.MigrationState
	switch {
	case state == nil:
		return ""
	case r == roleSource && state.TargetState != nil:
		return string(state.TargetState.MigrationUID)
	case r == roleTarget && state.SourceState != nil:
		return string(state.SourceState.MigrationUID)
	}
	return ""
}

// statusChanged reports whether a change left the status different.
func statusChanged(before, after *kubevirtv1.VirtualMachineInstanceStatus) bool {
	return !equality.Semantic.DeepEqual(before, after)
}

func ensureMigrationState(status *kubevirtv1.VirtualMachineInstanceStatus) *kubevirtv1.VirtualMachineInstanceMigrationState {
	if status.MigrationState == nil {
		status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{}
	}
	return status.MigrationState
}

func firstSet(values ...string) string {
	for _, value := range values {
		if value != "" {
			return value
		}
	}
	return ""
}

func ptrTo[T any](v T) *T { return &v }
