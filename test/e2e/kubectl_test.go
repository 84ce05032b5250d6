package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/internal/testenv"
)

// kubectl runs bin/kubectl against a cluster as its admin, with stdin, and
// returns stdout, stderr and the error.
func kubectl(t testing.TB, c *controlplane.Cluster, stdin string, args ...string) (string, string, error) {
	t.Helper()
	return runKubectl(t, stdin, append([]string{"--kubeconfig", c.AdminKubeconfig}, args...)...)
}

// runKubectl runs bin/kubectl with stdin and returns stdout and stderr.
func runKubectl(t testing.TB, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(testenv.BinDir(), "kubectl"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// mustKubectl is kubectl that fails the test on error.
func mustKubectl(t testing.TB, c *controlplane.Cluster, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, err := kubectl(t, c, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}
