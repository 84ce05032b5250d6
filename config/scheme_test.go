package config

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	hcov1beta1 "github.com/cclm-io/cclm/api/hco/v1beta1"
	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	migrationsv1alpha1 "github.com/cclm-io/cclm/api/migrations/v1alpha1"
	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	whereaboutsv1alpha1 "github.com/cclm-io/cclm/api/whereabouts/v1alpha1"
)

// TestGoTypesMatchCRDs: every CRD kind is registered by the api packages,
// and every valid manifest decodes strictly into the Go types, so the
// schema and the Go types agree at least on everything the examples use.
func TestGoTypesMatchCRDs(t *testing.T) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		kubevirtv1.AddToScheme, cdiv1beta1.AddToScheme, cniv1.AddToScheme,
		whereaboutsv1alpha1.AddToScheme, forkliftv1beta1.AddToScheme,
		nmstatev1.AddToScheme, hcov1beta1.AddToScheme, migrationsv1alpha1.AddToScheme,
		instancetypev1beta1.AddToScheme,
	} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			gv := schemaGV(crd.Spec.Group, v.Name)
			for _, kind := range []string{crd.Spec.Names.Kind, crd.Spec.Names.ListKind} {
				if !s.Recognizes(gv.WithKind(kind)) {
					t.Errorf("%s is not registered by the api packages", gv.WithKind(kind))
				}
			}
		}
	}
	for _, f := range loadTestdata(t, "valid") {
		obj, err := s.New(f.gvk)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		data, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(data, obj); err != nil {
			t.Errorf("%s: does not decode into %T: %v", filepath.Base(f.path), obj, err)
		}
	}
}

func schemaGV(group, version string) schema.GroupVersion {
	return schema.GroupVersion{Group: group, Version: version}
}
