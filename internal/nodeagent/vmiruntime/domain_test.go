package vmiruntime

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/qemu"
)

func testVMI() *kubevirtv1.VirtualMachineInstance {
	memory := resource.MustParse("128Mi")
	return &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "vm", Namespace: "ns", UID: "0f1e2d3c-aaaa-bbbb-cccc-000000000001"},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Domain: kubevirtv1.DomainSpec{
				Memory: &kubevirtv1.Memory{Guest: &memory},
				Devices: kubevirtv1.Devices{
					Disks:      []kubevirtv1.Disk{{Name: "root"}, {Name: "data"}},
					Interfaces: []kubevirtv1.Interface{{Name: "default", MacAddress: "02:00:00:00:01:02"}},
				},
			},
			Volumes: []kubevirtv1.Volume{
				{Name: "root", ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "cclm/guest"}},
				{Name: "data", DataVolume: &kubevirtv1.DataVolumeSource{Name: "vm-data"}},
			},
		},
	}
}

func testInputs() domainInputs {
	return domainInputs{
		RunDir:    "/run/cclm/x/node/0f1e2d3c-aaaa",
		Guest:     GuestFiles{Kernel: "/g/vmlinux", Initrd: "/g/initramfs.img"},
		DiskPaths: map[string]string{"data": "/storage/pvc-1.img"},
		VMNetwork: netip.MustParsePrefix("10.201.0.0/16"),
	}
}

func TestBuildDomainIsTheSameOnBothSidesOfAMigration(t *testing.T) {
	first, err := buildDomain(testVMI(), testInputs())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := buildDomain(testVMI(), testInputs())
	if first.Boot.Cmdline != again.Boot.Cmdline || first.NICs[0] != again.NICs[0] || first.Name != again.Name {
		t.Fatal("the same VMI gave two different domains")
	}
	if first.MemoryMiB != 128 || first.Boot.Kernel != "/g/vmlinux" || len(first.Disks) != 1 || first.Disks[0].Path != "/storage/pvc-1.img" || first.Disks[0].Serial != "data" {
		t.Fatalf("domain %+v", first)
	}
	if !strings.Contains(first.Boot.Cmdline, "cclm.ip=10.201.1.3/16") {
		t.Fatalf("cmdline %q should carry the MAC-derived address", first.Boot.Cmdline)
	}
}

func TestBuildDomainErrorsNameTheField(t *testing.T) {
	cases := map[string]struct {
		change func(*kubevirtv1.VirtualMachineInstance, *domainInputs)
		want   string
	}{
		"foreign image": {func(v *kubevirtv1.VirtualMachineInstance, _ *domainInputs) {
			v.Spec.Volumes[0].ContainerDisk.Image = "quay.io/fedora"
		}, `image "quay.io/fedora" is not available`},
		"disk without volume": {func(v *kubevirtv1.VirtualMachineInstance, _ *domainInputs) {
			v.Spec.Volumes = v.Spec.Volumes[:1]
		}, "disks[data]: no volume of that name"},
		"volume not provisioned": {func(_ *kubevirtv1.VirtualMachineInstance, in *domainInputs) {
			in.DiskPaths = nil
		}, "not provisioned"},
		"no MAC": {func(v *kubevirtv1.VirtualMachineInstance, _ *domainInputs) {
			v.Spec.Domain.Devices.Interfaces[0].MacAddress = ""
		}, "macAddress is empty"},
		"too little memory": {func(v *kubevirtv1.VirtualMachineInstance, _ *domainInputs) {
			small := resource.MustParse("8Mi")
			v.Spec.Domain.Memory.Guest = &small
		}, "below the 16Mi"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			vmi, inputs := testVMI(), testInputs()
			tc.change(vmi, &inputs)
			_, err := buildDomain(vmi, inputs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestAddressFromMACStaysInsideThePrefix(t *testing.T) {
	prefix := netip.MustParsePrefix("10.201.0.0/16")
	for _, mac := range []string{"02:00:00:00:00:00", "02:00:00:ff:ff:ff", "02:12:34:56:78:9a"} {
		hw, _ := net.ParseMAC(mac)
		address := addressFromMAC(prefix, hw)
		if !prefix.Contains(address.Addr()) || address.Addr() == prefix.Addr() || address.Addr() == netip.MustParseAddr("10.201.255.255") {
			t.Errorf("%s -> %s: outside the prefix, or its network or broadcast address", mac, address)
		}
	}
}

func TestTargetAddressesReadThePortRoles(t *testing.T) {
	state := &kubevirtv1.VirtualMachineInstanceMigrationState{
		TargetNodeAddress:              "192.168.201.2",
		TargetDirectMigrationNodePorts: map[string]int{"4000": portRoleMigration, "4001": portRoleNBD},
	}
	migration, nbd, err := targetAddresses(state)
	if err != nil || migration != "192.168.201.2:4000" || nbd != "192.168.201.2:4001" {
		t.Fatalf("got %q %q %v", migration, nbd, err)
	}
	state.TargetDirectMigrationNodePorts = map[string]int{"4001": portRoleNBD}
	if _, _, err := targetAddresses(state); err == nil {
		t.Fatal("a target without a migration port was accepted")
	}
}

func TestMigrationParamsFollowTheKubeVirtConfiguration(t *testing.T) {
	on, bandwidth := true, resource.MustParse("8Mi")
	state := &kubevirtv1.VirtualMachineInstanceMigrationState{MigrationConfiguration: &kubevirtv1.MigrationConfiguration{
		AllowPostCopy: &on, BandwidthPerMigration: &bandwidth,
	}}
	params := migrationParams(state, 1)
	if !params.TLS || !params.PauseBeforeSwitchover || !params.PostCopy || params.BandwidthBytesPerSecond != 8<<20 {
		t.Fatalf("params %+v", params)
	}
	for _, c := range []struct {
		threads  *uint32
		multifd  bool
		channels int
	}{{nil, true, qemu.DefaultMultifdChannels}, {ptr.To(uint32(0)), false, 0}, {ptr.To(uint32(4)), true, 4}} {
		state := &kubevirtv1.VirtualMachineInstanceMigrationState{MigrationConfiguration: &kubevirtv1.MigrationConfiguration{ParallelMigrationThreads: c.threads}}
		if params := migrationParams(state, 0); params.Multifd != c.multifd || (c.multifd && params.MultifdChannels != c.channels) {
			t.Errorf("parallelMigrationThreads %v: multifd %v with %d channels, want %v with %d", ptr.Deref(c.threads, 99), params.Multifd, params.MultifdChannels, c.multifd, c.channels)
		}
	}
	// A cross-cluster receiver goes by the source cluster's configuration,
	// whatever its own says, and waits for it.
	single, four := uint32(0), uint32(4)
	receiver := &kubevirtv1.VirtualMachineInstanceMigrationState{MigrationUID: "m2",
		MigrationConfiguration: &kubevirtv1.MigrationConfiguration{ParallelMigrationThreads: &four},
		TargetState:            &kubevirtv1.VirtualMachineInstanceMigrationTargetState{VirtualMachineInstanceCommonMigrationState: kubevirtv1.VirtualMachineInstanceCommonMigrationState{MigrationUID: "m2"}}}
	if streamKnown(receiver) {
		t.Error("a receiver without the source's configuration would guess the stream's format")
	}
	receiver.SourceState = &kubevirtv1.VirtualMachineInstanceMigrationSourceState{MigrationConfiguration: &kubevirtv1.MigrationConfiguration{ParallelMigrationThreads: &single, AllowPostCopy: &on}}
	if params := migrationParams(receiver, 0); !streamKnown(receiver) || params.Multifd || !params.PostCopy {
		t.Errorf("receiver params %+v: want the source's one stream and post-copy", params)
	}
	if plain := migrationParams(&kubevirtv1.VirtualMachineInstanceMigrationState{}, 0); plain.PauseBeforeSwitchover || plain.AutoConverge || plain.PostCopy {
		t.Fatalf("defaults %+v: no disks means no pre-switchover pause, and nothing allowed unless configured", plain)
	}
}

func TestBuildDomainAppendsTheKernelArgs(t *testing.T) {
	vmi := testVMI()
	vmi.Spec.Domain.Firmware = &kubevirtv1.Firmware{KernelBoot: &kubevirtv1.KernelBoot{KernelArgs: "rdinit=/bin/sh loglevel=7"}}
	dom, err := buildDomain(vmi, testInputs())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(dom.Boot.Cmdline, " rdinit=/bin/sh loglevel=7") || !strings.HasPrefix(dom.Boot.Cmdline, "console=ttyS0 quiet") {
		t.Fatalf("cmdline %q: want cclm's own parameters, then the VMI's kernelArgs", dom.Boot.Cmdline)
	}
}
