package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// process is a running QEMU, either our child (Launch) or a process adopted
// after a node agent restart, whose parent is someone else (init or a
// subreaper), so that it cannot be waited for, only watched.
type process struct {
	pid    int
	exited chan struct{}
	// exitErr is how the process ended: nil for exit status 0, or when the
	// status is unknown (not our child); set before exited is closed.
	exitErr error
	// exitStatusKnown tells whether exitErr reflects a real exit status.
	exitStatusKnown bool
	signal          func(syscall.Signal) error
	release         func()
}

// startChild starts cmd with start (nil: cmd.Start) and reaps it when it
// exits. It watches the child through a pidfd, as watchProcess does, so
// that release lets go of a child that still runs without a goroutine
// left waiting for it (a node agent that shuts down leaves its QEMUs
// running); a child let go of is reaped by whoever inherits it.
func startChild(cmd *exec.Cmd, start func(*exec.Cmd) error) (*process, error) {
	if start == nil {
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
		return nil, err
	}
	p := &process{
		pid:     cmd.Process.Pid,
		exited:  make(chan struct{}),
		signal:  func(sig syscall.Signal) error { return cmd.Process.Signal(sig) },
		release: func() {},
	}
	pidfd, err := unix.PidfdOpen(p.pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		// No pidfd (Linux < 5.3): wait in a thread; such a child cannot
		// be let go of.
		go p.reap(cmd)
		return p, nil
	}
	file := os.NewFile(uintptr(pidfd), fmt.Sprintf("pidfd:%d", p.pid))
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		go p.reap(cmd)
		return p, nil
	}
	p.release = func() { file.Close() }
	go func() {
		if exited(raw) {
			p.reap(cmd)
		}
	}()
	return p, nil
}

// reap waits for the child, which has exited or will, and records how it
// ended.
func (p *process) reap(cmd *exec.Cmd) {
	if err := cmd.Wait(); err != nil {
		p.exitErr = fmt.Errorf("QEMU (pid %d): %w", p.pid, err)
	}
	p.exitStatusKnown = true
	close(p.exited)
}

// watchProcess watches a process that is not our child. A pidfd pins the
// process: signals sent through it cannot reach another process that
// reused the pid, and it becomes readable when the process exits. Without
// pidfd support (Linux < 5.3), /proc is polled instead.
func watchProcess(pid int) (*process, error) {
	p := &process{pid: pid, exited: make(chan struct{})}
	pidfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("process %d is gone", pid)
		}
		p.signal = func(sig syscall.Signal) error { return syscall.Kill(pid, sig) }
		stop := make(chan struct{})
		var once sync.Once
		p.release = func() { once.Do(func() { close(stop) }) }
		go p.pollProc(stop)
		return p, nil
	}
	file := os.NewFile(uintptr(pidfd), fmt.Sprintf("pidfd:%d", pid))
	p.signal = func(sig syscall.Signal) error { return unix.PidfdSendSignal(pidfd, sig, nil, 0) }
	p.release = func() { file.Close() }
	go p.waitPidfd(file)
	return p, nil
}

// waitPidfd blocks until the pidfd is readable (the process exited) or
// file is closed (release).
func (p *process) waitPidfd(file *os.File) {
	raw, err := file.SyscallConn()
	if err != nil {
		p.pollProc(make(chan struct{}))
		return
	}
	if exited(raw) {
		close(p.exited)
	}
}

// exited blocks, in Go's poller rather than in a thread, until a pidfd is
// readable (the process exited: true) or its file is closed (false).
func exited(raw syscall.RawConn) bool {
	readErr := raw.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err != nil || n > 0
	})
	return readErr == nil
}

// pollProc watches /proc until the process is gone or stop is closed.
func (p *process) pollProc(stop <-chan struct{}) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for processAlive(p.pid) {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
	close(p.exited)
}

// describeExit says how the process ended, for messages.
func (p *process) describeExit() string {
	switch {
	case p.alive():
		return fmt.Sprintf("pid %d still runs", p.pid)
	case !p.exitStatusKnown:
		return fmt.Sprintf("pid %d exited; its exit status is unknown (adopted, not our child)", p.pid)
	case p.exitErr == nil:
		return fmt.Sprintf("pid %d exited with status 0", p.pid)
	}
	return p.exitErr.Error()
}

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	fields := strings.Fields(string(stat[i+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// readPIDFile returns the pid QEMU wrote to its pidfile.
func readPIDFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s holds %q, not a pid", path, strings.TrimSpace(string(data)))
	}
	return pid, nil
}

// verifyQEMU checks that pid is the QEMU that writes pidFile: a QEMU binary
// whose command line names that pidfile (and equals wantArgs, if known). A
// pidfile left behind by a QEMU that was killed may name a pid the kernel
// has since given to an unrelated process.
func verifyQEMU(pid int, pidFile string, wantArgs []string) error {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(raw) == 0 {
		return fmt.Errorf("process %d (from %s) is not running", pid, pidFile)
	}
	cmdline := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	if !strings.HasPrefix(filepath.Base(cmdline[0]), "qemu-system-") {
		return fmt.Errorf("process %d (from %s) is %q, not QEMU: the pidfile is stale", pid, pidFile, cmdline[0])
	}
	i := slices.Index(cmdline, "-pidfile")
	if i < 0 || i+1 >= len(cmdline) || cmdline[i+1] != pidFile {
		return fmt.Errorf("process %d is a QEMU of another run directory (its command line does not name %s)", pid, pidFile)
	}
	if wantArgs != nil && !slices.Equal(cmdline[1:], wantArgs) {
		return fmt.Errorf("process %d runs with another command line than %s records", pid, filepath.Join(filepath.Dir(pidFile), "instance.json"))
	}
	return nil
}
