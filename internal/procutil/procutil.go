// Package procutil starts and stops the long-running child processes of cclm
// (etcd, kube-apiserver, node agents, QEMU) so that none outlives its parent:
// each child gets SIGKILL from the kernel when the process that started it
// dies, whether it returned, crashed, or was killed by a test's timeout.
package procutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a child process whose output goes to a log file.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

// Spec says what to run.
type Spec struct {
	Name    string   // short name for messages, e.g. "ocp7/kube-apiserver"
	Path    string   // the binary
	Args    []string // arguments, without argv[0]
	Env     []string // extra environment, appended to the parent's
	LogPath string   // stdout and stderr go here (appended)
	Dir     string   // working directory; empty means the parent's
}

// Start runs the process in the background.
func Start(spec Spec) (*Process, error) {
	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", spec.Name, err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", spec.Name, spec.Path, err)
	}
	p := &Process{Name: spec.Name, LogPath: spec.LogPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the child's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not ended yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// ExitError says how the process ended; nil while it runs.
func (p *Process) ExitError() error {
	if p.Running() {
		return nil
	}
	if p.waitErr == nil {
		return fmt.Errorf("%s exited with status 0", p.Name)
	}
	return fmt.Errorf("%s: %w", p.Name, p.waitErr)
}

// Stop asks the process to end with SIGTERM and kills it after grace. It
// returns once the process is gone.
func (p *Process) Stop(grace time.Duration) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	<-p.exited
}

// Kill ends the process at once with SIGKILL and waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// LogTail returns the last lines of the process's log, for error messages.
func (p *Process) LogTail(lines int) string { return LogTail(p.LogPath, lines) }

// LogTail returns the last n lines of a file, or a note why it cannot.
func LogTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return strings.Join(all, "\n")
}

// FreePort finds a TCP port free on host for a server that binds it
// later, often in another process. It is chosen below the kernel's
// ephemeral range (net.ipv4.ip_local_port_range), which outgoing
// connections draw their local ports from: a port of that range, free
// when looked at, can be taken by any connection before the server binds
// it (seen: a node agent's metrics server failing with "address already
// in use" while the lab came up). A port this process handed out is not
// handed out again.
func FreePort(host string) (int, error) {
	low := ephemeralLow()
	if low-serverPortFloor < 1000 { // an unusual range: ask the kernel
		return kernelPort(host)
	}
	for range 1000 {
		port := serverPortFloor + rand.IntN(low-serverPortFloor)
		if !handOut(port) {
			continue
		}
		listener, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue // in use: stays handed out, never tried again
		}
		listener.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free TCP port on %s between %d and %d", host, serverPortFloor, low)
}

// FreePorts returns n distinct free ports on host (FreePort's).
func FreePorts(host string, n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		port, err := FreePort(host)
		if err != nil {
			return nil, err
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// serverPortFloor: FreePort's ports are at least this, above the
// well-known and most registered services' ports.
const serverPortFloor = 10000

var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// handOut records port as handed out; false if it was already.
func handOut(port int) bool {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	if handedOut[port] {
		return false
	}
	handedOut[port] = true
	return true
}

// ephemeralLow is the lowest port of the ephemeral range, read once;
// 32768 (Linux's default) when it cannot be read.
var ephemeralLow = sync.OnceValue(func() int {
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		_, _ = fmt.Sscan(string(data), &low)
	}
	return low
})

// kernelPort asks the kernel for a port free on host right now.
func kernelPort(host string) (int, error) {
	listener, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port, nil
}

// Alive reports whether a process with this pid exists and is not a zombie.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state letter follows the command name in parentheses.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// ErrTimeout is returned by waits that ran out of time.
var ErrTimeout = errors.New("timed out")
