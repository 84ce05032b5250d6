package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cclm-io/cclm/internal/testenv"
)

// The lab applies the seed's policy byte for byte.
func TestEmbeddedNNCPIsTheSeeds(t *testing.T) {
	seed, err := os.ReadFile(filepath.Join(testenv.SeedDir(t), "coe-bridge-via-enp2s0.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seed, seedNNCP) {
		t.Fatal("internal/lab/seed/coe-bridge-via-enp2s0.yaml differs from the seed's: copy the seed's file over it")
	}
	policy, err := seedPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if policy.Name != SeedNNCPName || len(policy.Spec.DesiredState.Interfaces) != 1 || policy.Spec.DesiredState.Interfaces[0].Name != MigrationBridge {
		t.Fatalf("the seed's policy: %+v", policy)
	}
}

func TestHyperConvergedOfTheLabHasNoSettings(t *testing.T) {
	for _, without := range []bool{false, true} {
		hco := seedHyperConverged(Options{VirtNamespace: "openshift-cnv", WithoutMigrationNetwork: without})
		if hco.Name != "kubevirt-hyperconverged" || hco.Namespace != "openshift-cnv" ||
			hco.Spec.LiveMigrationConfig.Network != nil || hco.Spec.FeatureGates.DecentralizedLiveMigration != nil {
			t.Fatalf("without the migration network %t: %+v", without, hco)
		}
	}
}
