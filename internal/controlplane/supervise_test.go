package controlplane

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/procutil"
)

// restarts records what Options.OnRestart is told.
type restarts struct {
	mu   sync.Mutex
	seen []ProcessPid
}

func (r *restarts) record(component string, pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, ProcessPid{Name: component, Pid: pid})
}

func (r *restarts) all() []ProcessPid {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ProcessPid(nil), r.seen...)
}

// sleepers is a cluster whose components are sleep processes: supervision
// without the kube binaries.
func sleepers(t *testing.T, opts Options, names ...string) *Cluster {
	t.Helper()
	c := &Cluster{Name: "unit", Dir: t.TempDir()}
	for _, name := range names {
		if err := c.start(name, procutil.Spec{Name: "unit/" + name, Path: "/bin/sleep", Args: []string{"60"}}); err != nil {
			t.Fatal(err)
		}
	}
	c.supervise(opts)
	t.Cleanup(c.Stop)
	return c
}

func pidOf(t *testing.T, c *Cluster, name string) int {
	t.Helper()
	pid, ok := c.ProcessPid(name)
	if !ok {
		t.Fatalf("no %s in %v", name, c.ProcessPids())
	}
	return pid
}

func TestAKilledComponentIsDownForTheDelayThenRestarted(t *testing.T) {
	var got restarts
	const delay = 400 * time.Millisecond
	c := sleepers(t, Options{RestartDelay: delay, Logf: t.Logf, OnRestart: got.record}, Etcd, KubeAPIServer)
	killed := pidOf(t, c, KubeAPIServer)
	etcd := pidOf(t, c, Etcd)
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	waitFor(t, time.Second, "Healthy to report the kill", func() bool { return c.Healthy() != nil })
	waitFor(t, 5*time.Second, "the restart", func() bool { return len(got.all()) == 1 })
	if gap := time.Since(began); gap < delay {
		t.Errorf("restarted after %s, within the %s delay", gap, delay)
	}
	restarted := pidOf(t, c, KubeAPIServer)
	if seen := got.all()[0]; seen != (ProcessPid{Name: KubeAPIServer, Pid: restarted}) {
		t.Errorf("OnRestart was told %+v; the restarted kube-apiserver is pid %d", seen, restarted)
	}
	if restarted == killed || !procutil.Alive(restarted) {
		t.Errorf("kube-apiserver pid %d after the restart (alive %v), %d before", restarted, procutil.Alive(restarted), killed)
	}
	if err := c.Healthy(); err != nil {
		t.Errorf("Healthy after the restart: %v", err)
	}
	if pids := c.Pids(); len(pids) != 2 || pids[0] != etcd || pids[1] != restarted {
		t.Errorf("Pids = %v, want [%d %d]", pids, etcd, restarted)
	}
}

func TestStopDuringTheDelayRestartsNothing(t *testing.T) {
	var got restarts
	const delay = 300 * time.Millisecond
	c := sleepers(t, Options{RestartDelay: delay, OnRestart: got.record}, Etcd, KubeAPIServer, KubeControllerManager)
	if err := syscall.Kill(pidOf(t, c, Etcd), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "Healthy to report the kill", func() bool { return c.Healthy() != nil })
	c.Stop()
	c.Stop() // a second Stop is harmless
	time.Sleep(2 * delay)
	if seen := got.all(); len(seen) != 0 {
		t.Fatalf("restarted %v after Stop", seen)
	}
	for _, p := range c.ProcessPids() {
		if procutil.Alive(p.Pid) {
			t.Errorf("%s (pid %d) alive after Stop", p.Name, p.Pid)
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
