// Package labtest is the harness the lab suites share: test/e2e (its
// tests and benchmarks) and test/fault. It brings labs up and down (one
// shared by a test binary, or a test's own), runs cclm and kubectl against
// them, reads and writes their clusters' objects, talks to guests through
// their node agents, reads the lab's state and the host's QEMU processes,
// and does the setup steps of a cross-cluster migration the upstream guide
// does by hand (the CA exchange, the migration configuration). Its
// functions take a testing.TB and fail the test on what the test cannot go
// on from.
package labtest

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/testenv"
)

// Lab is a running lab (`cclm lab up`): its clusters, their controllers
// and node agents, the lab networks.
type Lab struct {
	// Dir is the lab's directory (--dir): its state, logs and nodes.
	Dir string
	// Kubeconfig holds a context per cluster, named after the cluster.
	Kubeconfig string
	// patience is how long a read of a cluster's API retries an API
	// server that does not answer; zero fails at the first error.
	patience time.Duration
}

// At is the lab in dir, which runs already.
func At(dir string) *Lab {
	return &Lab{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig")}
}

// upTimeout bounds `cclm lab up`: a lab of two clusters takes about 30 s
// on a quiet machine, several times that on a busy CI runner.
const upTimeout = 5 * time.Minute

// Up brings the lab in dir up (`cclm lab up`, with args; a lab already
// running there is kept) and returns it.
func Up(t testing.TB, dir string, timeout time.Duration, args ...string) *Lab {
	t.Helper()
	if err := up(t, dir, timeout, args...); err != nil {
		t.Fatal(err)
	}
	return At(dir)
}

func up(t testing.TB, dir string, timeout time.Duration, args ...string) error {
	t.Helper()
	cmd := append([]string{"lab", "up", "--dir", dir, "--bin-dir", testenv.BinDir()}, args...)
	if _, stderr, err := RunCCLM(t, timeout, cmd...); err != nil {
		return &cclmError{args: strings.Join(cmd, " "), err: err, stderr: stderr}
	}
	return nil
}

// Own brings up a lab of the test's own (`cclm lab up` with args) in a
// temporary directory and takes it down when the test ends.
func Own(t *testing.T, timeout time.Duration, args ...string) *Lab {
	t.Helper()
	testenv.RequireLab(t)
	dir := t.TempDir()
	t.Cleanup(func() {
		if _, stderr, err := RunCCLM(t, downTimeout, "lab", "down", "--dir", dir); err != nil {
			t.Errorf("lab down: %v\n%s", err, stderr)
		}
	})
	return Up(t, dir, timeout, args...)
}

// downTimeout bounds `cclm lab down`.
const downTimeout = 2 * time.Minute

// Shared is the lab the tests of one test binary share: brought up by the
// first test that asks for it, taken down by Stop, which TestMain calls
// after the tests ran. With CCLM_E2E_LAB_DIR set, the lab in that
// directory is used (started if needed) and kept, logs and all, for
// debugging.
type Shared struct {
	// Args are what `cclm lab up` is given besides --dir and --bin-dir.
	Args []string
	// Patience is how long the lab's reads of a cluster's API retry an
	// API server that does not answer (a suite that kills API servers
	// waits for their restart); zero fails at the first error.
	Patience time.Duration

	once    sync.Once
	lab     *Lab
	failure string
	stop    string // the directory Stop takes down and removes
}

// Lab is the shared lab, brought up on the first call.
func (s *Shared) Lab(t testing.TB) *Lab {
	t.Helper()
	testenv.RequireLab(t)
	s.once.Do(func() { s.bringUp(t) })
	if s.lab == nil {
		t.Fatalf("shared lab: %s", s.failure)
	}
	return s.lab
}

func (s *Shared) bringUp(t testing.TB) {
	t.Helper()
	dir, keep := os.LookupEnv("CCLM_E2E_LAB_DIR")
	if !keep {
		var err error
		if dir, err = os.MkdirTemp("", "cclm-lab-"); err != nil {
			s.failure = err.Error()
			return
		}
		s.stop = dir
	}
	began := time.Now()
	if err := up(t, dir, upTimeout, s.Args...); err != nil {
		s.failure = err.Error()
		return
	}
	t.Logf("shared lab up in %s (%s)", time.Since(began).Round(100*time.Millisecond), dir)
	s.lab = At(dir)
	s.lab.patience = s.Patience
}

// Stop takes the shared lab down and removes its directory, unless it is
// CCLM_E2E_LAB_DIR's.
func (s *Shared) Stop() {
	if s.stop == "" {
		return
	}
	if path := builtCCLM(); path != "" {
		_ = runToEnd(downTimeout, path, "lab", "down", "--dir", s.stop)
	}
	_ = os.RemoveAll(s.stop)
}
