package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseAccelChoice(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    AccelChoice
		wantErr bool
	}{
		{"", AccelAuto, false},
		{"auto", AccelAuto, false},
		{" KVM ", AccelChooseKVM, false},
		{"tcg", AccelChooseTCG, false},
		{"hvf", "", true},
	} {
		got, err := ParseAccelChoice(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseAccelChoice(%q) = %q, %v; want %q, error %t", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "use auto") {
			t.Errorf("error %q does not say what to use", err)
		}
	}
}

func TestSelectAccelHonoursAnExplicitChoice(t *testing.T) {
	probe, err := SelectAccel(context.Background(), AccelChooseTCG, "/nonexistent/qemu", Boot{})
	if err != nil || probe.Accel != AccelTCG || !strings.Contains(probe.String(), "tcg: chosen") {
		t.Fatalf("tcg: %v, %v", probe, err)
	}
	probe, err = SelectAccel(context.Background(), AccelChooseKVM, "/nonexistent/qemu", Boot{})
	if openKVM() != nil {
		if err == nil || !strings.Contains(err.Error(), "choose auto or tcg") {
			t.Fatalf("kvm without a usable /dev/kvm: %v, %v; want an error naming the fix", probe, err)
		}
		return
	}
	if err != nil || probe.Accel != AccelKVM {
		t.Fatalf("kvm: %v, %v", probe, err)
	}
}

// fakeQEMU writes a shell script that plays QEMU: it fails unless its
// command line carries the probe parameter, then runs body.
func fakeQEMU(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	script := "#!/bin/sh\ncase \"$*\" in *" + ProbeParameter + "*console=ttyS0*|*console=ttyS0*" + ProbeParameter + "*) ;; *) echo \"no probe parameter: $*\"; exit 3;; esac\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

var probeImage = Boot{Kernel: "/guest/vmlinux", Initrd: "/guest/initramfs.img"}

func TestBootProbeSeesTheGuestsMarker(t *testing.T) {
	binary := fakeQEMU(t, "echo 'SeaBIOS'; echo '"+ProbeMarker+"'; sleep 30")
	took, err := BootProbe(context.Background(), binary, AccelKVM, probeImage, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if took > 4*time.Second {
		t.Fatalf("took %v: the probe waited for QEMU to end instead of stopping it at the marker", took)
	}
}

// TestBootProbeGivesUpOnAHungGuest is the host this probe was written for:
// KVM runs the firmware, the kernel starts and the guest then hangs.
func TestBootProbeGivesUpOnAHungGuest(t *testing.T) {
	binary := fakeQEMU(t, "echo 'Booting from ROM..'; exec sleep 30")
	began := time.Now()
	_, err := BootProbe(context.Background(), binary, AccelKVM, probeImage, 300*time.Millisecond)
	var notBooted *NotBootedError
	if !errors.As(err, &notBooted) || notBooted.Exited || notBooted.Interrupted {
		t.Fatalf("want a timed-out NotBootedError, got %#v", err)
	}
	if elapsed := time.Since(began); elapsed > 5*time.Second {
		t.Fatalf("gave up after %v, the deadline was 300ms", elapsed)
	}
	for _, want := range []string{"did not boot under it within 300ms", "Booting from ROM.."} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestBootProbeReportsAGuestThatPanicked(t *testing.T) {
	binary := fakeQEMU(t, "echo 'Kernel panic - not syncing: VFS: Unable to mount root fs'; exit 0")
	_, err := BootProbe(context.Background(), binary, AccelKVM, probeImage, 5*time.Second)
	var notBooted *NotBootedError
	if !errors.As(err, &notBooted) || !notBooted.Exited {
		t.Fatalf("want an exited NotBootedError, got %#v", err)
	}
	if !strings.Contains(err.Error(), "Kernel panic") {
		t.Errorf("error %q lacks the console's last line", err)
	}
}

func TestBootProbeInterrupted(t *testing.T) {
	binary := fakeQEMU(t, "exec sleep 30")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := BootProbe(ctx, binary, AccelKVM, probeImage, 10*time.Second)
	var notBooted *NotBootedError
	if !errors.As(err, &notBooted) || !notBooted.Interrupted {
		t.Fatalf("want an interrupted NotBootedError, got %#v", err)
	}
	if !strings.Contains(err.Error(), "console stayed empty") {
		t.Errorf("error %q does not say the console was empty", err)
	}
}

func TestBootProbeWithoutQEMU(t *testing.T) {
	_, err := BootProbe(context.Background(), filepath.Join(t.TempDir(), "missing"), AccelKVM, probeImage, time.Second)
	if err == nil || !strings.Contains(err.Error(), "apt-get install qemu-system-x86") {
		t.Fatalf("want an error naming the package, got %v", err)
	}
}

func TestConsoleSummaryKeepsThePanicLine(t *testing.T) {
	console := "Booting\n[ 1.2] Kernel panic - not syncing: No working init found.\n" + strings.Repeat("[ 1.3]  trace line\n", 20) + "[ 1.4] Kernel Offset: disabled\n"
	got := ConsoleSummary(console, 3, 0)
	want := "[ 1.2] Kernel panic - not syncing: No working init found.\n...\n[ 1.3]  trace line\n[ 1.3]  trace line\n[ 1.4] Kernel Offset: disabled"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := ConsoleSummary("a\n\nb\nc\n", 5, 0); got != "a\nb\nc" {
		t.Errorf("short console: %q", got)
	}
}

func TestConsoleSummaryKeepsThePanicLineWithinItsBound(t *testing.T) {
	console := "[ 1.2] Kernel panic - not syncing: No working init found.\n" + strings.Repeat("[ 1.3]  a long line of the panic's stack trace\n", 40)
	got := ConsoleSummary(console, 30, 300)
	if len(got) > 300 {
		t.Errorf("%d bytes, want at most 300", len(got))
	}
	if !strings.HasPrefix(got, "[ 1.2] Kernel panic - not syncing: No working init found.\n...\n[ 1.3]") {
		t.Errorf("the panic line, then the last lines that fit: %q", got)
	}
}
