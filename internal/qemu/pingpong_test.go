package qemu_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/pkg/guestagent"
)

// TestMigrationPingPong moves a guest that writes its disk and dirties
// memory back and forth over a rate-limited link, with QEMU alone and no
// cclm controller in the loop, and requires after each round: the same
// boot, the same guest agent (no restart), no crash on the console. Each
// round takes several memory passes, which is what QEMU before 9.0 got
// wrong under TCG (its fast dirty sync lost writes: the guest crashed
// within 1 to 3 rounds); it is the regression test for that bug, now that
// cclm refuses such QEMUs and the RAM pad that avoided it is gone. 4
// rounds by default.
//
// Soak knobs: CCLM_QEMU_PINGPONG=N rounds, CCLM_QEMU_PINGPONG_DIRTY_MIBPS
// (default 4, 0 none), CCLM_QEMU_PINGPONG_MIBPS bandwidth (default 32, 0
// unlimited), CCLM_QEMU_PINGPONG_NO_MIRROR=1 moves memory only,
// CCLM_QEMU_PINGPONG_AUTOCONVERGE=1 lets QEMU throttle the guest,
// CCLM_QEMU_PINGPONG_MULTIFD=1 or 0 turns multifd on or off.
func TestMigrationPingPong(t *testing.T) {
	testenv.RequireE2E(t)
	rounds := envInt("CCLM_QEMU_PINGPONG", 4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*time.Minute+2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	runDir := filepath.Join(dir, "0")
	dom := testDomain(t, "pingpong", runDir, rawDisk(t, runDir, liveDiskName, liveDiskName, liveDiskMiB))
	in := launch(ctx, t, dom, qemu.Options{})
	client, first := agentReady(ctx, t, in)
	_, err := client.StartDiskWriter(ctx, guestagent.DiskArgs{Disk: liveDiskName, SizeMiB: liveDiskMiB, RateMiBps: 2, Seed: 3})
	must(t, err)
	if rate := envInt("CCLM_QEMU_PINGPONG_DIRTY_MIBPS", 4); rate > 0 {
		_, err = client.Dirty(ctx, guestagent.DirtyArgs{RateMiBps: float64(rate), WorkingSetMiB: 16})
		must(t, err)
	}
	client.Close()
	params := qemu.DefaultMigrationParams()
	params.BandwidthBytesPerSecond = int64(envInt("CCLM_QEMU_PINGPONG_MIBPS", 32)) << 20 // 0: unlimited
	params.AutoConverge = os.Getenv("CCLM_QEMU_PINGPONG_AUTOCONVERGE") == "1"
	if multifd := os.Getenv("CCLM_QEMU_PINGPONG_MULTIFD"); multifd != "" {
		params.Multifd = multifd == "1"
	}
	var mostPasses int64
	for round := 1; round <= rounds; round++ {
		dst := launch(ctx, t, targetOf(t, in.Domain(), filepath.Join(dir, strconv.Itoa(round))), qemu.Options{Incoming: true})
		figures := liveMigrate(ctx, t, in, dst, migrationPlan{params: params, disks: pingpongDisks()})
		in = dst
		client, info := agentReady(ctx, t, in)
		if crash := consoleCrash(in.ConsoleTail(400)); crash != "" || info.BootID != first.BootID || info.AgentRestarts != first.AgentRestarts {
			t.Fatalf("round %d (%d passes): the guest came across damaged: boot %s→%s, agent restarts %d→%d, console: %s",
				round, figures.progress.Iteration, first.BootID, info.BootID, first.AgentRestarts, info.AgentRestarts, crash)
		}
		client.Close()
		mostPasses = max(mostPasses, figures.progress.Iteration)
		t.Logf("round %d: %d passes, %s, downtime %s", round, figures.progress.Iteration, figures.wall.Round(time.Millisecond), figures.paused.Round(time.Millisecond))
	}
	if rounds > 0 && mostPasses < 3 {
		t.Fatalf("no round took more than %d memory passes: the guest did not dirty enough to test what a pass loses", mostPasses)
	}
}

func consoleCrash(console string) string {
	for _, line := range strings.Split(console, "\n") {
		for _, sign := range []string{"Kernel panic", "BUG:", "Oops:", "general protection fault", "segfault", "fatal error", "SIGSEGV"} {
			if strings.Contains(line, sign) {
				return fmt.Sprintf("%q", line)
			}
		}
	}
	return ""
}

// pingpongDisks are the disks mirrored each round: none with
// CCLM_QEMU_PINGPONG_NO_MIRROR=1 (memory only, no pause before the
// switchover).
func pingpongDisks() []string {
	if os.Getenv("CCLM_QEMU_PINGPONG_NO_MIRROR") == "1" {
		return nil
	}
	return []string{liveDiskName}
}

// envInt is the integer in the environment variable name, or def when it
// is unset or not a number.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}
