// Package toolkit is cclm's migration toolkit controller (upstream:
// Forklift's forklift-controller, the Migration Toolkit for
// Virtualization), the subset that live-migrates VMs from another
// OpenShift/KubeVirt cluster into this one. `cclm toolkit` runs it in the
// target cluster as ServiceAccount forklift-controller in openshift-mtv
// (Component holds its rights), enabled by the ForkliftController's
// spec.feature_ocp_live_migration: "true".
//
// Its reconcilers are thin drivers around pure decision functions
// table-tested without a cluster (and the Migration's driver is also
// killed at every write on fake clusters, restart_test.go):
//
//   - Providers (provider.go): a remote provider (type openshift, spec.url
//     and a Secret with token, ca.crt, insecureSkipVerify; SourceConfig
//     makes the rest.Config) is checked with real calls, a
//     SelfSubjectReview then a list of VirtualMachines in all namespaces:
//     Ready and ConnectionTestSucceeded, or ConnectionFailed,
//     TokenInvalid (401), PermissionDenied (403) or SecretNotValid, with
//     the phase of the same name (ProviderStatus). It is checked again
//     every 30 s, so that a revoked token shows. The host provider (no
//     url) is Ready at once. The token is never logged nor put in a
//     condition or event.
//
//   - A Plan whose source Provider is the host too moves VMs between
//     namespaces of this cluster (Forklift's host-to-host plan): the
//     source is reached with the toolkit's own config
//     (MigrationSourceConfig), the preflight runs with SameCluster, and
//     the target namespace must differ from the VM's.
//
//   - NetworkMaps and StorageMaps (maps.go): Ready when both their
//     providers exist (MapStatus).
//
//   - Plans (plan.go): the blockers first (the ForkliftController's flag
//     as condition ToolkitEnabled, the providers, the maps; Blockers),
//     then preflight.Run with the source Provider's config, this
//     cluster's, the plan's VMs, maps and target namespace, and
//     Options.DialSync. Each failed check becomes one Critical condition
//     whose type is the check's ID (message and fix; VMs or sides as
//     items); Ready is True only when nothing Critical is
//     (PlanConditions). The preflight runs again every 30 s, or when an
//     input changes, while no Migration of the plan runs, until one
//     succeeded (Done; the plan then keeps its conditions, as upstream).
//
//   - Migrations (migration.go, pipeline.go, reconcile_migration.go): a
//     Migration starts once its Plan is Ready (StartMigration), then every
//     VM goes through the pipeline of upstream Forklift's live migration,
//     the VMs in parallel (StepVM, one transition per call):
//
//     Initialize: find the source VM (by name, or by UID), which must
//     run; record its UID as the VM id, its node, VMI UID, run strategy,
//     MACs and memory (task annotations); check that its networks are
//     mapped.
//     SynchronizeCertificates: as Forklift's step of that name, on every
//     migration: each cluster's migration CA (kubevirt-ca) into the
//     other's kubevirt-external-ca, only the certificates it lacks, the
//     CAs there kept; the source's written with the Provider's token.
//     CopyResources: make the target namespace if absent; copy the
//     resources the VM references that the target lacks
//     (ReferencedResources): its namespaced instancetype and preference
//     (Forklift's EnsureInstanceType and EnsurePreference), which must
//     be equal when the target already has one of the name, and Secrets
//     and ConfigMaps (cclm's VM API has no source referencing one yet);
//     a cluster-wide instancetype or preference must exist on the target
//     with the same spec.
//     CreateVolumes: for each DataVolume or PVC disk of the VM, a blank
//     DataVolume (or a PVC) of the same name and at least the same size
//     in the storage class the StorageMap gives, before the VM.
//     CreateReceiver: the target VM, the source VM whole but for the
//     changes receiverVM documents (runStrategy WaitAsReceiver and
//     kubevirt.io/restore-run-strategy = the source's run strategy; MACs
//     filled in; networks and the dataVolumeTemplates' storage mapped).
//     WaitForReceiver: its VMI in phase WaitingForSync.
//     CreateTargetMigration: the VMIM with receive {migrationID}; wait for
//     its status.synchronizationAddresses.
//     CreateSourceMigration: through the source config, the VMIM with
//     sendTo {migrationID, connectURL: the first address} in the source
//     VM's namespace.
//     Migrate: watch both VMIMs until they end, mirroring the sending
//     one's progress (bytes transferred of total; remaining, dirty rate,
//     iteration, downtime and both phases as annotations). Once the
//     receiving VMIM succeeded (the guest runs on the target) while the
//     source cannot be read (its token revoked), the VM migrated: Cleanup
//     removes the sending VMIM if the source comes back in time, else the
//     VM ends Completed with a CleanupIncomplete condition naming it.
//     Cleanup: after a success delete both VMIMs; after a failure or a
//     cancel delete both VMIMs, then, once they are gone, what was made on
//     the target (VM, DataVolumes, PVCs, copies) — except a target VM
//     whose VMI runs the guest. The source VM is never touched.
//
// migrationID is "<vm id>-<Migration UID>"; both VMIMs are named "<vm
// name>-<first 8 characters of the Migration UID>"; everything made
// carries the labels forklift.konveyor.io/plan, migration and vm-id.
//
// # Deadlines
//
// Every step has one, from its start (Timeouts): 2 min for each
// creation and each wait up to CreateSourceMigration; Migrate is bounded
// by the VMIMs' own deadlines (MigrateBudget: 5 min synchronization +
// KubeVirt's completionTimeoutPerGiB per GiB of memory and disks, at
// least one + 2 min abort and handover) plus a 2 min margin; Cleanup 3
// min. A step that passes its deadline fails the VM with what it waited
// for and the last error; the VM then goes through Cleanup.
//
// # Restarts
//
// The reconciler reads the Migration and both clusters directly (no
// cache) and writes the Migration's status, conditional on the version it
// read, before any action of the decision. A step creates only objects
// that are absent, under deterministic names, and completes once it sees
// them, checked against the labels (an object of that name made by
// someone else fails the VM instead); Cleanup runs only once the status
// says so. So a controller killed at any point and restarted carries on
// from the status it last wrote and what exists, and never makes an
// object twice.
//
// # Cancel
//
// Migration spec.cancel names VMs (by id, or namespace and name): the
// running step ends (Failed, reason Canceled), Cleanup deletes the
// sending VMIM (the synchronization controller tells the target, whose
// VMIM fails) and the receiving one, then the target's objects; the VM
// ends Canceled. A VM already in Cleanup, or whose guest arrived, is not
// canceled.
//
// # Status
//
// VMStatus.Phase is the current step's name, then Completed, Failed or
// Canceled; each step has its phase (Pending, Running, Completed, Failed)
// and timestamps, and its Reason says what it waits for. The Migration
// has Running, then Succeeded, Failed (one VM failed) or Canceled; the
// Plan's status.migration mirrors the Migration's VMs.
package toolkit
