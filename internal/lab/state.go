// Package lab runs the embedded lab of design.md: two clusters named after
// the seed, ocp7 (source) and ocp1 (target), on this machine. A supervisor
// process (`cclm lab serve`, started by `cclm lab up`) owns every process of
// the lab and holds a lock on the lab directory for as long as it runs, so
// that one directory never has two labs and `lab down` can end them all.
package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// State is what the supervisor publishes in D/state.json.
type State struct {
	Pid        int              `json:"pid"`
	Ready      bool             `json:"ready"`
	StartedAt  time.Time        `json:"startedAt"`
	Clusters   []ClusterState   `json:"clusters"`
	Components []ComponentState `json:"components"`
}

// ClusterState describes one running cluster of the lab.
type ClusterState struct {
	Name          string `json:"name"`
	Server        string `json:"server"`
	VirtNamespace string `json:"virtNamespace"`
	Ports         []int  `json:"ports"`
	Pids          []int  `json:"pids"`
}

// Paths of the lab directory's well-known files.
type paths struct{ dir string }

func (p paths) state() string      { return filepath.Join(p.dir, "state.json") }
func (p paths) lock() string       { return filepath.Join(p.dir, "lab.lock") }
func (p paths) log() string        { return filepath.Join(p.dir, "lab.log") }
func (p paths) kubeconfig() string { return filepath.Join(p.dir, "kubeconfig") }
func (p paths) clusters() string   { return filepath.Join(p.dir, "clusters") }

func readState(p paths) (*State, error) {
	data, err := os.ReadFile(p.state())
	if err != nil {
		return nil, err
	}
	var state State
	if err := json.Unmarshal(data, &state); err != nil {
		return nil, fmt.Errorf("lab state %s is damaged: %w; run `cclm lab down --dir %s` to clean up", p.state(), err, p.dir)
	}
	return &state, nil
}

// writeState replaces state.json atomically, so a reader never sees half.
func writeState(p paths, state *State) error {
	data, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return err
	}
	tmp := p.state() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p.state())
}

// dirLock is the exclusive lock a supervisor holds on its lab directory.
type dirLock struct{ file *os.File }

var errLocked = errors.New("lab directory is locked by a running lab")

// tryLock takes the directory's lock without waiting.
func tryLock(p paths) (*dirLock, error) {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	file, err := os.OpenFile(p.lock(), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		file.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock %s: %w", p.lock(), err)
	}
	return &dirLock{file: file}, nil
}

func (l *dirLock) release() {
	_ = syscall.Flock(int(l.file.Fd()), syscall.LOCK_UN)
	l.file.Close()
}

// running reports whether a supervisor holds the directory's lock.
func running(p paths) bool {
	lock, err := tryLock(p)
	if err != nil {
		return errors.Is(err, errLocked)
	}
	lock.release()
	return false
}
