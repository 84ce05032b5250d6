package openshift_test

import (
	"io/fs"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	hcov1beta1 "github.com/cclm-io/cclm/api/hco/v1beta1"
	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	connectconfig "github.com/cclm-io/cclm/config/connect"
	"github.com/cclm-io/cclm/examples/openshift"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/toolkit"
)

// object is what every file decodes into: a typed kind with its metadata.
type object interface {
	metav1.Object
	runtime.Object
}

// guideFile is one file of the folder, the type it must decode into and
// the name and namespace cclm looks for it under.
type guideFile struct {
	name            string
	into            object
	gvk             schema.GroupVersionKind
	object          string
	objectNamespace string
}

func guideFiles() []guideFile {
	nad := cniv1.GroupVersion.WithKind("NetworkAttachmentDefinition")
	return []guideFile{
		{openshift.ClusterRoleFile, &rbacv1.ClusterRole{}, rbacv1.SchemeGroupVersion.WithKind("ClusterRole"), connectconfig.ClusterRoleName, ""},
		{openshift.NNCPFile, &nmstatev1.NodeNetworkConfigurationPolicy{}, nmstatev1.GroupVersion.WithKind("NodeNetworkConfigurationPolicy"), lab.SeedNNCPName, ""},
		{openshift.HostNADFile, &cniv1.NetworkAttachmentDefinition{}, nad, "coe-bridge-2001", ""},
		{openshift.MigrationNADFile("ocp1"), &cniv1.NetworkAttachmentDefinition{}, nad, lab.MigrationNADName, toolkit.DefaultVirtNamespace},
		{openshift.MigrationNADFile("ocp7"), &cniv1.NetworkAttachmentDefinition{}, nad, lab.MigrationNADName, toolkit.DefaultVirtNamespace},
		{openshift.HyperConvergedFile, &hcov1beta1.HyperConverged{}, hcov1beta1.GroupVersion.WithKind("HyperConverged"), hcov1beta1.HyperConvergedName, toolkit.DefaultVirtNamespace},
		{openshift.ForkliftControllerFile, &forkliftv1beta1.ForkliftController{}, forkliftv1beta1.GroupVersion.WithKind("ForkliftController"), toolkit.ForkliftControllerName, toolkit.DefaultNamespace},
	}
}

// Every file decodes strictly into cclm's type for its kind (a field the
// types do not know fails) under the name and namespace cclm expects, and
// every embedded file is one of them, so none can rot unnoticed.
func TestFilesDecodeStrictlyIntoCclmTypes(t *testing.T) {
	var tested []string
	for _, f := range guideFiles() {
		tested = append(tested, f.name)
		t.Run(f.name, func(t *testing.T) {
			decode(t, f.name, f.into)
			if gvk := f.into.GetObjectKind().GroupVersionKind(); gvk != f.gvk {
				t.Errorf("apiVersion/kind %s, want %s", gvk, f.gvk)
			}
			if f.into.GetName() != f.object || f.into.GetNamespace() != f.objectNamespace {
				t.Errorf("%s/%s, want %s/%s", f.into.GetNamespace(), f.into.GetName(), f.objectNamespace, f.object)
			}
		})
	}
	embedded, err := fs.Glob(openshift.Files, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(embedded)
	slices.Sort(tested)
	if !slices.Equal(embedded, tested) {
		t.Errorf("embedded files %v, decoded here %v: add a new file to guideFiles", embedded, tested)
	}
}

// The operator settings are the guide's snippets: the migration network
// and the gate on the HyperConverged CR, the live migration flag on the
// ForkliftController.
func TestOperatorSettingsAreTheGuides(t *testing.T) {
	var hco hcov1beta1.HyperConverged
	decode(t, openshift.HyperConvergedFile, &hco)
	if network := hco.Spec.LiveMigrationConfig.Network; network == nil || *network != lab.MigrationNADName {
		t.Errorf("spec.liveMigrationConfig.network %v, want %s", network, lab.MigrationNADName)
	}
	if gate := hco.Spec.FeatureGates.DecentralizedLiveMigration; gate == nil || !*gate {
		t.Errorf("spec.featureGates.decentralizedLiveMigration %v, want true", gate)
	}
	var forklift forkliftv1beta1.ForkliftController
	decode(t, openshift.ForkliftControllerFile, &forklift)
	if !forklift.LiveMigrationEnabled() {
		t.Errorf("spec.feature_ocp_live_migration %q, want \"true\"", forklift.Spec.FeatureOCPLiveMigration)
	}
}

// The policy makes the bridge the lab's nodes expect, on their uplink.
func TestPolicyMakesTheLabsBridge(t *testing.T) {
	var policy nmstatev1.NodeNetworkConfigurationPolicy
	decode(t, openshift.NNCPFile, &policy)
	interfaces := policy.Spec.DesiredState.Interfaces
	if len(interfaces) != 1 || interfaces[0].Name != lab.MigrationBridge || interfaces[0].Bridge == nil ||
		len(interfaces[0].Bridge.Port) != 1 || interfaces[0].Bridge.Port[0].Name != netlab.MigrationUplink {
		t.Fatalf("want %s with port %s, got %+v", lab.MigrationBridge, netlab.MigrationUplink, interfaces)
	}
}

// The accessors return the files' bytes, each call its own copy.
func TestAccessorsReturnTheFiles(t *testing.T) {
	for name, read := range map[string]func() []byte{
		openshift.ClusterRoleFile:        openshift.ClusterRoleYAML,
		openshift.NNCPFile:               openshift.NNCPYAML,
		openshift.HyperConvergedFile:     openshift.HyperConvergedYAML,
		openshift.ForkliftControllerFile: openshift.ForkliftControllerYAML,
	} {
		want, err := openshift.Files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got := read()
		if !slices.Equal(got, want) {
			t.Errorf("%s: the accessor returns other bytes", name)
		}
		got[0] ^= 0xff
		if !slices.Equal(read(), want) {
			t.Errorf("%s: a caller's change to the returned bytes reached the next caller", name)
		}
	}
}

func decode(t *testing.T, name string, into any) {
	t.Helper()
	data, err := openshift.Files.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("examples/openshift/%s: %v", name, err)
	}
}
