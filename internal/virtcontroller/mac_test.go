package virtcontroller

import (
	"regexp"
	"strconv"
	"testing"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

var macPattern = regexp.MustCompile(`^02(:[0-9a-f]{2}){5}$`)

func TestStableMAC(t *testing.T) {
	mac := StableMAC("ns", "vm", "default")
	if mac != StableMAC("ns", "vm", "default") {
		t.Fatal("not deterministic")
	}
	if !macPattern.MatchString(mac) {
		t.Fatalf("%s is not 02:xx:xx:xx:xx:xx", mac)
	}
	first, _ := strconv.ParseUint(mac[:2], 16, 8)
	if first&0b10 == 0 || first&0b01 != 0 {
		t.Errorf("%s must be locally administered and unicast", mac)
	}
	// A golden value: a change here changes every VM's MAC on upgrade.
	if want := "02:a0:af:08:5f:eb"; mac != want {
		t.Errorf("StableMAC(ns, vm, default) = %s, want %s", mac, want)
	}
	others := map[string]string{
		"namespace": StableMAC("other", "vm", "default"),
		"VM":        StableMAC("ns", "other", "default"),
		"interface": StableMAC("ns", "vm", "other"),
	}
	for what, other := range others {
		if other == mac {
			t.Errorf("another %s gives the same MAC %s", what, mac)
		}
	}
}

func vmWithInterfaces(macs ...string) *kubevirtv1.VirtualMachine {
	vm := testVM(kubevirtv1.RunStrategyAlways)
	for i, mac := range macs {
		vm.Spec.Template.Spec.Domain.Devices.Interfaces = append(vm.Spec.Template.Spec.Domain.Devices.Interfaces,
			kubevirtv1.Interface{Name: "if" + strconv.Itoa(i), MacAddress: mac})
	}
	return vm
}

func TestAssignMACs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		vm       *kubevirtv1.VirtualMachine
		taken    []string
		wantMACs []string
	}{
		{
			name:     "each interface without a MAC gets its stable MAC",
			vm:       vmWithInterfaces("", ""),
			wantMACs: []string{StableMAC("ns", "vm", "if0"), StableMAC("ns", "vm", "if1")},
		},
		{
			name:     "a MAC set by hand stays",
			vm:       vmWithInterfaces("02:00:00:00:00:01", ""),
			wantMACs: []string{"02:00:00:00:00:01", StableMAC("ns", "vm", "if1")},
		},
		{
			name:     "a MAC another VM uses is skipped",
			vm:       vmWithInterfaces(""),
			taken:    []string{StableMAC("ns", "vm", "if0")},
			wantMACs: []string{derivedMAC("ns", "vm", "if0", 1)},
		},
		{
			name:     "the VM's own hand-set MAC counts as taken, in any spelling",
			vm:       vmWithInterfaces("", toDashUpper(StableMAC("ns", "vm", "if0"))),
			wantMACs: []string{derivedMAC("ns", "vm", "if0", 1), toDashUpper(StableMAC("ns", "vm", "if0"))},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			taken := map[string]bool{}
			for _, mac := range tc.taken {
				taken[mac] = true
			}
			var wantAssigned []macAssignment
			for _, iface := range tc.vm.Spec.Template.Spec.Domain.Devices.Interfaces {
				if iface.MacAddress == "" {
					wantAssigned = append(wantAssigned, macAssignment{Interface: iface.Name})
				}
			}
			assigned := assignMACs(tc.vm, taken)
			interfaces := tc.vm.Spec.Template.Spec.Domain.Devices.Interfaces
			for i, want := range tc.wantMACs {
				if interfaces[i].MacAddress != want {
					t.Errorf("interface %d: %s, want %s", i, interfaces[i].MacAddress, want)
				}
			}
			if len(assigned) != len(wantAssigned) {
				t.Fatalf("assigned %v, want one for each of %v", assigned, wantAssigned)
			}
			for i, a := range assigned {
				if a.Interface != wantAssigned[i].Interface || !macPattern.MatchString(a.MAC) {
					t.Errorf("assigned %+v", a)
				}
			}
		})
	}
}

func toDashUpper(mac string) string {
	out := []byte(mac)
	for i, c := range out {
		switch {
		case c == ':':
			out[i] = '-'
		case c >= 'a' && c <= 'f':
			out[i] = c - 'a' + 'A'
		}
	}
	return string(out)
}

func TestMACsInUse(t *testing.T) {
	own := vmWithInterfaces("02:00:00:00:00:01")
	other := vmWithInterfaces("02:00:00:00:00:02")
	other.Name = "other"
	standalone := *testVMI("standalone")
	standalone.Spec.Domain.Devices.Interfaces = []kubevirtv1.Interface{{Name: "x", MacAddress: "02-00-00-00-00-03"}}
	ownVMI := *testVMI("vm")
	ownVMI.Spec.Domain.Devices.Interfaces = []kubevirtv1.Interface{{Name: "x", MacAddress: "02:00:00:00:00:01"}}

	taken := macsInUse("ns", "vm", []kubevirtv1.VirtualMachine{*own, *other}, []kubevirtv1.VirtualMachineInstance{standalone, ownVMI})
	want := map[string]bool{"02:00:00:00:00:02": true, "02:00:00:00:00:03": true}
	if len(taken) != len(want) {
		t.Fatalf("taken = %v, want %v", taken, want)
	}
	for mac := range want {
		if !taken[mac] {
			t.Errorf("%s missing from %v", mac, taken)
		}
	}
}
