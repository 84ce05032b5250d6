package e2e

import (
	"strings"
	"testing"

	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/test/labtest"
)

// kubectl runs bin/kubectl against a cluster as its admin, with stdin, and
// returns stdout, stderr and the error.
func kubectl(t testing.TB, c *controlplane.Cluster, stdin string, args ...string) (string, string, error) {
	t.Helper()
	return labtest.RunKubectl(t, stdin, append([]string{"--kubeconfig", c.AdminKubeconfig}, args...)...)
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
