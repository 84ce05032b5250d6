package v1

import "time"

// cclm's additions to a VirtualMachineInstanceMigration's status, named in
// upstream's style. They live beside the type so that every component
// that reads a VMIM's status (the toolkit, the CLI) shares them without
// importing the migration controller that writes them.

// VirtualMachineInstanceMigrationWaiting is True while the migration waits
// for something; its reason and message say for what and until when. It
// is removed when the wait ends.
const VirtualMachineInstanceMigrationWaiting VirtualMachineInstanceMigrationConditionType = "migrationWaiting"

// Reasons of the waiting condition while a migration waits for a slot.
const (
	// MigrationReasonClusterLimit: parallelMigrationsPerCluster migrations
	// are in progress in the cluster.
	MigrationReasonClusterLimit = "ParallelMigrationsPerClusterReached"
	// MigrationReasonNodeLimit: the source node sends
	// parallelOutboundMigrationsPerNode migrations already.
	MigrationReasonNodeLimit = "ParallelOutboundMigrationsPerNodeReached"
	// MigrationReasonInboundNodeLimit (cclm's): every node that could
	// receive the VMI receives parallelOutboundMigrationsPerNode migrations
	// already.
	MigrationReasonInboundNodeLimit = "ParallelInboundMigrationsPerNodeReached"
)

// The migration controller's deadlines, unless configured otherwise: how
// long a migration may wait for each thing before it fails.
const (
	DefaultMigrationUnschedulableTimeout = 2 * time.Minute
	DefaultMigrationTargetReadyTimeout   = 2 * time.Minute
	DefaultMigrationSourceStartTimeout   = 2 * time.Minute
	DefaultMigrationAbortTimeout         = time.Minute
	DefaultMigrationHandoverTimeout      = time.Minute
	DefaultMigrationSyncTimeout          = 5 * time.Minute
)
