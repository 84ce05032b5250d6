package qemu

import (
	"slices"
	"strings"
	"testing"
)

// fullDomain uses every device kind, a path with a comma (QEMU's option
// separator) and upper-case UUID and MAC.
func fullDomain() Domain {
	return Domain{
		Name: "vm1",
		UUID: "6F1C2D3E-4B5A-4C7D-8E9F-0A1B2C3D4E5F",
		CPU: CPU{Model: "Haswell-v4", Sockets: 1, Cores: 2, Threads: 1, Features: []CPUFeature{
			{Name: "vmx", Policy: PolicyRequire}, {Name: "pcid", Policy: PolicyDisable},
		}},
		MemoryMiB: 256,
		Boot:      Boot{Kernel: "/img/vmlinuz", Initrd: "/img/initrd", Cmdline: "console=ttyS0 root=/dev/vda"},
		Disks: []Disk{
			{Name: "rootdisk", Path: "/pvc/root,disk.img", Serial: "root", BootIndex: 1},
			{Name: "cloudinit", Path: "/pvc/ci.img", ReadOnly: true},
		},
		NICs:   []NIC{{Name: "default", Tap: "tap0", MAC: "52:54:00:AA:BB:CC"}},
		RunDir: "/run/cclm/vm1",
	}
}

func minimalDomain() Domain {
	return Domain{Name: "tiny", MemoryMiB: 128, RunDir: "/r"}
}

// minimalTail is what follows -m on the command line of minimalDomain.
var minimalTail = []string{
	"-nodefaults", "-no-user-config", "-display", "none",
	"-msg", "timestamp=on",
	"-pidfile", "/r/qemu.pid",
	"-chardev", "socket,id=charmonitor,path=/r/qmp.sock,server=on,wait=off",
	"-mon", "chardev=charmonitor,id=monitor,mode=control",
	"-chardev", "socket,id=charserial0,path=/r/serial.sock,server=on,wait=off,logfile=/r/console.log,logappend=on",
	"-device", "isa-serial,chardev=charserial0,id=serial0",
	"-device", "virtio-serial-pci,id=virtio-serial0,addr=0x2",
	"-chardev", "socket,id=charagent,path=/r/agent.sock,server=on,wait=off",
	"-device", "virtserialport,bus=virtio-serial0.0,nr=1,chardev=charagent,id=agent0,name=org.cclm.agent.0",
}

func TestCommandLineGolden(t *testing.T) {
	minimalHead := func(accel, cpu string) []string {
		return []string{"-name", "guest=tiny,debug-threads=on", "-machine", "q35", "-accel", accel, "-cpu", cpu, "-smp", "1,sockets=1,cores=1,threads=1", "-m", "128M"}
	}
	cases := []struct {
		name  string
		dom   Domain
		accel Accel
		opts  Options
		want  []string
	}{
		{
			name: "full domain under KVM", dom: fullDomain(), accel: AccelKVM,
			want: []string{
				"-name", "guest=vm1,debug-threads=on",
				"-uuid", "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f",
				"-machine", "q35",
				"-accel", "kvm",
				"-cpu", "Haswell-v4,vmx=on,pcid=off",
				"-smp", "2,sockets=1,cores=2,threads=1",
				"-m", "256M",
				"-nodefaults", "-no-user-config", "-display", "none",
				"-msg", "timestamp=on",
				"-pidfile", "/run/cclm/vm1/qemu.pid",
				"-chardev", "socket,id=charmonitor,path=/run/cclm/vm1/qmp.sock,server=on,wait=off",
				"-mon", "chardev=charmonitor,id=monitor,mode=control",
				"-chardev", "socket,id=charserial0,path=/run/cclm/vm1/serial.sock,server=on,wait=off,logfile=/run/cclm/vm1/console.log,logappend=on",
				"-device", "isa-serial,chardev=charserial0,id=serial0",
				"-kernel", "/img/vmlinuz",
				"-initrd", "/img/initrd",
				"-append", "console=ttyS0 root=/dev/vda",
				"-device", "virtio-serial-pci,id=virtio-serial0,addr=0x2",
				"-chardev", "socket,id=charagent,path=/run/cclm/vm1/agent.sock,server=on,wait=off",
				"-device", "virtserialport,bus=virtio-serial0.0,nr=1,chardev=charagent,id=agent0,name=org.cclm.agent.0",
				"-netdev", "tap,id=netdev-default,ifname=tap0,script=no,downscript=no",
				"-device", "virtio-net-pci,netdev=netdev-default,id=nic-default,mac=52:54:00:aa:bb:cc,addr=0x3,romfile=",
				"-blockdev", `{"driver":"file","node-name":"file-rootdisk","filename":"/pvc/root,disk.img","read-only":false,"discard":"unmap"}`,
				"-blockdev", `{"driver":"raw","node-name":"disk-rootdisk","file":"file-rootdisk","read-only":false,"discard":"unmap"}`,
				"-device", "virtio-blk-pci,drive=disk-rootdisk,id=vd-rootdisk,serial=root,addr=0x4,bootindex=1",
				"-blockdev", `{"driver":"file","node-name":"file-cloudinit","filename":"/pvc/ci.img","read-only":true,"discard":"unmap"}`,
				"-blockdev", `{"driver":"raw","node-name":"disk-cloudinit","file":"file-cloudinit","read-only":true,"discard":"unmap"}`,
				"-device", "virtio-blk-pci,drive=disk-cloudinit,id=vd-cloudinit,addr=0x5",
			},
		},
		{
			name: "minimal domain under TCG: host-model becomes max", dom: minimalDomain(), accel: AccelTCG,
			want: slices.Concat(minimalHead("tcg", "max"), minimalTail),
		},
		{
			name: "minimal domain under KVM: host-model becomes host", dom: minimalDomain(), accel: AccelKVM,
			want: slices.Concat(minimalHead("kvm", "host"), minimalTail),
		},
		{
			name: "paused", dom: minimalDomain(), accel: AccelTCG, opts: Options{Paused: true},
			want: slices.Concat(minimalHead("tcg", "max"), minimalTail, []string{"-S"}),
		},
		{
			name: "incoming migration target: paused, deferred listener", dom: minimalDomain(), accel: AccelTCG, opts: Options{Incoming: true},
			want: slices.Concat(minimalHead("tcg", "max"), minimalTail, []string{"-S", "-incoming", "defer"}),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CommandLine(tc.dom, tc.accel, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("argv differs\n got: %q\nwant: %q", got, tc.want)
				for i := range min(len(got), len(tc.want)) {
					if got[i] != tc.want[i] {
						t.Errorf("first difference at %d: %q, want %q", i, got[i], tc.want[i])
						break
					}
				}
			}
		})
	}
}

// TestMigrationTargetHasSameDevices: a target started with the same Domain
// in another run directory, with other disk files and taps, differs only in
// those paths and names, so the devices and their PCI addresses match.
func TestMigrationTargetHasSameDevices(t *testing.T) {
	source := fullDomain()
	target := fullDomain()
	target.RunDir = "/run/cclm/vm1-target"
	target.Disks[0].Path = "/pvc-target/root.img"
	target.NICs[0].Tap = "tap9"
	srcArgs, err := CommandLine(source, AccelTCG, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dstArgs, err := CommandLine(target, AccelTCG, Options{Incoming: true})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := CommandLine(source, AccelTCG, Options{}); !slices.Equal(again, srcArgs) {
		t.Fatal("same Domain, different command lines")
	}
	normalize := func(args []string, d Domain) []string {
		out := []string{}
		for _, a := range args {
			a = strings.ReplaceAll(a, d.RunDir, "RUN")
			a = strings.ReplaceAll(a, d.Disks[0].Path, "DISK0")
			a = strings.ReplaceAll(a, "ifname="+d.NICs[0].Tap, "ifname=TAP")
			out = append(out, a)
		}
		return out
	}
	want := append(normalize(srcArgs, source), "-S", "-incoming", "defer")
	if got := normalize(dstArgs, target); !slices.Equal(got, want) {
		t.Errorf("target argv is not the source's modulo paths:\n got %q\nwant %q", got, want)
	}
}

func TestCPUOption(t *testing.T) {
	cases := []struct {
		cpu   CPU
		accel Accel
		want  string
	}{
		{CPU{Model: "host"}, AccelKVM, "host"},
		{CPU{Model: "host"}, AccelTCG, "max"},
		{CPU{Model: "host-passthrough"}, AccelKVM, "host"},
		{CPU{Model: "host-model"}, AccelTCG, "max"},
		{CPU{Model: "qemu64"}, AccelTCG, "qemu64"},
		{CPU{Model: "max", Features: []CPUFeature{{Name: "avx2", Policy: PolicyForce}}}, AccelTCG, "max,avx2=on"},
		{CPU{Model: "Haswell-v4", Features: []CPUFeature{
			{Name: "vmx", Policy: PolicyRequire},
			{Name: "pcid", Policy: PolicyDisable},
			{Name: "svm", Policy: PolicyForbid},
			{Name: "x2apic", Policy: PolicyOptional},
			{Name: "aes"}, // KubeVirt's default policy: require
		}}, AccelKVM, "Haswell-v4,vmx=on,pcid=off,svm=off,x2apic=on,aes=on"},
	}
	for _, tc := range cases {
		if got := cpuOption(tc.cpu, tc.accel); got != tc.want {
			t.Errorf("cpuOption(%+v, %s) = %q, want %q", tc.cpu, tc.accel, got, tc.want)
		}
	}
}

func TestSMPOption(t *testing.T) {
	dom := minimalDomain().withDefaults()
	dom.CPU.Sockets, dom.CPU.Cores, dom.CPU.Threads = 2, 2, 2
	if got, want := smpOption(dom.CPU), "8,sockets=2,cores=2,threads=2"; got != want {
		t.Errorf("smpOption = %q, want %q", got, want)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Domain)
		want   string // part of the error
	}{
		{"name with a comma", func(d *Domain) { d.Name = "a,b" }, "domain name"},
		{"bad UUID", func(d *Domain) { d.UUID = "nope" }, "UUID"},
		{"too little memory", func(d *Domain) { d.MemoryMiB = 0 }, "at least 16 MiB"},
		{"relative run dir", func(d *Domain) { d.RunDir = "run" }, "absolute"},
		{"run dir too long for sockets", func(d *Domain) { d.RunDir = "/" + strings.Repeat("x", 100) }, "too long for unix sockets"},
		{"unknown feature policy", func(d *Domain) { d.CPU.Features = []CPUFeature{{Name: "avx", Policy: "maybe"}} }, "unknown policy"},
		{"feature twice", func(d *Domain) {
			d.CPU.Features = []CPUFeature{{Name: "avx", Policy: PolicyRequire}, {Name: "avx", Policy: PolicyDisable}}
		}, "listed twice"},
		{"feature with a comma", func(d *Domain) { d.CPU.Features = []CPUFeature{{Name: "avx,x"}} }, "CPU feature"},
		{"initrd without kernel", func(d *Domain) { d.Boot = Boot{Initrd: "/i"} }, "without a kernel"},
		{"serial too long", func(d *Domain) { d.Disks = []Disk{{Name: "d", Path: "/d", Serial: strings.Repeat("s", 21)}} }, "at most 20"},
		{"relative disk path", func(d *Domain) { d.Disks = []Disk{{Name: "d", Path: "d.img"}} }, "must be absolute"},
		{"bad MAC", func(d *Domain) { d.NICs = []NIC{{Name: "n", Tap: "tap0", MAC: "52:54:00"}} }, "MAC"},
		{"tap name too long", func(d *Domain) { d.NICs = []NIC{{Name: "n", Tap: "a-very-long-tap-name", MAC: "52:54:00:00:00:01"}} }, "tap name"},
		{"two disks, one id", func(d *Domain) {
			d.Disks = []Disk{{Name: "d", Path: "/a"}, {Name: "d", Path: "/b"}}
		}, "same QEMU id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dom := minimalDomain()
			tc.mutate(&dom)
			err := dom.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tc.want)
			}
			if _, err := CommandLine(dom, AccelTCG, Options{}); err == nil {
				t.Fatal("CommandLine accepted an invalid Domain")
			}
		})
	}
	if err := fullDomain().Validate(); err != nil {
		t.Fatalf("full domain: %v", err)
	}
}

func TestQEMUIDs(t *testing.T) {
	long := "a-volume-name-that-is-much-longer-than-qemu-allows"
	spaced := qemuID("disk", "with space")
	cases := []struct{ got, want string }{
		{diskNodeName("rootdisk"), "disk-rootdisk"},
		{mirrorJobID("rootdisk"), "mirror-rootdisk"},
		{mirrorNodeName("data"), "nbd-data"},
		{netdevID("default"), "netdev-default"},
		{diskNodeName("9lives"), "disk-9lives"},
		{diskNodeName(long)[:23], "disk-a-volume-name-tha-"},
		{spaced[:16], "disk-with_space-"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("id %q, want %q", tc.got, tc.want)
		}
	}
	for _, id := range []string{diskNodeName(long), mirrorJobID(long), mirrorNodeName(long), fileNodeName(long), qemuID("disk", "with space")} {
		if len(id) > maxNodeName || !domainNameRE.MatchString(id) {
			t.Errorf("id %q is not a valid QEMU node name (%d bytes)", id, len(id))
		}
	}
	if diskNodeName(long) == diskNodeName(long+"2") {
		t.Error("two long names shortened to the same id")
	}
}

// TestGuestRAMIsWhatTheSpecAsks: no pad any more (QEMU 9.0 fixed the TCG
// dirty-tracking bug that a RAM size off QEMU's 64-page words avoided).
func TestGuestRAMIsWhatTheSpecAsks(t *testing.T) {
	for mib, want := range map[int]string{16: "16M", 128: "128M", 4096: "4096M"} {
		if got := memoryOption(mib); got != want {
			t.Errorf("memoryOption(%d) = %q, want %q", mib, got, want)
		}
	}
}
