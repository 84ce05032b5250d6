package labtest

import (
	"fmt"
	"testing"
)

// SetMigrationConfig merges settings (JSON) into a cluster's KubeVirt CR's
// spec.configuration.migrations and returns a function restoring what was
// there.
func (l *Lab) SetMigrationConfig(t testing.TB, cluster, migrations string) func() {
	t.Helper()
	previous := l.MustKubectl(t, cluster, "", "get", "kubevirt", "kubevirt", "-n", VirtNamespace, "-o", "jsonpath={.spec.configuration.migrations}")
	if previous == "" {
		// Nothing set: the restore must still be JSON.
		previous = "{}"
	}
	l.MustKubectl(t, cluster, "", "patch", "kubevirt", "kubevirt", "-n", VirtNamespace, "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"configuration":{"migrations":%s}}}`, migrations))
	return func() {
		l.MustKubectl(t, cluster, "", "patch", "kubevirt", "kubevirt", "-n", VirtNamespace, "--type=json",
			"-p", fmt.Sprintf(`[{"op":"replace","path":"/spec/configuration/migrations","value":%s}]`, previous))
	}
}
