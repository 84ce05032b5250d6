package config

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	schemacel "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/yaml"

	"github.com/cclm-io/cclm/examples/openshift"
)

// The e2e test data (test/e2e/testdata/api) is checked here offline, with
// the apiserver's own validation code, so that a broken example or a
// message drifting from its "# expect-error:" line shows up in a unit test
// and not only against a live cluster.
const testdataDir = "../test/e2e/testdata/api"

// crValidator validates custom resources of one kind the way the apiserver
// does on create: unknown fields (strict field validation), OpenAPI schema,
// CEL rules.
type crValidator struct {
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *schemacel.Validator
}

func newValidators(t *testing.T) map[schema.GroupVersionKind]*crValidator {
	t.Helper()
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	out := map[schema.GroupVersionKind]*crValidator{}
	for _, crd := range crds {
		internal := toInternal(t, crd)
		for _, v := range internal.Spec.Versions {
			s, err := structuralschema.NewStructural(versionSchema(internal, v))
			if err != nil {
				t.Fatal(err)
			}
			sv, _, err := apiservervalidation.NewSchemaValidator(versionSchema(internal, v))
			if err != nil {
				t.Fatal(err)
			}
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
			out[gvk] = &crValidator{
				structural: s,
				schema:     sv,
				cel:        schemacel.NewValidator(s, true, celconfig.PerCallLimit),
			}
		}
	}
	return out
}

// validate returns the errors the apiserver would report for creating obj,
// formatted as the apiserver formats them.
func (v *crValidator) validate(obj map[string]any) []string {
	// Strict field validation (kubectl's default): unknown fields fail the
	// request while decoding, before any validation runs.
	pruned := pruning.PruneWithOptions(deepCopyJSON(obj), v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	var msgs []string
	for _, p := range pruned {
		if p == "metadata" || strings.HasPrefix(p, "metadata.") {
			continue // ObjectMeta is validated by the apiserver itself
		}
		msgs = append(msgs, fmt.Sprintf("unknown field %q", p))
	}
	if len(msgs) > 0 {
		return msgs
	}
	errs := apiservervalidation.ValidateCustomResource(nil, obj, v.schema)
	// As the apiserver's customResourceStrategy: CEL rules are skipped when
	// the schema reports a type, enum, required or size error.
	blocking := false
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			blocking = true
		}
	}
	if !blocking {
		celErrs, _ := v.cel.Validate(context.Background(), nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return msgs
}

func deepCopyJSON(obj map[string]any) map[string]any {
	b, err := yaml.Marshal(obj)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

type testdataFile struct {
	path      string
	obj       map[string]any
	gvk       schema.GroupVersionKind
	expect    string // "# expect-error:" substring; invalid files only
	needsGate bool   // "# needs-gate: off": refused by admission policy
}

func loadTestdata(t *testing.T, dir string) []testdataFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(testdataDir, dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no test data in %s/%s", testdataDir, dir)
	}
	sort.Strings(paths)
	var out []testdataFile
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f := testdataFile{path: p}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "# expect-error:"); ok {
				f.expect = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "# needs-gate:"); ok && strings.TrimSpace(v) == "off" {
				f.needsGate = true
			}
		}
		if err := yaml.Unmarshal(data, &f.obj); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		apiVersion, _ := f.obj["apiVersion"].(string)
		kind, _ := f.obj["kind"].(string)
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		f.gvk = gv.WithKind(kind)
		if md, ok := f.obj["metadata"].(map[string]any); ok && md["namespace"] != nil {
			t.Errorf("%s: test data must not set metadata.namespace; the test picks it", p)
		}
		out = append(out, f)
	}
	return out
}

func TestValidTestdata(t *testing.T) {
	validators := newValidators(t)
	for _, f := range loadTestdata(t, "valid") {
		t.Run(filepath.Base(f.path), func(t *testing.T) {
			v := validators[f.gvk]
			if v == nil {
				t.Fatalf("no CRD for %s", f.gvk)
			}
			for _, msg := range v.validate(f.obj) {
				t.Error(msg)
			}
		})
	}
}

func TestInvalidTestdata(t *testing.T) {
	validators := newValidators(t)
	policies := newPolicyEvaluator(t)
	for _, f := range loadTestdata(t, "invalid") {
		t.Run(filepath.Base(f.path), func(t *testing.T) {
			if f.expect == "" {
				t.Fatal(`no "# expect-error:" line`)
			}
			v := validators[f.gvk]
			if v == nil {
				t.Fatalf("no CRD for %s", f.gvk)
			}
			msgs := v.validate(f.obj)
			if f.needsGate {
				// Valid as far as the schema goes; refused by the
				// admission policy while the gate is off (absent, or
				// only other gates listed), admitted while it is on
				// (in any letter case).
				for _, msg := range msgs {
					t.Errorf("schema refuses a gate-only case: %s", msg)
				}
				msgs = policies.evaluate(t, f.obj, kubeVirtWithGates())
				if other := policies.evaluate(t, f.obj, kubeVirtWithGates("SomethingElse")); len(other) == 0 {
					t.Error("admitted with only another gate listed")
				}
				if denied := policies.evaluate(t, f.obj, kubeVirtWithGates("decentralizedLiveMigration")); len(denied) > 0 {
					t.Errorf("refused with the gate on: %v", denied)
				}
			}
			found := false
			for _, msg := range msgs {
				if strings.Contains(msg, f.expect) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error contains %q; got %q", f.expect, msgs)
			}
		})
	}
}

// kubeVirtWithGates returns a KubeVirt CR (as the policies' params) listing
// the given feature gates.
func kubeVirtWithGates(gates ...string) map[string]any {
	list := make([]any, len(gates))
	for i, g := range gates {
		list[i] = g
	}
	kv := map[string]any{
		"apiVersion": "kubevirt.io/v1",
		"kind":       "KubeVirt",
		"metadata":   map[string]any{"name": "kubevirt", "namespace": "kubevirt"},
		"spec":       map[string]any{"configuration": map[string]any{}},
	}
	if gates != nil {
		kv["spec"] = map[string]any{"configuration": map[string]any{
			"developerConfiguration": map[string]any{"featureGates": list},
		}}
	}
	return kv
}

// policyEvaluator evaluates the admission policies' CEL on CREATE requests,
// with the Kubernetes CEL libraries, approximating the apiserver (object and
// params are untyped here; the apiserver also type-checks them against the
// CRD schemas).
type policyEvaluator struct {
	policies []*admissionregistrationv1.ValidatingAdmissionPolicy
	env      *cel.Env
}

func newPolicyEvaluator(t *testing.T) *policyEvaluator {
	t.Helper()
	objs, err := AdmissionPolicies("kubevirt")
	if err != nil {
		t.Fatal(err)
	}
	envSet, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(environment.VersionedOptions{
		IntroducedVersion: environment.DefaultCompatibilityVersion(),
		EnvOptions: []cel.EnvOption{
			cel.Variable("object", cel.DynType),
			cel.Variable("oldObject", cel.DynType),
			cel.Variable("params", cel.DynType),
			cel.Variable("request", cel.DynType),
			cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	env, err := envSet.Env(environment.StoredExpressions)
	if err != nil {
		t.Fatal(err)
	}
	pe := &policyEvaluator{env: env}
	for _, o := range objs {
		if p, ok := o.(*admissionregistrationv1.ValidatingAdmissionPolicy); ok {
			pe.policies = append(pe.policies, p)
		}
	}
	return pe
}

func (pe *policyEvaluator) eval(t *testing.T, expr string, vars map[string]any) any {
	t.Helper()
	ast, iss := pe.env.Compile(expr)
	if iss.Err() != nil {
		t.Fatalf("compile %q: %v", expr, iss.Err())
	}
	prg, err := pe.env.Program(ast)
	if err != nil {
		t.Fatalf("program %q: %v", expr, err)
	}
	out, _, err := prg.Eval(vars)
	if err != nil {
		t.Fatalf("eval %q: %v", expr, err)
	}
	return out.Value()
}

// evaluate returns the messages of the validations that deny creating obj
// given the KubeVirt CR params.
func (pe *policyEvaluator) evaluate(t *testing.T, obj, params map[string]any) []string {
	t.Helper()
	apiVersion, _ := obj["apiVersion"].(string)
	gv, _ := schema.ParseGroupVersion(apiVersion)
	var denied []string
	for _, p := range pe.policies {
		if !policyMatchesCreate(p, gv.Group, strings.ToLower(obj["kind"].(string))+"s") {
			continue
		}
		variables := map[string]any{}
		vars := map[string]any{
			"object":    obj,
			"oldObject": nil,
			"params":    params,
			"request":   map[string]any{"operation": "CREATE"},
			"variables": variables,
		}
		for _, v := range p.Spec.Variables {
			variables[v.Name] = pe.eval(t, v.Expression, vars)
		}
		for _, v := range p.Spec.Validations {
			if ok, _ := pe.eval(t, v.Expression, vars).(bool); !ok {
				denied = append(denied, v.Message)
			}
		}
	}
	return denied
}

func policyMatchesCreate(p *admissionregistrationv1.ValidatingAdmissionPolicy, group, resource string) bool {
	for _, r := range p.Spec.MatchConstraints.ResourceRules {
		if contains(r.APIGroups, group) && contains(r.Resources, resource) && contains(r.Operations, admissionregistrationv1.Create) {
			return true
		}
	}
	return false
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestAdmissionPoliciesAdmitValidTestdata: with the gate on, every valid
// manifest passes the policies; with it off, exactly the decentralized ones
// are refused.
func TestAdmissionPoliciesAdmitValidTestdata(t *testing.T) {
	pe := newPolicyEvaluator(t)
	decentralized := map[string]bool{
		"vmim-source-sendto.yaml":  true,
		"vmim-target-receive.yaml": true,
		"vm-waitasreceiver.yaml":   true,
	}
	for _, f := range loadTestdata(t, "valid") {
		name := filepath.Base(f.path)
		if denied := pe.evaluate(t, f.obj, kubeVirtWithGates("DecentralizedLiveMigration")); len(denied) > 0 {
			t.Errorf("%s: refused with the gate on: %v", name, denied)
		}
		denied := pe.evaluate(t, f.obj, kubeVirtWithGates())
		if got := len(denied) > 0; got != decentralized[name] {
			t.Errorf("%s: refused with the gate off = %v, want %v (%v)", name, got, decentralized[name], denied)
		}
	}
}

// TestVMUpdateKeepsReceiver: a VM that already waits as receiver stays
// updatable with the gate off, so that an in-flight migration can finish.
func TestVMUpdateKeepsReceiver(t *testing.T) {
	pe := newPolicyEvaluator(t)
	var vmPolicy *admissionregistrationv1.ValidatingAdmissionPolicy
	for _, p := range pe.policies {
		if policyMatchesCreate(p, "kubevirt.io", "virtualmachines") {
			vmPolicy = p
		}
	}
	if vmPolicy == nil {
		t.Fatal("no policy for virtualmachines")
	}
	vm := map[string]any{"spec": map[string]any{"runStrategy": "WaitAsReceiver"}}
	for _, tc := range []struct {
		old  map[string]any
		deny bool
	}{
		{old: map[string]any{"spec": map[string]any{"runStrategy": "WaitAsReceiver"}}, deny: false},
		{old: map[string]any{"spec": map[string]any{"runStrategy": "Halted"}}, deny: true},
		{old: map[string]any{"spec": map[string]any{}}, deny: true},
	} {
		variables := map[string]any{}
		vars := map[string]any{"object": vm, "oldObject": tc.old, "params": kubeVirtWithGates(), "request": map[string]any{"operation": "UPDATE"}, "variables": variables}
		for _, v := range vmPolicy.Spec.Variables {
			variables[v.Name] = pe.eval(t, v.Expression, vars)
		}
		denied := false
		for _, v := range vmPolicy.Spec.Validations {
			if ok, _ := pe.eval(t, v.Expression, vars).(bool); !ok {
				denied = true
			}
		}
		if denied != tc.deny {
			t.Errorf("old %v: denied = %v, want %v", tc.old, denied, tc.deny)
		}
	}
}

// TestGuideNetworkAttachmentDefinitions: the OpenShift guide's NADs
// (examples/openshift) pass the NAD schema unchanged.
func TestGuideNetworkAttachmentDefinitions(t *testing.T) {
	paths, err := fs.Glob(openshift.Files, "*net-attach-def.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("examples/openshift embeds no *net-attach-def.yaml (%v)", err)
	}
	v := newValidators(t)[schema.GroupVersionKind{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinition"}]
	for _, p := range paths {
		for _, msg := range v.validate(guideObject(t, p)) {
			t.Errorf("examples/openshift/%s: %s", p, msg)
		}
	}
}
