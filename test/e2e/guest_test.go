//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/e2e/guestboot"
)

const (
	dataDiskMiB = 256
	// diskTestMiB is the region the one-shot write and verify use.
	diskTestMiB = 64
	// corruptedBlock is the block whose payload the host damages between
	// the two boots.
	corruptedBlock = 1234
	// crashRegionMiB and crashWriteMiBps size the continuous-writer crash
	// test: a few passes over the region in a few seconds of TCG.
	crashRegionMiB  = 16
	crashWriteMiBps = 8
	dirtyMiBps      = 20
	// callTimeout bounds each check's agent calls (a 64 MiB write takes
	// about 4 s under TCG).
	callTimeout = 2 * time.Minute
	// dirtyWorkingSetMiB fits a 128 MiB guest, which has about 50 MiB free.
	dirtyWorkingSetMiB = 16
)

// TestGuestImage boots the real guest image under QEMU (TCG) twice and
// checks everything the rest of cclm relies on: the agent's info and
// heartbeat, the TCP echo service, the serial console shell, the dirty
// workload, disk write/verify (including a corruption made from the host
// between boots), and that a QEMU crash loses no acknowledged disk write.
func TestGuestImage(t *testing.T) {
	testenv.RequireE2E(t)
	testenv.RequireBinary(t, "qemu-system-x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	image, err := guestboot.EnsureImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "data.img")
	if err := guestboot.CreateDisk(disk, dataDiskMiB); err != nil {
		t.Fatal(err)
	}

	first := bootGuest(ctx, t, guestboot.Config{
		Image: image, Dir: filepath.Join(dir, "boot1"), DataDisk: disk,
		IP: "10.0.2.15/24", Hostname: "cclm-e2e",
	})
	t.Run("info", func(t *testing.T) { checkInfo(t, first.info, "10.0.2.15/24", "cclm-e2e") })
	t.Run("heartbeat", func(t *testing.T) { checkHeartbeat(ctx, t, first.client) })
	t.Run("echo", func(t *testing.T) { checkEcho(ctx, t, first.echoAddr, first.info.BootID) })
	t.Run("console", func(t *testing.T) { checkConsole(ctx, t, first.vm) })
	t.Run("agent respawns", func(t *testing.T) { checkAgentRespawns(ctx, t, first) })
	t.Run("dirty", func(t *testing.T) { checkDirty(ctx, t, first.client) })
	var written *guestagent.DiskWriteResult
	t.Run("disk write and verify", func(t *testing.T) { written = checkDiskWriteVerify(ctx, t, first.client, disk) })
	if err := first.vm.Stop(); err != nil {
		t.Fatal(err)
	}
	if written == nil {
		t.Fatal("the disk was not written; the second boot has nothing to verify")
	}
	damageBlock(t, disk, corruptedBlock)

	// The second boot uses the uncompressed kernel, so both are tested.
	pvhImage := image
	pvhImage.Kernel = image.PVHKernel
	second := bootGuest(ctx, t, guestboot.Config{
		Image: pvhImage, Dir: filepath.Join(dir, "boot2"), DataDisk: disk, IP: "dhcp",
	})
	t.Run("new boot over dhcp", func(t *testing.T) {
		if second.info.BootID == first.info.BootID {
			t.Errorf("boot ID %s did not change across a reboot", second.info.BootID)
		}
		checkInfo(t, waitForIPv4(ctx, t, second.client), "10.0.2.15/24", "cclm-guest")
	})
	t.Run("echo over dhcp", func(t *testing.T) { checkEcho(ctx, t, second.echoAddr, second.info.BootID) })
	t.Run("verify names the damaged block", func(t *testing.T) { checkCorruptionFound(ctx, t, second.client) })

	// The continuous writer keeps writing through a live migration, then
	// the target QEMU is killed: no write acknowledged on either side may
	// be missing from the disk.
	writer := startCrashWriter(ctx, t, second.client)
	targetCfg := guestboot.Config{Image: pvhImage, Dir: filepath.Join(dir, "boot2-target"), DataDisk: disk, IP: "dhcp"}
	migrated := migrateGuest(ctx, t, second, targetCfg)
	t.Run("migration and crash lose no acknowledged write", func(t *testing.T) {
		checkCrashKeepsAckedWrites(ctx, t, migrated, disk, writer)
	})
}

type bootedGuest struct {
	vm       *guestboot.VM
	client   *guestagent.Client
	info     *guestagent.Info
	echoAddr string
}

// bootGuest starts QEMU and waits for the agent.
func bootGuest(ctx context.Context, t *testing.T, cfg guestboot.Config) bootedGuest {
	t.Helper()
	vm, echoAddr := startVM(t, cfg)
	client := dialAgent(ctx, t, vm)
	readyCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	info, err := client.WaitReady(readyCtx)
	if err != nil {
		t.Fatalf("guest agent never answered: %v\nconsole:\n%s", err, vm.Console())
	}
	t.Logf("%s: agent ready %.2fs after QEMU started (TCG, -m %d, kernel %s), boot %s, agent %s",
		filepath.Base(cfg.Dir), time.Since(vm.Started).Seconds(), max(cfg.MemoryMiB, 128), filepath.Base(cfg.Image.Kernel), info.BootID, info.AgentVersion)
	return bootedGuest{vm: vm, client: client, info: info, echoAddr: echoAddr}
}

// startVM starts QEMU with the echo port forwarded to a free loopback
// port; QEMU is killed when the test ends, whatever happens.
func startVM(t *testing.T, cfg guestboot.Config) (*guestboot.VM, string) {
	t.Helper()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := guestboot.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	cfg.EchoHostPort = port
	vm, err := guestboot.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Kill(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("serial console of %s:\n%s", cfg.Dir, vm.Console())
		}
	})
	return vm, fmt.Sprintf("127.0.0.1:%d", port)
}

func dialAgent(ctx context.Context, t *testing.T, vm *guestboot.VM) *guestagent.Client {
	t.Helper()
	client, err := vm.DialAgent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// migrateGuest live-migrates the guest to a new QEMU (same disk file, as
// with shared storage) and checks that the agent answers there, over the
// target's socket, as the same boot with its heartbeat going on: the agent
// must survive the host side of its port going away and coming back.
func migrateGuest(ctx context.Context, t *testing.T, source bootedGuest, targetCfg guestboot.Config) bootedGuest {
	t.Helper()
	targetCfg.Incoming = true
	target, echoAddr := startVM(t, targetCfg)
	before := mustInfo(ctx, t, source.client)
	start := time.Now()
	if err := source.vm.Migrate(ctx, target); err != nil {
		t.Fatalf("live migration: %v", err)
	}
	migrated := time.Since(start)
	source.client.Close()
	if err := source.vm.Stop(); err != nil {
		t.Error(err)
	}
	client := dialAgent(ctx, t, target)
	after := mustInfo(ctx, t, client)
	t.Logf("migrated in %.2fs; agent answered on the target %.2fs after the migration started", migrated.Seconds(), time.Since(start).Seconds())
	if after.BootID != before.BootID || after.Heartbeat < before.Heartbeat {
		t.Fatalf("not the same running guest after migration: before %s heartbeat %d, after %s heartbeat %d",
			before.BootID, before.Heartbeat, after.BootID, after.Heartbeat)
	}
	time.Sleep(time.Second)
	later := mustInfo(ctx, t, client)
	if later.Heartbeat <= after.Heartbeat {
		t.Fatalf("heartbeat stopped on the target: %d then %d", after.Heartbeat, later.Heartbeat)
	}
	for _, w := range later.Disks {
		if !w.Running || w.Error != "" {
			t.Fatalf("disk writer did not survive the migration: %+v", w)
		}
	}
	return bootedGuest{vm: target, client: client, info: after, echoAddr: echoAddr}
}

func checkInfo(t *testing.T, info *guestagent.Info, wantIPv4, wantHostname string) {
	if len(info.BootID) != 36 {
		t.Errorf("boot ID %q is not a UUID", info.BootID)
	}
	if info.Hostname != wantHostname {
		t.Errorf("hostname %q, want %q", info.Hostname, wantHostname)
	}
	if info.MemoryBytes < 32<<20 || info.MemoryBytes > 128<<20 {
		t.Errorf("memoryBytes %d, want the MemTotal of a 128 MiB guest", info.MemoryBytes)
	}
	if info.AgentVersion == "" || info.ProtocolVersion != guestagent.ProtocolVersion {
		t.Errorf("agent version %q protocol %d", info.AgentVersion, info.ProtocolVersion)
	}
	eth0 := findInterface(info, "eth0")
	if eth0 == nil || !eth0.Up || len(eth0.MAC) != 17 {
		t.Fatalf("eth0 missing, down or without MAC: %+v", info.Interfaces)
	}
	// DHCP may still be settling when the agent first answers.
	if len(eth0.IPv4) > 0 && eth0.IPv4[0] != wantIPv4 {
		t.Errorf("eth0 addresses %v, want %s", eth0.IPv4, wantIPv4)
	}
}

func findInterface(info *guestagent.Info, name string) *guestagent.Interface {
	for i := range info.Interfaces {
		if info.Interfaces[i].Name == name {
			return &info.Interfaces[i]
		}
	}
	return nil
}

// checkHeartbeat expects about 10 ticks a second of host time; TCG on a
// loaded host may run the guest slower, hence the wide margin.
func checkHeartbeat(ctx context.Context, t *testing.T, client *guestagent.Client) {
	before := mustInfo(ctx, t, client)
	start := time.Now()
	time.Sleep(2 * time.Second)
	after := mustInfo(ctx, t, client)
	elapsed := time.Since(start).Seconds()
	ticks := float64(after.Heartbeat - before.Heartbeat)
	t.Logf("heartbeat: %.0f ticks in %.2fs (%.1f/s)", ticks, elapsed, ticks/elapsed)
	if rate := ticks / elapsed; rate < 5 || rate > 12 {
		t.Errorf("heartbeat %.1f ticks/s, want about 10", rate)
	}
	if after.HeartbeatUnixNano <= before.HeartbeatUnixNano {
		t.Errorf("heartbeatUnixNano did not advance: %d then %d", before.HeartbeatUnixNano, after.HeartbeatUnixNano)
	}
}

func mustInfo(ctx context.Context, t *testing.T, client *guestagent.Client) *guestagent.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := client.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// checkEcho holds one TCP session through the forwarded port and checks
// the per-connection counter and the boot ID of every reply.
func checkEcho(ctx context.Context, t *testing.T, addr, bootID string) {
	conn, replies := dialEcho(ctx, t, addr, bootID)
	defer conn.Close()
	for i, msg := range []string{"hello", "same vm?", "line three"} {
		if _, err := fmt.Fprintf(conn, "%s\n", msg); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%d %s %s", i+2, bootID, msg) // line 1 was dialEcho's probe
		if got := readLine(t, conn, replies); got != want {
			t.Fatalf("echo reply %q, want %q", got, want)
		}
	}
}

// dialEcho connects once the guest listens: until then QEMU's user-mode
// network accepts the connection and drops it. Line 1 is the probe.
func dialEcho(ctx context.Context, t *testing.T, addr, bootID string) (net.Conn, *bufio.Reader) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			replies := bufio.NewReader(conn)
			conn.SetDeadline(time.Now().Add(3 * time.Second))
			fmt.Fprintf(conn, "probe\n")
			line, readErr := replies.ReadString('\n')
			if readErr == nil && strings.TrimSpace(line) == "1 "+bootID+" probe" {
				conn.SetDeadline(time.Time{})
				return conn, replies
			}
			conn.Close()
			err = fmt.Errorf("probe reply %q: %v", line, readErr)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("echo service at %s (forwarded to guest port %d) never answered: %v", addr, guestagent.EchoPort, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readLine(t *testing.T, conn net.Conn, r *bufio.Reader) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading echo reply: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

// checkConsole runs a command in the serial-console shell; the arithmetic
// proves a shell evaluated it, not that the line was merely echoed.
func checkConsole(ctx context.Context, t *testing.T, vm *guestboot.VM) {
	consoleRun(ctx, t, vm, "echo console-$((6*7))-ok", "console-42-ok")
}

// consoleRun types command into the serial console and waits for want.
func consoleRun(ctx context.Context, t *testing.T, vm *guestboot.VM, command, want string) {
	t.Helper()
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", vm.SerialSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(command + "\r")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), want) {
		n, err := conn.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("no %q on the serial console after %q: %v; got %q", want, command, err, seen.String())
		}
	}
}

// checkAgentRespawns kills the agent from the console: init must start a
// new one, which counts the restart and serves the same boot.
func checkAgentRespawns(ctx context.Context, t *testing.T, guest bootedGuest) {
	before := mustInfo(ctx, t, guest.client)
	consoleRun(ctx, t, guest.vm, "kill -9 $(pidof cclm-agent) && echo killed-$((1+1))", "killed-2")
	deadline := time.Now().Add(30 * time.Second)
	for {
		info := mustInfo(ctx, t, guest.client)
		if info.AgentRestarts == before.AgentRestarts+1 {
			if info.BootID != before.BootID {
				t.Fatalf("boot ID changed from %s to %s", before.BootID, info.BootID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not restarted: restarts %d, was %d", info.AgentRestarts, before.AgentRestarts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForIPv4 waits for eth0 to get its address (DHCP can finish after
// the agent starts).
func waitForIPv4(ctx context.Context, t *testing.T, client *guestagent.Client) *guestagent.Info {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info := mustInfo(ctx, t, client)
		if eth0 := findInterface(info, "eth0"); eth0 != nil && len(eth0.IPv4) > 0 {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("eth0 got no IPv4 address: %+v", info.Interfaces)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func checkDirty(ctx context.Context, t *testing.T, client *guestagent.Client) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	started, err := client.Dirty(ctx, guestagent.DirtyArgs{RateMiBps: dirtyMiBps, WorkingSetMiB: dirtyWorkingSetMiB})
	if err != nil {
		t.Fatal(err)
	}
	if !started.Running || started.WorkingSetPages != dirtyWorkingSetMiB<<8 {
		t.Fatalf("dirty did not start: %+v", started)
	}
	start := time.Now()
	time.Sleep(3 * time.Second)
	during := mustInfo(ctx, t, client).Dirty
	elapsed := time.Since(start).Seconds()
	stopped, err := client.Dirty(ctx, guestagent.DirtyArgs{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dirty: %.1f MiB in %.2fs (asked %d MiB/s, agent reports %.1f MiB/s)", during.DirtiedMiB, elapsed, dirtyMiBps, during.AchievedMiBps)
	if !during.Running || during.RateMiBps != dirtyMiBps {
		t.Errorf("info does not report the running workload: %+v", during)
	}
	if want := dirtyMiBps * elapsed; during.DirtiedMiB < want/2 || during.DirtiedMiB > want*1.2 {
		t.Errorf("dirtied %.1f MiB in %.2fs, want about %.0f", during.DirtiedMiB, elapsed, want)
	}
	if stopped.Running || stopped.StoppedUnixNano == 0 {
		t.Errorf("dirty with rate 0 did not stop it: %+v", stopped)
	}
	time.Sleep(300 * time.Millisecond)
	if after := mustInfo(ctx, t, client).Dirty; after.Running || after.DirtiedMiB != stopped.DirtiedMiB {
		t.Errorf("workload still dirtying after stop: %+v then %+v", stopped, after)
	}
}

// checkDiskWriteVerify writes the region, verifies it in the guest, and
// reads the image file from the host: what the guest acknowledged must be
// in the file, with the same digest.
func checkDiskWriteVerify(ctx context.Context, t *testing.T, client *guestagent.Client, disk string) *guestagent.DiskWriteResult {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	args := guestagent.DiskArgs{Disk: guestboot.DataDiskSerial, SizeMiB: diskTestMiB, Seed: 42}
	written, err := client.DiskWrite(ctx, args)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("disk-write: %d MiB in %.2fs on %s (O_DIRECT %v), generation %d", diskTestMiB, written.Seconds, written.Device, written.Direct, written.Generation)
	if written.Blocks != guestagent.BlocksForMiB(diskTestMiB) || !written.Direct {
		t.Errorf("unexpected write result %+v", written)
	}
	verified, err := client.DiskVerify(ctx, guestagent.DiskArgs{Disk: guestboot.DataDiskSerial, SizeMiB: diskTestMiB})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("disk-verify: %.2fs", verified.Seconds)
	if !verified.OK || verified.Digest != written.Digest || verified.Generation != written.Generation {
		t.Fatalf("verify after write: %+v, wrote %+v", verified, written)
	}
	fromHost := verifyImage(t, disk, diskTestMiB, nil)
	if !fromHost.OK || fromHost.Digest != written.Digest {
		t.Fatalf("host-side read of %s: %+v, guest wrote digest %s", disk, fromHost, written.Digest)
	}
	return written
}

func verifyImage(t *testing.T, disk string, sizeMiB int, ack *guestagent.Ack) guestagent.DiskVerifyResult {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	result, err := guestagent.VerifyReader(f, guestagent.BlocksForMiB(sizeMiB), ack)
	if err != nil {
		t.Fatal(err)
	}
	return result
}

// damageBlock flips one payload byte of a block in the stopped VM's disk.
func damageBlock(t *testing.T, disk string, block int64) {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	offset := block*guestagent.BlockSize + 1000
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, offset); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, offset); err != nil {
		t.Fatal(err)
	}
}

func checkCorruptionFound(ctx context.Context, t *testing.T, client *guestagent.Client) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	result, err := client.DiskVerify(ctx, guestagent.DiskArgs{Disk: guestboot.DataDiskSerial, SizeMiB: diskTestMiB})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verify after damage: ok=%v bad=%d reason=%q", result.OK, result.BadBlocks, result.Reason)
	if result.OK || result.FirstBadBlock == nil || *result.FirstBadBlock != corruptedBlock || result.BadBlocks != 1 {
		t.Fatalf("verify should name block %d only: %+v", corruptedBlock, result)
	}
	if !strings.Contains(result.Reason, "checksum") {
		t.Errorf("reason %q does not say the checksum failed", result.Reason)
	}
}

func startCrashWriter(ctx context.Context, t *testing.T, client *guestagent.Client) *guestagent.DiskStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	writer, err := client.StartDiskWriter(ctx, guestagent.DiskArgs{
		Disk: guestboot.DataDiskSerial, SizeMiB: crashRegionMiB, RateMiBps: crashWriteMiBps, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	return writer
}

// checkCrashKeepsAckedWrites lets the continuous writer run on, notes how
// far it was acknowledged, kills QEMU outright and checks the image on the
// host: every acknowledged write must be there. As a control, the same
// check with a pretended extra pass of acknowledgements must fail.
func checkCrashKeepsAckedWrites(ctx context.Context, t *testing.T, guest bootedGuest, disk string, writer *guestagent.DiskStatus) {
	blocks := guestagent.BlocksForMiB(crashRegionMiB)
	// Past one and a half passes, blocks of two generations are on disk.
	midSecondPass := guestagent.BlockSeq(writer.StartGeneration+1, blocks/2, blocks)
	status := waitForAckSeq(ctx, t, guest.client, midSecondPass)
	if err := guest.vm.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed QEMU with the writer at generation %d block %d (ack seq %d, %.1f MiB written)",
		status.AckGeneration, status.AckBlock, status.AckSeq, status.WrittenMiB)
	ack := status.Ack()
	if result := verifyImage(t, disk, crashRegionMiB, &ack); !result.OK || result.UncheckedBlocks != 0 {
		t.Fatalf("acknowledged write lost: %+v", result)
	}
	pretended := guestagent.Ack{StartGeneration: ack.StartGeneration, Seq: ack.Seq + uint64(blocks)}
	if control := verifyImage(t, disk, crashRegionMiB, &pretended); control.OK {
		t.Fatalf("control check passed although no write was acknowledged a pass later: %+v", control)
	}
}

func waitForAckSeq(ctx context.Context, t *testing.T, client *guestagent.Client, want uint64) guestagent.DiskStatus {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info := mustInfo(ctx, t, client)
		if len(info.Disks) != 1 || info.Disks[0].Error != "" || !info.Disks[0].Running {
			t.Fatalf("continuous writer not running: %+v", info.Disks)
		}
		if status := info.Disks[0]; status.AckSeq >= want {
			return status
		}
		if time.Now().After(deadline) {
			t.Fatalf("continuous writer reached ackSeq %d of %d in 2 minutes", info.Disks[0].AckSeq, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
