package netlab

import "net/netip"

// AddFakeVM stands in for a VM in integration tests: a namespace whose
// eth0 is a veth plugged into on's br-vm, where a VM's tap would be.
func (f *Fabric) AddFakeVM(name string, on *Node, address netip.Prefix) (*Node, error) {
	return f.addEndpoint("fake VM", name, on.Namespace, VMBridge, address)
}

// FabricPortNames are the names of a node's veth ends in the fabric.
func FabricPortNames(labID, node string) []string {
	return []string{
		hashedLinkName(migrationPortRole, labID, node),
		hashedLinkName(vmPortRole, labID, node),
	}
}
