package lab

import "testing"

// The lab applies the OpenShift guide's policy: the bridge its nodes'
// migration0 hangs off.
func TestNNCPIsTheGuides(t *testing.T) {
	policy, err := seedPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if policy.Name != SeedNNCPName || len(policy.Spec.DesiredState.Interfaces) != 1 || policy.Spec.DesiredState.Interfaces[0].Name != MigrationBridge {
		t.Fatalf("the guide's policy: %+v", policy)
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
