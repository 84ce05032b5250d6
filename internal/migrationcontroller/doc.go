// Package migrationcontroller is the migration part of cclm's virt
// controller (upstream: virt-controller's migration controller). It drives
// every VirtualMachineInstanceMigration through its phases, in a cluster or
// either half of a decentralized one; its decisions are one pure function,
// Step, table-tested without a cluster. Its design and contracts are in
// docs/design.md ("The migration controller").
package migrationcontroller
