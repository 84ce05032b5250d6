package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Instance is a running QEMU driven over QMP. Its methods are safe for
// concurrent use; QMP commands run one at a time.
type Instance struct {
	dom     Domain
	paths   RunPaths
	accel   Accel
	proc    *process
	mon     *monitor
	adopted bool
	clock   migrationClock
	// sending is set once an outgoing migration was started (Migrate).
	sending atomic.Bool
}

func newInstance(dom Domain, accel Accel, proc *process) *Instance {
	in := &Instance{dom: dom, paths: dom.Paths(), accel: accel, proc: proc}
	in.mon = newMonitor(in.paths.QMP, in.clock.observe)
	return in
}

// Domain is the VM this QEMU runs.
func (in *Instance) Domain() Domain { return in.dom }

// Paths are its run-directory files (QMP, agent and serial sockets, logs).
func (in *Instance) Paths() RunPaths { return in.paths }

// Accel is the accelerator it runs under.
func (in *Instance) Accel() Accel { return in.accel }

// Pid is QEMU's process ID.
func (in *Instance) Pid() int { return in.proc.pid }

// Adopted tells whether this Instance was found by Adopt rather than
// started by Launch (then QEMU is not our child and its exit status is
// unknown).
func (in *Instance) Adopted() bool { return in.adopted }

// Alive reports whether QEMU still runs.
func (in *Instance) Alive() bool { return in.proc.alive() }

// Exited is closed when QEMU has exited.
func (in *Instance) Exited() <-chan struct{} { return in.proc.exited }

// Wait waits until QEMU exits. It returns nil if QEMU exited with status 0
// or, for an adopted QEMU (not our child), exited at all; an error saying
// how it ended otherwise, or if ctx ends first.
func (in *Instance) Wait(ctx context.Context) error {
	select {
	case <-in.proc.exited:
		return in.proc.exitErr
	case <-ctx.Done():
		return fmt.Errorf("waiting for QEMU (pid %d) of %s to exit: %w", in.proc.pid, in.dom.Name, ctx.Err())
	}
}

// Events subscribes to QMP events; call the returned function to
// unsubscribe. The channel is closed on unsubscribe, on Close, and once
// QEMU is gone (Kill, Quit, Powerdown). A
// subscriber that falls more than a few hundred events behind loses events
// (QMP is never stalled for it).
func (in *Instance) Events() (<-chan Event, func()) { return in.mon.events.subscribe() }

// Execute runs any QMP command and decodes its return value into result
// (nil to discard it). The typed methods cover what cclm needs; this is for
// the rest.
func (in *Instance) Execute(ctx context.Context, command string, args, result any) error {
	select {
	case <-in.proc.exited:
		return fmt.Errorf("QMP %s: QEMU of %s has exited (%s)", command, in.dom.Name, in.proc.describeExit())
	default:
	}
	return in.mon.execute(ctx, command, args, result)
}

// Status is QEMU's run state (query-status).
type Status struct {
	Running bool
	// State is QEMU's RunState: "running", "paused", "inmigrate",
	// "postmigrate", "finish-migrate", "prelaunch", "shutdown", ...
	State string
}

// Status queries the run state.
func (in *Instance) Status(ctx context.Context) (Status, error) {
	var answer struct {
		Running bool   `json:"running"`
		Status  string `json:"status"`
	}
	if err := in.Execute(ctx, "query-status", nil, &answer); err != nil {
		return Status{}, err
	}
	return Status{Running: answer.Running, State: answer.Status}, nil
}

// Resume runs the vCPUs (cont).
func (in *Instance) Resume(ctx context.Context) error { return in.Execute(ctx, "cont", nil, nil) }

// Pause stops the vCPUs (stop).
func (in *Instance) Pause(ctx context.Context) error { return in.Execute(ctx, "stop", nil, nil) }

// Quit asks QEMU to exit at once (quit, no guest shutdown) and waits for
// it; QEMU flushes its disk images on the way out.
func (in *Instance) Quit(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	err := in.Execute(ctx, "quit", nil, nil)
	if err != nil && in.Alive() {
		var qmpErr *QMPError
		if errors.As(err, &qmpErr) {
			return err
		}
		// The connection may end before the answer arrives; whether QEMU is
		// on its way out is what Wait tells.
	}
	if err := in.Wait(ctx); err != nil && in.Alive() {
		return fmt.Errorf("quit: %w", err)
	}
	in.cleanup()
	return nil
}

// Powerdown shuts the guest down like a power button (system_powerdown),
// and if it is still running after grace, quits QEMU, then kills it. It
// returns once QEMU is gone.
func (in *Instance) Powerdown(ctx context.Context, grace time.Duration) error {
	if !in.Alive() {
		return nil
	}
	if err := in.Execute(ctx, "system_powerdown", nil, nil); err == nil {
		graceCtx, cancel := context.WithTimeout(ctx, grace)
		in.Wait(graceCtx) // what matters is whether it is gone, not how
		cancel()
		if !in.Alive() {
			in.cleanup()
			return nil
		}
	}
	quitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := in.Quit(quitCtx); err == nil {
		return nil
	}
	return in.Kill()
}

// Kill ends QEMU with SIGKILL and waits for it to be gone.
func (in *Instance) Kill() error {
	if !in.Alive() {
		in.cleanup()
		return nil
	}
	if err := in.proc.signal(syscall.SIGKILL); err != nil && in.Alive() {
		return fmt.Errorf("kill QEMU pid %d of %s: %w", in.proc.pid, in.dom.Name, err)
	}
	select {
	case <-in.proc.exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("QEMU pid %d of %s survived SIGKILL for 30s (stuck in the kernel? see /proc/%d/stack)", in.proc.pid, in.dom.Name, in.proc.pid)
	}
	in.cleanup()
	return nil
}

// cleanup releases what the exited QEMU held: the QMP connection, and a
// pidfile it could not remove itself (it was killed), so that no later
// Adopt trusts it.
func (in *Instance) cleanup() {
	in.mon.close()
	in.proc.release()
	if pid, err := readPIDFile(in.paths.PIDFile); err == nil && pid == in.proc.pid {
		os.Remove(in.paths.PIDFile)
	}
}

// Close lets go of QEMU without stopping it: the QMP connection is closed
// and event subscriptions end. Use Adopt to drive it again.
func (in *Instance) Close() error {
	in.mon.close()
	in.proc.release()
	return nil
}

// LogTail returns the last lines of QEMU's log, for error messages.
func (in *Instance) LogTail(lines int) string { return tailFile(in.paths.Log, lines) }

// ConsoleTail returns the last lines the guest printed on its serial console.
func (in *Instance) ConsoleTail(lines int) string { return tailFile(in.paths.ConsoleLog, lines) }

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return strings.Join(all, "\n")
}
