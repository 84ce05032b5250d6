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

// TestMigrationPingPong moves one guest back and forth N times
// (CCLM_QEMU_PINGPONG=N), with QEMU alone and no cclm controller in the
// loop, its disk writer running, and requires after each: the same boot,
// the same guest agent (no restart), no crash on the console. It measures
// how often this host's QEMU brings a guest across damaged, the reference
// for the fault suite's guest crashes; a soak, not part of the suite.
//
// CCLM_QEMU_PINGPONG_DIRTY_MIBPS also dirties memory at that rate,
// CCLM_QEMU_PINGPONG_MIBPS sets the bandwidth (default 32, 0 unlimited),
// CCLM_QEMU_PINGPONG_NO_MIRROR=1 moves memory only. Seen with QEMU 7.2
// under TCG (docs/faults.md): at 32 MiB/s and 4 MiB/s dirtied the guest
// crashes within 1 to 3 rounds (with single- or multi-threaded TCG, any
// CPU model, mirror or not); unlimited, or without dirtying, 6 to 8 rounds
// of 6 to 8 pass.
func TestMigrationPingPong(t *testing.T) {
	testenv.RequireE2E(t)
	rounds, _ := strconv.Atoi(os.Getenv("CCLM_QEMU_PINGPONG"))
	if rounds <= 0 {
		t.Skip("set CCLM_QEMU_PINGPONG=N to migrate a guest back and forth N times")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds)*time.Minute+2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	runDir := filepath.Join(dir, "0")
	dom := testDomain(t, "pingpong", runDir, rawDisk(t, runDir, liveDiskName, liveDiskName, liveDiskMiB))
	in := launch(ctx, t, dom, qemu.Options{})
	client, first := agentReady(ctx, t, in)
	_, err := client.StartDiskWriter(ctx, guestagent.DiskArgs{Disk: liveDiskName, SizeMiB: liveDiskMiB, RateMiBps: 2, Seed: 3})
	must(t, err)
	if rate, _ := strconv.ParseFloat(os.Getenv("CCLM_QEMU_PINGPONG_DIRTY_MIBPS"), 64); rate > 0 {
		_, err = client.Dirty(ctx, guestagent.DirtyArgs{RateMiBps: rate, WorkingSetMiB: 16})
		must(t, err)
	}
	client.Close()
	params := qemu.DefaultMigrationParams()
	params.BandwidthBytesPerSecond = 32 << 20
	if mibps, err := strconv.Atoi(os.Getenv("CCLM_QEMU_PINGPONG_MIBPS")); err == nil {
		params.BandwidthBytesPerSecond = int64(mibps) << 20 // 0: unlimited
	}
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
		t.Logf("round %d: %d passes, %s, downtime %s", round, figures.progress.Iteration, figures.wall.Round(time.Millisecond), figures.paused.Round(time.Millisecond))
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
