// Package migrationcontroller is the migration part of cclm's virt
// controller (upstream: virt-controller's migration controller). It drives
// classic, in-cluster VirtualMachineInstanceMigrations (VMIMs without
// sendTo/receive; decentralized ones are left untouched for their own
// controller) through their phases:
//
//	Pending -> Scheduling -> Scheduled -> PreparingTarget -> TargetReady -> Running -> Succeeded
//	   any of them -> Failed
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
// Written by the controller:
//   - On Scheduled, the whole state, replacing any earlier one:
//     migrationUid (the VMIM's UID), sourceNode (the VMI's node), targetNode
//     (chosen here), startTimestamp, mode PreCopy, migrationConfiguration
//     (the KubeVirt CR's effective migrations settings).
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
package migrationcontroller
