package nmstate

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/cclm-io/cclm/internal/netlab"
)

// netlinkHost is linkHost inside a lab node's network namespace: every
// call switches a locked thread into the namespace (netlab's Do) and uses
// netlink there.
type netlinkHost struct{ node *netlab.Node }

func (h netlinkHost) do(fn func() error) error { return h.node.Do(fn) }

func (h netlinkHost) links() (map[string]hostLink, error) {
	out := map[string]hostLink{}
	err := h.do(func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		names := map[int]string{}
		for _, link := range links {
			names[link.Attrs().Index] = link.Attrs().Name
		}
		for _, link := range links {
			attrs := link.Attrs()
			described := hostLink{
				Name:   attrs.Name,
				Kind:   link.Type(),
				Up:     attrs.Flags&net.FlagUp != 0,
				Master: names[attrs.MasterIndex],
				Alias:  attrs.Alias,
			}
			if described.Kind == "bridge" {
				if described.STP, err = netlab.BridgeSTPState(attrs.Index); err != nil {
					return fmt.Errorf("STP state of %s: %w", attrs.Name, err)
				}
			}
			addresses, err := netlink.AddrList(link, netlink.FAMILY_V4)
			if err != nil {
				return fmt.Errorf("addresses of %s: %w", attrs.Name, err)
			}
			for _, address := range addresses {
				if prefix, ok := prefixOfIPNet(address.IPNet); ok {
					described.IPv4 = append(described.IPv4, prefix)
				}
			}
			out[attrs.Name] = described
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the links of %s: %w", h.node, err)
	}
	return out, nil
}

// byName runs fn on a link of the namespace; it must run inside do.
func byName(name string, fn func(netlink.Link) error) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("interface %q: %w", name, err)
	}
	return fn(link)
}

func (h netlinkHost) addBridge(name string) error {
	return h.do(func() error {
		return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}})
	})
}

func (h netlinkHost) deleteLink(name string) error {
	return h.do(func() error { return byName(name, netlink.LinkDel) })
}

func (h netlinkHost) setMaster(name, master string) error {
	return h.do(func() error {
		return byName(name, func(link netlink.Link) error {
			if master == "" {
				return netlink.LinkSetNoMaster(link)
			}
			return byName(master, func(bridge netlink.Link) error { return netlink.LinkSetMaster(link, bridge) })
		})
	})
}

func (h netlinkHost) setUp(name string, up bool) error {
	return h.do(func() error {
		return byName(name, func(link netlink.Link) error {
			if up {
				return netlink.LinkSetUp(link)
			}
			return netlink.LinkSetDown(link)
		})
	})
}

func (h netlinkHost) setAlias(name, alias string) error {
	return h.do(func() error {
		return byName(name, func(link netlink.Link) error { return netlink.LinkSetAlias(link, alias) })
	})
}

func (h netlinkHost) setSTP(bridge string, on bool) error {
	return h.do(func() error {
		return byName(bridge, func(link netlink.Link) error { return netlab.SetBridgeSTP(link.Attrs().Index, on) })
	})
}

func (h netlinkHost) addAddress(name string, address netip.Prefix) error {
	return h.do(func() error {
		return byName(name, func(link netlink.Link) error {
			return netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNetOfPrefix(address)})
		})
	})
}

func (h netlinkHost) delAddress(name string, address netip.Prefix) error {
	return h.do(func() error {
		return byName(name, func(link netlink.Link) error {
			return netlink.AddrDel(link, &netlink.Addr{IPNet: ipNetOfPrefix(address)})
		})
	})
}

func prefixOfIPNet(ipNet *net.IPNet) (netip.Prefix, bool) {
	if ipNet == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(ipNet.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := ipNet.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), bits), true
}

func ipNetOfPrefix(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
