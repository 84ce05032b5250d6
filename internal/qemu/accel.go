package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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

// AccelChoice is what a user asks for: auto probes the host, kvm and tcg
// force that accelerator.
type AccelChoice string

// The accelerator choices of `cclm node --accel` and CCLM_ACCEL.
const (
	AccelAuto      AccelChoice = "auto"
	AccelChooseKVM AccelChoice = "kvm"
	AccelChooseTCG AccelChoice = "tcg"
)

// AccelEnv is the environment variable that chooses the accelerator where
// no flag does (the demo, the tests, a QEMU launched without Options.Accel).
const AccelEnv = "CCLM_ACCEL"

// ParseAccelChoice reads an accelerator choice; empty means auto.
func ParseAccelChoice(s string) (AccelChoice, error) {
	switch choice := AccelChoice(strings.ToLower(strings.TrimSpace(s))); choice {
	case "":
		return AccelAuto, nil
	case AccelAuto, AccelChooseKVM, AccelChooseTCG:
		return choice, nil
	}
	return "", fmt.Errorf("accelerator %q: use auto (boot a Linux guest under KVM and use KVM only if it comes up), kvm or tcg", s)
}

// AccelChoiceFromEnv is CCLM_ACCEL's choice, auto when unset.
func AccelChoiceFromEnv() (AccelChoice, error) {
	choice, err := ParseAccelChoice(os.Getenv(AccelEnv))
	if err != nil {
		return "", fmt.Errorf("%s: %w", AccelEnv, err)
	}
	return choice, nil
}

// AccelProbe is the accelerator chosen and why.
type AccelProbe struct {
	Accel  Accel  `json:"accel"`
	Reason string `json:"reason"` // why, for logs, events and `cclm lab status`
}

// String is "tcg: KVM present but ...": the accelerator, then why.
func (p AccelProbe) String() string { return string(p.Accel) + ": " + p.Reason }

// SelectAccel resolves a choice on this host. kvm and tcg are taken as
// asked (kvm only if /dev/kvm opens); auto uses KVM only if image, the
// guest's own kernel and initramfs, boots under it (see probeKVM). Auto
// probes once per binary, image and process.
func SelectAccel(ctx context.Context, choice AccelChoice, binary string, image Boot) (AccelProbe, error) {
	switch choice {
	case AccelChooseTCG:
		return AccelProbe{Accel: AccelTCG, Reason: "chosen with accelerator setting tcg"}, nil
	case AccelChooseKVM:
		if err := openKVM(); err != nil {
			return AccelProbe{}, fmt.Errorf("accelerator kvm: %w; choose auto or tcg", err)
		}
		return AccelProbe{Accel: AccelKVM, Reason: "chosen with accelerator setting kvm (not probed)"}, nil
	case AccelAuto, "":
		return DetectAccel(ctx, binary, image), nil
	}
	_, err := ParseAccelChoice(string(choice))
	return AccelProbe{}, err
}

var accelProbes = struct {
	sync.Mutex
	byKey map[string]AccelProbe
}{byKey: map[string]AccelProbe{}}

// DetectAccel tells whether KVM really runs image on this host, probing
// once per QEMU binary, image and process.
func DetectAccel(ctx context.Context, binary string, image Boot) AccelProbe {
	binary = orDefault(binary, DefaultBinary)
	key := binary + "\x00" + image.Kernel + "\x00" + image.Initrd
	accelProbes.Lock()
	defer accelProbes.Unlock()
	if probe, ok := accelProbes.byKey[key]; ok {
		return probe
	}
	probe, definitive := probeKVM(ctx, binary, image)
	if definitive {
		accelProbes.byKey[key] = probe
	}
	return probe
}

// ProbeTimeout bounds the KVM probe's boot. A Linux guest that works under
// KVM reaches its init in about a second.
const ProbeTimeout = 10 * time.Second

// ProbeMarker is what the guest's /init prints on its console, and then
// powers off, when the kernel command line holds ProbeParameter.
const (
	ProbeMarker    = "cclm-probe: linux booted"
	ProbeParameter = "cclm.probe=1"
)

// probeKVM boots image under KVM and accepts KVM only if the guest's own
// /init reports on the serial console within ProbeTimeout. An openable
// /dev/kvm is not enough: nested or sandboxed KVM may run a tiny firmware
// and even start a kernel's real-mode setup ("Booting from ROM..") while
// a Linux guest then hangs for good, and -cpu host may abort on an MSR.
// definitive is false when the outcome says nothing about KVM (ctx ended,
// QEMU missing), so that a later call probes again.
func probeKVM(ctx context.Context, binary string, image Boot) (probe AccelProbe, definitive bool) {
	tcg := func(format string, args ...any) AccelProbe {
		return AccelProbe{Accel: AccelTCG, Reason: fmt.Sprintf(format, args...)}
	}
	if err := openKVM(); err != nil {
		return tcg("KVM unavailable: %v", err), true
	}
	if image.Kernel == "" || image.Initrd == "" {
		return tcg("KVM not probed: no guest kernel and initramfs to boot"), false
	}
	booted, err := BootProbe(ctx, binary, AccelKVM, image, ProbeTimeout)
	var notBooted *NotBootedError
	switch {
	case err == nil:
		return AccelProbe{Accel: AccelKVM, Reason: fmt.Sprintf("a Linux guest booted under KVM in %.1f s", booted.Seconds())}, true
	case errors.As(err, &notBooted) && notBooted.Interrupted:
		return tcg("KVM probe interrupted: %v", err), false
	case errors.As(err, &notBooted):
		return tcg("KVM present but %v", err), true
	}
	return tcg("KVM not probed: %v", err), false
}

func openKVM() error {
	kvm, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return kvm.Close()
}

// NotBootedError is a probe guest that did not reach its /init.
type NotBootedError struct {
	Timeout time.Duration
	// Exited says QEMU ended before the marker (a panic with panic=-1,
	// an abort); otherwise the deadline passed.
	Exited bool
	// Interrupted says the caller's context ended first.
	Interrupted bool
	// ConsoleTail is the last lines QEMU and the guest printed.
	ConsoleTail string
}

func (e *NotBootedError) Error() string {
	what := fmt.Sprintf("a Linux guest did not boot under it within %v", e.Timeout)
	switch {
	case e.Interrupted:
		what = "the boot probe was interrupted"
	case e.Exited:
		what = "QEMU ended before a Linux guest booted under it"
	}
	if e.ConsoleTail == "" {
		return what + " (its console stayed empty)"
	}
	return fmt.Sprintf("%s; console: %s", what, strings.ReplaceAll(e.ConsoleTail, "\n", " | "))
}

// BootProbe boots image under accel with the probe parameter and returns
// how long the guest took to print ProbeMarker. QEMU is always gone when
// it returns.
func BootProbe(ctx context.Context, binary string, accel Accel, image Boot, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, orDefault(binary, DefaultBinary), probeArgs(accel, image)...)
	output, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = cmd.Stdout
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("cannot run %s: %w (apt-get install qemu-system-x86)", cmd.Path, err)
	}
	console, found := scanFor(output, ProbeMarker)
	booted, ended := time.Since(began), ctx.Err()
	cancel() // the guest has answered or QEMU has gone: stop it either way
	_ = cmd.Wait()
	if found {
		return booted, nil
	}
	return 0, &NotBootedError{
		Timeout: timeout, ConsoleTail: console,
		Exited:      ended == nil,
		Interrupted: errors.Is(ended, context.Canceled),
	}
}

// probeArgs boots the guest with its serial console on stdout, and makes a
// panic end QEMU at once (panic=-1 with -no-reboot).
func probeArgs(accel Accel, image Boot) []string {
	cpu := "max"
	if accel == AccelKVM {
		cpu = "host"
	}
	return []string{
		"-accel", string(accel), "-machine", "q35", "-cpu", cpu, "-m", "128", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-kernel", image.Kernel, "-initrd", image.Initrd,
		"-append", strings.TrimSpace("console=ttyS0 panic=-1 " + ProbeParameter + " " + image.Cmdline),
	}
}

// scanFor reads r until a line holds marker or r ends, and summarizes what
// it read before (see ConsoleSummary).
func scanFor(r io.Reader, marker string) (summary string, found bool) {
	var read []string
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.Contains(line, marker) {
			return "", true
		}
		read = append(read, line)
	}
	return ConsoleSummary(strings.Join(read, "\n"), 5, 0), false
}
