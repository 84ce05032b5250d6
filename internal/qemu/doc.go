// Package qemu is cclm's hypervisor driver, what virt-launcher and libvirt
// do for KubeVirt: it turns a Domain into a QEMU command line, starts QEMU so
// that it outlives the node agent, re-adopts it after the agent restarts,
// and drives it over QMP (state, events, shutdown, and the data path of a
// live migration). Its design is in docs/design.md ("The hypervisor
// driver").
package qemu
