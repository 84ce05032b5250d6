package procutil

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sleeper is a child that runs until it is killed.
func sleeper(t *testing.T) Spec {
	return Spec{Name: "sleeper", Path: "/bin/sleep", Args: []string{"60"}, LogPath: filepath.Join(t.TempDir(), "log")}
}

// recorder collects what a Supervisor reports, from its goroutine.
type recorder struct {
	mu        sync.Mutex
	lines     []string
	restarted []*Process
}

func (r *recorder) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) restart(p *Process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restarted = append(r.restarted, p)
}

func (r *recorder) counts() (lines, restarts int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lines), len(r.restarted)
}

func (r *recorder) snapshot() ([]string, []*Process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...), append([]*Process(nil), r.restarted...)
}

// supervise runs a Supervisor in the background; the returned func cancels
// it and waits until Run returned.
func supervise(s Supervisor, first *Process) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, first)
	}()
	return func() { cancel(); <-done }
}

func TestSupervisorRestartsAKilledProcessAfterTheDelay(t *testing.T) {
	spec := sleeper(t)
	first, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	var got recorder
	const delay = 300 * time.Millisecond
	stop := supervise(Supervisor{Spec: spec, Delay: delay, What: "the sleeper", Logf: got.logf, Restarted: got.restart}, first)
	killed := time.Now()
	first.Kill()
	waitUntil(t, 5*time.Second, "a restart", func() bool { _, restarts := got.counts(); return restarts == 1 })
	if gap := time.Since(killed); gap < delay {
		t.Errorf("restarted %s after the kill, before the %s delay", gap, delay)
	}
	lines, restarted := got.snapshot()
	second := restarted[0]
	if second.Pid() == first.Pid() || !second.Running() {
		t.Fatalf("restart gave pid %d (running %v), the killed one was %d", second.Pid(), second.Running(), first.Pid())
	}
	if line := lines[0]; !strings.HasPrefix(line, "the sleeper ended (sleeper: signal: killed); restarting it in 300ms") {
		t.Errorf("log line %q", line)
	}
	stop()
	if !second.Running() {
		t.Fatal("stopping the supervisor ended the process; that is the caller's to do")
	}
	second.Kill()
	time.Sleep(2 * delay)
	if _, restarts := got.counts(); restarts != 1 {
		t.Fatalf("%d restarts after the supervisor was stopped", restarts-1)
	}
}

func TestSupervisorStartsNothingOnceCancelledDuringTheDelay(t *testing.T) {
	spec := sleeper(t)
	first, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	var got recorder
	stop := supervise(Supervisor{Spec: spec, Delay: 200 * time.Millisecond, Logf: got.logf, Restarted: got.restart}, first)
	first.Kill()
	waitUntil(t, 5*time.Second, "the end logged", func() bool { lines, _ := got.counts(); return lines == 1 })
	stop()
	time.Sleep(400 * time.Millisecond)
	if _, restarts := got.counts(); restarts != 0 {
		t.Fatal("a supervisor cancelled during its delay restarted the process")
	}
}

func TestSupervisorRetriesARestartThatFails(t *testing.T) {
	spec := sleeper(t)
	first, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	broken := spec
	broken.Path = filepath.Join(t.TempDir(), "missing")
	var got recorder
	stop := supervise(Supervisor{Spec: broken, Delay: 50 * time.Millisecond, Logf: got.logf, Restarted: got.restart}, first)
	defer stop()
	first.Kill()
	// Each failed attempt logs the end again and the failure.
	waitUntil(t, 5*time.Second, "three failed restarts", func() bool { lines, _ := got.counts(); return lines >= 6 })
	lines, restarted := got.snapshot()
	if !strings.Contains(lines[1], "sleeper: restart: ") || len(restarted) != 0 {
		t.Fatalf("lines %q, %d restarts", lines, len(restarted))
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
