package vmiruntime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/qemu"
)

// GuestImage names the built-in guest the nodes can boot: a containerDisk
// whose image contains this string boots bin/guest's kernel and initramfs.
// cclm nodes have no image registry to pull other images from.
const GuestImage = "cclm/guest"

// GuestFiles are the built-in guest's boot files on this node.
type GuestFiles struct {
	Kernel, Initrd string
}

// domainInputs is what turning a VMI into a QEMU Domain needs besides the
// VMI: facts of this node, resolved by the caller.
type domainInputs struct {
	RunDir string
	Guest  GuestFiles
	// DiskPaths maps a volume name to the raw file backing it.
	DiskPaths map[string]string
	// VMNetwork is the prefix guests' addresses come from on the VM network.
	VMNetwork netip.Prefix
}

// buildDomain is pure: the same VMI and inputs give the same Domain, which
// is what lets a migration target start with exactly the source's devices.
func buildDomain(vmi *kubevirtv1.VirtualMachineInstance, in domainInputs) (qemu.Domain, error) {
	spec := vmi.Spec
	memory, err := guestMemoryMiB(&spec)
	if err != nil {
		return qemu.Domain{}, err
	}
	dom := qemu.Domain{
		Name:      domainName(vmi),
		UUID:      domainUUID(vmi),
		MemoryMiB: memory,
		RunDir:    in.RunDir,
		CPU:       domainCPU(spec.Domain.CPU),
	}
	if spec.Domain.Machine != nil {
		dom.Machine = spec.Domain.Machine.Type
	}
	volumes := map[string]kubevirtv1.Volume{}
	for _, volume := range spec.Volumes {
		volumes[volume.Name] = volume
	}
	var cmdline []string
	for _, disk := range spec.Domain.Devices.Disks {
		volume, ok := volumes[disk.Name]
		if !ok {
			return qemu.Domain{}, fmt.Errorf("spec.domain.devices.disks[%s]: no volume of that name in spec.volumes; add one", disk.Name)
		}
		switch {
		case volume.ContainerDisk != nil:
			if !strings.Contains(volume.ContainerDisk.Image, GuestImage) {
				return qemu.Domain{}, fmt.Errorf("volume %s: containerDisk image %q is not available: cclm nodes boot only the built-in guest image (use image %q)", volume.Name, volume.ContainerDisk.Image, GuestImage)
			}
			dom.Boot = qemu.Boot{Kernel: in.Guest.Kernel, Initrd: in.Guest.Initrd}
		case volume.CloudInitNoCloud != nil:
			// The cclm guest has no cloud-init: nothing to attach.
		default:
			path, ok := in.DiskPaths[volume.Name]
			if !ok {
				return qemu.Domain{}, fmt.Errorf("volume %s: its storage is not provisioned on this node yet", volume.Name)
			}
			_, config := volume.ConfigDiskRef()
			dom.Disks = append(dom.Disks, qemu.Disk{Name: disk.Name, Path: path, Serial: diskSerial(disk), BootIndex: bootIndex(disk), ReadOnly: config})
		}
	}
	if dom.Boot.Kernel == "" {
		return qemu.Domain{}, fmt.Errorf("spec.volumes: no containerDisk with image %q to boot; cclm guests boot the built-in kernel", GuestImage)
	}
	nics, address, err := domainNICs(vmi, in.VMNetwork)
	if err != nil {
		return qemu.Domain{}, err
	}
	dom.NICs = nics
	cmdline = append(cmdline, "console=ttyS0", "quiet")
	if address.IsValid() {
		cmdline = append(cmdline, "cclm.ip="+address.String())
	}
	if firmware := spec.Domain.Firmware; firmware != nil && firmware.KernelBoot != nil && firmware.KernelBoot.KernelArgs != "" {
		cmdline = append(cmdline, firmware.KernelBoot.KernelArgs)
	}
	dom.Boot.Cmdline = strings.Join(cmdline, " ")
	return dom, nil
}

// domainName is unique per VMI on a node and stable for its life.
func domainName(vmi *kubevirtv1.VirtualMachineInstance) string {
	return vmi.Namespace + "_" + vmi.Name
}

func guestMemoryMiB(spec *kubevirtv1.VirtualMachineInstanceSpec) (int, error) {
	bytes := spec.GuestMemoryBytes()
	if bytes <= 0 {
		return 0, fmt.Errorf("spec.domain.memory.guest: no memory given; set it, e.g. 128Mi")
	}
	if bytes < 16<<20 {
		return 0, fmt.Errorf("spec.domain.memory.guest %dMi is below the 16Mi a guest needs", bytes>>20)
	}
	return int(bytes >> 20), nil
}

func domainCPU(cpu *kubevirtv1.CPU) qemu.CPU {
	if cpu == nil {
		return qemu.CPU{}
	}
	out := qemu.CPU{Model: cpu.Model, Sockets: int(cpu.Sockets), Cores: int(cpu.Cores), Threads: int(cpu.Threads)}
	for _, feature := range cpu.Features {
		out.Features = append(out.Features, qemu.CPUFeature{Name: feature.Name, Policy: qemu.FeaturePolicy(feature.Policy)})
	}
	return out
}

func diskSerial(disk kubevirtv1.Disk) string {
	if disk.Serial != "" {
		return disk.Serial
	}
	// The guest agent finds data disks by serial; default to the name.
	if len(disk.Name) <= 20 {
		return disk.Name
	}
	return disk.Name[:20]
}

func bootIndex(disk kubevirtv1.Disk) int {
	if disk.BootOrder == nil {
		return 0
	}
	return int(*disk.BootOrder)
}

// domainNICs gives each interface a tap named after the VMI and interface,
// and the first interface an address on the VM network derived from its MAC.
func domainNICs(vmi *kubevirtv1.VirtualMachineInstance, vmNetwork netip.Prefix) ([]qemu.NIC, netip.Prefix, error) {
	var nics []qemu.NIC
	var address netip.Prefix
	for i, iface := range vmi.Spec.Domain.Devices.Interfaces {
		if iface.MacAddress == "" {
			return nil, netip.Prefix{}, fmt.Errorf("spec.domain.devices.interfaces[%s].macAddress is empty; the virt controller assigns one, so this VMI was created without a VM: set macAddress", iface.Name)
		}
		mac, err := net.ParseMAC(iface.MacAddress)
		if err != nil {
			return nil, netip.Prefix{}, fmt.Errorf("spec.domain.devices.interfaces[%s].macAddress %q: %v", iface.Name, iface.MacAddress, err)
		}
		nics = append(nics, qemu.NIC{Name: iface.Name, Tap: TapName(vmi.UID, iface.Name), MAC: mac.String()})
		if i == 0 && vmNetwork.IsValid() {
			address = addressFromMAC(vmNetwork, mac)
		}
	}
	return nics, address, nil
}

// TapName is the node's tap of a VMI's interface: unique per VMI UID and
// interface, and short enough for Linux (15 bytes). The fault suite uses
// it to find taps no VMI owns.
func TapName(vmi types.UID, iface string) string {
	sum := sha256.Sum256([]byte(string(vmi) + "/" + iface))
	return "tap" + hex.EncodeToString(sum[:6])
}

// addressFromMAC gives a guest a stable address on the VM network: the low
// bits of its MAC, which the virt controller keeps stable across restarts
// and migrations, so the address is stable too. The first and last
// addresses of the prefix are skipped.
func addressFromMAC(prefix netip.Prefix, mac net.HardwareAddr) netip.Prefix {
	prefix = prefix.Masked()
	base := prefix.Addr().As4()
	hostBits := 32 - prefix.Bits()
	size := uint32(1) << hostBits
	macLow := uint32(mac[3])<<16 | uint32(mac[4])<<8 | uint32(mac[5])
	host := 1 + macLow%(size-2)
	baseValue := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	value := baseValue + host
	addr := netip.AddrFrom4([4]byte{byte(value >> 24), byte(value >> 16), byte(value >> 8), byte(value)})
	return netip.PrefixFrom(addr, prefix.Bits())
}

// domainUUID is the guest's SMBIOS UUID: the firmware UUID the VM
// controller set, else (a VMI made without a VM) the VMI's UID.
func domainUUID(vmi *kubevirtv1.VirtualMachineInstance) string {
	if firmware := vmi.Spec.Domain.Firmware; firmware != nil && firmware.UUID != "" {
		return string(firmware.UUID)
	}
	return string(vmi.UID)
}
