// Package testenv gives integration tests what they share: the gate that
// runs them only where their prerequisites are (and never lets CI skip
// them), the repository's paths, and control planes shared by the tests of a
// package so that each package pays for a cluster start once.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/controlplane"
)

// RequireE2E skips an integration test unless CCLM_E2E=1. In CI (CI=true)
// a skip would hide a broken suite, so there it fails instead.
func RequireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("CCLM_E2E") == "1" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("integration test: CI=true but CCLM_E2E is not 1; CI must run the integration tests (use `make test`)")
	}
	t.Skip("integration test: set CCLM_E2E=1 to run it (needs `make setup`: kube binaries, QEMU, guest image)")
}

// RepoRoot is the directory of the repository's go.mod.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if filepath.Base(dir) != "kube" { // not hack/kube's module
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// BinDir is the repository's bin/, where make puts the kube binaries.
func BinDir() string { return filepath.Join(RepoRoot(), "bin") }

// OpenShiftExamples is the repository's examples/openshift: the OpenShift
// guide's YAML files, for tests that apply them by path as a reader does.
func OpenShiftExamples() string { return filepath.Join(RepoRoot(), "examples", "openshift") }

// Clusters hands out control planes shared by a package's tests: each is
// started on first use and stopped by Stop, which TestMain calls after the
// tests ran.
type Clusters struct {
	mu      sync.Mutex
	started map[string]*controlplane.Cluster
	errs    map[string]error
	dir     string
}

// Get returns the shared cluster of that name, starting it if needed.
func (cs *Clusters) Get(t testing.TB, name string) *controlplane.Cluster {
	t.Helper()
	RequireE2E(t)
	RequireKubeBinaries(t)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.started == nil {
		cs.started, cs.errs = map[string]*controlplane.Cluster{}, map[string]error{}
	}
	if c, ok := cs.started[name]; ok {
		return c
	}
	if err, ok := cs.errs[name]; ok {
		t.Fatalf("shared cluster %s failed to start earlier: %v", name, err)
	}
	if cs.dir == "" {
		dir, err := os.MkdirTemp("", "cclm-test-")
		if err != nil {
			t.Fatal(err)
		}
		cs.dir = dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	c, err := controlplane.Start(ctx, controlplane.Options{Name: name, Dir: filepath.Join(cs.dir, name), BinDir: BinDir()})
	if err != nil {
		cs.errs[name] = err
		t.Fatalf("start shared cluster %s: %v", name, err)
	}
	t.Logf("shared cluster %s started in %s at %s", name, time.Since(began).Round(100*time.Millisecond), c.Server)
	cs.started[name] = c
	return c
}

// Stop stops every cluster started and removes their files.
func (cs *Clusters) Stop() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.started {
		c.Stop()
	}
	if cs.dir != "" {
		if err := os.RemoveAll(cs.dir); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
		}
	}
}
