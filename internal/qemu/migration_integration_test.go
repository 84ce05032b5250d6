package qemu_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/pki"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/pkg/guestagent"
)

const (
	dataDiskName   = "data"
	dataDiskSerial = "data"
	dataDiskMiB    = 64
)

// migrationPlan is what the node agents agree on for one migration.
type migrationPlan struct {
	params qemu.MigrationParams
	disks  []string     // disks to mirror over NBD
	ca     *pki.KeyPair // TLS with certificates of this CA; nil: no TLS
}

// migrationFigures is what one migration measured.
type migrationFigures struct {
	mirror time.Duration // until every mirror was READY
	wall   time.Duration // from the first QMP command on the source to the target running
	// paused is how long the guest did not run: from the source's STOP
	// event to the target's RESUME event (QEMU's downtime ends when the
	// source has sent everything, before the target is resumed).
	paused   time.Duration
	progress qemu.MigrationProgress
}

// liveMigrate runs the whole data path, in the order the node agents
// follow (see the package documentation), the target's side concurrently
// as its own node agent would, and returns with the target running and
// the source gone.
func liveMigrate(ctx context.Context, t *testing.T, src, dst *qemu.Instance, plan migrationPlan) migrationFigures {
	t.Helper()
	tls := plan.ca != nil
	if tls {
		addTLS(ctx, t, dst, plan.ca, qemu.TLSServer)
		addTLS(ctx, t, src, plan.ca, qemu.TLSClient)
	}
	plan.params.TLS = tls
	plan.params.PauseBeforeSwitchover = len(plan.disks) > 0
	must(t, dst.ConfigureMigration(ctx, qemu.RoleTarget, plan.params))
	nbdAddr := freeAddr(t)
	if len(plan.disks) > 0 {
		must(t, dst.StartNBDServer(ctx, nbdAddr, tls))
		must(t, dst.ExportDisks(ctx, plan.disks, true))
	}
	listen, err := dst.MigrateIncoming(ctx, qemu.MigrationURI("127.0.0.1:0"))
	must(t, err)
	srcEvents, unsubscribeSrc := src.Events()
	defer unsubscribeSrc()
	dstEvents, unsubscribeDst := dst.Events()
	defer unsubscribeDst()
	targetRuns := make(chan error, 1)
	go func() { targetRuns <- runTarget(ctx, dst, len(plan.disks) > 0) }()

	var figures migrationFigures
	start := time.Now()
	figures.progress, figures.mirror = runSource(ctx, t, src, listen, nbdAddr, plan)
	if err := <-targetRuns; err != nil {
		t.Fatal(err)
	}
	figures.wall = time.Since(start)
	figures.paused = expectEvent(t, dstEvents, "RESUME").Time.Sub(expectEvent(t, srcEvents, "STOP").Time)
	// The source quits only once the target runs.
	if status, err := dst.Status(ctx); err != nil || !status.Running {
		t.Fatalf("target not running after resume: %+v %v", status, err)
	}
	must(t, src.Quit(ctx))
	return figures
}

// runSource is the source node agent's part: mirror, migrate, finish the
// mirrors at pre-switchover, wait for completion.
func runSource(ctx context.Context, t *testing.T, src *qemu.Instance, listen, nbdAddr string, plan migrationPlan) (qemu.MigrationProgress, time.Duration) {
	t.Helper()
	start := time.Now()
	var mirrored time.Duration
	must(t, src.ConfigureMigration(ctx, qemu.RoleSource, plan.params))
	if len(plan.disks) > 0 {
		must(t, src.MirrorDisks(ctx, qemu.NBDTarget{Addr: nbdAddr, TLS: plan.params.TLS}, plan.disks))
		mirrored = time.Since(start)
	}
	must(t, src.Migrate(ctx, qemu.MigrationURI(listen)))
	if plan.params.PostCopy {
		// Switch at once; QEMU does so after the first pass over memory.
		must(t, src.StartPostcopy(ctx))
	}
	progress, err := src.WaitMigration(ctx, nil)
	must(t, err)
	if progress.Status == qemu.MigrationPreSwitchover {
		// The guest is paused and its memory sent: finish the disks, then
		// let QEMU send the device state.
		must(t, src.CompleteMirrors(ctx, plan.disks))
		must(t, src.ContinueMigration(ctx))
		progress, err = src.WaitMigration(ctx, nil)
		must(t, err)
	}
	if progress.Status != qemu.MigrationCompleted {
		t.Fatalf("migration ended %s: %+v", progress.Status, progress)
	}
	return progress, mirrored
}

// runTarget is the target node agent's part: once the VM may run here,
// stop the NBD server, resume, announce.
func runTarget(ctx context.Context, dst *qemu.Instance, nbd bool) error {
	if _, err := dst.WaitIncoming(ctx); err != nil {
		return err
	}
	if nbd {
		if err := dst.StopNBDServer(ctx); err != nil {
			return err
		}
	}
	if err := dst.Resume(ctx); err != nil {
		return err
	}
	return dst.AnnounceSelf(ctx)
}

func addTLS(ctx context.Context, t *testing.T, in *qemu.Instance, ca *pki.KeyPair, endpoint qemu.TLSEndpoint) {
	t.Helper()
	dir := tlsDir(t, ca, filepath.Join(in.Domain().RunDir, "tls"))
	must(t, in.AddTLSCredentials(ctx, dir, endpoint))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func logFigures(t *testing.T, what string, f migrationFigures) {
	t.Helper()
	p := f.progress
	t.Logf("%-27s total %4dms (QEMU) %4dms (wall), downtime %3dms (QEMU) %3dms (guest paused), setup %2dms, RAM %5.1f MiB sent of %5.1f MiB, %d iterations, %.0f Mbit/s, mirror ready after %dms",
		what, p.TotalTime.Milliseconds(), f.wall.Milliseconds(), p.Downtime.Milliseconds(), f.paused.Milliseconds(), p.SetupTime.Milliseconds(),
		float64(p.TransferredBytes)/(1<<20), float64(p.TotalBytes)/(1<<20), p.Iteration, p.Mbps, f.mirror.Milliseconds())
}

// targetOf returns the Domain a migration target of dom runs: the same VM
// in another run directory, with its own disk files and taps.
func targetOf(t *testing.T, dom qemu.Domain, runDir string) qemu.Domain {
	t.Helper()
	target := dom
	target.RunDir = runDir
	target.Disks = nil
	must(t, os.MkdirAll(runDir, 0o750))
	for _, disk := range dom.Disks {
		info, err := os.Stat(disk.Path)
		must(t, err)
		disk.Path = filepath.Join(runDir, filepath.Base(disk.Path))
		must(t, qemu.CreateRawDisk(disk.Path, info.Size()))
		target.Disks = append(target.Disks, disk)
	}
	target.NICs = nil
	for _, nic := range dom.NICs {
		nic.Tap = "cqt" + randomSuffix()
		target.NICs = append(target.NICs, nic)
	}
	return target
}

func dataDisk(t *testing.T, runDir string) qemu.Disk {
	return rawDisk(t, runDir, dataDiskName, dataDiskSerial, dataDiskMiB)
}

func rawDisk(t *testing.T, runDir, name, serial string, sizeMiB int) qemu.Disk {
	t.Helper()
	must(t, os.MkdirAll(runDir, 0o750))
	path := filepath.Join(runDir, name+".img")
	must(t, qemu.CreateRawDisk(path, int64(sizeMiB)<<20))
	return qemu.Disk{Name: name, Path: path, Serial: serial}
}

// tapNICs is a NIC on a tap that QEMU creates, when this process may
// (root, /dev/net/tun); none otherwise.
func tapNICs(t *testing.T) []qemu.NIC {
	if f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0); err != nil || os.Geteuid() != 0 {
		t.Logf("no tap NIC: needs root and /dev/net/tun (%v)", err)
		return nil
	} else {
		f.Close()
	}
	return []qemu.NIC{{Name: "default", Tap: "cqs" + randomSuffix(), MAC: "52:54:00:c1:c1:01"}}
}

// Constants of the disk the guest keeps writing to during the migration.
const (
	liveDiskName   = "live"
	liveDiskMiB    = 16
	liveWriteMiBps = 8
)

// TestLiveMigrationWithDiskAndTLS migrates a running guest with two disks
// (NBD mirrors) and a tap NIC to a second QEMU over loopback TCP, with TLS
// on both the migration stream and NBD. The guest is to be the same boot,
// to keep running, to find on the target the 64 MiB it wrote on the source
// before the migration, and not to lose any write its continuous writer had
// acknowledged on the other disk, writing all along.
func TestLiveMigrationWithDiskAndTLS(t *testing.T) {
	testenv.RequireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	srcDir := filepath.Join(dir, "src")
	dom := testDomain(t, "migrant", srcDir, dataDisk(t, srcDir), rawDisk(t, srcDir, liveDiskName, liveDiskName, liveDiskMiB))
	dom.NICs = tapNICs(t)
	src := launch(ctx, t, dom, qemu.Options{})
	client, _ := agentReady(ctx, t, src)
	written, err := client.DiskWrite(ctx, guestagent.DiskArgs{Disk: dataDiskSerial, SizeMiB: dataDiskMiB, Seed: 42})
	must(t, err)
	t.Logf("guest wrote %d MiB in %.2fs (generation %d)", dataDiskMiB, written.Seconds, written.Generation)
	_, err = client.StartDiskWriter(ctx, guestagent.DiskArgs{Disk: liveDiskName, SizeMiB: liveDiskMiB, RateMiBps: liveWriteMiBps, Seed: 7})
	must(t, err)
	time.Sleep(time.Second) // let the writer get going
	before := mustInfo(ctx, t, client)
	client.Close()

	dst := launch(ctx, t, targetOf(t, dom, filepath.Join(dir, "dst")), qemu.Options{Incoming: true})
	ca, err := pki.NewCA("cclm-qemu-test")
	must(t, err)
	figures := liveMigrate(ctx, t, src, dst, migrationPlan{params: qemu.DefaultMigrationParams(), disks: []string{dataDiskName, liveDiskName}, ca: ca})
	logFigures(t, "TLS, multifd, 64+16 MiB disks:", figures)

	if src.Alive() {
		t.Fatal("source QEMU still runs after the migration")
	}
	client, _ = agentReady(ctx, t, dst)
	after := mustInfo(ctx, t, client)
	if after.BootID != before.BootID || after.Heartbeat < before.Heartbeat {
		t.Fatalf("not the same running guest: before boot %s heartbeat %d, after boot %s heartbeat %d", before.BootID, before.Heartbeat, after.BootID, after.Heartbeat)
	}
	time.Sleep(time.Second)
	if later := mustInfo(ctx, t, client); later.Heartbeat <= after.Heartbeat {
		t.Fatalf("heartbeat stopped on the target: %d then %d", after.Heartbeat, later.Heartbeat)
	}
	checkLiveWriter(ctx, t, client, before)
	verified, err := client.DiskVerify(ctx, guestagent.DiskArgs{Disk: dataDiskSerial, SizeMiB: dataDiskMiB})
	must(t, err)
	if !verified.OK || verified.Digest != written.Digest {
		t.Fatalf("disk on the target: %+v; the source wrote digest %s", verified, written.Digest)
	}
	t.Logf("target runs the same boot %s; disk-verify on the target OK (%.2fs)", after.BootID, verified.Seconds)
	// The VM's next migration, cancelled before it started (its disk copy
	// failed): the incoming migration that brought the VM here shows as
	// "completed" in query-migrate, and must not be taken for this one's.
	if err := dst.CancelMigration(ctx, nil); err != nil {
		t.Fatalf("cancelling a migration never started on the VM that arrived: %v", err)
	}
	// A node agent that restarted while taking the guest over runs the
	// takeover again: stopping the NBD server a second time is no error.
	if err := dst.StopNBDServer(ctx); err != nil {
		t.Fatalf("stopping the stopped NBD server: %v", err)
	}
}

// checkLiveWriter stops the guest's continuous writer, which ran through
// the migration, and verifies its disk against what it acknowledged.
func checkLiveWriter(ctx context.Context, t *testing.T, client *guestagent.Client, before *guestagent.Info) {
	t.Helper()
	stopped, err := client.StopDiskWriter(ctx, liveDiskName)
	must(t, err)
	var ackedBefore uint64
	for _, d := range before.Disks {
		ackedBefore = max(ackedBefore, d.AckSeq)
	}
	if stopped.Error != "" || stopped.AckSeq <= ackedBefore {
		t.Fatalf("continuous writer across the migration: %+v (acknowledged seq %d before)", stopped, ackedBefore)
	}
	ack := stopped.Ack()
	result, err := client.DiskVerify(ctx, guestagent.DiskArgs{Disk: liveDiskName, SizeMiB: liveDiskMiB, Ack: &ack})
	must(t, err)
	if !result.OK {
		t.Fatalf("acknowledged write lost across the migration: %+v", result)
	}
	t.Logf("continuous writer: %.1f MiB written, ack seq %d before the migration, %d at the end; none lost", stopped.WrittenMiB, ackedBefore, stopped.AckSeq)
}

// TestCancelledMigration cancels a migration twice, once while memory is
// being copied and once with the guest paused at pre-switchover, and
// checks each time that the source runs on as before and the target is
// gone.
func TestCancelledMigration(t *testing.T) {
	testenv.RequireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	dom := testDomain(t, "stayer", filepath.Join(dir, "src"), dataDisk(t, filepath.Join(dir, "src")))
	src := launch(ctx, t, dom, qemu.Options{})
	client, before := agentReady(ctx, t, src)

	// A bandwidth of 1 MiB/s keeps the copy going long enough to cancel it.
	slow := qemu.DefaultMigrationParams()
	slow.BandwidthBytesPerSecond = 1 << 20
	dst := startCancelledMigration(ctx, t, src, targetOf(t, dom, filepath.Join(dir, "dst1")), slow, func(p qemu.MigrationProgress) bool {
		return p.Status == qemu.MigrationActive && p.TransferredBytes > 1<<20
	})
	checkSourceRunsOn(ctx, t, src, dst, client, before)

	dst = startCancelledMigration(ctx, t, src, targetOf(t, dom, filepath.Join(dir, "dst2")), qemu.DefaultMigrationParams(), func(p qemu.MigrationProgress) bool {
		return p.Status == qemu.MigrationPreSwitchover
	})
	checkSourceRunsOn(ctx, t, src, dst, client, before)
}

// startCancelledMigration mirrors the data disk and starts the migration,
// cancels it on the source once stop says so, and kills the target.
func startCancelledMigration(ctx context.Context, t *testing.T, src *qemu.Instance, target qemu.Domain, params qemu.MigrationParams, stop func(qemu.MigrationProgress) bool) *qemu.Instance {
	t.Helper()
	disks := []string{dataDiskName}
	dst := launch(ctx, t, target, qemu.Options{Incoming: true})
	params.PauseBeforeSwitchover = true
	must(t, dst.ConfigureMigration(ctx, qemu.RoleTarget, params))
	nbdAddr := freeAddr(t)
	must(t, dst.StartNBDServer(ctx, nbdAddr, false))
	must(t, dst.ExportDisks(ctx, disks, true))
	listen, err := dst.MigrateIncoming(ctx, qemu.MigrationURI("127.0.0.1:0"))
	must(t, err)
	must(t, src.ConfigureMigration(ctx, qemu.RoleSource, params))
	must(t, src.MirrorDisks(ctx, qemu.NBDTarget{Addr: nbdAddr}, disks))
	must(t, src.Migrate(ctx, qemu.MigrationURI(listen)))
	waitCtx, stopWaiting := context.WithCancel(ctx)
	var seen qemu.MigrationProgress
	_, err = src.WaitMigration(waitCtx, func(p qemu.MigrationProgress) {
		seen = p
		if stop(p) {
			stopWaiting()
		}
	})
	stopWaiting()
	if !stop(seen) || (err != nil && !errors.Is(err, context.Canceled)) {
		t.Fatalf("migration ended (%v, %+v) before it could be cancelled", err, seen)
	}
	t.Logf("cancelling in status %s after %.1f MiB", seen.Status, float64(seen.TransferredBytes)/(1<<20))
	must(t, src.CancelMigration(ctx, disks))
	must(t, dst.Kill())
	return dst
}

func checkSourceRunsOn(ctx context.Context, t *testing.T, src, dst *qemu.Instance, client *guestagent.Client, before *guestagent.Info) {
	t.Helper()
	if dst.Alive() {
		t.Fatal("target still runs after the cancel")
	}
	status, err := src.Status(ctx)
	must(t, err)
	progress, err := src.QueryMigrate(ctx)
	must(t, err)
	jobs, err := src.BlockJobs(ctx)
	must(t, err)
	if !status.Running || progress.Status != qemu.MigrationCancelled || len(jobs) != 0 {
		t.Fatalf("after cancel: source %+v, migration %s, block jobs %+v; want running, cancelled, none", status, progress.Status, jobs)
	}
	now := mustInfo(ctx, t, client)
	time.Sleep(500 * time.Millisecond)
	later := mustInfo(ctx, t, client)
	if now.BootID != before.BootID || later.Heartbeat <= now.Heartbeat {
		t.Fatalf("source guest after cancel: boot %s (was %s), heartbeat %d then %d", now.BootID, before.BootID, now.Heartbeat, later.Heartbeat)
	}
}

// TestMigrationFigures migrates one idle 128 MiB guest back and forth,
// plain and with TLS, and prints what each migration took.
func TestMigrationFigures(t *testing.T) {
	testenv.RequireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	dom := testDomain(t, "figures", filepath.Join(dir, "0"))
	began := time.Now()
	current := launch(ctx, t, dom, qemu.Options{})
	client, info := agentReady(ctx, t, current)
	t.Logf("boot: guest agent ready %.2fs after launch (%s)", time.Since(began).Seconds(), current.Accel())
	client.Close()
	ca, err := pki.NewCA("cclm-qemu-figures")
	must(t, err)
	postcopy := qemu.DefaultMigrationParams()
	postcopy.PostCopy = true
	runs := []struct {
		what string
		plan migrationPlan
	}{
		{"plain, multifd 2:", migrationPlan{params: qemu.DefaultMigrationParams()}},
		{"TLS, multifd 2:", migrationPlan{params: qemu.DefaultMigrationParams(), ca: ca}},
		{"plain, multifd 2:", migrationPlan{params: qemu.DefaultMigrationParams()}},
		{"TLS, multifd 2:", migrationPlan{params: qemu.DefaultMigrationParams(), ca: ca}},
		{"TLS, post-copy at once:", migrationPlan{params: postcopy, ca: ca}},
	}
	for i, run := range runs {
		next := launch(ctx, t, targetOf(t, dom, filepath.Join(dir, string(rune('1'+i)))), qemu.Options{Incoming: true})
		logFigures(t, run.what, liveMigrate(ctx, t, current, next, run.plan))
		current = next
	}
	_, after := agentReady(ctx, t, current)
	if after.BootID != info.BootID {
		t.Fatalf("boot ID changed over the migrations: %s then %s", info.BootID, after.BootID)
	}
}

// TestTLSRejectsUnknownCA: with certificates from two unrelated CAs, the
// NBD connection and the migration stream are refused, and the source
// keeps running.
func TestTLSRejectsUnknownCA(t *testing.T) {
	testenv.RequireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	// The guest need not boot for this: the source stays at -S.
	dom := testDomain(t, "stranger", filepath.Join(dir, "src"), dataDisk(t, filepath.Join(dir, "src")))
	src := launch(ctx, t, dom, qemu.Options{Paused: true})
	dst := launch(ctx, t, targetOf(t, dom, filepath.Join(dir, "dst")), qemu.Options{Incoming: true})
	srcCA, err := pki.NewCA("source-ca")
	must(t, err)
	dstCA, err := pki.NewCA("unrelated-ca")
	must(t, err)
	addTLS(ctx, t, src, srcCA, qemu.TLSClient)
	addTLS(ctx, t, dst, dstCA, qemu.TLSServer)
	params := qemu.DefaultMigrationParams()
	params.TLS = true
	must(t, dst.ConfigureMigration(ctx, qemu.RoleTarget, params))
	must(t, src.ConfigureMigration(ctx, qemu.RoleSource, params))
	nbdAddr := freeAddr(t)
	must(t, dst.StartNBDServer(ctx, nbdAddr, true))
	must(t, dst.ExportDisks(ctx, []string{dataDiskName}, true))
	err = src.MirrorDisks(ctx, qemu.NBDTarget{Addr: nbdAddr, TLS: true}, []string{dataDiskName})
	if err == nil {
		t.Fatal("NBD mirror to a server with a certificate of an unknown CA succeeded")
	}
	t.Logf("NBD refused: %v", err)
	listen, err := dst.MigrateIncoming(ctx, qemu.MigrationURI("127.0.0.1:0"))
	must(t, err)
	must(t, src.Migrate(ctx, qemu.MigrationURI(listen)))
	progress, err := src.WaitMigration(ctx, nil)
	var failed *qemu.MigrationError
	if !errors.As(err, &failed) || progress.Status != qemu.MigrationFailed {
		t.Fatalf("migration to a server with a certificate of an unknown CA: %+v, %v; want failed", progress, err)
	}
	t.Logf("migration refused: %v", err)
	status, err := src.Status(ctx)
	must(t, err)
	if status.Running || !src.Alive() { // "prelaunch": never started, as launched
		t.Fatalf("source after the refused migration: %+v", status)
	}
}
