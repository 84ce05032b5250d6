package virtcontroller

import (
	"crypto/sha256"
	"fmt"
	"strings"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// StableMAC is the MAC an interface gets when nothing else claims it:
// derived from namespace, VM and interface name, so that it is the same on
// every run, after a restart and in the other cluster after a migration
// (the MAC is written into the VM, which the migration copies). The first
// octet 02 makes it locally administered and unicast, so it never clashes
// with a vendor's address.
func StableMAC(namespace, vmName, iface string) string {
	return derivedMAC(namespace, vmName, iface, 0)
}

// derivedMAC is StableMAC's attempt-th candidate; later attempts are used
// only when an earlier one is taken by another VM (a hash collision).
func derivedMAC(namespace, vmName, iface string, attempt int) string {
	// Namespace and VM names cannot contain "/", so the seed is unambiguous.
	seed := namespace + "/" + vmName + "/" + iface
	if attempt > 0 {
		seed = fmt.Sprintf("%s#%d", seed, attempt)
	}
	sum := sha256.Sum256([]byte(seed))
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", sum[0], sum[1], sum[2], sum[3], sum[4])
}

// normalizeMAC makes MACs comparable: lower case, colon separated.
func normalizeMAC(mac string) string {
	return strings.ReplaceAll(strings.ToLower(mac), "-", ":")
}

// macAssignment is one MAC the controller gave an interface.
type macAssignment struct {
	Interface string
	MAC       string
}

// assignMACs gives every interface of the VM's template that has no MAC the
// first derived MAC that is not in taken (the MACs of all other VMs and
// VMIs), writes it into the template and returns what it assigned. taken
// is extended with the VM's own MACs as it goes.
func assignMACs(vm *kubevirtv1.VirtualMachine, taken map[string]bool) []macAssignment {
	if vm.Spec.Template == nil {
		return nil
	}
	interfaces := vm.Spec.Template.Spec.Domain.Devices.Interfaces
	for _, iface := range interfaces {
		if iface.MacAddress != "" {
			taken[normalizeMAC(iface.MacAddress)] = true
		}
	}
	var assigned []macAssignment
	for i := range interfaces {
		if interfaces[i].MacAddress != "" {
			continue
		}
		mac := firstFreeMAC(vm.Namespace, vm.Name, interfaces[i].Name, taken)
		interfaces[i].MacAddress = mac
		taken[mac] = true
		assigned = append(assigned, macAssignment{Interface: interfaces[i].Name, MAC: mac})
	}
	return assigned
}

// maxMACAttempts bounds the search; 40 random bits make even the second
// attempt improbable, so running out means something is wrong.
const maxMACAttempts = 64

func firstFreeMAC(namespace, vmName, iface string, taken map[string]bool) string {
	for attempt := 0; attempt < maxMACAttempts; attempt++ {
		if mac := derivedMAC(namespace, vmName, iface, attempt); !taken[mac] {
			return mac
		}
	}
	// Unreachable in practice; the stable MAC is then the least bad answer.
	return StableMAC(namespace, vmName, iface)
}

// macsInUse collects the MACs of VMs and VMIs other than the VM named
// namespace/name (whose own MACs assignMACs handles).
func macsInUse(namespace, name string, vms []kubevirtv1.VirtualMachine, vmis []kubevirtv1.VirtualMachineInstance) map[string]bool {
	taken := map[string]bool{}
	isOwn := func(ns, n string) bool { return ns == namespace && n == name }
	for i := range vms {
		if isOwn(vms[i].Namespace, vms[i].Name) || vms[i].Spec.Template == nil {
			continue
		}
		addMACs(taken, vms[i].Spec.Template.Spec.Domain.Devices.Interfaces)
	}
	for i := range vmis {
		// The VM's own VMI carries the VM's MACs; other VMIs may be
		// standalone with hand-set MACs.
		if !isOwn(vmis[i].Namespace, vmis[i].Name) {
			addMACs(taken, vmis[i].Spec.Domain.Devices.Interfaces)
		}
	}
	return taken
}

func addMACs(taken map[string]bool, interfaces []kubevirtv1.Interface) {
	for _, iface := range interfaces {
		if iface.MacAddress != "" {
			taken[normalizeMAC(iface.MacAddress)] = true
		}
	}
}
