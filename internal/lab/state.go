// Package lab runs the embedded lab of docs/design.md: the OpenShift
// guide's clusters, ocp7 (source) and ocp1 (target) by default, on this
// machine. A supervisor process (`cclm lab serve`, started by `cclm lab up`)
// owns every process of the lab and holds a lock on the lab directory while
// it runs, so that one directory never has two labs and `lab down` can end
// them all.
package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/cclm-io/cclm/internal/controlplane"
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
	// Pids are the control plane's current pids in start order, those of
	// Processes: what readers older than Processes know.
	Pids []int `json:"pids"`
	// Processes are the control plane's processes by component name
	// (controlplane.Etcd, KubeAPIServer, KubeControllerManager); a
	// component's pid changes when the supervisor restarts it.
	Processes []ProcessState `json:"processes"`
}

// ProcessState is one control-plane process of a cluster.
type ProcessState struct {
	Name string `json:"name"`
	Pid  int    `json:"pid"`
}

func clusterState(c *controlplane.Cluster, virtNamespace string) ClusterState {
	state := ClusterState{Name: c.Name, Server: c.Server, VirtNamespace: virtNamespace, Ports: c.Ports}
	for _, p := range c.ProcessPids() {
		state.Processes = append(state.Processes, ProcessState{Name: p.Name, Pid: p.Pid})
	}
	state.Pids = processPids(state.Processes)
	return state
}

func processPids(processes []ProcessState) []int {
	pids := make([]int, 0, len(processes))
	for _, p := range processes {
		pids = append(pids, p.Pid)
	}
	return pids
}

// ClusterNames are the lab's clusters, in the order they were given.
func (s *State) ClusterNames() []string {
	names := make([]string, len(s.Clusters))
	for i, c := range s.Clusters {
		names[i] = c.Name
	}
	return names
}

// setControlPlanePid records the new pid of a cluster's restarted
// control-plane process, in Processes and in Pids.
func (s *State) setControlPlanePid(cluster, component string, pid int) {
	for i := range s.Clusters {
		c := &s.Clusters[i]
		if c.Name != cluster {
			continue
		}
		for j := range c.Processes {
			if c.Processes[j].Name == component {
				c.Processes[j].Pid = pid
			}
		}
		c.Pids = processPids(c.Processes)
	}
}

// ControlPlanePid is the pid of a cluster's control-plane process by
// component name, e.g. controlplane.KubeAPIServer: what a test kills.
func (s *State) ControlPlanePid(cluster, component string) (int, error) {
	for _, c := range s.Clusters {
		if c.Name != cluster {
			continue
		}
		for _, p := range c.Processes {
			if p.Name == component {
				return p.Pid, nil
			}
		}
		return 0, fmt.Errorf("the lab's state has no %s process for cluster %s (it has %v)", component, cluster, c.Processes)
	}
	return 0, fmt.Errorf("the lab's state has no cluster %s", cluster)
}

// Paths of the lab directory's well-known files.
type paths struct{ dir string }

func (p paths) state() string      { return filepath.Join(p.dir, "state.json") }
func (p paths) lock() string       { return filepath.Join(p.dir, "lab.lock") }
func (p paths) log() string        { return filepath.Join(p.dir, "lab.log") }
func (p paths) kubeconfig() string { return filepath.Join(p.dir, "kubeconfig") }
func (p paths) clusters() string   { return filepath.Join(p.dir, "clusters") }

// ReadState reads the state that the supervisor of the lab in dir
// publishes; it changes as the supervisor restarts processes.
func ReadState(dir string) (*State, error) { return readState(paths{dir: dir}) }

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

// statePublisher owns the State the supervisor publishes: components and
// control planes are restarted from goroutines of their own, and each
// change rewrites state.json whole, one at a time.
type statePublisher struct {
	p      paths
	logger *log.Logger

	mu    sync.Mutex
	state *State // nil until publish: nothing is published before the lab is ready
}

// publish writes the lab's first state, made by build under the lock: a
// restart reported while build runs is applied after it, one reported
// before is in what build reads from the live processes.
func (s *statePublisher) publish(build func() *State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := build()
	if err := writeState(s.p, state); err != nil {
		return err
	}
	s.state = state
	return nil
}

// update applies change to the published state and rewrites state.json;
// before publish it does nothing.
func (s *statePublisher) update(change func(*State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == nil {
		return
	}
	change(s.state)
	if err := writeState(s.p, s.state); err != nil {
		s.logger.Printf("write state: %v", err)
	}
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
