package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// maxHostBits bounds a range's size: offsets in a pool are uint64, so a
// range may hold at most 2^64 addresses (an IPv6 /64).
const maxHostBits = 64

// whereabouts validates a whereabouts ipam section and works out the
// bounds of what it hands out.
func (raw *rawIPAM) whereabouts() (IPAM, error) {
	if len(raw.IPRanges) > 0 && string(raw.IPRanges) != "null" {
		return IPAM{}, errors.New("ipam.ipRanges is not supported; use a single ipam.range (with ipam.exclude to leave parts of it out)")
	}
	if raw.Range == "" {
		return IPAM{}, errors.New(`ipam.range is missing; set the range to allocate from, e.g. "range": "192.168.201.0/24"`)
	}
	network, start, end, err := raw.rangeBounds()
	if err != nil {
		return IPAM{}, err
	}
	ipam := IPAM{Type: TypeWhereabouts, Range: network, NetworkName: raw.NetworkName}
	if ipam.First, ipam.Last, err = usableBounds(network, start, end); err != nil {
		return IPAM{}, err
	}
	if ipam.Exclude, err = parseExcludes(raw.Exclude, network); err != nil {
		return IPAM{}, err
	}
	if ipam.Gateway, err = parseGateway(raw.Gateway, network); err != nil {
		return IPAM{}, err
	}
	if err := validatePoolName(ipam); err != nil {
		return IPAM{}, err
	}
	return ipam, nil
}

// rangeBounds reads "range" (a CIDR, or whereabouts' "start-end/bits"),
// "range_start" and "range_end". start and end are invalid when unset.
func (raw *rawIPAM) rangeBounds() (network netip.Prefix, start, end netip.Addr, err error) {
	network, start, end, err = parseRange(raw.Range)
	if err != nil {
		return network, start, end, err
	}
	if raw.RangeStart != "" {
		if start.IsValid() {
			return network, start, end, fmt.Errorf("ipam.range %q already sets the start; drop ipam.range_start or the start in ipam.range", raw.Range)
		}
		if start, err = parseBound("range_start", raw.RangeStart, network); err != nil {
			return network, start, end, err
		}
	}
	if raw.RangeEnd != "" {
		if end.IsValid() {
			return network, start, end, fmt.Errorf("ipam.range %q already sets the end; drop ipam.range_end or the end in ipam.range", raw.Range)
		}
		if end, err = parseBound("range_end", raw.RangeEnd, network); err != nil {
			return network, start, end, err
		}
	}
	return network, start, end, nil
}

// parseRange parses "192.168.201.0/24", or "192.168.201.10-192.168.201.20/24"
// (whereabouts' way of giving start and end in the range). Host bits of the
// CIDR are dropped, as whereabouts does.
func parseRange(text string) (network netip.Prefix, start, end netip.Addr, err error) {
	const example = "use e.g. 192.168.201.0/24 or 192.168.201.10-192.168.201.20/24"
	startText, cidrText, hasStart := strings.Cut(text, "-")
	if !hasStart {
		cidrText = text
	}
	prefix, err := netip.ParsePrefix(cidrText)
	if err != nil {
		return network, start, end, fmt.Errorf("ipam.range %q: not a CIDR; %s", text, example)
	}
	network = prefix.Masked()
	if err := validateRangeSize(text, network); err != nil {
		return network, start, end, err
	}
	if !hasStart {
		return network, start, end, nil
	}
	if start, err = netip.ParseAddr(startText); err != nil || !network.Contains(start) {
		return network, start, end, fmt.Errorf("ipam.range %q: %q is not an address in %s; %s", text, startText, network, example)
	}
	return network, start, prefix.Addr(), nil
}

func validateRangeSize(text string, network netip.Prefix) error {
	hostBits := network.Addr().BitLen() - network.Bits()
	if hostBits > maxHostBits {
		return fmt.Errorf("ipam.range %q: more than 2^%d addresses; use a /%d or longer prefix", text, maxHostBits, network.Addr().BitLen()-maxHostBits)
	}
	if hostBits < 2 {
		return fmt.Errorf("ipam.range %q: a /%d has no address besides the network and broadcast addresses; use a /%d or shorter prefix", text, network.Bits(), network.Addr().BitLen()-2)
	}
	return nil
}

// parseBound parses range_start or range_end, which must lie in network.
func parseBound(key, text string, network netip.Prefix) (netip.Addr, error) {
	address, err := netip.ParseAddr(text)
	if err != nil {
		return address, fmt.Errorf("ipam.%s %q: not an address; use e.g. %s", key, text, network.Addr().Next())
	}
	if !network.Contains(address) {
		return address, fmt.Errorf("ipam.%s %s is outside ipam.range %s", key, address, network)
	}
	return address, nil
}

// usableBounds narrows start..end (invalid = unset) to what may be handed
// out: never the network or the broadcast address.
func usableBounds(network netip.Prefix, start, end netip.Addr) (first, last netip.Addr, err error) {
	first, last = network.Addr().Next(), lastAddr(network).Prev()
	if start.IsValid() && start.Compare(first) > 0 {
		first = start
	}
	if end.IsValid() && end.Compare(last) < 0 {
		last = end
	}
	if first.Compare(last) > 0 {
		return first, last, fmt.Errorf("ipam: the range from %s to %s in %s holds no address to hand out (the network and broadcast addresses never are); fix ipam.range_start / ipam.range_end",
			orBound(start, network.Addr()), orBound(end, lastAddr(network)), network)
	}
	return first, last, nil
}

func orBound(given, otherwise netip.Addr) netip.Addr {
	if given.IsValid() {
		return given
	}
	return otherwise
}

// parseExcludes reads "exclude": CIDRs, or single addresses (which
// whereabouts takes as /32 or /128).
func parseExcludes(texts []string, network netip.Prefix) ([]netip.Prefix, error) {
	excludes := make([]netip.Prefix, 0, len(texts))
	for i, text := range texts {
		exclude, err := parseCIDROrAddress(strings.TrimSpace(text))
		if err != nil {
			return nil, fmt.Errorf("ipam.exclude[%d] %q: not a CIDR or an address; use e.g. 192.168.201.128/25 or 192.168.201.5", i, text)
		}
		if exclude.Addr().Is4() != network.Addr().Is4() {
			return nil, fmt.Errorf("ipam.exclude[%d] %s is not of the family of ipam.range %s", i, exclude, network)
		}
		excludes = append(excludes, exclude.Masked())
	}
	return excludes, nil
}

func parseCIDROrAddress(text string) (netip.Prefix, error) {
	if address, err := netip.ParseAddr(text); err == nil {
		return netip.PrefixFrom(address, address.BitLen()), nil
	}
	return netip.ParsePrefix(text)
}

func parseGateway(text string, network netip.Prefix) (netip.Addr, error) {
	if text == "" {
		return netip.Addr{}, nil
	}
	gateway, err := netip.ParseAddr(text)
	if err != nil {
		return gateway, fmt.Errorf("ipam.gateway %q: not an address; use e.g. %s", text, network.Addr().Next())
	}
	if !network.Contains(gateway) {
		return gateway, fmt.Errorf("ipam.gateway %s is outside ipam.range %s", gateway, network)
	}
	return gateway, nil
}

// validatePoolName checks that the pool's name is a valid object name,
// which only network_name can spoil.
func validatePoolName(ipam IPAM) error {
	name := ipam.PoolName()
	if problems := validation.IsDNS1123Subdomain(name); len(problems) > 0 {
		return fmt.Errorf("ipam.network_name %q makes the pool name %q, which is not a valid object name (%s); use lower-case letters, digits and '-'",
			ipam.NetworkName, name, strings.Join(problems, "; "))
	}
	return nil
}

// PoolName is the name of the IPPool holding the range's allocations,
// as whereabouts names it: the range's CIDR with ":" and "/" replaced by
// "-" (192.168.201.0/24 -> 192.168.201.0-24), after network_name and "-"
// if the NAD sets one.
func (ipam IPAM) PoolName() string {
	name := strings.NewReplacer(":", "-", "/", "-").Replace(ipam.Range.String())
	if ipam.NetworkName != "" {
		name = ipam.NetworkName + "-" + name
	}
	return name
}
