package nodeagent

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	"github.com/cclm-io/cclm/internal/qemu"
)

// FuzzBuildDomain feeds the node agent VMI specs as a user (or a peer
// cluster, for a migration target) could write them. Turning one into a
// QEMU domain must never panic; a spec it accepts has the memory the spec
// asks for (at least 16 MiB), boots the built-in guest, gives every NIC a
// MAC and tap, and builds the same domain twice; the QEMU command line
// built from it either fails with an error or carries no option injected
// through a spec string.
//
//	go test -fuzz FuzzBuildDomain ./internal/nodeagent
func FuzzBuildDomain(f *testing.F) {
	seed, err := json.Marshal(testVMI().Spec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		`{"domain":{"memory":{"guest":"1E"},"devices":{"disks":[{"name":"root"}]}},"volumes":[{"name":"root","containerDisk":{"image":"cclm/guest"}}]}`,
		`{"domain":{"resources":{"requests":{"memory":"64M"}},"devices":{"disks":[{"name":"root"}],"interfaces":[{"name":"a,b","macAddress":"02:00:00:00:00:01:02:03"}]}},"volumes":[{"name":"root","containerDisk":{"image":"cclm/guest"}}]}`,
		`{"domain":{"memory":{"guest":"128Mi"},"machine":{"type":"q35,accel=tcg"},"cpu":{"model":"host,+x","sockets":4294967295,"features":[{"name":"avx2","policy":"x"}]},"devices":{"disks":[{"name":"root","serial":"a,b=c","bootOrder":-1},{"name":"data"}]}},"volumes":[{"name":"root","containerDisk":{"image":"cclm/guest"}},{"name":"data","dataVolume":{"name":"d"}}]}`,
		`{"domain":{"memory":{"guest":"-1"}}}`,
		`{"domain":{"memory":{"guest":"15Mi"}}}`,
		`{}`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vmi := testVMI()
		vmi.Spec = kubevirtv1.VirtualMachineInstanceSpec{}
		if err := json.Unmarshal(data, &vmi.Spec); err != nil {
			return
		}
		in := testInputs()
		dom, err := buildDomain(vmi, in)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error says nothing")
			}
			return
		}
		if want := vmi.Spec.GuestMemoryBytes() >> 20; dom.MemoryMiB < 16 || int64(dom.MemoryMiB) != want {
			t.Fatalf("memory %d MiB for a spec asking %d bytes", dom.MemoryMiB, vmi.Spec.GuestMemoryBytes())
		}
		if dom.Boot.Kernel != in.Guest.Kernel {
			t.Fatalf("accepted a spec that does not boot the built-in guest: %+v", dom.Boot)
		}
		if len(dom.NICs) != len(vmi.Spec.Domain.Devices.Interfaces) {
			t.Fatalf("%d NICs for %d interfaces", len(dom.NICs), len(vmi.Spec.Domain.Devices.Interfaces))
		}
		for _, nic := range dom.NICs {
			if nic.MAC == "" || len(nic.Tap) > 15 || !strings.HasPrefix(nic.Tap, "tap") {
				t.Fatalf("NIC %+v", nic)
			}
		}
		for _, disk := range dom.Disks {
			if !slices.Contains(slices.Collect(maps.Values(in.DiskPaths)), disk.Path) {
				t.Fatalf("disk %+v is backed by a file the node did not provision", disk)
			}
		}
		again, err := buildDomain(vmi, in)
		if err != nil || !reflect.DeepEqual(dom, again) {
			t.Fatalf("building twice differs: %v\n%+v\n%+v", err, dom, again)
		}
		argv, err := qemu.CommandLine(dom, qemu.AccelTCG, qemu.Options{})
		if err != nil {
			return
		}
		if err := dom.Validate(); err != nil {
			t.Fatalf("a command line for an invalid domain: %v", err)
		}
		for _, arg := range argv {
			if strings.ContainsAny(arg, "\n\x00") {
				t.Fatalf("argument %q carries a newline or NUL", arg)
			}
		}
	})
}

// FuzzApplyDesiredState applies arbitrary nmstate desired states (an NNCP
// is written by a cluster admin, but parsed on every node) to a node in
// memory: it must never panic; a failed apply leaves the node exactly as
// it was; a successful one is idempotent (applying it again changes
// nothing) and leaves every up interface with exactly its desired IPv4
// addresses.
//
//	go test -fuzz FuzzApplyDesiredState ./internal/nodeagent
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
