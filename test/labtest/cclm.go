package labtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/testenv"
)

// The suites run the cclm of the tree under test, built once per test
// binary, not bin/cclm, which may be older.
var (
	buildOnce sync.Once
	cclmPath  string
	buildErr  error
)

// CCLM is the path of cmd/cclm, built on the first call.
func CCLM(t testing.TB) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return cclmPath
}

func build() {
	dir, err := os.MkdirTemp("", "cclm-bin-")
	if err != nil {
		buildErr = err
		return
	}
	path := filepath.Join(dir, "cclm")
	cmd := exec.Command("go", "build", "-o", path, "./cmd/cclm")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/cclm: %v\n%s", err, out)
		return
	}
	cclmPath = path
}

// builtCCLM is the built cclm, "" if none was built: for clean-ups, which
// have no test to build it for.
func builtCCLM() string {
	return cclmPath
}

// RunCCLM runs cclm with args and returns its stdout and stderr.
func RunCCLM(t testing.TB, timeout time.Duration, args ...string) (string, string, error) {
	t.Helper()
	return run(timeout, CCLM(t), "", args...)
}

// run runs a program with stdin and returns its stdout and stderr.
func run(timeout time.Duration, path, stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewBufferString(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// runToEnd runs a program for its effect alone.
func runToEnd(timeout time.Duration, path string, args ...string) error {
	_, _, err := run(timeout, path, "", args...)
	return err
}

// cclmError is a cclm command that failed, with what it said.
type cclmError struct {
	args   string
	err    error
	stderr string
}

func (e *cclmError) Error() string {
	return fmt.Sprintf("cclm %s: %v\n%s", e.args, e.err, e.stderr)
}
