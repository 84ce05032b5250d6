package vmiruntime

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/qemu"
)

// The node agent removes VMIs' run directories when it ends them; one it
// could not (it was killed between launching an incoming QEMU and giving
// it up; the VMI was deleted while the agent was down) would stay for
// ever, with its sockets, certificates, taps and maybe a QEMU: a VM that
// no VMI accounts for, so a second copy in waiting. The sweeper is the
// kubelet's orphaned-pod clean-up for them.

const (
	// orphanSweepInterval is how often the run directories are checked.
	orphanSweepInterval = 30 * time.Second
	// orphanGrace spares a directory made less than this ago: its VMI may
	// be newer than the cache the sweep reads.
	orphanGrace = time.Minute
)

// runDirSweeper removes the run directories of VMIs that no longer exist,
// stopping a QEMU that still runs in one and deleting its taps.
type runDirSweeper struct {
	reader client.Reader // the manager's cache
	runner *Runtime
	logger *slog.Logger
}

// NeedLeaderElection is false: every node agent sweeps its own node.
func (s *runDirSweeper) NeedLeaderElection() bool { return false }

// Start sweeps every orphanSweepInterval until ctx ends.
func (s *runDirSweeper) Start(ctx context.Context) error {
	ticker := time.NewTicker(orphanSweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		if err := s.sweep(ctx, time.Now()); err != nil {
			s.logger.Warn("sweeping orphaned run directories", "error", err)
		}
	}
}

func (s *runDirSweeper) sweep(ctx context.Context, now time.Time) error {
	var vmis kubevirtv1.VirtualMachineInstanceList
	if err := s.reader.List(ctx, &vmis); err != nil {
		return err
	}
	uids := make([]types.UID, 0, len(vmis.Items))
	for _, vmi := range vmis.Items {
		uids = append(uids, vmi.UID)
	}
	entries, err := os.ReadDir(s.runner.runRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var dirs []runDirEntry
	for _, entry := range entries {
		if info, err := entry.Info(); err == nil && entry.IsDir() {
			dirs = append(dirs, runDirEntry{name: entry.Name(), modified: info.ModTime()})
		}
	}
	for _, name := range orphanRunDirs(dirs, uids, now) {
		s.remove(filepath.Join(s.runner.runRoot, name))
	}
	return nil
}

// runDirEntry is a directory of the run root.
type runDirEntry struct {
	name     string
	modified time.Time
}

// orphanRunDirs are the directories no VMI's UID names (the runner names
// them after the UID's first 13 characters), older than orphanGrace.
func orphanRunDirs(dirs []runDirEntry, vmis []types.UID, now time.Time) []string {
	known := map[string]bool{}
	for _, uid := range vmis {
		known[runDirName(uid)] = true
	}
	var orphans []string
	for _, dir := range dirs {
		if !known[dir.name] && now.Sub(dir.modified) >= orphanGrace {
			orphans = append(orphans, dir.name)
		}
	}
	return orphans
}

// remove stops the QEMU of an orphaned run directory, deletes the taps
// it was launched with, then the directory.
func (s *runDirSweeper) remove(dir string) {
	dom, recorded := qemu.LaunchedDomain(dir)
	if pid, running := qemu.RunningIn(dir); running {
		s.logger.Warn("stopping a QEMU that no VMI accounts for", "runDir", dir, "pid", pid, "domain", dom.Name)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			s.logger.Warn("could not stop it; keeping its run directory", "pid", pid, "error", err)
			return
		}
	}
	if recorded == nil {
		for _, nic := range dom.NICs {
			_ = s.runner.env.DeleteTap(nic.Tap)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		s.logger.Warn("removing an orphaned run directory", "runDir", dir, "error", err)
		return
	}
	s.logger.Info("removed the run directory of a VMI that no longer exists", "runDir", dir, "domain", dom.Name)
}
