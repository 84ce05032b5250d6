// Package migrationcontroller is the migration part of cclm's virt
// controller (upstream: virt-controller's migration controller). It drives
// every VirtualMachineInstanceMigration (VMIM) through its phases: the
// in-cluster ones, and either half of a decentralized (cross-cluster) one.
// Its decisions are one pure function, Step, table-tested without a
// cluster.
//
// Its design, and what it promises the other components, are in
// docs/design.md ("The migration controller").
package migrationcontroller
