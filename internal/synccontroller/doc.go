// Package synccontroller is cclm's synchronization controller, upstream
// KubeVirt's virt-synchronization-controller: the only component that talks
// to the other cluster of a decentralized (cross-cluster) live migration.
// Run runs it, as ServiceAccount kubevirt-synchronization-controller
// (Component holds that account's rights).
//
// # Protocol
//
// gRPC service kubevirt.synchronization.Synchronize (api/proto), upstream's,
// over mutual TLS, push model: for every decentralized migration (VMIM with
// spec.sendTo or spec.receive) the leader watches the migration's VMI and
// sends the JSON of its status to the peer on every change, and at least
// every PeerDeadline/3 as a heartbeat. The source side calls
// SyncSourceMigrationStatus at spec.sendTo.connectURL; the target side calls
// SyncTargetMigrationStatus at the source's address, which it learns from
// the source's pushes (VMI status.migrationState.sourceState.syncAddress).
// The receiver finds its VMIM by migrationID and copies the peer's half:
//
//   - on the target, the source's sourceState (node, migrationUID, domain,
//     syncAddress, VMI UID, node selectors), and its transfer figures
//     (migrationState.progress, a cclm extension) so that the target's
//     VMIM shows the migration's progress live;
//   - on the source, the target's targetState and the flat fields the node
//     agents act on (targetNode, targetNodeAddress,
//     targetDirectMigrationNodePorts, targetNodeDomainDetected,
//     targetNodeDomainReadyTimestamp), and completed when the target says so;
//   - on both, failed and failureReason: a side that failed fails the other
//     (an upstream gap: failures were not propagated).
//
// Before pushing, each side fills in its own half from what it knows (its
// address, its VMIM's and VMI's UIDs, the node), in its VMI too, so that
// the peer learns it even where the node agents do not write the half.
//
// Deleting a decentralized VMIM, or an abort of its VMI
// (migrationState.abortRequested), sends CancelMigration to the peer, which
// sets abortRequested and failureReason "cancelled by the peer cluster".
//
// # Deadlines
//
// Nothing waits forever (upstream's migrations hang in WaitingForSync or
// Synchronizing when the peer is gone): a migration not yet over whose peer
// has been silent for PeerDeadline, that is no push from it and no
// successful call to it, fails with a reason naming the peer's address
// (VMI migrationState.failed and failureReason). Each call has CallTimeout
// (30 s, less when the deadline is nearer) and is retried with backoff.
//
// # Trust
//
// At start the controller issues itself a server certificate (the
// migration address as IP SAN, DNS name kubevirt-synchronization) and a
// client certificate from the cluster's CA (Secret kubevirt-ca). It trusts
// the CAs of ConfigMap kubevirt-ca and ConfigMap kubevirt-external-ca (key
// ca-bundle), re-read on every change, so that importing a peer's CA takes
// effect at once. Peers must present a client certificate chaining to that
// trust; a refused peer gets one clear log line and a Warning event on the
// KubeVirt CR that say which CA to import where.
//
// # Addresses
//
// The leader serves on Options.ListenAddress (the migration0 address) at
// the KubeVirt CR's spec.synchronizationPort and publishes host:port in the
// KubeVirt CR's status.synchronizationAddresses and in every decentralized
// VMIM's status.synchronizationAddresses.
//
// # Leader election
//
// Replicas elect a leader with Lease virt-synchronization-controller in the
// virt namespace; only the leader serves and pushes. The lab runs the
// replicas in one network namespace with one migration address, so a new
// leader serves where the old one did and peers notice nothing.
package synccontroller
