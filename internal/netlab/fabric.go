// Package netlab builds the lab's networks out of Linux network namespaces:
// a fabric namespace cclm.<lab> with the migration and VM bridges, and one
// namespace cclm.<lab>.<node> per node; nothing in the host's namespace.
// Stop a node's processes and close its sockets before Remove or Destroy,
// and switch namespaces only through Do, Listen, Dial and StartProcess.
// docs/design.md ("The lab's network") has the layout and the reasons.
package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The interfaces of every node, named as on the guide's worker nodes.
const (
	// MigrationUplink is the node's port into the migration segment.
	MigrationUplink = "enp2s0"
	// VMBridge is the node's bridge for the VMs' taps.
	VMBridge = "br-vm"
	// VMUplink is VMBridge's port into the shared VM segment.
	VMUplink = "vmuplink0"
	// ClientInterface is a client's only interface, on the VM segment.
	ClientInterface = "eth0"
)

// The fabric's bridges.
const (
	fabricMigrationBridge = "br-migration"
	fabricVMBridge        = "br-vmnet"
)

// Fabric is a lab's fabric namespace, holding the segments' bridges.
type Fabric struct {
	*Namespace
	LabID string
}

// Node is a namespace plugged into a lab's fabric: a lab node or a client.
type Node struct {
	*Namespace
	LabID string
	Name  string
}

func fabricNamespace(labID string) *Namespace {
	return &Namespace{name: fabricNamespaceName(labID), label: "the fabric of lab " + labID}
}

// nodeNamespace is the namespace of a node, or of a client (kind says
// which, for messages).
func nodeNamespace(kind, labID, node string) *Namespace {
	return &Namespace{name: nodeNamespaceName(labID, node), label: kind + " " + node}
}

// CreateFabric makes the lab's fabric namespace with its two bridges, or
// completes one that exists.
func CreateFabric(labID string) (*Fabric, error) {
	if err := validateLabID(labID); err != nil {
		return nil, err
	}
	fabric := &Fabric{Namespace: fabricNamespace(labID), LabID: labID}
	created, err := createNamespace(fabric.name)
	if err != nil {
		return nil, fmt.Errorf("create the fabric of lab %s: %w", labID, err)
	}
	if err := fabric.setUp(); err != nil {
		if created {
			_ = deleteNamespace(fabric.name)
		}
		return nil, fmt.Errorf("create the fabric of lab %s: %w", labID, err)
	}
	return fabric, nil
}

func (f *Fabric) setUp() error {
	if err := f.CreateBridge(fabricMigrationBridge); err != nil {
		return err
	}
	return f.CreateBridge(fabricVMBridge)
}

// OpenFabric finds the fabric of a lab made earlier, e.g. by another
// process.
func OpenFabric(labID string) (*Fabric, error) {
	if err := validateLabID(labID); err != nil {
		return nil, err
	}
	fabric := &Fabric{Namespace: fabricNamespace(labID), LabID: labID}
	if !isNamespaceMount(fabric.Path()) {
		return nil, fmt.Errorf("lab %s has no fabric (no namespace %s); create it with CreateFabric", labID, fabric.Path())
	}
	return fabric, nil
}

// Destroy removes the fabric and every node and client of its lab.
func (f *Fabric) Destroy() error { return DestroyLab(f.LabID) }

// DestroyLab removes every namespace of a lab, working from names alone so
// that it also cleans up after a crash. A lab that does not exist is fine.
func DestroyLab(labID string) error {
	if err := validateLabID(labID); err != nil {
		return err
	}
	nodes, err := namespacesOfNodes(labID)
	if err != nil {
		return fmt.Errorf("destroy lab %s: %w", labID, err)
	}
	var errs []error
	for _, name := range append(nodes, fabricNamespaceName(labID)) {
		errs = append(errs, deleteNamespace(name))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy lab %s: %w", labID, err)
	}
	return nil
}

// NodeNames lists the lab's nodes and clients.
func (f *Fabric) NodeNames() ([]string, error) {
	namespaces, err := namespacesOfNodes(f.LabID)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(namespaces))
	for _, namespace := range namespaces {
		names = append(names, strings.TrimPrefix(namespace, labNamespacePrefix(f.LabID)))
	}
	return names, nil
}

// namespacesOfNodes lists the namespace names of a lab's nodes.
func namespacesOfNodes(labID string) ([]string, error) {
	all, err := namespaceNames()
	if err != nil {
		return nil, err
	}
	var nodes []string
	for _, name := range all {
		if strings.HasPrefix(name, labNamespacePrefix(labID)) {
			nodes = append(nodes, name)
		}
	}
	return nodes, nil
}

// AddNode makes a node namespace plugged into both segments (see the
// package comment), or completes one that exists.
func (f *Fabric) AddNode(name string) (*Node, error) {
	return f.addNamespace("node", name, f.setUpNode)
}

func (f *Fabric) setUpNode(node *Node) error {
	migrationPort := hashedLinkName(migrationPortRole, f.LabID, node.Name)
	if err := plugVeth(f.Namespace, fabricMigrationBridge, migrationPort, node, MigrationUplink); err != nil {
		return err
	}
	vmPort := hashedLinkName(vmPortRole, f.LabID, node.Name)
	if err := plugVeth(f.Namespace, fabricVMBridge, vmPort, node, VMUplink); err != nil {
		return err
	}
	return node.CreateBridge(VMBridge, VMUplink)
}

// AddClient makes a namespace with one interface, eth0, on the VM segment,
// with address: a machine outside the clusters that holds TCP sessions
// with a VM while the VM moves. It is a Node without a migration uplink
// or VM bridge.
func (f *Fabric) AddClient(name string, address netip.Prefix) (*Node, error) {
	return f.addEndpoint("client", name, f.Namespace, fabricVMBridge, address)
}

// addEndpoint makes a namespace whose only interface, eth0, is a veth
// plugged into bridge in host, with address on it.
func (f *Fabric) addEndpoint(kind, name string, host *Namespace, bridge string, address netip.Prefix) (*Node, error) {
	return f.addNamespace(kind, name, func(endpoint *Node) error {
		hostEnd := hashedLinkName(vmPortRole, f.LabID, endpoint.Name)
		if err := plugVeth(host, bridge, hostEnd, endpoint, ClientInterface); err != nil {
			return err
		}
		return endpoint.AddAddress(ClientInterface, address)
	})
}

// addNamespace makes (or reuses) a node's namespace with loopback up and
// lets setUp plug it in; a namespace made here is removed again if setUp
// fails.
func (f *Fabric) addNamespace(kind, name string, setUp func(*Node) error) (*Node, error) {
	if err := validateNodeName(name); err != nil {
		return nil, err
	}
	node := &Node{Namespace: nodeNamespace(kind, f.LabID, name), LabID: f.LabID, Name: name}
	created, err := createNamespace(node.name)
	if err != nil {
		return nil, fmt.Errorf("add %s to lab %s: %w", node, f.LabID, err)
	}
	err = node.LinkUp("lo")
	if err == nil {
		err = setUp(node)
	}
	if err != nil {
		if created {
			_ = node.Remove()
		}
		return nil, fmt.Errorf("add %s to lab %s: %w", node, f.LabID, err)
	}
	return node, nil
}

// OpenNode finds a node or client made earlier, e.g. by another process.
func OpenNode(labID, name string) (*Node, error) {
	if err := validateLabID(labID); err != nil {
		return nil, err
	}
	if err := validateNodeName(name); err != nil {
		return nil, err
	}
	node := &Node{Namespace: nodeNamespace("node", labID, name), LabID: labID, Name: name}
	if !isNamespaceMount(node.Path()) {
		return nil, fmt.Errorf("lab %s has no node %s (no namespace %s)", labID, name, node.Path())
	}
	return node, nil
}

// Remove deletes the node's ports in the fabric, then its namespace, and
// with it every link inside (see the package comment for what keeps a
// namespace alive). A node that is gone already is fine.
func (n *Node) Remove() error {
	fabric := fabricNamespace(n.LabID)
	var errs []error
	if isNamespaceMount(fabric.Path()) {
		// Deleting the fabric's veth ends now, rather than leaving them to
		// the kernel's asynchronous namespace cleanup, lets the node be
		// added again at once.
		for _, role := range []string{migrationPortRole, vmPortRole} {
			port := hashedLinkName(role, n.LabID, n.Name)
			errs = append(errs, unplugVeth(fabric, port, portAlias(n.Name)))
		}
	}
	errs = append(errs, deleteNamespace(n.name))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove %s of lab %s: %w", n, n.LabID, err)
	}
	return nil
}

// plugVeth connects guest to a bridge in host (the fabric, or a node for a
// VM stand-in in tests): a veth pair made inside host, with hostEnd plugged
// into bridge and guestEnd placed straight into guest, both up. hostEnd's
// alias names the guest. An existing pair is checked and reused.
func plugVeth(host *Namespace, bridge, hostEnd string, guest *Node, guestEnd string) error {
	alias := portAlias(guest.Name)
	exists, err := checkVethEnd(host, hostEnd, alias)
	if err != nil {
		return err
	}
	if !exists {
		if err := createVethInto(host, hostEnd, guest, guestEnd, alias); err != nil {
			return err
		}
	} else if err := requireLink(guest, guestEnd); err != nil {
		return fmt.Errorf("%q exists in %s, but its peer: %w", hostEnd, host, err)
	}
	if err := host.CreateBridge(bridge, hostEnd); err != nil {
		return err
	}
	return guest.LinkUp(guestEnd)
}

// checkVethEnd reports whether a host-side veth end exists, and fails if
// it belongs to another guest (two names with the same hash).
func checkVethEnd(host *Namespace, hostEnd, alias string) (exists bool, err error) {
	err = host.Do(func() error {
		link, err := netlink.LinkByName(hostEnd)
		if isLinkNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		exists = true
		if link.Attrs().Alias != alias {
			return fmt.Errorf("%q in %s belongs to %q, not %q (a name hash collision: rename one of them)",
				hostEnd, host, link.Attrs().Alias, alias)
		}
		return nil
	})
	return exists, err
}

func createVethInto(host *Namespace, hostEnd string, guest *Node, guestEnd, alias string) error {
	guestHandle, err := netns.GetFromPath(guest.Path())
	if err != nil {
		return guest.openError(err)
	}
	defer guestHandle.Close()
	if err := requireNoLink(guest, guestEnd); err != nil {
		return err
	}
	err = host.Do(func() error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: hostEnd},
			PeerName:      guestEnd,
			PeerNamespace: netlink.NsFd(guestHandle),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		return netlink.LinkSetAlias(veth, alias)
	})
	if err != nil {
		return fmt.Errorf("create veth %q in %s with peer %q in %s: %w", hostEnd, host, guestEnd, guest, err)
	}
	return nil
}

// unplugVeth deletes a host-side veth end (and so its peer) if it belongs
// to the guest that alias names.
func unplugVeth(host *Namespace, hostEnd, alias string) error {
	return host.Do(func() error {
		link, err := netlink.LinkByName(hostEnd)
		if isLinkNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if link.Attrs().Alias != alias {
			return nil // another node's port, after a hash collision
		}
		return netlink.LinkDel(link)
	})
}

func requireLink(ns *Node, name string) error {
	return ns.Do(func() error {
		_, err := ns.lookupLink("link", name)
		return err
	})
}

func requireNoLink(ns *Node, name string) error {
	return ns.Do(func() error {
		_, err := netlink.LinkByName(name)
		switch {
		case err == nil:
			return fmt.Errorf("%q already exists in %s, but its veth peer does not", name, ns)
		case isLinkNotFound(err):
			return nil
		default:
			return err
		}
	})
}
