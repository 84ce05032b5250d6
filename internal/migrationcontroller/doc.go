// Package migrationcontroller is the migration part of cclm's virt
// controller (upstream: virt-controller's migration controller). It drives
// every VirtualMachineInstanceMigration (VMIM) through its phases: a
// classic, in-cluster one (neither spec.sendTo nor spec.receive)
//
//	Pending -> Scheduling -> Scheduled -> PreparingTarget -> TargetReady -> Running -> Succeeded
//
// and either half of a decentralized (cross-cluster) one, the source
// (spec.sendTo) and the target (spec.receive):
//
//	source: Pending -> Synchronizing -> TargetReady -> Running -> Succeeded
//	target: Pending -> WaitingForSync -> Scheduled -> PreparingTarget -> TargetReady -> Running -> Succeeded
//
// and from any of them to Failed.
//
// The decisions are one pure function, Step (step.go), table-tested
// without a cluster; the reconciler (reconcile.go) reads what Step needs,
// calls it and writes what it decided.
//
// # Contract with the node agents
//
// The controller never talks to QEMU. It and the node agents meet in the
// VMI's status.migrationState; each field has one writer at a time.
//
// Written by the controller (of an in-cluster migration; the differences
// of the decentralized halves follow below):
//   - On Scheduled, the whole state, replacing any earlier one:
//     migrationUid (the VMIM's UID), sourceNode (the VMI's node), targetNode
//     (chosen here), startTimestamp, mode PreCopy, migrationConfiguration
//     (the KubeVirt CR's effective migrations settings, overridden by the
//     fields the matching MigrationPolicy sets) and migrationPolicyName
//     (that policy, when one matches; see below).
//   - abortRequested=true (with failureReason when the controller gave up
//     on a deadline) to ask the agents to stop; the VMIM also gets
//     condition migrationAbortRequested.
//   - mode PostCopy (allowPostCopy) or Paused (allowWorkloadDisruption
//     without post-copy) when the completion timeout passes: a request to
//     the source agent to switch, as upstream's launcher does by itself.
//     From then on the controller never requests an abort: a post-copy
//     migration cannot be undone.
//   - Before handoff only (targetNodeAddress still empty, so no source can
//     have started): failed=true, completed=true, endTimestamp,
//     abortRequested=true and failureReason, when the target never became
//     ready in time or the VMIM was deleted. Agents must treat failed or
//     abortRequested as "tear down this migration's target".
//
// Written by the node agents:
//   - target: targetNodeAddress, targetDirectMigrationNodePorts,
//     targetNodeDomainDetected, targetNodeDomainReadyTimestamp; once the
//     guest runs there, VMI status.nodeName = targetNode.
//   - source: progress (cclm extension), then completed=true and
//     endTimestamp; the source starts streaming only once
//     targetNodeAddress is set and never while abortRequested or failed.
//   - either: failed=true, failureReason, endTimestamp, abortStatus.
//
// The controller reads: TargetReady when targetNodeAddress is set and
// targetNodeDomainDetected is true; Running when progress is present (or
// the migration already completed); Succeeded when completed, not failed
// and VMI status.nodeName is the target; Failed when failed.
//
// # Migration policies
//
// A migration's configuration is the KubeVirt CR's
// spec.configuration.migrations (with upstream's defaults) overridden by
// the MigrationPolicy (migrations.kubevirt.io/v1alpha1) that matches the
// VMI, as upstream: every label of its virtualMachineInstanceSelector on
// the VMI and of its namespaceSelector on the VMI's Namespace (a Namespace
// that cannot be found has no labels); of several, the one with the most
// selector labels, then the alphabetically first name
// (migrationsv1alpha1.MatchPolicy). A policy sets only the fields it names:
// allowWorkloadDisruption left unset keeps the cluster's value, even when
// the policy sets allowPostCopy. The match is made when the controller
// claims the VMI's state (entering Scheduled; a decentralized source
// entering Synchronizing) and recorded there; a policy created or changed
// later does not change a migration already handed to the agents, as a
// KubeVirt CR change does not.
//
// # Deadlines
//
// Every wait has one (Options holds the controller's own; the KubeVirt CR
// the two migration timeouts):
//   - Scheduling without a fitting node: UnschedulableTimeout (2 min),
//     then Failed with the scheduler's reason (upstream waits 5 min for an
//     unschedulable target pod).
//   - PreparingTarget: TargetReadyTimeout (2 min) from startTimestamp.
//   - TargetReady: SourceStartTimeout (2 min) until progress appears.
//   - Running: completionTimeoutPerGiB x (guest memory + PVC-backed disks,
//     at least 1 GiB) from startTimestamp; progressTimeout without a new
//     lowest progress.remainingBytes (the watermark is kept in annotation
//     cclm.io/migration-progress).
//   - An abort request: AbortTimeout (1 min) for the agents to report
//     failed (or completed); then Failed, and for a deleted VMIM its
//     finalizer is removed anyway, with a Warning event saying so.
//   - Handover (completed but the VMI not yet on the target, or the
//     reverse): HandoverTimeout (1 min).
//   - Decentralized synchronization: Sync (5 min), see below.
//
// Two waits have no deadline of their own, on purpose. Waiting for a free
// slot (parallelMigrationsPerCluster, parallelOutboundMigrationsPerNode),
// as upstream: every migration holding a slot has deadlines, so the queue
// drains. And a migration in post-copy: it cannot be aborted, so there is
// nothing to do at a deadline but keep waiting for the agents.
//
// # Cancellation
//
// Active VMIMs carry finalizer kubevirt.io/migrationJobFinalize. Deleting
// one before handoff ends it at once (see above). After handoff the
// controller requests an abort and removes the finalizer once the agents
// report failed or completed, or after AbortTimeout with a Warning event
// (FinalizerRemovedWithoutConfirmation). A migration that already moved
// the guest (completed, or the VMI on the target) or runs in post-copy is
// not aborted; it is let end, within the same deadlines.
//
// # Decentralized migrations
//
// The two halves run in two clusters, each driven by its cluster's
// migration controller; the synchronization controller
// (internal/synccontroller) carries each side's half of the VMI's
// migrationState to the other: the source's sourceState to the target;
// the target's targetState, the flat target fields (targetNode,
// targetNodeAddress, targetDirectMigrationNodePorts,
// targetNodeDomainDetected, targetNodeDomainReadyTimestamp) and completed
// to the source; failed and failureReason both ways; a deleted VMIM or an
// abortRequested becomes abortRequested with failureReason "cancelled by
// the peer cluster" on the other side. Before the controller claims the
// state (sets migrationUid) the synchronization controller may already
// have written into it; that is kept when claiming, and mirrored in the
// VMIM, like the claimed state.
//
// Source (VMI Running on node S):
//   - Pending: the classic checks (the VMI runs and is LiveMigratable, no
//     other migration of it) and limits (it holds a slot, outbound from
//     S). Then the controller writes the state: migrationUid, sourceNode
//     S, startTimestamp, mode PreCopy, migrationConfiguration and
//     sourceState {migrationUID, node S}, and enters Synchronizing.
//   - Synchronizing -> TargetReady once targetNodeAddress is set and
//     targetNodeDomainDetected; else Failed after Sync from
//     startTimestamp, with a reason naming connectURL and migrationID and
//     what to check (the state is marked failed by the controller itself
//     while no target address was reported, else an abort is requested).
//   - TargetReady and Running as an in-cluster migration (the source
//     agent streams and reports progress; SourceStart, progress and
//     completion timeouts, post-copy and pause).
//   - Succeeded once completed (from the target cluster) and the VMI is
//     phase Succeeded (the source agent stopped the source QEMU); one
//     without the other is waited for Handover (completed alone then
//     counts as Succeeded, with a Warning event).
//
// Target (receiver VMI of a VM with runStrategy WaitAsReceiver: phase
// WaitingForSync, no node):
//   - Pending: the VMI exists, waits (WaitingForSync, no node) and no
//     other migration holds it; no slot is taken. -> WaitingForSync.
//   - WaitingForSync until the source's sourceState (with a migrationUID)
//     is in the VMI's state, for Sync from entering the phase, else
//     Failed. Then the controller chooses the node T as for an in-cluster
//     migration (the source's sourceState.nodeSelectors as extra required
//     node labels; the VMI's claims placed as they are, since the copies
//     go there), writes the state: what it had (sourceState) plus
//     migrationUid, sourceNode (sourceState.node), targetNode T,
//     startTimestamp, mode, migrationConfiguration and targetState
//     {migrationUID, node T}; annotates the VMI's unbound claims that lack
//     it with volume.kubernetes.io/selected-node=T (Decision.PlaceClaims),
//     and enters Scheduled. Unschedulable: retried for Unschedulable.
//   - Scheduled -> PreparingTarget -> TargetReady as an in-cluster
//     migration, then Running at once: the source sends. Progress, if the
//     state has any, has the progress timeout; the completion timeout
//     belongs to the source, the target only aborts after it plus Abort.
//   - Succeeded once completed (set by the target agent) and VMI
//     status.nodeName is T.
//   - On any failure while the VMI still waits on no node, the VMI is
//     marked Failed with the reason (Decision.FailVMI): its VM does not
//     retry.
//
// Either side: the peer's failure (failed) fails the migration; an
// abortRequested the controller did not ask for (the peer cancelled)
// fails it at once while no data moved (before the state was claimed, or
// without targetNodeAddress), else the agents abort within Abort. A side
// that fails before claiming the state claims it failed, so that the
// synchronization controller tells the peer.
package migrationcontroller
