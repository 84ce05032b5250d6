package vmiruntime

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
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
