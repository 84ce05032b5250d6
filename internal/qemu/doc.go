// Package qemu is cclm's hypervisor driver: what virt-launcher and libvirt
// do for KubeVirt. It turns a Domain (a plain description of a VM) into a
// QEMU command line, starts QEMU so that it outlives the node agent that
// started it, re-adopts a running QEMU after the node agent restarts, and
// drives it over QMP: state, events, shutdown, and the data path of a live
// migration.
//
// Its design, and what it promises the other components, are in
// docs/design.md ("The hypervisor driver").
package qemu
