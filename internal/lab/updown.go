package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/cclm-io/cclm/internal/procutil"
	"k8s.io/apimachinery/pkg/util/wait"
)

// upTimeout bounds `lab up`: two control planes on two cores start in well
// under a minute; five leave room for a slow, busy machine.
const upTimeout = 5 * time.Minute

// downTimeout bounds the supervisor's orderly stop before it is killed.
const downTimeout = time.Minute

// Up starts a lab supervisor in the background unless one already runs in
// the directory, then follows its log on progress until the lab is ready.
// serveArgs are the arguments that run the supervisor with this executable.
func Up(ctx context.Context, opts Options, serveArgs []string, progress io.Writer) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	p := paths{dir: opts.Dir}
	if running(p) {
		state, _ := readState(p)
		pid := "?"
		if state != nil {
			pid = strconv.Itoa(state.Pid)
		}
		fmt.Fprintf(progress, "a lab is already running in %s (supervisor pid %s); nothing changed\n", opts.Dir, pid)
		return nil
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p.log(), nil, 0o644); err != nil {
		return err
	}
	supervisor, err := startSupervisor(p, serveArgs)
	if err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- supervisor.Wait() }()
	return followUntilReady(ctx, p, supervisor.Process.Pid, exited, progress)
}

// startSupervisor runs the supervisor in a session of its own, detached from
// the terminal, so that it outlives `lab up` and a Ctrl-C in the shell.
func startSupervisor(p paths, serveArgs []string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(p.log(), os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(self, serveArgs...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start lab supervisor: %w", err)
	}
	return cmd, nil
}

// followUntilReady copies the supervisor's log to progress until state.json
// says ready, the supervisor exits, or the deadline passes.
func followUntilReady(ctx context.Context, p paths, pid int, exited <-chan error, progress io.Writer) error {
	logFile, err := os.Open(p.log())
	if err != nil {
		return err
	}
	defer logFile.Close()
	follower := &lineFollower{reader: bufio.NewReader(logFile)}
	deadline := time.After(upTimeout)
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		follower.copyTo(progress)
		if state, err := readState(p); err == nil && state.Ready && state.Pid == pid {
			fmt.Fprintf(progress, "lab is up: export KUBECONFIG=%s (contexts %v)\n", p.kubeconfig(), state.ClusterNames())
			return nil
		}
		select {
		case err := <-exited:
			follower.copyTo(progress)
			return fmt.Errorf("lab supervisor exited before the lab was ready (%v); see %s", err, p.log())
		case <-deadline:
			return fmt.Errorf("lab not ready after %s; it keeps starting in the background: see %s, or stop it with `cclm lab down --dir %s`", upTimeout, p.log(), p.dir)
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting for the lab (%w); it keeps starting in the background: stop it with `cclm lab down --dir %s`", ctx.Err(), p.dir)
		case <-ticker.C:
		}
	}
}

// lineFollower copies whole lines that a growing file gains; a line still
// being written is held back until its newline arrives.
type lineFollower struct {
	reader  *bufio.Reader
	pending string
}

func (f *lineFollower) copyTo(out io.Writer) {
	for {
		chunk, err := f.reader.ReadString('\n')
		f.pending += chunk
		if err != nil {
			return
		}
		fmt.Fprint(out, f.pending)
		f.pending = ""
	}
}

// Down stops the lab's supervisor, which stops every process of the lab, and
// waits until the lab's processes are gone. A directory with no running lab
// is not an error: down is idempotent.
func Down(ctx context.Context, dir string, progress io.Writer) error {
	p := paths{dir: dir}
	state, err := readState(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !running(p) {
		removeRuntimeFiles(p)
		fmt.Fprintf(progress, "no lab is running in %s\n", dir)
		return nil
	}
	if state == nil {
		return fmt.Errorf("a lab in %s holds its lock but has not written state.json yet; wait for `lab up` to finish, then run down again", dir)
	}
	fmt.Fprintf(progress, "stopping the lab in %s (supervisor pid %d)\n", dir, state.Pid)
	_ = syscall.Kill(state.Pid, syscall.SIGTERM)
	if err := waitGone(ctx, p, state, downTimeout); err != nil {
		// The supervisor is stuck: end its whole session. Its children die
		// with it (each has a parent-death signal).
		_ = syscall.Kill(-state.Pid, syscall.SIGKILL)
		if err := waitGone(ctx, p, state, 10*time.Second); err != nil {
			return err
		}
	}
	fmt.Fprintln(progress, "lab stopped")
	return nil
}

// waitGone waits until the lock is free and no process the lab recorded is
// alive.
func waitGone(ctx context.Context, p paths, state *State, timeout time.Duration) error {
	var alive []int
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		alive = alivePids(state)
		return !running(p) && len(alive) == 0, nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("lab processes %v still alive after %s", alive, timeout)
	}
	return err
}

func alivePids(state *State) []int {
	var alive []int
	candidates := []int{state.Pid}
	for _, c := range state.Clusters {
		candidates = append(candidates, c.Pids...)
	}
	for _, component := range state.Components {
		candidates = append(candidates, component.Pid)
	}
	for _, pid := range candidates {
		if procutil.Alive(pid) {
			alive = append(alive, pid)
		}
	}
	return alive
}
