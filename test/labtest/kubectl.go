package labtest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/testenv"
)

// kubectlTimeout bounds one kubectl command: long enough for a --wait of
// a deletion the command itself bounds (--timeout=120s at most).
const kubectlTimeout = 2 * time.Minute

// RunKubectl runs bin/kubectl with stdin and returns its stdout and
// stderr.
func RunKubectl(t testing.TB, stdin string, args ...string) (string, string, error) {
	t.Helper()
	return run(kubectlTimeout, filepath.Join(testenv.BinDir(), "kubectl"), stdin, args...)
}

// Kubectl runs bin/kubectl against one of the lab's clusters, with stdin,
// and returns its stdout, stderr and error.
func (l *Lab) Kubectl(t testing.TB, cluster, stdin string, args ...string) (string, string, error) {
	t.Helper()
	return RunKubectl(t, stdin, append([]string{"--kubeconfig", l.Kubeconfig, "--context", cluster}, args...)...)
}

// MustKubectl is Kubectl that fails the test on error and returns stdout.
func (l *Lab) MustKubectl(t testing.TB, cluster, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, err := l.Kubectl(t, cluster, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl --context %s %s: %v\n%s", cluster, strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// Apply applies a manifest to a cluster.
func (l *Lab) Apply(t testing.TB, cluster, manifest string) {
	t.Helper()
	l.MustKubectl(t, cluster, manifest, "apply", "-f", "-")
}

// EnsureNamespace makes the namespace on a cluster if it is not there.
func (l *Lab) EnsureNamespace(t testing.TB, cluster, namespace string) {
	t.Helper()
	l.Apply(t, cluster, NamespaceManifest(namespace))
}

// NamespaceManifest is the YAML of a namespace.
func NamespaceManifest(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", name)
}

// Describe is what a failure about a namespace's VMs needs to be
// understood: its VMs, VMIs, migrations, volumes and events.
func (l *Lab) Describe(t testing.TB, cluster, namespace string) string {
	t.Helper()
	stdout, stderr, _ := l.Kubectl(t, cluster, "", "get", "vm,vmi,vmim,dv,pvc,pv,events", "-n", namespace, "-o", "wide")
	return stdout + stderr
}
