package qemu

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// CommandLine returns QEMU's arguments (without the binary) for running dom
// under accel, paused or waiting for an incoming migration as opts say. The
// result depends on nothing else, so a migration target started with the
// same Domain gets the same devices at the same PCI addresses.
func CommandLine(dom Domain, accel Accel, opts Options) ([]string, error) {
	dom = dom.withDefaults()
	if err := dom.Validate(); err != nil {
		return nil, err
	}
	if accel != AccelKVM && accel != AccelTCG {
		return nil, fmt.Errorf("accelerator %q: use %q or %q", accel, AccelKVM, AccelTCG)
	}
	paths := dom.Paths()
	var args argv
	args.add("-name", "guest="+escapeOpt(dom.Name)+",debug-threads=on")
	if dom.UUID != "" {
		args.add("-uuid", strings.ToLower(dom.UUID))
	}
	args.add("-machine", dom.Machine)
	args.add("-accel", string(accel))
	args.add("-cpu", cpuOption(dom.CPU, accel))
	args.add("-smp", smpOption(dom.CPU))
	args.add("-m", memoryOption(dom.MemoryMiB))
	// Only the devices listed here: no default NIC, VGA, floppy or CD-ROM,
	// and no host config file, so both sides of a migration match.
	args.add("-nodefaults", "-no-user-config", "-display", "none")
	args.add("-msg", "timestamp=on")
	args.add("-pidfile", paths.PIDFile)
	args.add("-chardev", "socket,id=charmonitor,path="+escapeOpt(paths.QMP)+",server=on,wait=off")
	args.add("-mon", "chardev=charmonitor,id=monitor,mode=control")
	args.add("-chardev", "socket,id=charserial0,path="+escapeOpt(paths.Serial)+",server=on,wait=off,logfile="+escapeOpt(paths.ConsoleLog)+",logappend=on")
	args.add("-device", "isa-serial,chardev=charserial0,id=serial0")
	if dom.Boot.Kernel != "" {
		args.add("-kernel", dom.Boot.Kernel)
		if dom.Boot.Initrd != "" {
			args.add("-initrd", dom.Boot.Initrd)
		}
		if dom.Boot.Cmdline != "" {
			args.add("-append", dom.Boot.Cmdline)
		}
	}
	slot := firstDeviceSlot
	nextAddr := func() string { a := fmt.Sprintf("addr=0x%x", slot); slot++; return a }
	args.add("-device", "virtio-serial-pci,id=virtio-serial0,"+nextAddr())
	args.add("-chardev", "socket,id=charagent,path="+escapeOpt(paths.Agent)+",server=on,wait=off")
	args.add("-device", "virtserialport,bus=virtio-serial0.0,nr=1,chardev=charagent,id=agent0,name="+AgentPortName)
	for _, nic := range dom.NICs {
		args.add("-netdev", "tap,id="+netdevID(nic.Name)+",ifname="+nic.Tap+",script=no,downscript=no")
		// romfile= drops the iPXE option ROM: the guest does not boot from
		// the network, and the ROM's size would have to match on both sides.
		args.add("-device", "virtio-net-pci,netdev="+netdevID(nic.Name)+",id="+nicDeviceID(nic.Name)+",mac="+strings.ToLower(nic.MAC)+","+nextAddr()+",romfile=")
	}
	for _, disk := range dom.Disks {
		file, format, err := blockdevOptions(disk)
		if err != nil {
			return nil, err
		}
		args.add("-blockdev", file, "-blockdev", format)
		device := "virtio-blk-pci,drive=" + diskNodeName(disk.Name) + ",id=" + diskDeviceID(disk.Name)
		if disk.Serial != "" {
			device += ",serial=" + disk.Serial
		}
		device += "," + nextAddr()
		if disk.BootIndex > 0 {
			device += ",bootindex=" + strconv.Itoa(disk.BootIndex)
		}
		args.add("-device", device)
	}
	if opts.Paused || opts.Incoming {
		args.add("-S")
	}
	if opts.Incoming {
		// defer: the caller sets capabilities, parameters and TLS before it
		// opens the listener with migrate-incoming.
		args.add("-incoming", "defer")
	}
	return args, nil
}

type argv []string

func (a *argv) add(s ...string) { *a = append(*a, s...) }

// escapeOpt escapes a value inside a QEMU "key=value,..." option, where a
// comma is written as two.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// cpuOption renders -cpu: the model, then each feature as name=on|off in
// the Domain's order.
func cpuOption(cpu CPU, accel Accel) string {
	parts := []string{qemuCPUModel(cpu.Model, accel)}
	for _, f := range cpu.Features {
		on, _ := f.enabled() // validated
		state := "off"
		if on {
			state = "on"
		}
		parts = append(parts, f.Name+"="+state)
	}
	return strings.Join(parts, ",")
}

// qemuCPUModel maps KubeVirt's host CPU models to QEMU's: the host CPU under
// KVM, and under TCG "max", the richest CPU TCG emulates (there is no host
// CPU to pass through, and QEMU refuses "host" without KVM).
func qemuCPUModel(model string, accel Accel) string {
	switch model {
	case "host", "host-model", "host-passthrough":
		if accel == AccelKVM {
			return "host"
		}
		return "max"
	}
	return model
}

func smpOption(cpu CPU) string {
	return fmt.Sprintf("%d,sockets=%d,cores=%d,threads=%d", cpu.VCPUs(), cpu.Sockets, cpu.Cores, cpu.Threads)
}

// fileBlockdev and rawBlockdev are the two -blockdev nodes of a disk, in
// JSON form so that any path needs no escaping. Field order is fixed by the
// struct, so the argument is byte-for-byte deterministic.
type fileBlockdev struct {
	Driver   string `json:"driver"`
	NodeName string `json:"node-name"`
	Filename string `json:"filename"`
	ReadOnly bool   `json:"read-only"`
	Discard  string `json:"discard"`
}

type rawBlockdev struct {
	Driver   string `json:"driver"`
	NodeName string `json:"node-name"`
	File     string `json:"file"`
	ReadOnly bool   `json:"read-only"`
	Discard  string `json:"discard"`
}

// blockdevOptions returns the file node and the raw format node of a disk.
// discard=unmap lets guest TRIMs and the zero writes of an incoming mirror
// punch holes, so a migrated disk stays as sparse as the source.
func blockdevOptions(disk Disk) (file, format string, err error) {
	fileJSON, err := json.Marshal(fileBlockdev{
		Driver: "file", NodeName: fileNodeName(disk.Name), Filename: disk.Path,
		ReadOnly: disk.ReadOnly, Discard: "unmap",
	})
	if err != nil {
		return "", "", err
	}
	rawJSON, err := json.Marshal(rawBlockdev{
		Driver: "raw", NodeName: diskNodeName(disk.Name), File: fileNodeName(disk.Name),
		ReadOnly: disk.ReadOnly, Discard: "unmap",
	})
	if err != nil {
		return "", "", err
	}
	return string(fileJSON), string(rawJSON), nil
}

// memoryOption is -m for a guest of memMiB, exactly what its spec asks.
func memoryOption(memMiB int) string {
	return strconv.Itoa(memMiB) + "M"
}
