package connect

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cclm-io/cclm/internal/testenv"
)

// The embedded ClusterRole is the seed's file, unchanged: a token made by
// `cclm connect` can do exactly what the seed's reader's token can.
func TestClusterRoleIsTheSeeds(t *testing.T) {
	seed, err := os.ReadFile(filepath.Join(testenv.SeedDir(t), "clusterrole.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seed, ClusterRoleYAML) {
		t.Fatal("config/connect/clusterrole.yaml differs from the seed's cclm/clusterrole.yaml: copy the seed's file over it")
	}
	role, err := ClusterRole()
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 {
		t.Fatal("the ClusterRole has no rules")
	}
	for _, rule := range role.Rules {
		if len(rule.Verbs) == 0 || len(rule.Resources) == 0 {
			t.Fatalf("rule without verbs or resources: %+v", rule)
		}
	}
}
