package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The link operations below are idempotent: when the link exists with the
// asked-for configuration they succeed without change, and when it exists
// otherwise they fail saying what differs. Each runs inside the namespace
// through Do, with the netlink package's functions, which open their
// netlink socket on the calling thread, hence in the namespace.

// Link describes an interface inside a namespace.
type Link struct {
	Name      string
	Type      string // "bridge", "veth", "macvlan", "tap", "tun", "device" (loopback), ...
	Master    string // the bridge this link is a port of; "" if none
	Parent    string // a macvlan's lower device; "" for other types
	Up        bool   // administratively up
	OperState string // the kernel's operational state: "up", "down", "unknown", "lower-layer-down", ...
	MAC       net.HardwareAddr
	Addresses []netip.Prefix // IPv4 and IPv6, link-local ones included
}

// Links lists the namespace's interfaces in the kernel's order.
func (ns *Namespace) Links() ([]Link, error) {
	var links []Link
	err := ns.Do(func() (err error) {
		links, err = listLinks()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list the links of %s: %w", ns, err)
	}
	return links, nil
}

// listLinks does Links' work inside the namespace.
func listLinks() ([]Link, error) {
	kernelLinks, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	namesByIndex := make(map[int]string, len(kernelLinks))
	for _, link := range kernelLinks {
		namesByIndex[link.Attrs().Index] = link.Attrs().Name
	}
	links := make([]Link, 0, len(kernelLinks))
	for _, link := range kernelLinks {
		described, err := describeLink(link, namesByIndex)
		if err != nil {
			return nil, err
		}
		links = append(links, described)
	}
	return links, nil
}

func describeLink(link netlink.Link, namesByIndex map[int]string) (Link, error) {
	attrs := link.Attrs()
	described := Link{
		Name:      attrs.Name,
		Type:      linkType(link),
		Master:    namesByIndex[attrs.MasterIndex],
		Up:        attrs.Flags&net.FlagUp != 0,
		OperState: attrs.OperState.String(),
		MAC:       attrs.HardwareAddr,
	}
	if _, isMacvlan := link.(*netlink.Macvlan); isMacvlan {
		described.Parent = namesByIndex[attrs.ParentIndex]
	}
	addresses, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return Link{}, fmt.Errorf("addresses of %q: %w", attrs.Name, err)
	}
	for _, address := range addresses {
		if prefix, ok := prefixOf(address.IPNet); ok {
			described.Addresses = append(described.Addresses, prefix)
		}
	}
	return described, nil
}

// linkType names a link's kind, telling taps from tuns.
func linkType(link netlink.Link) string {
	if tuntap, ok := link.(*netlink.Tuntap); ok {
		if tuntap.Mode == netlink.TUNTAP_MODE_TAP {
			return "tap"
		}
		return "tun"
	}
	return link.Type()
}

// CreateBridge makes a Linux bridge with STP off (as the OpenShift
// guide's NNCP asks), plugs ports into it and brings the bridge and its
// ports up. Every port must exist already and be no other bridge's port.
func (ns *Namespace) CreateBridge(name string, ports ...string) error {
	err := validateLinkName(name)
	if err == nil {
		err = ns.Do(func() error { return ns.createBridge(name, ports) })
	}
	if err != nil {
		return fmt.Errorf("create bridge %q in %s: %w", name, ns, err)
	}
	return nil
}

// createBridge does CreateBridge's work inside the namespace.
func (ns *Namespace) createBridge(name string, ports []string) error {
	// Find every port first so that a wrong name fails before anything
	// changes.
	portLinks := make([]netlink.Link, 0, len(ports))
	for _, port := range ports {
		if port == name {
			return fmt.Errorf("bridge %q cannot be its own port", name)
		}
		link, err := ns.lookupLink("port", port)
		if err != nil {
			return err
		}
		portLinks = append(portLinks, link)
	}
	bridge, err := ns.ensureBridge(name)
	if err != nil {
		return err
	}
	for _, port := range portLinks {
		if err := ns.plugIntoBridge(port, bridge); err != nil {
			return err
		}
	}
	return netlink.LinkSetUp(bridge)
}

// ensureBridge finds or makes the bridge and switches its STP off.
func (ns *Namespace) ensureBridge(name string) (netlink.Link, error) {
	link, err := netlink.LinkByName(name)
	switch {
	case err == nil:
		if _, isBridge := link.(*netlink.Bridge); !isBridge {
			return nil, fmt.Errorf("%q exists in %s as a %s, not a bridge", name, ns, linkType(link))
		}
	case isLinkNotFound(err):
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			return nil, err
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	// STP is off by default on a new kernel bridge; an existing one may have
	// it on, and STP would hold new ports in "listening" for seconds.
	if err := SetBridgeSTP(link.Attrs().Index, false); err != nil {
		return nil, fmt.Errorf("switch STP off on %q: %w", name, err)
	}
	return link, nil
}

// SetBridgeSTP sets IFLA_BR_STP_STATE (`ip link set BR type bridge
// stp_state N`), which the netlink package's Bridge does not cover. Call
// it inside the bridge's network namespace (Namespace.Do).
func SetBridgeSTP(index int, on bool) error {
	state := uint32(0)
	if on {
		state = 1
	}
	request := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	message := nl.NewIfInfomsg(unix.AF_UNSPEC)
	message.Index = int32(index)
	request.AddData(message)
	linkInfo := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	linkInfo.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := linkInfo.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_STP_STATE, nl.Uint32Attr(state))
	request.AddData(linkInfo)
	_, err := request.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// BridgeSTPState reads IFLA_BR_STP_STATE of a bridge, inside its network
// namespace.
func BridgeSTPState(index int) (bool, error) {
	request := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	message := nl.NewIfInfomsg(unix.AF_UNSPEC)
	message.Index = int32(index)
	request.AddData(message)
	replies, err := request.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return false, err
	}
	for _, reply := range replies {
		if len(reply) < unix.SizeofIfInfomsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(reply[unix.SizeofIfInfomsg:])
		if err != nil {
			return false, err
		}
		for _, attr := range attrs {
			if attr.Attr.Type != unix.IFLA_LINKINFO {
				continue
			}
			infos, err := nl.ParseRouteAttr(attr.Value)
			if err != nil {
				return false, err
			}
			for _, info := range infos {
				if info.Attr.Type != nl.IFLA_INFO_DATA {
					continue
				}
				data, err := nl.ParseRouteAttr(info.Value)
				if err != nil {
					return false, err
				}
				for _, d := range data {
					if d.Attr.Type == nl.IFLA_BR_STP_STATE && len(d.Value) >= 4 {
						return native.Uint32(d.Value[:4]) != 0, nil
					}
				}
			}
		}
	}
	return false, nil
}

var native = nl.NativeEndian()

// plugIntoBridge makes port a port of bridge (unless it is already) and
// brings it up.
func (ns *Namespace) plugIntoBridge(port, bridge netlink.Link) error {
	portName, bridgeName := port.Attrs().Name, bridge.Attrs().Name
	switch master := port.Attrs().MasterIndex; master {
	case bridge.Attrs().Index:
	case 0:
		if err := netlink.LinkSetMaster(port, bridge); err != nil {
			return fmt.Errorf("plug %q into %q: %w", portName, bridgeName, err)
		}
	default:
		return fmt.Errorf("port %q cannot join %q: it is already a port of %s in %s", portName, bridgeName, linkNameByIndex(master), ns)
	}
	return netlink.LinkSetUp(port)
}

// CreateTap makes a persistent tap for QEMU's `-netdev tap,ifname=NAME,
// script=no,downscript=no`, owned by ownerUID (0 when QEMU runs as root; a
// process with CAP_NET_ADMIN may open it anyway), plugs it into bridge
// unless bridge is "" and brings it up. Its operational state stays down
// (NO-CARRIER) until QEMU opens it. The tap is single-queue: QEMU must not
// ask for queues > 1 on it.
func (ns *Namespace) CreateTap(name, bridge string, ownerUID uint32) error {
	err := validateLinkName(name)
	if err == nil {
		err = ns.Do(func() error { return ns.createTap(name, bridge, ownerUID) })
	}
	if err != nil {
		return fmt.Errorf("create tap %q in %s: %w", name, ns, err)
	}
	return nil
}

// createTap does CreateTap's work inside the namespace.
func (ns *Namespace) createTap(name, bridge string, ownerUID uint32) error {
	var bridgeLink netlink.Link
	if bridge != "" {
		var err error
		if bridgeLink, err = ns.lookupBridge(bridge); err != nil {
			return err
		}
	}
	tap, err := ns.ensureTap(name, ownerUID)
	if err != nil {
		return err
	}
	if bridgeLink != nil {
		return ns.plugIntoBridge(tap, bridgeLink)
	}
	return netlink.LinkSetUp(tap)
}

// ensureTap finds or makes the persistent tap. Taps are made with an ioctl
// on /dev/net/tun, not with netlink, which is why this must run on a thread
// inside the namespace.
func (ns *Namespace) ensureTap(name string, ownerUID uint32) (netlink.Link, error) {
	link, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		tap := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: name},
			Mode:      netlink.TUNTAP_MODE_TAP,
			Owner:     ownerUID,
		}
		if err := netlink.LinkAdd(tap); err != nil {
			return nil, err
		}
		return netlink.LinkByName(name)
	}
	if err != nil {
		return nil, err
	}
	tap, isTuntap := link.(*netlink.Tuntap)
	switch {
	case !isTuntap || tap.Mode != netlink.TUNTAP_MODE_TAP:
		return nil, fmt.Errorf("%q exists in %s as a %s, not a tap", name, ns, linkType(link))
	case tap.NonPersist:
		return nil, fmt.Errorf("tap %q exists in %s but is not persistent (some process made it and holds it)", name, ns)
	case tap.Owner != ownerUID:
		return nil, fmt.Errorf("tap %q exists in %s owned by uid %d, not %d", name, ns, tap.Owner, ownerUID)
	}
	return link, nil
}

// macvlanModes are the modes a NetworkAttachmentDefinition's macvlan
// "mode" may name; "" means bridge, as in the macvlan CNI plugin.
var macvlanModes = map[string]netlink.MacvlanMode{
	"":         netlink.MACVLAN_MODE_BRIDGE,
	"bridge":   netlink.MACVLAN_MODE_BRIDGE,
	"private":  netlink.MACVLAN_MODE_PRIVATE,
	"vepa":     netlink.MACVLAN_MODE_VEPA,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

// CreateMacvlan makes a macvlan on master (a bridge such as br-2001, or a
// veth) in mode ("bridge", "private", "vepa" or "passthru"; "" = bridge),
// with mac as its address, or a random one if mac is nil. It does not bring
// the link up: add its addresses, then call LinkUp.
func (ns *Namespace) CreateMacvlan(name, master, mode string, mac net.HardwareAddr) error {
	err := validateLinkName(name)
	if err == nil {
		err = ns.Do(func() error { return ns.createMacvlan(name, master, mode, mac) })
	}
	if err != nil {
		return fmt.Errorf("create macvlan %q on %q in %s: %w", name, master, ns, err)
	}
	return nil
}

// createMacvlan does CreateMacvlan's work inside the namespace.
func (ns *Namespace) createMacvlan(name, master, mode string, mac net.HardwareAddr) error {
	macvlanMode, known := macvlanModes[mode]
	if !known {
		return fmt.Errorf("macvlan mode %q is not one of bridge, private, vepa, passthru", mode)
	}
	parent, err := ns.lookupLink("master", master)
	if err != nil {
		return err
	}
	if bridge := parent.Attrs().MasterIndex; bridge != 0 {
		// The kernel answers EBUSY: a bridge port's frames go to the bridge.
		return fmt.Errorf("master %q is a port of %s in %s; put the macvlan on that bridge instead", master, linkNameByIndex(bridge), ns)
	}
	return ns.ensureMacvlan(name, parent, macvlanMode, mac)
}

// macvlanModeName names a mode as a NetworkAttachmentDefinition does.
func macvlanModeName(mode netlink.MacvlanMode) string {
	for name, known := range macvlanModes {
		if known == mode && name != "" {
			return name
		}
	}
	return fmt.Sprintf("#%d", mode)
}

func (ns *Namespace) ensureMacvlan(name string, parent netlink.Link, mode netlink.MacvlanMode, mac net.HardwareAddr) error {
	link, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return netlink.LinkAdd(&netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index, HardwareAddr: mac},
			Mode:      mode,
		})
	}
	if err != nil {
		return err
	}
	macvlan, isMacvlan := link.(*netlink.Macvlan)
	switch {
	case !isMacvlan:
		return fmt.Errorf("%q exists in %s as a %s, not a macvlan", name, ns, linkType(link))
	case macvlan.ParentIndex != parent.Attrs().Index:
		return fmt.Errorf("macvlan %q exists in %s on another master (link #%d)", name, ns, macvlan.ParentIndex)
	case macvlan.Mode != mode:
		return fmt.Errorf("macvlan %q exists in %s in mode %s, not %s", name, ns, macvlanModeName(macvlan.Mode), macvlanModeName(mode))
	case mac != nil && !slices.Equal(macvlan.HardwareAddr, mac):
		return fmt.Errorf("macvlan %q exists in %s with MAC %s, not %s", name, ns, macvlan.HardwareAddr, mac)
	}
	return nil
}

// AddAddress adds an address such as 192.168.201.1/24 to a link. The same
// address with the same prefix length is fine; with another length it is
// an error rather than a second address.
func (ns *Namespace) AddAddress(linkName string, address netip.Prefix) error {
	err := ns.Do(func() error { return ns.addAddress(linkName, address) })
	if err != nil {
		return fmt.Errorf("add address %s to %q in %s: %w", address, linkName, ns, err)
	}
	return nil
}

// addAddress does AddAddress's work inside the namespace.
func (ns *Namespace) addAddress(linkName string, address netip.Prefix) error {
	if !address.IsValid() {
		return fmt.Errorf("address %v is not valid", address)
	}
	link, err := ns.lookupLink("link", linkName)
	if err != nil {
		return err
	}
	existing, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, present := range existing {
		prefix, ok := prefixOf(present.IPNet)
		if !ok || prefix.Addr() != address.Addr() {
			continue
		}
		if prefix.Bits() == address.Bits() {
			return nil
		}
		return fmt.Errorf("%q already has %s", linkName, prefix)
	}
	return netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNetOf(address)})
}

// LinkUp brings a link administratively up.
func (ns *Namespace) LinkUp(name string) error {
	return ns.setLinkState(name, "up", netlink.LinkSetUp)
}

// LinkDown brings a link administratively down: what a pulled cable or a
// switch port shut does to the traffic through it (the fault suite cuts a
// node's migration uplink with it).
func (ns *Namespace) LinkDown(name string) error {
	return ns.setLinkState(name, "down", netlink.LinkSetDown)
}

func (ns *Namespace) setLinkState(name, state string, set func(netlink.Link) error) error {
	err := ns.Do(func() error {
		link, err := ns.lookupLink("link", name)
		if err != nil {
			return err
		}
		return set(link)
	})
	if err != nil {
		return fmt.Errorf("bring %q %s in %s: %w", name, state, ns, err)
	}
	return nil
}

// DeleteLink deletes a link (a persistent tap too); a missing one is fine.
// Deleting a veth end deletes its peer, wherever that is.
func (ns *Namespace) DeleteLink(name string) error {
	err := ns.Do(func() error {
		link, err := netlink.LinkByName(name)
		if isLinkNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return netlink.LinkDel(link)
	})
	if err != nil {
		return fmt.Errorf("delete %q in %s: %w", name, ns, err)
	}
	return nil
}

// lookupLink finds a link by name, saying in which role it was wanted when
// it is missing, e.g. `port "enp3s0" does not exist in node ocp7-worker-0`.
// It must run inside Do.
func (ns *Namespace) lookupLink(role, name string) (netlink.Link, error) {
	link, err := netlink.LinkByName(name)
	if isLinkNotFound(err) {
		return nil, fmt.Errorf("%s %q does not exist in %s", role, name, ns)
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s %q: %w", role, name, err)
	}
	return link, nil
}

// lookupBridge is lookupLink for a link that must be a bridge.
func (ns *Namespace) lookupBridge(name string) (netlink.Link, error) {
	link, err := ns.lookupLink("bridge", name)
	if err != nil {
		return nil, err
	}
	if _, isBridge := link.(*netlink.Bridge); !isBridge {
		return nil, fmt.Errorf("%q in %s is a %s, not a bridge", name, ns, linkType(link))
	}
	return link, nil
}

// linkNameByIndex names a link for messages: quoted name, or its index if
// it cannot be found. It must run inside Do.
func linkNameByIndex(index int) string {
	if link, err := netlink.LinkByIndex(index); err == nil {
		return fmt.Sprintf("%q", link.Attrs().Name)
	}
	return fmt.Sprintf("link #%d", index)
}

func isLinkNotFound(err error) bool {
	var notFound netlink.LinkNotFoundError
	return errors.As(err, &notFound)
}

// prefixOf converts a kernel address (host address plus prefix length) to
// a netip.Prefix without masking the host bits away.
func prefixOf(ipNet *net.IPNet) (netip.Prefix, bool) {
	if ipNet == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(ipNet.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	bits, _ := ipNet.Mask.Size()
	return netip.PrefixFrom(addr, bits), true
}

// ipNetOf is the inverse of prefixOf.
func ipNetOf(address netip.Prefix) *net.IPNet {
	return &net.IPNet{
		IP:   net.IP(address.Addr().AsSlice()),
		Mask: net.CIDRMask(address.Bits(), address.Addr().BitLen()),
	}
}
