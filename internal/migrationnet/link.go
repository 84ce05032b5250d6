package migrationnet

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/cclm-io/cclm/internal/ipam"
	"github.com/cclm-io/cclm/internal/netlab"
)

// checkParent makes sure the node can make migration0 as the NAD says: a
// macvlan on a link that exists on the node.
func checkParent(node NodeNetwork, network resolvedNetwork, nodeName string) error {
	config := network.config
	if config.Type != "macvlan" {
		return fmt.Errorf(`NAD %s has "type": %q; cclm makes %s as a macvlan, as the OpenShift guide's NAD does: use "type": "macvlan"`, network.nad, config.Type, InterfaceName)
	}
	if config.Master == "" {
		return fmt.Errorf(`NAD %s names no parent for its macvlan; set "master" (or "bridge", as the OpenShift guide's NAD does) to the node's link on the migration network, e.g. br-2001`, network.nad)
	}
	present, err := node.Links()
	if err != nil {
		return err
	}
	if _, found := findLink(present, config.Master); !found {
		return missingParentError(config, nodeName)
	}
	return nil
}

// missingParentError says which NAD key names the missing link and how to
// get it: the OpenShift guide makes br-2001 with a
// NodeNetworkConfigurationPolicy.
func missingParentError(config ipam.Config, nodeName string) error {
	if config.MasterKey == ipam.KeyBridge {
		return fmt.Errorf(`bridge %q does not exist on node %s: apply the NodeNetworkConfigurationPolicy that creates it, or fix the NAD's "bridge"`, config.Master, nodeName)
	}
	return fmt.Errorf(`master %q does not exist on node %s: connect the node to the migration network through it, or fix the NAD's "master"`, config.Master, nodeName)
}

// ensureLink makes migration0 a macvlan on the NAD's parent, in the NAD's
// mode, holding address, up. An existing migration0 that is set up
// otherwise (another parent or address, left by an older NAD or
// allocation) is made anew. The NAD's mtu is not applied: the macvlan
// takes its parent's MTU.
func ensureLink(node NodeNetwork, config ipam.Config, address netip.Prefix) error {
	present, err := node.Links()
	if err != nil {
		return err
	}
	current, exists := findLink(present, InterfaceName)
	if exists && !fits(current, config.Master, address) {
		if err := node.DeleteLink(InterfaceName); err != nil {
			return err
		}
		exists = false
	}
	if err := node.CreateMacvlan(InterfaceName, config.Master, config.Mode, nil); err != nil {
		if !exists {
			return err
		}
		// It fits but for something Links does not show, such as the
		// macvlan mode: the NAD changed since it was made.
		if err := recreate(node, config); err != nil {
			return err
		}
	}
	if err := node.AddAddress(InterfaceName, address); err != nil {
		return err
	}
	return node.LinkUp(InterfaceName)
}

func recreate(node NodeNetwork, config ipam.Config) error {
	if err := node.DeleteLink(InterfaceName); err != nil {
		return err
	}
	return node.CreateMacvlan(InterfaceName, config.Master, config.Mode, nil)
}

// fits reports whether an existing link is a macvlan on parent whose only
// addresses (link-local ones aside) are address, if any.
func fits(link netlab.Link, parent string, address netip.Prefix) bool {
	if link.Type != "macvlan" || link.Parent != parent {
		return false
	}
	for _, present := range link.Addresses {
		if present != address && !present.Addr().IsLinkLocalUnicast() {
			return false
		}
	}
	return true
}

func findLink(links []netlab.Link, name string) (netlab.Link, bool) {
	index := slices.IndexFunc(links, func(link netlab.Link) bool { return link.Name == name })
	if index < 0 {
		return netlab.Link{}, false
	}
	return links[index], true
}
