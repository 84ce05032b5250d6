package procutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStopEndsAProcessThatIgnoresSIGTERM(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "child.log")
	p, err := Start(Spec{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", `trap "" TERM; echo started; while :; do sleep 0.05; done`}, LogPath: logPath})
	if err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logPath, "started")
	if !Alive(p.Pid()) {
		t.Fatal("child not alive after start")
	}
	began := time.Now()
	p.Stop(300 * time.Millisecond)
	if p.Running() || Alive(p.Pid()) {
		t.Fatal("child still alive after Stop")
	}
	if elapsed := time.Since(began); elapsed < 300*time.Millisecond {
		t.Fatalf("Stop returned after %s, before the grace period, though the child ignores SIGTERM", elapsed)
	}
	if p.ExitError() == nil {
		t.Fatal("a killed child reports no exit error")
	}
}

func waitForLog(t *testing.T, path, text string) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(path); strings.Contains(string(data), text) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%q never appeared in %s", text, path)
}

func TestLogTailKeepsTheLastLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("a\nb\nc\nd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := LogTail(path, 2); got != "c\nd" {
		t.Fatalf("LogTail = %q", got)
	}
	if got := LogTail(filepath.Join(t.TempDir(), "missing"), 2); !strings.Contains(got, "no log") {
		t.Fatalf("LogTail of a missing file = %q", got)
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := FreePorts("127.0.0.1", 8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, port := range ports {
		if seen[port] || port <= 0 {
			t.Fatalf("ports %v repeat or are invalid", ports)
		}
		seen[port] = true
	}
}

func TestAliveIsFalseForAnExitedProcess(t *testing.T) {
	p, err := Start(Spec{Name: "true", Path: "/bin/true", LogPath: filepath.Join(t.TempDir(), "log")})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	if Alive(p.Pid()) {
		t.Fatal("an exited and reaped process is reported alive")
	}
	if Alive(0) || Alive(-1) {
		t.Fatal("invalid pids are reported alive")
	}
}

// FreePort's ports lie below the ephemeral range, where no outgoing
// connection takes them between the choice and the server's bind, and
// are never handed out twice by one process.
func TestFreePortIsOutsideTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 200 {
		port, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if port < serverPortFloor || port >= low || seen[port] {
			t.Fatalf("port %d: want one in [%d, %d) not handed out before", port, serverPortFloor, low)
		}
		seen[port] = true
	}
}
