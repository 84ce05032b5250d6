package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Options say how Launch starts QEMU.
type Options struct {
	// Paused starts QEMU with its vCPUs stopped (-S), until Resume.
	Paused bool
	// Incoming starts a migration target (-incoming defer, paused): set
	// capabilities and TLS, then call MigrateIncoming.
	Incoming bool
	// Accel forces an accelerator; empty means CCLM_ACCEL's choice, by
	// default a probe that boots the Domain's kernel under KVM.
	Accel Accel
	// Binary is the QEMU binary; empty means DefaultBinary from PATH.
	Binary string
	// StartTimeout bounds the wait for QMP after exec; 0 means 30 s.
	StartTimeout time.Duration
	// DieWithStarter makes the kernel kill QEMU when the process that
	// launched it dies. For tests only: a node agent's QEMUs must survive
	// the node agent's restart.
	DieWithStarter bool
	// Start starts the prepared command; nil means cmd.Start. The node
	// agent passes a function that starts QEMU inside the node's network
	// namespace, where its taps are.
	Start func(*exec.Cmd) error
}

// launchRecord is what Launch writes to RunPaths.Meta, so that Adopt knows
// the Domain and can check the process's command line.
type launchRecord struct {
	Domain    Domain    `json:"domain"`
	Accel     Accel     `json:"accel"`
	Binary    string    `json:"binary"`
	Args      []string  `json:"args"`
	StartedAt time.Time `json:"startedAt"`
}

// Launch starts QEMU for dom, waits until it answers on QMP and returns it.
// QEMU runs in its own session (so its own process group: no signal meant
// for the node agent's terminal or group reaches it), without a parent-death
// signal, with stdout and stderr appended to RunPaths.Log, and writes a
// pidfile: it outlives the node agent, which finds it again with Adopt.
// If ctx ends or QMP never answers, QEMU is killed.
//
// QEMU inherits the network namespace of the thread that forks it: to put
// its taps and its migration and NBD listeners in a node's namespace, pass
// an Options.Start that starts the command from a thread in it.
func Launch(ctx context.Context, dom Domain, opts Options) (*Instance, error) {
	dom = dom.withDefaults()
	if err := dom.Validate(); err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	paths := dom.Paths()
	binary, err := exec.LookPath(orDefault(opts.Binary, DefaultBinary))
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w (install QEMU: apt-get install -y qemu-system-x86)", dom.Name, err)
	}
	if _, err := CheckVersion(ctx, binary); err != nil {
		return nil, fmt.Errorf("launch %s: %w", dom.Name, err)
	}
	if err := prepareRunDir(dom.RunDir, paths); err != nil {
		return nil, fmt.Errorf("launch %s: %w", dom.Name, err)
	}
	accel, err := launchAccel(ctx, opts.Accel, binary, dom.Boot)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", dom.Name, err)
	}
	args, err := CommandLine(dom, accel, opts)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", dom.Name, err)
	}
	record := launchRecord{Domain: dom, Accel: accel, Binary: binary, Args: args, StartedAt: time.Now().UTC()}
	if err := writeJSONFile(paths.Meta, record); err != nil {
		return nil, fmt.Errorf("launch %s: recording launch: %w", dom.Name, err)
	}
	proc, err := startQEMU(binary, args, paths.Log, opts)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", dom.Name, err)
	}
	in := newInstance(dom, accel, proc)
	if err := in.waitStarted(ctx, orDefault(opts.StartTimeout, 30*time.Second)); err != nil {
		in.Kill()
		return nil, fmt.Errorf("launch %s: %w\nQEMU log (%s):\n%s", dom.Name, err, paths.Log, in.LogTail(20))
	}
	return in, nil
}

// launchAccel is the accelerator asked for, else CCLM_ACCEL's choice.
func launchAccel(ctx context.Context, asked Accel, binary string, image Boot) (Accel, error) {
	if asked != "" {
		return asked, nil
	}
	choice, err := AccelChoiceFromEnv()
	if err != nil {
		return "", err
	}
	probe, err := SelectAccel(ctx, choice, binary, image)
	return probe.Accel, err
}

// LaunchedDomain is the Domain that Launch recorded in runDir: what a
// QEMU started there was given (its taps, its disks), also once it is gone.
func LaunchedDomain(runDir string) (Domain, error) {
	var record launchRecord
	if err := readJSONFile(pathsIn(runDir).Meta, &record); err != nil {
		return Domain{}, err
	}
	return record.Domain, nil
}

// RunningIn is the pid of the QEMU that runs in runDir, if one does.
func RunningIn(runDir string) (pid int, running bool) {
	paths := pathsIn(runDir)
	pid, err := readPIDFile(paths.PIDFile)
	return pid, err == nil && verifyQEMU(pid, paths.PIDFile, nil) == nil
}

// prepareRunDir creates the run directory and clears what a QEMU that is
// gone left behind; it refuses to touch the files of one still running.
func prepareRunDir(runDir string, paths RunPaths) error {
	if err := os.MkdirAll(runDir, 0o750); err != nil {
		return err
	}
	if pid, running := RunningIn(runDir); running {
		return fmt.Errorf("QEMU pid %d already runs in %s: Adopt it, or stop it first", pid, runDir)
	}
	for _, stale := range []string{paths.QMP, paths.Agent, paths.Serial, paths.PIDFile} {
		if err := os.Remove(stale); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing stale %s: %w", stale, err)
		}
	}
	return nil
}

func startQEMU(binary string, args []string, logPath string, opts Options) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening QEMU log: %w", err)
	}
	defer logFile.Close() // QEMU holds its own descriptor
	fmt.Fprintf(logFile, "%s cclm: starting %s %q\n", time.Now().UTC().Format(time.RFC3339Nano), binary, args)
	cmd := exec.Command(binary, args...)
	cmd.Args[0] = binary // so /proc/PID/cmdline names the binary Adopt checks
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if opts.DieWithStarter {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	proc, err := startChild(cmd, opts.Start)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	return proc, nil
}

// waitStarted waits until QMP answers and the pidfile names our process.
func (in *Instance) waitStarted(ctx context.Context, timeout time.Duration) error {
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if !in.proc.alive() {
			return false, fmt.Errorf("QEMU exited while starting (%s)", in.proc.describeExit())
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		defer cancelAttempt()
		_, lastErr = in.Status(attempt)
		return lastErr == nil, nil
	})
	if err != nil && lastErr != nil && in.proc.alive() {
		return fmt.Errorf("QEMU did not answer on QMP (%s): %w (last error: %v)", in.paths.QMP, err, lastErr)
	}
	if err != nil {
		return err
	}
	// QEMU writes the pidfile before it opens QMP.
	pid, err := readPIDFile(in.paths.PIDFile)
	if err != nil {
		return fmt.Errorf("QEMU answers but wrote no pidfile: %w", err)
	}
	if pid != in.proc.pid {
		return fmt.Errorf("pidfile %s names pid %d, but QEMU is pid %d: another QEMU uses this run directory", in.paths.PIDFile, pid, in.proc.pid)
	}
	return nil
}

// Adopt re-attaches to the QEMU running in runDir, for example after the
// node agent restarted: it reads the pidfile, checks that the pid is that
// QEMU (its command line names the pidfile and matches the launch record)
// and connects to QMP.
func Adopt(ctx context.Context, runDir string) (*Instance, error) {
	paths := pathsIn(runDir)
	var record launchRecord
	if err := readJSONFile(paths.Meta, &record); err != nil {
		return nil, fmt.Errorf("adopt %s: no launch record (was it started by Launch?): %w", runDir, err)
	}
	if record.Domain.RunDir != runDir {
		return nil, fmt.Errorf("adopt %s: the launch record is for run directory %s", runDir, record.Domain.RunDir)
	}
	pid, err := readPIDFile(paths.PIDFile)
	if err != nil {
		return nil, fmt.Errorf("adopt %s: %w (QEMU is not running, or exited cleanly)", runDir, err)
	}
	// Pin the process first, then check it: the check then cannot be about
	// a process that replaced the one the pidfd refers to.
	proc, err := watchProcess(pid)
	if err != nil {
		return nil, fmt.Errorf("adopt %s: %w (QEMU is not running; the pidfile is stale)", runDir, err)
	}
	if err := verifyQEMU(pid, paths.PIDFile, record.Args); err != nil {
		proc.release()
		return nil, fmt.Errorf("adopt %s: %w", runDir, err)
	}
	in := newInstance(record.Domain, record.Accel, proc)
	in.adopted = true
	if _, err := in.Status(ctx); err != nil {
		in.Close()
		return nil, fmt.Errorf("adopt %s: QEMU pid %d runs but QMP does not answer: %w", runDir, pid, err)
	}
	return in, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSONFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}
