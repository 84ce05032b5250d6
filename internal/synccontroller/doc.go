// Package synccontroller is cclm's synchronization controller, upstream
// KubeVirt's virt-synchronization-controller: the only component that talks
// to the other cluster of a decentralized (cross-cluster) live migration.
// Run runs it, as ServiceAccount kubevirt-synchronization-controller
// (Component holds that account's rights).
//
// Its design, and what it promises the other components, are in
// docs/design.md ("The synchronization controller").
package synccontroller
