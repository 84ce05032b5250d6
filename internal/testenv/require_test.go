package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that notes a skip or a failure instead of
// ending the test, so that the gates' decisions can be checked.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skip(args ...any) {
	if r.skipped == "" {
		r.skipped = fmt.Sprint(args...)
	}
}

func (r *recorder) Fatal(args ...any) {
	if r.failed == "" {
		r.failed = fmt.Sprint(args...)
	}
}

func TestMissingPrerequisiteSkipsWithTheReason(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv("CCLM_E2E", "1")
	r := &recorder{TB: t}
	RequireBinary(r, "cclm-no-such-program")
	if r.failed != "" || !strings.Contains(r.skipped, "needs cclm-no-such-program in PATH") {
		t.Fatalf("skipped %q, failed %q", r.skipped, r.failed)
	}
}

// In CI's integration run a missing prerequisite is a broken runner.
func TestMissingPrerequisiteFailsInCI(t *testing.T) {
	t.Setenv("CI", "true")
	t.Setenv("CCLM_E2E", "1")
	r := &recorder{TB: t}
	RequireBinary(r, "cclm-no-such-program")
	if r.skipped != "" || !strings.Contains(r.failed, "needs cclm-no-such-program in PATH") {
		t.Fatalf("skipped %q, failed %q", r.skipped, r.failed)
	}
}

func TestRequireBinaryFindsItInPATH(t *testing.T) {
	dir := t.TempDir()
	program := filepath.Join(dir, "cclm-fake-program")
	if err := os.WriteFile(program, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	r := &recorder{TB: t}
	if path := RequireBinary(r, "cclm-fake-program"); path != program || r.skipped != "" || r.failed != "" {
		t.Fatalf("path %q, skipped %q, failed %q", path, r.skipped, r.failed)
	}
}
