package ipam

import (
	"fmt"
	"net/netip"
)

// Overlap lists, as CIDR blocks, the addresses that both configurations
// could hand out. Two clusters whose migration NADs share an L2 segment
// must have none: each cluster's whereabouts only knows its own IPPool, so
// an address both may assign could end up on two nodes at once.
func Overlap(a, b Config) []netip.Prefix {
	var blocks []netip.Prefix
	for _, s := range intersect(a.IPAM.assignable(), b.IPAM.assignable()) {
		blocks = append(blocks, s.prefixes()...)
	}
	return blocks
}

// Disjoint returns nil when a and b can never hand out the same address,
// and otherwise an error naming the addresses both could, with a fix.
func Disjoint(a, b Config) error {
	both := intersect(a.IPAM.assignable(), b.IPAM.assignable())
	if len(both) == 0 {
		return nil
	}
	return fmt.Errorf("both NADs can hand out %s (one has %s, the other %s), so two nodes on the shared segment could get the same address; %s",
		spansString(both), a.IPAM.source(), b.IPAM.source(), splitAdvice(a.IPAM, b.IPAM))
}

// SharedAddresses lists, as ranges ("192.168.201.1-192.168.201.127"), the
// addresses both configurations could hand out; "none" if they are
// disjoint.
func SharedAddresses(a, b Config) string {
	return spansString(intersect(a.IPAM.assignable(), b.IPAM.assignable()))
}

// DisjointAdvice says how to make a and b disjoint (Disjoint's fix alone,
// for callers that show the problem and its fix apart).
func DisjointAdvice(a, b Config) string { return splitAdvice(a.IPAM, b.IPAM) }

// splitAdvice suggests how to make two IPAMs disjoint; for one range
// shared by both, the OpenShift guide's way: each NAD excludes the other's
// half.
func splitAdvice(a, b IPAM) string {
	if a.Type != TypeWhereabouts || b.Type != TypeWhereabouts || a.Range != b.Range {
		return "give each cluster addresses of its own (ipam.range, range_start/range_end or exclude)"
	}
	lower := netip.PrefixFrom(a.Range.Addr(), a.Range.Bits()+1)
	upper := netip.PrefixFrom(lastAddr(a.Range), a.Range.Bits()+1).Masked()
	return fmt.Sprintf("give each cluster its own part of %s, e.g. \"exclude\": [\"%s\"] in one NAD and [\"%s\"] in the other", a.Range, upper, lower)
}
