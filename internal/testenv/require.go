package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The gates below are for integration tests, after RequireE2E: each checks
// one prerequisite before the test has any side effect and skips with the
// reason when it is missing, so that CCLM_E2E=1 on a machine without, say,
// root runs what it can. In CI's integration run (CI=true, CCLM_E2E=1)
// every prerequisite is installed by `make setup`, so a missing one fails
// the test instead: a skip there would hide a broken runner.

// RequireRoot skips the test unless it runs as root; why says what the
// test does that needs root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	missing(t, fmt.Sprintf("needs root (running as uid %d): %s", os.Geteuid(), why))
}

// RequireBinary skips the test unless the program name is in PATH, and
// returns its path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, fmt.Sprintf("needs %s in PATH (`make setup` installs it): %v", name, err))
	}
	return path
}

// KubeBinaries are what `make kube` builds into BinDir.
var KubeBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"}

// RequireKubeBinaries skips the test unless BinDir holds every one of
// KubeBinaries.
func RequireKubeBinaries(t testing.TB) {
	t.Helper()
	requireBuilt(t, "the kube binaries", "make kube", KubeBinaries...)
}

// RequireGuestImage skips the test unless BinDir holds the guest image
// the node agents boot.
func RequireGuestImage(t testing.TB) {
	t.Helper()
	requireBuilt(t, "the guest image", "make guest", filepath.Join("guest", "vmlinuz"), filepath.Join("guest", "initramfs.img"))
}

// requireBuilt skips the test unless every file, relative to BinDir, is
// there.
func requireBuilt(t testing.TB, what, target string, files ...string) {
	t.Helper()
	for _, file := range files {
		path := filepath.Join(BinDir(), file)
		if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
			missing(t, fmt.Sprintf("needs %s in %s, built by `%s`; %s is missing", what, BinDir(), target, path))
		}
	}
}

// RequireLab is the gate of a test that runs `cclm lab up`: the
// integration tests are on, and the lab's prerequisites are there (root
// for the nodes' network namespaces, QEMU and the guest image for the
// guests, the kube binaries for the control planes).
func RequireLab(t testing.TB) {
	t.Helper()
	RequireE2E(t)
	RequireRoot(t, "the lab's nodes are network namespaces")
	RequireBinary(t, "qemu-system-x86_64")
	RequireGuestImage(t)
	RequireKubeBinaries(t)
}

// missing skips the test for a missing prerequisite, or fails it in CI's
// integration run.
func missing(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" && os.Getenv("CCLM_E2E") == "1" {
		t.Fatal(reason + "; CI must have every prerequisite (`make setup`, as root)")
	} else {
		t.Skip(reason)
	}
}
