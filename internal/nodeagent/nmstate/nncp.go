// Package nmstate is the node agent's part of kubernetes-nmstate: it
// applies the NodeNetworkConfigurationPolicies that match its node (linux
// bridges, ports, IPv4 addresses; a failed apply is rolled back), keeps
// the node's enactments and the policies' conditions, and keeps the
// node's migration interface, migration0, on the migration network.
package nmstate

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
)

// This file is the node side of NodeNetworkConfigurationPolicy: applying a
// desired state to the node's links as one transaction. Every change is
// recorded with its inverse as it is made; when a later change fails, the
// inverses run in reverse order, so the node ends as it was before the
// apply, whatever this apply had already changed (and nothing else). The
// links are reached through linkHost, which the agent implements with
// netlink inside its node's network namespace (nncp_netlink.go) and the
// tests with a map.

// hostLink is what the transaction knows of a link.
type hostLink struct {
	Name   string
	Kind   string // "bridge", "veth", "device", "macvlan", "tuntap", ...
	Up     bool   // administratively up
	Master string // the bridge it is a port of, "" if none
	Alias  string // IFLA_IFALIAS: nmstate's description
	STP    bool   // bridges: spanning tree on
	IPv4   []netip.Prefix
}

// linkHost is the node's networking as the transaction changes it.
type linkHost interface {
	links() (map[string]hostLink, error)
	addBridge(name string) error
	deleteLink(name string) error
	setMaster(name, master string) error // master "" releases the link
	setUp(name string, up bool) error
	setAlias(name, alias string) error
	setSTP(bridge string, on bool) error
	addAddress(name string, address netip.Prefix) error
	delAddress(name string, address netip.Prefix) error
}

// change is one change made, with its inverse.
type change struct {
	what string
	undo func() error
}

// transaction applies changes and can roll them back.
type transaction struct {
	host    linkHost
	node    string
	changes []change
}

// do makes a change and records its inverse.
func (tx *transaction) do(what string, apply, undo func() error) error {
	if err := apply(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	tx.changes = append(tx.changes, change{what: what, undo: undo})
	return nil
}

// rollback undoes every change in reverse order; it goes on past a
// failing inverse and reports them all.
func (tx *transaction) rollback() error {
	var errs []error
	for i := len(tx.changes) - 1; i >= 0; i-- {
		if err := tx.changes[i].undo(); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", tx.changes[i].what, err))
		}
	}
	tx.changes = nil
	return errors.Join(errs...)
}

// applyResult says what an apply did.
type applyResult struct {
	// Changes are the changes made (none when the node already had the
	// desired state), or, after a failure, those rolled back.
	Changes []string
}

// applyDesiredState applies state to the node's links. On failure the
// node is rolled back and the error says what failed, and whether the
// rollback did too.
func applyDesiredState(host linkHost, node string, state nmstatev1.State) (applyResult, error) {
	tx := &transaction{host: host, node: node}
	for _, iface := range orderInterfaces(state.Interfaces) {
		if err := tx.applyInterface(iface); err != nil {
			made := changeNames(tx.changes)
			if rollbackErr := tx.rollback(); rollbackErr != nil {
				return applyResult{Changes: made}, fmt.Errorf("%w; rolling back %d change(s) failed too, the node may be left half-configured: %v", err, len(made), rollbackErr)
			}
			return applyResult{Changes: made}, fmt.Errorf("%w (rolled back %d change(s))", err, len(made))
		}
	}
	return applyResult{Changes: changeNames(tx.changes)}, nil
}

func changeNames(changes []change) []string {
	names := make([]string, len(changes))
	for i, c := range changes {
		names[i] = c.what
	}
	return names
}

// orderInterfaces is the order nmstate applies in, simplified: interfaces
// to remove first, then ethernet interfaces, then bridges; the policy's
// order within each group.
func orderInterfaces(interfaces []nmstatev1.Interface) []nmstatev1.Interface {
	rank := func(i nmstatev1.Interface) int {
		switch {
		case i.EffectiveState() == nmstatev1.InterfaceStateAbsent:
			return 0
		case i.Type == nmstatev1.InterfaceTypeEthernet:
			return 1
		}
		return 2
	}
	ordered := slices.Clone(interfaces)
	slices.SortStableFunc(ordered, func(a, b nmstatev1.Interface) int { return rank(a) - rank(b) })
	return ordered
}

// applyInterface brings one interface to its desired state.
func (tx *transaction) applyInterface(iface nmstatev1.Interface) error {
	links, err := tx.host.links()
	if err != nil {
		return err
	}
	current, exists := links[iface.Name]
	if exists && iface.Type != "" && !kindFits(current.Kind, iface.Type) {
		return fmt.Errorf("interface %q exists on node %s as a %s, not a %s", iface.Name, tx.node, current.Kind, iface.Type)
	}
	if iface.EffectiveState() == nmstatev1.InterfaceStateAbsent {
		if !exists {
			return nil
		}
		if current.Kind == "bridge" {
			return tx.deleteBridge(current, links)
		}
		return tx.deactivate(current)
	}
	switch iface.Type {
	case nmstatev1.InterfaceTypeLinuxBridge:
		return tx.applyBridge(iface, current, exists, links)
	case nmstatev1.InterfaceTypeEthernet:
		if !exists {
			return fmt.Errorf("ethernet interface %q does not exist on node %s (an ethernet interface is a NIC the node has; nmstate cannot create one)", iface.Name, tx.node)
		}
		return tx.configure(iface, current)
	}
	return fmt.Errorf("interface %q: type %q is not supported; use linux-bridge or ethernet", iface.Name, iface.Type)
}

// kindFits reports whether a kernel link kind can be an nmstate type: a
// linux-bridge is a bridge; an ethernet interface is anything with a MAC
// that is not a bridge (a NIC, or the lab's veth uplinks).
func kindFits(kind string, t nmstatev1.InterfaceType) bool {
	switch t {
	case nmstatev1.InterfaceTypeLinuxBridge:
		return kind == "bridge"
	case nmstatev1.InterfaceTypeEthernet:
		return kind == "veth" || kind == "device" || kind == "ethernet"
	}
	return false
}

// applyBridge makes the bridge, its options and ports, then configures it
// as any interface.
func (tx *transaction) applyBridge(iface nmstatev1.Interface, current hostLink, exists bool, links map[string]hostLink) error {
	name := iface.Name
	h := tx.host
	if !exists {
		err := tx.do("create linux-bridge "+name,
			func() error { return h.addBridge(name) },
			func() error { return h.deleteLink(name) })
		if err != nil {
			return err
		}
		current = hostLink{Name: name, Kind: "bridge"}
	}
	if stp := bridgeSTP(iface); stp != nil && (!exists || current.STP != *stp) {
		on, was := *stp, current.STP
		err := tx.do(fmt.Sprintf("set STP of %s %s", name, onOff(on)),
			func() error { return h.setSTP(name, on) },
			func() error { return h.setSTP(name, was) })
		if err != nil {
			return err
		}
	}
	if iface.Bridge != nil && iface.Bridge.Port != nil {
		if err := tx.applyPorts(name, iface.Bridge.Port, links); err != nil {
			return err
		}
	}
	return tx.configure(iface, current)
}

func bridgeSTP(iface nmstatev1.Interface) *bool {
	if b := iface.Bridge; b != nil && b.Options != nil && b.Options.STP != nil {
		return b.Options.STP.Enabled
	}
	return nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// applyPorts makes exactly the listed links the bridge's ports, each up.
// A listed port that does not exist fails the apply.
func (tx *transaction) applyPorts(bridge string, ports []nmstatev1.BridgePort, links map[string]hostLink) error {
	h := tx.host
	wanted := map[string]bool{}
	for _, port := range ports {
		wanted[port.Name] = true
		link, exists := links[port.Name]
		switch {
		case port.Name == bridge:
			return fmt.Errorf("linux-bridge %q cannot be its own port", bridge)
		case !exists:
			return fmt.Errorf("port %q of linux-bridge %q does not exist on node %s", port.Name, bridge, tx.node)
		case link.Kind == "bridge":
			return fmt.Errorf("port %q of linux-bridge %q is itself a bridge; a Linux bridge cannot be another's port", port.Name, bridge)
		}
		if link.Master != bridge {
			was := link.Master
			err := tx.do(fmt.Sprintf("make %s a port of %s", port.Name, bridge),
				func() error { return h.setMaster(port.Name, bridge) },
				func() error { return h.setMaster(port.Name, was) })
			if err != nil {
				return err
			}
		}
		if !link.Up {
			if err := tx.setUp(port.Name, true); err != nil {
				return err
			}
		}
	}
	for _, name := range sortedNames(links) {
		if link := links[name]; link.Master == bridge && !wanted[name] {
			err := tx.do(fmt.Sprintf("release %s from %s", name, bridge),
				func() error { return h.setMaster(name, "") },
				func() error { return h.setMaster(name, bridge) })
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// configure sets what every interface type has: description, IPv4
// addresses, up.
func (tx *transaction) configure(iface nmstatev1.Interface, current hostLink) error {
	h := tx.host
	name := iface.Name
	if iface.Description != "" && current.Alias != iface.Description {
		alias, was := iface.Description, current.Alias
		err := tx.do(fmt.Sprintf("set the description of %s", name),
			func() error { return h.setAlias(name, alias) },
			func() error { return h.setAlias(name, was) })
		if err != nil {
			return err
		}
	}
	if iface.IPv4 != nil {
		desired, err := desiredIPv4(iface)
		if err != nil {
			return err
		}
		if err := tx.setIPv4(name, current.IPv4, desired); err != nil {
			return err
		}
	}
	if !current.Up {
		return tx.setUp(name, true)
	}
	return nil
}

func (tx *transaction) setUp(name string, up bool) error {
	h := tx.host
	what := "bring " + name + " down"
	if up {
		what = "bring " + name + " up"
	}
	return tx.do(what,
		func() error { return h.setUp(name, up) },
		func() error { return h.setUp(name, !up) })
}

// desiredIPv4 is the interface's IPv4 addresses as ipv4 says: none when
// disabled, else exactly those listed.
func desiredIPv4(iface nmstatev1.Interface) ([]netip.Prefix, error) {
	if !iface.IPv4.Enabled {
		return nil, nil
	}
	var out []netip.Prefix
	for _, a := range iface.IPv4.Address {
		addr, err := netip.ParseAddr(a.IP)
		if err != nil || !addr.Is4() {
			return nil, fmt.Errorf("interface %q: ipv4.address %q is not an IPv4 address", iface.Name, a.IP)
		}
		if a.PrefixLength < 0 || a.PrefixLength > 32 {
			return nil, fmt.Errorf("interface %q: prefix-length %d of %s is not between 0 and 32", iface.Name, a.PrefixLength, a.IP)
		}
		out = append(out, netip.PrefixFrom(addr, int(a.PrefixLength)))
	}
	return out, nil
}

// setIPv4 removes the IPv4 addresses not desired and adds the missing.
func (tx *transaction) setIPv4(name string, current, desired []netip.Prefix) error {
	h := tx.host
	for _, address := range current {
		if !address.Addr().Is4() || slices.Contains(desired, address) {
			continue
		}
		err := tx.do(fmt.Sprintf("remove %s from %s", address, name),
			func() error { return h.delAddress(name, address) },
			func() error { return h.addAddress(name, address) })
		if err != nil {
			return err
		}
	}
	for _, address := range desired {
		if slices.Contains(current, address) {
			continue
		}
		err := tx.do(fmt.Sprintf("add %s to %s", address, name),
			func() error { return h.addAddress(name, address) },
			func() error { return h.delAddress(name, address) })
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteBridge deletes a bridge; its inverse rebuilds it as it was: STP,
// description, ports, addresses, up. (A macvlan on the bridge, such as
// migration0, goes with it and is not rebuilt here: the agent's migration
// network loop makes it again.)
func (tx *transaction) deleteBridge(bridge hostLink, links map[string]hostLink) error {
	h := tx.host
	var ports []string
	for _, name := range sortedNames(links) {
		if links[name].Master == bridge.Name {
			ports = append(ports, name)
		}
	}
	return tx.do("delete linux-bridge "+bridge.Name,
		func() error { return h.deleteLink(bridge.Name) },
		func() error {
			steps := []func() error{
				func() error { return h.addBridge(bridge.Name) },
				func() error { return h.setSTP(bridge.Name, bridge.STP) },
			}
			if bridge.Alias != "" {
				steps = append(steps, func() error { return h.setAlias(bridge.Name, bridge.Alias) })
			}
			for _, port := range ports {
				steps = append(steps, func() error { return h.setMaster(port, bridge.Name) })
			}
			for _, address := range bridge.IPv4 {
				steps = append(steps, func() error { return h.addAddress(bridge.Name, address) })
			}
			if bridge.Up {
				steps = append(steps, func() error { return h.setUp(bridge.Name, true) })
			}
			for _, step := range steps {
				if err := step(); err != nil {
					return err
				}
			}
			return nil
		})
}

// deactivate is state absent for an interface that cannot be deleted (an
// ethernet NIC): out of its bridge, no IPv4 address, down.
func (tx *transaction) deactivate(link hostLink) error {
	h := tx.host
	if link.Master != "" {
		master := link.Master
		err := tx.do(fmt.Sprintf("release %s from %s", link.Name, master),
			func() error { return h.setMaster(link.Name, "") },
			func() error { return h.setMaster(link.Name, master) })
		if err != nil {
			return err
		}
	}
	if err := tx.setIPv4(link.Name, link.IPv4, nil); err != nil {
		return err
	}
	if link.Up {
		return tx.setUp(link.Name, false)
	}
	return nil
}

func sortedNames(links map[string]hostLink) []string {
	names := make([]string, 0, len(links))
	for name := range links {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// describeChanges is a short list of changes for logs and messages.
func describeChanges(changes []string) string {
	if len(changes) == 0 {
		return "no change needed"
	}
	return strings.Join(changes, "; ")
}
