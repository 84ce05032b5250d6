package config

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// expectedKinds is every kind cclm serves, with its plural.
var expectedKinds = map[schema.GroupKind]string{
	{Group: "kubevirt.io", Kind: "KubeVirt"}:                                       "kubevirts",
	{Group: "kubevirt.io", Kind: "VirtualMachine"}:                                 "virtualmachines",
	{Group: "kubevirt.io", Kind: "VirtualMachineInstance"}:                         "virtualmachineinstances",
	{Group: "kubevirt.io", Kind: "VirtualMachineInstanceMigration"}:                "virtualmachineinstancemigrations",
	{Group: "cdi.kubevirt.io", Kind: "DataVolume"}:                                 "datavolumes",
	{Group: "k8s.cni.cncf.io", Kind: "NetworkAttachmentDefinition"}:                "network-attachment-definitions",
	{Group: "whereabouts.cni.cncf.io", Kind: "IPPool"}:                             "ippools",
	{Group: "forklift.konveyor.io", Kind: "ForkliftController"}:                    "forkliftcontrollers",
	{Group: "forklift.konveyor.io", Kind: "Provider"}:                              "providers",
	{Group: "forklift.konveyor.io", Kind: "NetworkMap"}:                            "networkmaps",
	{Group: "forklift.konveyor.io", Kind: "StorageMap"}:                            "storagemaps",
	{Group: "forklift.konveyor.io", Kind: "Plan"}:                                  "plans",
	{Group: "forklift.konveyor.io", Kind: "Migration"}:                             "migrations",
	{Group: "nmstate.io", Kind: "NodeNetworkConfigurationPolicy"}:                  "nodenetworkconfigurationpolicies",
	{Group: "nmstate.io", Kind: "NodeNetworkConfigurationEnactment"}:               "nodenetworkconfigurationenactments",
	{Group: "hco.kubevirt.io", Kind: "HyperConverged"}:                             "hyperconvergeds",
	{Group: "migrations.kubevirt.io", Kind: "MigrationPolicy"}:                     "migrationpolicies",
	{Group: "instancetype.kubevirt.io", Kind: "VirtualMachineInstancetype"}:        "virtualmachineinstancetypes",
	{Group: "instancetype.kubevirt.io", Kind: "VirtualMachineClusterInstancetype"}: "virtualmachineclusterinstancetypes",
	{Group: "instancetype.kubevirt.io", Kind: "VirtualMachinePreference"}:          "virtualmachinepreferences",
	{Group: "instancetype.kubevirt.io", Kind: "VirtualMachineClusterPreference"}:   "virtualmachineclusterpreferences",
}

// clusterScoped are the kinds that, as upstream, are not namespaced.
var clusterScoped = map[schema.GroupKind]bool{
	{Group: "nmstate.io", Kind: "NodeNetworkConfigurationPolicy"}:                  true,
	{Group: "nmstate.io", Kind: "NodeNetworkConfigurationEnactment"}:               true,
	{Group: "migrations.kubevirt.io", Kind: "MigrationPolicy"}:                     true,
	{Group: "instancetype.kubevirt.io", Kind: "VirtualMachineClusterInstancetype"}: true,
	{Group: "instancetype.kubevirt.io", Kind: "VirtualMachineClusterPreference"}:   true,
}

func TestCRDsCoverEveryKind(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[schema.GroupKind]bool{}
	for _, crd := range crds {
		gk := schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}
		plural, ok := expectedKinds[gk]
		if !ok {
			t.Errorf("unexpected CRD %s", crd.Name)
			continue
		}
		if seen[gk] {
			t.Errorf("duplicate CRD for %s", gk)
		}
		seen[gk] = true
		if crd.Spec.Names.Plural != plural {
			t.Errorf("%s: plural %q, want %q", gk, crd.Spec.Names.Plural, plural)
		}
		wantScope := apiextensionsv1.NamespaceScoped
		if clusterScoped[gk] {
			wantScope = apiextensionsv1.ClusterScoped
		}
		if crd.Spec.Scope != wantScope {
			t.Errorf("%s: scope %s, want %s", gk, crd.Spec.Scope, wantScope)
		}
		if crd.Name != plural+"."+crd.Spec.Group {
			t.Errorf("%s: name %q", gk, crd.Name)
		}
	}
	for gk := range expectedKinds {
		if !seen[gk] {
			t.Errorf("no CRD for %s", gk)
		}
	}
}

// TestCRDsAreValid runs the apiserver's own CRD validation: structural
// schema, CEL rules compile and fit the cost budget, printer columns, etc.
// It also checks that no schema preserves unknown fields at its root or at
// the root of spec, which would defeat strict field validation.
func TestCRDsAreValid(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		t.Run(crd.Name, func(t *testing.T) {
			internal := toInternal(t, crd)
			if errs := apiextensionsvalidation.ValidateCustomResourceDefinition(context.Background(), internal); len(errs) > 0 {
				for _, e := range errs {
					t.Error(e)
				}
			}
			for _, v := range internal.Spec.Versions {
				s, err := structuralschema.NewStructural(versionSchema(internal, v))
				if err != nil {
					t.Fatalf("%s: %v", v.Name, err)
				}
				if errs := structuralschema.ValidateStructural(field.NewPath("schema"), s); len(errs) > 0 {
					t.Errorf("%s: not structural: %v", v.Name, errs.ToAggregate())
				}
				if s.XPreserveUnknownFields {
					t.Errorf("%s: root preserves unknown fields", v.Name)
				}
				if spec, ok := s.Properties["spec"]; ok && spec.XPreserveUnknownFields {
					t.Errorf("%s: spec preserves unknown fields", v.Name)
				}
			}
		})
	}
}

func toInternal(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) *apiextensions.CustomResourceDefinition {
	t.Helper()
	crd = crd.DeepCopy()
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(crd)
	internal := &apiextensions.CustomResourceDefinition{}
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, internal, nil); err != nil {
		t.Fatal(err)
	}
	return internal
}

func TestAdmissionPolicies(t *testing.T) {
	objs, err := AdmissionPolicies("kubevirt")
	if err != nil {
		t.Fatal(err)
	}
	policies := map[string]*admissionregistrationv1.ValidatingAdmissionPolicy{}
	var bindings []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	seenBinding := false
	for _, o := range objs {
		switch o := o.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			if seenBinding {
				t.Errorf("policy %s after a binding; policies must come first", o.Name)
			}
			if o.Kind != "ValidatingAdmissionPolicy" || o.APIVersion != "admissionregistration.k8s.io/v1" {
				t.Errorf("policy %s: TypeMeta %v", o.Name, o.TypeMeta)
			}
			pk := o.Spec.ParamKind
			if pk == nil || pk.APIVersion != "kubevirt.io/v1" || pk.Kind != "KubeVirt" {
				t.Errorf("policy %s: paramKind %v, want kubevirt.io/v1 KubeVirt", o.Name, pk)
			}
			policies[o.Name] = o
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			seenBinding = true
			bindings = append(bindings, o)
		default:
			t.Errorf("unexpected object %T", o)
		}
	}
	if len(policies) != 2 || len(bindings) != 2 {
		t.Fatalf("got %d policies and %d bindings, want 2 and 2", len(policies), len(bindings))
	}
	for _, b := range bindings {
		if policies[b.Spec.PolicyName] == nil {
			t.Errorf("binding %s: no policy %q", b.Name, b.Spec.PolicyName)
		}
		pr := b.Spec.ParamRef
		if pr.Namespace != "kubevirt" {
			t.Errorf("binding %s: paramRef.namespace %q, want kubevirt", b.Name, pr.Namespace)
		}
		if pr.Selector == nil || pr.Name != "" {
			t.Errorf("binding %s: paramRef must select all KubeVirt CRs, got %+v", b.Name, pr)
		}
		if pr.ParameterNotFoundAction == nil || *pr.ParameterNotFoundAction != admissionregistrationv1.DenyAction {
			t.Errorf("binding %s: parameterNotFoundAction must be Deny", b.Name)
		}
		if len(b.Spec.ValidationActions) != 1 || b.Spec.ValidationActions[0] != admissionregistrationv1.Deny {
			t.Errorf("binding %s: validationActions %v, want [Deny]", b.Name, b.Spec.ValidationActions)
		}
	}

	// Each call returns fresh objects: rewriting one namespace must not
	// leak into another call.
	again, err := AdmissionPolicies("openshift-cnv")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range again {
		if b, ok := o.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding); ok && b.Spec.ParamRef.Namespace != "openshift-cnv" {
			t.Errorf("binding %s: namespace %q", b.Name, b.Spec.ParamRef.Namespace)
		}
	}

	if _, err := AdmissionPolicies("Not_A_Namespace"); err == nil {
		t.Error("invalid namespace accepted")
	}
	if _, err := AdmissionPolicies(""); err == nil {
		t.Error("empty namespace accepted")
	}
}

// versionSchema returns the OpenAPI schema of version v. The internal API
// hoists a schema shared by all versions to spec.validation.
func versionSchema(crd *apiextensions.CustomResourceDefinition, v apiextensions.CustomResourceDefinitionVersion) *apiextensions.JSONSchemaProps {
	if v.Schema != nil {
		return v.Schema.OpenAPIV3Schema
	}
	return crd.Spec.Validation.OpenAPIV3Schema
}
