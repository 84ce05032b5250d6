package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Accel is a QEMU accelerator.
type Accel string

// The accelerators cclm uses.
const (
	AccelKVM Accel = "kvm"
	AccelTCG Accel = "tcg"
)

// DefaultBinary is the QEMU system emulator cclm runs.
const DefaultBinary = "qemu-system-x86_64"

// AccelProbe is the outcome of DetectAccel.
type AccelProbe struct {
	Accel  Accel
	Reason string // why KVM is or is not used, for logs
}

var accelProbes = struct {
	sync.Mutex
	byBinary map[string]AccelProbe
}{byBinary: map[string]AccelProbe{}}

// DetectAccel tells whether KVM really runs guests on this host, probing once
// per QEMU binary and process. An openable /dev/kvm is not enough: nested or
// sandboxed KVM may create VMs yet fail to run a real guest (on the machine
// cclm was developed on, `-accel kvm -machine none` starts fine while a
// Linux guest hangs, and -cpu host aborts on an MSR). So the probe boots a
// 64 KiB firmware under KVM with the host CPU that writes one byte to QEMU's
// isa-debug-exit port, and accepts KVM only if QEMU exits with that byte and
// without warnings about CPU features the host lacks.
func DetectAccel(ctx context.Context, binary string) AccelProbe {
	if binary == "" {
		binary = DefaultBinary
	}
	accelProbes.Lock()
	defer accelProbes.Unlock()
	if probe, ok := accelProbes.byBinary[binary]; ok {
		return probe
	}
	probe, definitive := probeKVM(ctx, binary)
	if definitive {
		accelProbes.byBinary[binary] = probe
	}
	return probe
}

// probeExitByte is what the probe firmware writes to isa-debug-exit; QEMU
// then exits with status (byte << 1) | 1.
const (
	probeExitByte   = 0x21
	probeExitStatus = probeExitByte<<1 | 1
	probeTimeout    = 10 * time.Second
)

// probeKVM runs the probe; definitive is false when the outcome says
// nothing about KVM (ctx ended), so that a later call probes again.
func probeKVM(ctx context.Context, binary string) (probe AccelProbe, definitive bool) {
	tcg := func(format string, args ...any) AccelProbe {
		return AccelProbe{Accel: AccelTCG, Reason: fmt.Sprintf(format, args...)}
	}
	kvm, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return tcg("KVM unavailable: %v", err), true
	}
	kvm.Close()
	dir, err := os.MkdirTemp("", "cclm-kvm-probe-")
	if err != nil {
		return tcg("KVM not probed: %v", err), false
	}
	defer os.RemoveAll(dir)
	firmware := filepath.Join(dir, "probe.rom")
	if err := os.WriteFile(firmware, probeFirmware(), 0o644); err != nil {
		return tcg("KVM not probed: %v", err), false
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary,
		"-accel", "kvm", "-machine", "q35", "-cpu", "host", "-m", "16",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-bios", firmware,
		"-device", fmt.Sprintf("isa-debug-exit,iobase=0x%x,iosize=1", isaDebugExitPort))
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	err = cmd.Run()
	said := strings.TrimSpace(output.String())
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		return tcg("KVM probe interrupted: %v", ctx.Err()), false
	case ctx.Err() != nil:
		return tcg("KVM present but a guest under it did not run within %v", probeTimeout), true
	case errors.As(err, &exitErr) && exitErr.ExitCode() == probeExitStatus:
		if strings.Contains(said, "doesn't support requested feature") {
			return tcg("KVM runs code but misreports the host CPU (%s)", firstLine(said)), true
		}
		return AccelProbe{Accel: AccelKVM, Reason: "KVM runs guests"}, true
	case err != nil && !errors.As(err, &exitErr):
		return tcg("KVM not probed: cannot run %s: %v (apt-get install qemu-system-x86)", binary, err), false
	}
	return tcg("KVM present but a guest under it failed (%v): %s", err, firstLine(said)), true
}

// isaDebugExitPort is the I/O port of the probe's isa-debug-exit device.
const isaDebugExitPort = 0xf4

// probeFirmware is a 64 KiB BIOS image whose reset vector (16 bytes below
// its end) writes probeExitByte to the isa-debug-exit port and halts.
func probeFirmware() []byte {
	rom := bytes.Repeat([]byte{0xf4}, 64<<10) // hlt everywhere
	resetVector := []byte{
		0xb0, probeExitByte, // mov al, probeExitByte
		0xe6, isaDebugExitPort, // out isaDebugExitPort, al
		0xf4,       // hlt
		0xeb, 0xfd, // jmp back to hlt
	}
	copy(rom[len(rom)-16:], resetVector)
	return rom
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
