// Package synccontroller is cclm's synchronization controller (`cclm sync`),
// upstream KubeVirt's virt-synchronization-controller: the only component
// that talks to the other cluster of a decentralized live migration. Run
// runs it as ServiceAccount kubevirt-synchronization-controller (Component
// holds its rights). Its design is in docs/design.md ("The synchronization
// controller").
package synccontroller
