package qemu_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/testenv"
)

// TestBootProbeWithTheGuestImage boots the real guest image the way the
// KVM probe does, under TCG (which runs everywhere): its /init must print
// the marker within the probe's deadline, and a guest that cannot reach
// its /init must be reported with its console.
func TestBootProbeWithTheGuestImage(t *testing.T) {
	testenv.RequireE2E(t)
	image := guestBoot(t)
	image.Cmdline = ""
	// TCG is slower than the KVM the probe is for: allow it six times as long.
	timeout := 6 * qemu.ProbeTimeout
	ctx := context.Background()
	took, err := qemu.BootProbe(ctx, "", qemu.AccelTCG, image, timeout)
	if err != nil {
		t.Fatalf("the guest image did not answer the probe under TCG: %v", err)
	}
	t.Logf("guest answered the probe under TCG in %v", took.Round(10*time.Millisecond))

	broken := image
	broken.Cmdline = "rdinit=/no-such-init"
	_, err = qemu.BootProbe(ctx, "", qemu.AccelTCG, broken, timeout)
	var notBooted *qemu.NotBootedError
	if !errors.As(err, &notBooted) || !notBooted.Exited {
		t.Fatalf("a guest without its init: want QEMU to end with the panic, got %v", err)
	}
	if !strings.Contains(err.Error(), "panic") {
		t.Fatalf("the error does not carry the guest's panic: %v", err)
	}
}

// TestGuestInitAnswersTheProbe pins the marker the guest image's /init
// prints to the one the probe looks for.
func TestGuestInitAnswersTheProbe(t *testing.T) {
	init, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "guest", "rootfs", "init"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(init), `echo "`+qemu.ProbeMarker+`"`) {
		t.Fatalf("guest/rootfs/init does not print %q", qemu.ProbeMarker)
	}
	if !strings.Contains(string(init), strings.TrimSuffix(qemu.ProbeParameter, "=1")) {
		t.Fatalf("guest/rootfs/init does not read %s", qemu.ProbeParameter)
	}
}
