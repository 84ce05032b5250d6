package qemu

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
)

// Domain is a plain description of a VM, independent of the Kubernetes API:
// the node agent converts a VMI into it. The same Domain (apart from RunDir,
// tap names and disk paths) must be used on both sides of a migration.
type Domain struct {
	Name string
	UUID string // optional; when set, migration checks that both sides agree
	// Machine is QEMU's machine type; empty means "q35".
	Machine   string
	CPU       CPU
	MemoryMiB int
	Boot      Boot
	Disks     []Disk
	NICs      []NIC
	// RunDir holds what belongs to this QEMU: pidfile, QMP, agent and serial
	// sockets, logs. Keep it short: unix socket paths are limited to 107
	// bytes.
	RunDir string
}

// CPU is the virtual CPU model and topology.
type CPU struct {
	// Model is a QEMU CPU model ("Haswell-v4", "qemu64", "max") or one of
	// "host", "host-model", "host-passthrough" (all three mean the host CPU
	// under KVM, and "max" under TCG, which has no host CPU to pass through).
	// Empty means "host-model", KubeVirt's default.
	Model    string
	Sockets  int // 0 means 1
	Cores    int // 0 means 1
	Threads  int // 0 means 1
	Features []CPUFeature
}

// CPUFeature turns one CPU feature (QEMU's name for it, e.g. "avx2") on or
// off.
type CPUFeature struct {
	Name   string
	Policy FeaturePolicy
}

// FeaturePolicy is KubeVirt's CPU feature policy.
type FeaturePolicy string

// The policies KubeVirt accepts. QEMU itself only knows on and off: force,
// require and optional turn the feature on; disable and forbid turn it off.
const (
	PolicyForce    FeaturePolicy = "force"
	PolicyRequire  FeaturePolicy = "require"
	PolicyOptional FeaturePolicy = "optional"
	PolicyDisable  FeaturePolicy = "disable"
	PolicyForbid   FeaturePolicy = "forbid"
)

// Boot is a direct kernel boot; with no Kernel the firmware boots from the
// disk with a BootIndex.
type Boot struct {
	Kernel  string
	Initrd  string
	Cmdline string
}

// Disk is a raw image file attached as virtio-blk.
type Disk struct {
	// Name identifies the disk (KubeVirt's volume name): it names the QEMU
	// block nodes, the NBD export and the mirror job of a migration.
	Name     string
	Path     string
	Serial   string // what the guest sees in /sys/block/*/serial; at most 20 bytes
	ReadOnly bool
	// BootIndex orders firmware boot devices; 0 means not bootable.
	BootIndex int
}

// NIC is a virtio-net interface backed by a tap device.
type NIC struct {
	Name string
	Tap  string // host tap interface; QEMU creates it if it does not exist
	MAC  string
}

// AgentPortName is the virtio-serial port the guest agent listens on.
const AgentPortName = "org.cclm.agent.0"

// RunPaths are the files of one QEMU in its run directory.
type RunPaths struct {
	QMP        string // QMP unix socket
	Agent      string // guest agent virtio-serial port (unix socket)
	Serial     string // serial console (unix socket), for `cclm console`
	ConsoleLog string // everything the serial console printed
	PIDFile    string // written by QEMU (-pidfile)
	Log        string // QEMU's stdout and stderr
	Meta       string // how it was launched (for Adopt)
}

// Paths returns the run-directory files of d.
func (d Domain) Paths() RunPaths { return pathsIn(d.RunDir) }

func pathsIn(runDir string) RunPaths {
	return RunPaths{
		QMP:        filepath.Join(runDir, "qmp.sock"),
		Agent:      filepath.Join(runDir, "agent.sock"),
		Serial:     filepath.Join(runDir, "serial.sock"),
		ConsoleLog: filepath.Join(runDir, "console.log"),
		PIDFile:    filepath.Join(runDir, "qemu.pid"),
		Log:        filepath.Join(runDir, "qemu.log"),
		Meta:       filepath.Join(runDir, "instance.json"),
	}
}

// Defaults applied to a Domain.
const (
	DefaultMachine  = "q35"
	DefaultCPUModel = "host-model"
)

// withDefaults returns d with empty fields set to their defaults.
func (d Domain) withDefaults() Domain {
	if d.Machine == "" {
		d.Machine = DefaultMachine
	}
	if d.CPU.Model == "" {
		d.CPU.Model = DefaultCPUModel
	}
	d.CPU.Sockets = max(d.CPU.Sockets, 1)
	d.CPU.Cores = max(d.CPU.Cores, 1)
	d.CPU.Threads = max(d.CPU.Threads, 1)
	return d
}

// VCPUs is the number of virtual CPUs.
func (c CPU) VCPUs() int { return max(c.Sockets, 1) * max(c.Cores, 1) * max(c.Threads, 1) }

// maxSocketPath is the longest unix socket path the kernel accepts
// (sun_path is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// firstDeviceSlot and lastDeviceSlot bound the PCI slots handed out on the
// root bus: 0 is the host bridge, 0x1f the q35 chipset functions.
const (
	firstDeviceSlot = 0x2
	lastDeviceSlot  = 0x1e
)

var (
	domainNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	uuidRE        = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	cpuModelRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	featureNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	tapNameRE     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,15}$`)
	serialRE      = regexp.MustCompile(`^[A-Za-z0-9._-]{0,20}$`)
)

// Validate checks that d can be turned into a QEMU command line, and says
// which field is wrong and how otherwise.
func (d Domain) Validate() error {
	d = d.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !domainNameRE.MatchString(d.Name) {
		add("domain name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", d.Name)
	}
	if d.UUID != "" && !uuidRE.MatchString(d.UUID) {
		add("domain %s: UUID %q is not of the form 8-4-4-4-12 hex digits", d.Name, d.UUID)
	}
	if !cpuModelRE.MatchString(d.Machine) {
		add("domain %s: machine type %q is not a QEMU machine name (try q35)", d.Name, d.Machine)
	}
	if d.MemoryMiB < 16 {
		add("domain %s: memory %d MiB: give at least 16 MiB", d.Name, d.MemoryMiB)
	}
	if d.RunDir == "" || !filepath.IsAbs(d.RunDir) {
		add("domain %s: run directory %q must be an absolute path", d.Name, d.RunDir)
	} else if p := d.Paths(); len(p.Serial) > maxSocketPath || len(p.Agent) > maxSocketPath {
		add("domain %s: run directory %q is too long for unix sockets (%d bytes max per socket path); use a shorter one", d.Name, d.RunDir, maxSocketPath)
	}
	errs = append(errs, d.CPU.validate(d.Name)...)
	errs = append(errs, d.Boot.validate(d.Name)...)
	errs = append(errs, d.validateDevices()...)
	return errors.Join(errs...)
}

func (c CPU) validate(domain string) []error {
	var errs []error
	if !cpuModelRE.MatchString(c.Model) {
		errs = append(errs, fmt.Errorf("domain %s: CPU model %q is not a QEMU CPU model name", domain, c.Model))
	}
	if c.Sockets < 0 || c.Cores < 0 || c.Threads < 0 || c.VCPUs() > 255 {
		errs = append(errs, fmt.Errorf("domain %s: CPU topology %d sockets x %d cores x %d threads: use positive counts, 255 vCPUs at most", domain, c.Sockets, c.Cores, c.Threads))
	}
	seen := map[string]bool{}
	for _, f := range c.Features {
		if !featureNameRE.MatchString(f.Name) {
			errs = append(errs, fmt.Errorf("domain %s: CPU feature %q: use QEMU's lower-case feature name (e.g. avx2)", domain, f.Name))
		}
		if seen[f.Name] {
			errs = append(errs, fmt.Errorf("domain %s: CPU feature %q is listed twice", domain, f.Name))
		}
		seen[f.Name] = true
		if _, err := f.enabled(); err != nil {
			errs = append(errs, fmt.Errorf("domain %s: %w", domain, err))
		}
	}
	return errs
}

// enabled tells whether the feature's policy turns it on.
func (f CPUFeature) enabled() (bool, error) {
	switch f.Policy {
	case PolicyForce, PolicyRequire, PolicyOptional, "":
		return true, nil // KubeVirt's default policy is require
	case PolicyDisable, PolicyForbid:
		return false, nil
	}
	return false, fmt.Errorf("CPU feature %s: unknown policy %q (use force, require, optional, disable or forbid)", f.Name, f.Policy)
}

func (b Boot) validate(domain string) []error {
	var errs []error
	if b.Kernel == "" && (b.Initrd != "" || b.Cmdline != "") {
		errs = append(errs, fmt.Errorf("domain %s: initrd or kernel command line given without a kernel", domain))
	}
	for _, p := range []string{b.Kernel, b.Initrd} {
		if p != "" && !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("domain %s: boot file %q must be an absolute path", domain, p))
		}
	}
	return errs
}

func (d Domain) validateDevices() []error {
	var errs []error
	if slots := 1 + len(d.NICs) + len(d.Disks); firstDeviceSlot+slots-1 > lastDeviceSlot {
		errs = append(errs, fmt.Errorf("domain %s: %d NICs and %d disks do not fit on the PCI root bus (%d devices at most)", d.Name, len(d.NICs), len(d.Disks), lastDeviceSlot-firstDeviceSlot))
	}
	ids := map[string]string{}
	claim := func(id, what string) {
		if other, ok := ids[id]; ok {
			errs = append(errs, fmt.Errorf("domain %s: %s and %s map to the same QEMU id %q; rename one", d.Name, other, what, id))
		}
		ids[id] = what
	}
	for _, disk := range d.Disks {
		what := fmt.Sprintf("disk %q", disk.Name)
		if !domainNameRE.MatchString(disk.Name) {
			errs = append(errs, fmt.Errorf("domain %s: %s: use letters, digits, '.', '_' and '-' in disk names", d.Name, what))
		}
		if !filepath.IsAbs(disk.Path) {
			errs = append(errs, fmt.Errorf("domain %s: %s: path %q must be absolute", d.Name, what, disk.Path))
		}
		if !serialRE.MatchString(disk.Serial) {
			errs = append(errs, fmt.Errorf("domain %s: %s: serial %q: at most 20 letters, digits, '.', '_' or '-' (virtio-blk's limit)", d.Name, what, disk.Serial))
		}
		if disk.BootIndex < 0 {
			errs = append(errs, fmt.Errorf("domain %s: %s: negative boot index", d.Name, what))
		}
		claim(diskNodeName(disk.Name), what)
	}
	for _, nic := range d.NICs {
		what := fmt.Sprintf("NIC %q", nic.Name)
		if !domainNameRE.MatchString(nic.Name) {
			errs = append(errs, fmt.Errorf("domain %s: %s: use letters, digits, '.', '_' and '-' in NIC names", d.Name, what))
		}
		if !tapNameRE.MatchString(nic.Tap) {
			errs = append(errs, fmt.Errorf("domain %s: %s: tap name %q: 1 to 15 letters, digits, '.', '_' or '-'", d.Name, what, nic.Tap))
		}
		if mac, err := net.ParseMAC(nic.MAC); err != nil || len(mac) != 6 {
			errs = append(errs, fmt.Errorf("domain %s: %s: MAC %q is not a 48-bit MAC address like 52:54:00:12:34:56", d.Name, what, nic.MAC))
		}
		claim(netdevID(nic.Name), what)
	}
	return errs
}

// disk returns the disk called name.
func (d Domain) disk(name string) (Disk, error) {
	for _, disk := range d.Disks {
		if disk.Name == name {
			return disk, nil
		}
	}
	names := make([]string, 0, len(d.Disks))
	for _, disk := range d.Disks {
		names = append(names, disk.Name)
	}
	return Disk{}, fmt.Errorf("domain %s has no disk %q (it has: %s)", d.Name, name, strings.Join(names, ", "))
}

// maxNodeName is QEMU's limit on node names and block job ids (a 32-byte
// buffer with the terminating NUL).
const maxNodeName = 31

// qemuID derives a QEMU identifier (node name, device id, job id) from a
// prefix and a user-chosen name. QEMU ids start with a letter and hold
// letters, digits, '-', '.', '_', and node names are at most 31 bytes; a
// name that does not fit is shortened and made unique with a hash of the
// full name, so the same name always maps to the same id on both sides of a
// migration.
func qemuID(prefix, name string) string {
	id := prefix + "-" + name
	if len(id) <= maxNodeName && domainNameRE.MatchString(name) {
		return id
	}
	sum := sha256.Sum256([]byte(name))
	hash := hex.EncodeToString(sum[:4])
	keep := maxNodeName - len(prefix) - len(hash) - 2
	clean := strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '-' || r == '.' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')) {
			return r
		}
		return '_'
	}, name)
	if len(clean) > keep {
		clean = clean[:keep]
	}
	return prefix + "-" + clean + "-" + hash
}

// The QEMU ids of a disk: the raw format node the device and block jobs use,
// the file node under it, the guest device, the NBD client node a mirror
// writes to, and the mirror job.
func diskNodeName(disk string) string   { return qemuID("disk", disk) }
func fileNodeName(disk string) string   { return qemuID("file", disk) }
func diskDeviceID(disk string) string   { return qemuID("vd", disk) }
func mirrorNodeName(disk string) string { return qemuID("nbd", disk) }
func mirrorJobID(disk string) string    { return qemuID("mirror", disk) }
func exportID(disk string) string       { return qemuID("export", disk) }

// The QEMU ids of a NIC.
func netdevID(nic string) string    { return qemuID("netdev", nic) }
func nicDeviceID(nic string) string { return qemuID("nic", nic) }
