package ipam

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"

	whereaboutsv1alpha1 "github.com/cclm-io/cclm/api/whereabouts/v1alpha1"
)

// ErrPoolExhausted is wrapped by the error of an allocation that found no
// free address.
var ErrPoolExhausted = errors.New("address pool exhausted")

// Allocations are an IPPool's spec.allocations: holders by the decimal
// offset of their address from the range's network address.
type Allocations = map[string]whereaboutsv1alpha1.IPAllocation

// assignable is every address the IPAM may give out, in order: for
// whereabouts First..Last minus the excludes and the gateway; for static
// the listed addresses; nothing without IPAM.
func (ipam IPAM) assignable() []span {
	switch ipam.Type {
	case TypeWhereabouts:
		spans := []span{{ipam.First, ipam.Last}}
		for _, exclude := range ipam.Exclude {
			spans = subtract(spans, spanOf(exclude))
		}
		if ipam.Gateway.IsValid() {
			spans = subtract(spans, span{ipam.Gateway, ipam.Gateway})
		}
		return spans
	case TypeStatic:
		spans := make([]span, 0, len(ipam.Addresses))
		for _, address := range ipam.Addresses {
			spans = append(spans, span{address.Addr(), address.Addr()})
		}
		slices.SortFunc(spans, func(a, b span) int { return a.first.Compare(b.first) })
		return slices.Compact(spans)
	}
	return nil
}

// isAssignable reports whether the IPAM may give out address.
func (ipam IPAM) isAssignable(address netip.Addr) bool {
	return slices.ContainsFunc(ipam.assignable(), func(s span) bool { return s.contains(address) })
}

// source names the NAD settings the addresses come from, for messages.
func (ipam IPAM) source() string {
	switch ipam.Type {
	case TypeWhereabouts:
		text := "ipam.range " + ipam.Range.String()
		if len(ipam.Exclude) > 0 {
			text += fmt.Sprintf(" excluding %v", ipam.Exclude)
		}
		return text
	case TypeStatic:
		return fmt.Sprintf("ipam.addresses %v", ipam.Addresses)
	}
	return "no ipam"
}

// describe is source plus what it leaves to hand out.
func (ipam IPAM) describe() string {
	return ipam.source() + " (assignable: " + spansString(ipam.assignable()) + ")"
}

// addressOf is the address an allocation key stands for, and whether the
// key is a decimal offset inside the range.
func (ipam IPAM) addressOf(key string) (netip.Addr, bool) {
	offset, err := strconv.ParseUint(key, 10, 64)
	if err != nil {
		return netip.Addr{}, false
	}
	address := addressAt(ipam.Range, offset)
	return address, ipam.Range.Contains(address)
}

// nextFree picks the lowest assignable address that no allocation holds,
// as its offset from the range's network address.
func nextFree(ipam IPAM, allocations Allocations) (uint64, error) {
	if ipam.Type != TypeWhereabouts {
		return 0, fmt.Errorf("ipam.type %q does not allocate from a pool", ipam.Type)
	}
	taken := make(map[netip.Addr]bool, len(allocations))
	for key := range allocations {
		if address, ok := ipam.addressOf(key); ok {
			taken[address] = true
		}
	}
	for _, s := range ipam.assignable() {
		// Each step past s.first skips one taken address, so this loop
		// runs at most len(allocations)+1 times per span.
		for candidate := s.first; s.contains(candidate); candidate = candidate.Next() {
			if !taken[candidate] {
				return offset(ipam.Range, candidate), nil
			}
		}
	}
	return 0, fmt.Errorf("%w: every address of %s is allocated; release some or widen the NAD's ipam range", ErrPoolExhausted, ipam.describe())
}

// reserve gives holder id an address in allocations, modifying the map:
// the one it holds already if that is still assignable (a restarted holder
// gets its own address back), else the lowest free one. Allocations of id
// that the NAD no longer allows (say, a new exclude) are dropped, so that a
// changed NAD takes effect on the next allocation. changed reports whether
// allocations was modified.
func reserve(ipam IPAM, allocations Allocations, holder whereaboutsv1alpha1.IPAllocation) (address netip.Addr, changed bool, err error) {
	for _, key := range slices.Sorted(maps.Keys(allocations)) {
		if allocations[key].ContainerID != holder.ContainerID {
			continue
		}
		held, ok := ipam.addressOf(key)
		if ok && ipam.isAssignable(held) && !address.IsValid() {
			address = held
			continue
		}
		delete(allocations, key)
		changed = true
	}
	if address.IsValid() {
		return address, changed, nil
	}
	free, err := nextFree(ipam, allocations)
	if err != nil {
		return address, changed, err
	}
	allocations[strconv.FormatUint(free, 10)] = holder
	return addressAt(ipam.Range, free), true, nil
}

// release drops every allocation of holder id and reports whether there
// was one.
func release(allocations Allocations, id string) (changed bool) {
	for key, allocation := range allocations {
		if allocation.ContainerID == id {
			delete(allocations, key)
			changed = true
		}
	}
	return changed
}
