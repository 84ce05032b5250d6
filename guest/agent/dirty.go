package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

const (
	pageSize = 4096
	mib      = 1 << 20
	// dirtyTick is how often the workload catches up with its rate: small
	// enough that the dirtying is smooth at migration time scales.
	dirtyTick = 10 * time.Millisecond
	// maxCatchUp caps the backlog after the guest did not run (a paused or
	// migrating VM): the workload resumes at its rate instead of bursting.
	maxCatchUp = 100 * time.Millisecond
	// defaultWorkingSetMiB applies when the host gives a rate only.
	defaultWorkingSetMiB = 16
	// memoryHeadroom is left free so the agent and the kernel keep room.
	memoryHeadroom = 16 * mib
)

// dirtier runs at most one memory-dirtying workload: a buffer of the
// working-set size whose pages are written round-robin at the requested
// rate, which is what makes pre-copy migration resend them.
type dirtier struct {
	log *log.Logger
	mu  sync.Mutex
	run *dirtyRun // latest workload, running or finished; nil before any
}

type dirtyRun struct {
	args    guestagent.DirtyArgs
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	pages   atomic.Int64 // pages written so far
	stopped atomic.Int64 // UnixNano when it ended, 0 while running
}

// apply starts, replaces or stops (rate 0) the workload.
func (d *dirtier) apply(args guestagent.DirtyArgs) (guestagent.DirtyStatus, error) {
	if err := validateDirtyArgs(&args); err != nil {
		return guestagent.DirtyStatus{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.run != nil {
		d.run.stop()
	}
	if args.RateMiBps == 0 {
		return d.statusLocked(), nil
	}
	if err := checkMemoryFor(args.WorkingSetMiB); err != nil {
		return guestagent.DirtyStatus{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.run = &dirtyRun{args: args, started: time.Now(), cancel: cancel, done: make(chan struct{})}
	go d.run.loop(ctx)
	d.log.Printf("dirty: %.1f MiB/s over %d MiB for %.0fs (0 = until stopped)", args.RateMiBps, args.WorkingSetMiB, args.DurationSeconds)
	return d.statusLocked(), nil
}

func validateDirtyArgs(args *guestagent.DirtyArgs) error {
	switch {
	case args.RateMiBps < 0, args.WorkingSetMiB < 0, args.DurationSeconds < 0:
		return errors.New("dirty: rateMiBps, workingSetMiB and durationSeconds must not be negative")
	case args.RateMiBps > 0 && args.WorkingSetMiB == 0:
		args.WorkingSetMiB = defaultWorkingSetMiB
	}
	return nil
}

// checkMemoryFor refuses a working set the guest cannot hold: the OOM
// killer would take the agent instead.
func checkMemoryFor(workingSetMiB int) error {
	available, err := meminfoBytes("MemAvailable")
	if err != nil {
		return nil // not knowing is no reason to refuse
	}
	if need := uint64(workingSetMiB)*mib + memoryHeadroom; need > available {
		return fmt.Errorf("dirty: working set of %d MiB does not fit: %d MiB available, %d MiB kept free",
			workingSetMiB, available/mib, memoryHeadroom/mib)
	}
	return nil
}

func (d *dirtier) status() guestagent.DirtyStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.statusLocked()
}

func (d *dirtier) statusLocked() guestagent.DirtyStatus {
	if d.run == nil {
		return guestagent.DirtyStatus{}
	}
	return d.run.status()
}

func (r *dirtyRun) status() guestagent.DirtyStatus {
	stoppedNano := r.stopped.Load()
	end := time.Now()
	if stoppedNano != 0 {
		end = time.Unix(0, stoppedNano)
	}
	dirtiedMiB := float64(r.pages.Load()) * pageSize / mib
	s := guestagent.DirtyStatus{
		Running:         stoppedNano == 0,
		RateMiBps:       r.args.RateMiBps,
		WorkingSetMiB:   r.args.WorkingSetMiB,
		DurationSeconds: r.args.DurationSeconds,
		DirtiedMiB:      dirtiedMiB,
		StartedUnixNano: r.started.UnixNano(),
		StoppedUnixNano: stoppedNano,
		WorkingSetPages: r.args.WorkingSetMiB * mib / pageSize,
	}
	if elapsed := end.Sub(r.started).Seconds(); elapsed > 0 {
		s.AchievedMiBps = dirtiedMiB / elapsed
	}
	return s
}

func (r *dirtyRun) stop() {
	r.cancel()
	<-r.done
}

func (r *dirtyRun) loop(ctx context.Context) {
	defer close(r.done)
	defer func() { r.stopped.Store(time.Now().UnixNano()) }()
	if r.args.DurationSeconds > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(r.args.DurationSeconds*float64(time.Second)))
		defer cancel()
	}
	ws := newWorkingSet(r.args.WorkingSetMiB)
	defer ws.release()
	pagesPerSecond := r.args.RateMiBps * mib / pageSize
	ticker := time.NewTicker(dirtyTick)
	defer ticker.Stop()
	last, owed := time.Now(), 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			owed += pagesPerSecond * min(now.Sub(last), maxCatchUp).Seconds()
			last = now
			n := int(owed)
			owed -= float64(n)
			ws.dirty(n)
			r.pages.Add(int64(n))
		}
	}
}

// workingSet is the memory the workload dirties, one write per page.
type workingSet struct {
	mem   []byte
	next  int    // next page to write
	value uint64 // what is written: new on every write, so no page stays the same
}

func newWorkingSet(sizeMiB int) *workingSet {
	// Fresh from the Go heap: mmap'ed zero pages that only count as
	// guest memory once written.
	return &workingSet{mem: make([]byte, sizeMiB*mib)}
}

func (w *workingSet) dirty(pages int) {
	pageCount := len(w.mem) / pageSize
	for range pages {
		w.value++
		binary.LittleEndian.PutUint64(w.mem[w.next*pageSize:], w.value)
		w.next = (w.next + 1) % pageCount
	}
}

// release hands the memory back to the guest kernel, so a stopped workload
// no longer inflates what a migration has to copy.
func (w *workingSet) release() {
	w.mem = nil
	debug.FreeOSMemory()
}
