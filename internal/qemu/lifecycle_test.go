package qemu_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/testenv"
)

// helperDomainEnv carries the Domain to TestLaunchHelperProcess.
const helperDomainEnv = "CCLM_QEMU_TEST_HELPER_DOMAIN"

// TestLaunchHelperProcess is not a test: run by TestAdoptAfterStarterKilled
// in a child process, it plays a node agent that launches QEMU and is then
// SIGKILLed.
func TestLaunchHelperProcess(t *testing.T) {
	raw := os.Getenv(helperDomainEnv)
	if raw == "" {
		t.Skip("helper process for TestAdoptAfterStarterKilled")
	}
	var dom qemu.Domain
	if err := json.Unmarshal([]byte(raw), &dom); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	in, err := qemu.Launch(context.Background(), dom, qemu.Options{})
	if err != nil {
		fmt.Println("ERROR", strings.ReplaceAll(err.Error(), "\n", " | "))
		os.Exit(1)
	}
	fmt.Println("READY", in.Pid())
	select {} // until killed
}

// TestAdoptAfterStarterKilled launches QEMU from a process that is then
// SIGKILLed, as a node agent may be, and checks that QEMU runs on and that
// Adopt finds the same QEMU, running the same boot of the guest, twice.
func TestAdoptAfterStarterKilled(t *testing.T) {
	testenv.RequireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runDir := t.TempDir()
	dom := testDomain(t, "adoptee", runDir)

	began := time.Now()
	pid := launchFromDoomedProcess(ctx, t, dom)
	t.Cleanup(func() { killByPidFile(t, dom.Paths().PIDFile) })

	first := adopt(ctx, t, runDir, pid)
	client, info := agentReady(ctx, t, first)
	t.Logf("guest agent ready %.2fs after launch (%s, -m %d), boot %s", time.Since(began).Seconds(), first.Accel(), guestMemoryMiB, info.BootID)
	checkEvents(ctx, t, first)
	checkConsole(ctx, t, first)
	time.Sleep(300 * time.Millisecond) // a few heartbeats
	info = mustInfo(ctx, t, client)
	client.Close()
	first.Close() // the node agent restarts again

	second := adopt(ctx, t, runDir, pid)
	killAtCleanup(t, second)
	client, _ = agentReady(ctx, t, second)
	time.Sleep(300 * time.Millisecond)
	again := mustInfo(ctx, t, client)
	if again.BootID != info.BootID || again.Heartbeat <= info.Heartbeat {
		t.Fatalf("not the same running guest after re-adoption: boot %s heartbeat %d, then boot %s heartbeat %d", info.BootID, info.Heartbeat, again.BootID, again.Heartbeat)
	}
	client.Close()

	powerdownStart := time.Now()
	if err := second.Powerdown(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("powerdown (ACPI, then quit after the 2s grace) took %.2fs", time.Since(powerdownStart).Seconds())
	if second.Alive() || processRuns(pid) {
		t.Fatalf("QEMU pid %d still runs after Powerdown", pid)
	}
	checkStalePidfileRefused(ctx, t, runDir)
}

// launchFromDoomedProcess launches dom from a child process, SIGKILLs that
// process once QEMU runs, and returns QEMU's pid.
func launchFromDoomedProcess(ctx context.Context, t *testing.T, dom qemu.Domain) int {
	t.Helper()
	raw, err := json.Marshal(dom)
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLaunchHelperProcess$")
	helper.Env = append(os.Environ(), helperDomainEnv+"="+string(raw))
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		helper.Process.Kill()
		t.Fatalf("launcher process: %v", err)
	}
	pidText, ok := strings.CutPrefix(strings.TrimSpace(line), "READY ")
	if !ok {
		helper.Process.Kill()
		t.Fatalf("launcher process: %s", line)
	}
	pid, _ := strconv.Atoi(pidText)
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	time.Sleep(200 * time.Millisecond) // let a pdeathsig, if any, land
	if !processRuns(pid) {
		t.Fatalf("QEMU pid %d died with the process that launched it", pid)
	}
	return pid
}

func adopt(ctx context.Context, t *testing.T, runDir string, wantPid int) *qemu.Instance {
	t.Helper()
	in, err := qemu.Adopt(ctx, runDir)
	if err != nil {
		t.Fatal(err)
	}
	if in.Pid() != wantPid || !in.Adopted() || !in.Alive() {
		t.Fatalf("adopted pid %d (adopted %v, alive %v), want running pid %d", in.Pid(), in.Adopted(), in.Alive(), wantPid)
	}
	status, err := in.Status(ctx)
	if err != nil || !status.Running {
		t.Fatalf("adopted QEMU status %+v, %v; want running", status, err)
	}
	return in
}

// checkEvents pauses and resumes the guest and expects STOP and RESUME.
func checkEvents(ctx context.Context, t *testing.T, in *qemu.Instance) {
	t.Helper()
	events, unsubscribe := in.Events()
	defer unsubscribe()
	if err := in.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, events, "STOP")
	if status, err := in.Status(ctx); err != nil || status.Running || status.State != "paused" {
		t.Fatalf("status after stop: %+v %v", status, err)
	}
	if err := in.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, events, "RESUME")
}

func expectEvent(t *testing.T, events <-chan qemu.Event, name string) qemu.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("event subscription closed before %s", name)
			}
			if e.Name == name {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event within 10s", name)
		}
	}
}

// checkConsole runs a command in the shell on the serial console (what
// `cclm console` attaches to); the arithmetic proves a shell evaluated it.
func checkConsole(ctx context.Context, t *testing.T, in *qemu.Instance) {
	t.Helper()
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", in.Paths().Serial)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("echo console-$((6*7))-ok\r")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), "console-42-ok") {
		n, err := conn.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("no shell answer on the serial console: %v; got %q", err, seen.String())
		}
	}
}

// checkStalePidfileRefused writes a pidfile naming a live process that is
// not QEMU (this test) and expects Adopt to refuse it.
func checkStalePidfileRefused(ctx context.Context, t *testing.T, runDir string) {
	t.Helper()
	pidFile := qemu.Domain{RunDir: runDir}.Paths().PIDFile
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := qemu.Adopt(ctx, runDir)
	if err == nil || !strings.Contains(err.Error(), "not QEMU") {
		t.Fatalf("Adopt with a pidfile naming a non-QEMU process: %v; want a refusal", err)
	}
	t.Logf("stale pidfile refused: %v", err)
}

// processRuns reports whether pid exists and is not a zombie (an exited
// QEMU whose new parent, init, has not reaped it yet).
func processRuns(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// killByPidFile kills a QEMU this test may have lost track of.
func killByPidFile(t *testing.T, pidFile string) {
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && pid > 0 {
		if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmdline), pidFile) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
