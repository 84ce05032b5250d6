package ipam

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
)

// span is an inclusive run of addresses of one family, first <= last.
// Working with runs rather than single addresses keeps allocation and the
// overlap check proportional to the number of excludes and allocations,
// whatever the size of the range.
type span struct{ first, last netip.Addr }

func (s span) String() string {
	if s.first == s.last {
		return s.first.String()
	}
	return s.first.String() + "-" + s.last.String()
}

func (s span) contains(address netip.Addr) bool {
	return s.first.Compare(address) <= 0 && address.Compare(s.last) <= 0
}

func spanOf(prefix netip.Prefix) span {
	return span{prefix.Masked().Addr(), lastAddr(prefix)}
}

// spansString lists spans for messages: "192.168.201.1-192.168.201.127, ...".
func spansString(spans []span) string {
	if len(spans) == 0 {
		return "none"
	}
	texts := make([]string, len(spans))
	for i, s := range spans {
		texts[i] = s.String()
	}
	return strings.Join(texts, ", ")
}

// subtract removes cut from every span.
func subtract(spans []span, cut span) []span {
	var rest []span
	for _, s := range spans {
		if cut.last.Compare(s.first) < 0 || s.last.Compare(cut.first) < 0 || cut.first.Is4() != s.first.Is4() {
			rest = append(rest, s)
			continue
		}
		if s.first.Compare(cut.first) < 0 {
			rest = append(rest, span{s.first, cut.first.Prev()})
		}
		if cut.last.Compare(s.last) < 0 {
			rest = append(rest, span{cut.last.Next(), s.last})
		}
	}
	return rest
}

// intersect is the addresses in both a and b, in order.
func intersect(a, b []span) []span {
	var both []span
	for _, x := range a {
		for _, y := range b {
			first, last := maxAddr(x.first, y.first), minAddr(x.last, y.last)
			if first.Is4() == last.Is4() && first.Compare(last) <= 0 {
				both = append(both, span{first, last})
			}
		}
	}
	slices.SortFunc(both, func(x, y span) int { return x.first.Compare(y.first) })
	return both
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Compare(b) <= 0 {
		return a
	}
	return b
}

// prefixes covers the span exactly with the fewest CIDR blocks.
func (s span) prefixes() []netip.Prefix {
	var blocks []netip.Prefix
	for first := s.first; ; {
		block := largestBlockAt(first, s.last)
		blocks = append(blocks, block)
		end := lastAddr(block)
		if end.Compare(s.last) >= 0 {
			return blocks
		}
		first = end.Next()
	}
}

// largestBlockAt is the widest prefix that starts at first and ends at or
// before last.
func largestBlockAt(first, last netip.Addr) netip.Prefix {
	bits := first.BitLen()
	for bits > 0 {
		wider := netip.PrefixFrom(first, bits-1)
		if wider.Masked().Addr() != first || lastAddr(wider).Compare(last) > 0 {
			break
		}
		bits--
	}
	return netip.PrefixFrom(first, bits)
}

// lastAddr is the highest address of prefix: the broadcast address of an
// IPv4 network.
func lastAddr(prefix netip.Prefix) netip.Addr {
	bytes := prefix.Masked().Addr().As16()
	hostBits := prefix.Addr().BitLen() - prefix.Bits()
	for i := 15; hostBits > 0; i-- {
		take := min(hostBits, 8)
		bytes[i] |= byte(1<<take - 1)
		hostBits -= take
	}
	return sameFamily(netip.AddrFrom16(bytes), prefix.Addr())
}

// offset is address's distance from network's first address. It is exact
// for ranges of up to 2^64 addresses (see maxHostBits), whose addresses
// differ only in their low 64 bits.
func offset(network netip.Prefix, address netip.Addr) uint64 {
	return low64(address) - low64(network.Addr())
}

// addressAt is the inverse of offset. The result may fall outside network
// if offset is too large; callers check.
func addressAt(network netip.Prefix, offset uint64) netip.Addr {
	bytes := network.Addr().As16()
	binary.BigEndian.PutUint64(bytes[8:], low64(network.Addr())+offset)
	return sameFamily(netip.AddrFrom16(bytes), network.Addr())
}

func low64(address netip.Addr) uint64 {
	bytes := address.As16()
	return binary.BigEndian.Uint64(bytes[8:])
}

// sameFamily unmaps address when like is IPv4 (As16 maps IPv4 addresses
// into IPv6).
func sameFamily(address, like netip.Addr) netip.Addr {
	if like.Is4() {
		return address.Unmap()
	}
	return address
}
