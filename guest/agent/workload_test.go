package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

// diskFile makes a file standing in for a block device; the agent takes
// absolute paths as they are.
func diskFile(t *testing.T, sizeMiB int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(sizeMiB)*mib); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDiskWriteVerify(t *testing.T) {
	m := newDiskManager(testLogger(t))
	disk := diskFile(t, 3)
	args := guestagent.DiskArgs{Disk: disk, SizeMiB: 2, Seed: 5}
	first, err := m.writeOnce(args)
	if err != nil {
		t.Fatal(err)
	}
	if first.Blocks != 512 || first.Generation != 1 || first.LastSeq != 512 {
		t.Fatalf("first write %+v", first)
	}
	second, err := m.writeOnce(args)
	if err != nil {
		t.Fatal(err)
	}
	if second.Generation != 2 || second.Digest == first.Digest {
		t.Fatalf("second write %+v", second)
	}
	verified, err := m.verify(guestagent.DiskArgs{Disk: disk, SizeMiB: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !verified.OK || verified.Digest != second.Digest || verified.Generation != 2 {
		t.Fatalf("verify %+v", verified)
	}

	damage(t, disk, 300)
	damaged, err := m.verify(guestagent.DiskArgs{Disk: disk, SizeMiB: 2})
	if err != nil {
		t.Fatal(err)
	}
	if damaged.OK || damaged.FirstBadBlock == nil || *damaged.FirstBadBlock != 300 || damaged.BadBlocks != 1 {
		t.Fatalf("verify after damage %+v", damaged)
	}
}

func damage(t *testing.T, disk string, block int64) {
	t.Helper()
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0xff, 0xfe}, block*guestagent.BlockSize+2000); err != nil {
		t.Fatal(err)
	}
}

func TestDiskRegionLimits(t *testing.T) {
	m := newDiskManager(testLogger(t))
	disk := diskFile(t, 1)
	if _, err := m.writeOnce(guestagent.DiskArgs{Disk: disk, SizeMiB: 2}); err == nil || !strings.Contains(err.Error(), "less than") {
		t.Fatalf("writing 2 MiB on a 1 MiB disk: %v", err)
	}
	whole, err := m.writeOnce(guestagent.DiskArgs{Disk: disk}) // 0: the whole disk
	if err != nil || whole.Blocks != 256 {
		t.Fatalf("whole disk: %+v, %v", whole, err)
	}
}

func TestContinuousWriter(t *testing.T) {
	m := newDiskManager(testLogger(t))
	disk := diskFile(t, 1)
	if _, err := m.writeOnce(guestagent.DiskArgs{Disk: disk, SizeMiB: 1}); err != nil {
		t.Fatal(err)
	}
	started, err := m.startWriter(guestagent.DiskArgs{Disk: disk, SizeMiB: 1, Continuous: true})
	if err != nil {
		t.Fatal(err)
	}
	if started.StartGeneration != 2 || !started.Running {
		t.Fatalf("start %+v", started)
	}
	if _, err := m.verify(guestagent.DiskArgs{Disk: disk, SizeMiB: 1}); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("verify while writing: %v", err)
	}
	waitForWriter(t, m, guestagent.BlockSeq(3, 100, 256)) // into the second pass
	stopped, err := m.stopWriter(disk)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Running || stopped.Error != "" {
		t.Fatalf("stop %+v", stopped)
	}
	ack := stopped.Ack()
	result, err := m.verify(guestagent.DiskArgs{Disk: disk, SizeMiB: 1, Ack: &ack})
	if err != nil || !result.OK {
		t.Fatalf("verify against the acknowledged writes: %+v, %v", result, err)
	}
	lie := guestagent.Ack{StartGeneration: ack.StartGeneration, Seq: ack.Seq + 256}
	if result, err := m.verify(guestagent.DiskArgs{Disk: disk, SizeMiB: 1, Ack: &lie}); err != nil || result.OK {
		t.Fatalf("verify against writes never made passed: %+v, %v", result, err)
	}
}

func waitForWriter(t *testing.T, m *diskManager, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		statuses := m.writerStatuses()
		if len(statuses) != 1 {
			t.Fatalf("writers %+v", statuses)
		}
		if statuses[0].AckSeq >= seq {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("writer did not reach seq %d: %+v", seq, m.writerStatuses())
}

func TestResolveDisk(t *testing.T) {
	m := newDiskManager(testLogger(t))
	m.sysBlock = t.TempDir()
	for dev, serial := range map[string]string{"vda": "root", "vdb": "data"} {
		os.MkdirAll(filepath.Join(m.sysBlock, dev), 0o755)
		os.WriteFile(filepath.Join(m.sysBlock, dev, "serial"), []byte(serial), 0o644)
	}
	for name, want := range map[string]string{"vdb": "/dev/vdb", "data": "/dev/vdb", "root": "/dev/vda", "/dev/vdc": "/dev/vdc"} {
		if got, err := m.resolve(name); err != nil || got != want {
			t.Errorf("resolve(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := m.resolve("nope"); err == nil || !strings.Contains(err.Error(), `vdb (serial "data")`) {
		t.Errorf("unknown disk: %v", err)
	}
}

func TestDirtyWorkload(t *testing.T) {
	d := &dirtier{log: testLogger(t)}
	started, err := d.apply(guestagent.DirtyArgs{RateMiBps: 100, WorkingSetMiB: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !started.Running || started.WorkingSetPages != 512 {
		t.Fatalf("start %+v", started)
	}
	time.Sleep(300 * time.Millisecond)
	stopped, err := d.apply(guestagent.DirtyArgs{})
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Running || stopped.DirtiedMiB < 5 || stopped.DirtiedMiB > 60 {
		t.Fatalf("after ~0.3s at 100 MiB/s: %+v", stopped)
	}
	if later := d.status(); later.DirtiedMiB != stopped.DirtiedMiB {
		t.Errorf("still dirtying after stop: %+v", later)
	}
}

func TestDirtyDurationEnds(t *testing.T) {
	d := &dirtier{log: testLogger(t)}
	if _, err := d.apply(guestagent.DirtyArgs{RateMiBps: 10, DurationSeconds: 0.1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.status().Running {
		if time.Now().After(deadline) {
			t.Fatal("workload with a duration did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := d.status(); st.WorkingSetMiB != defaultWorkingSetMiB {
		t.Errorf("default working set: %+v", st)
	}
}

func TestDirtyRefusesOversizedWorkingSet(t *testing.T) {
	d := &dirtier{log: testLogger(t)}
	if _, err := d.apply(guestagent.DirtyArgs{RateMiBps: 1, WorkingSetMiB: 1 << 30}); err == nil {
		t.Fatal("a 1 PiB working set was accepted")
	}
}
