package v1alpha1

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

func policy(name string, vmi, namespace LabelSelector) MigrationPolicy {
	return MigrationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       MigrationPolicySpec{Selectors: &Selectors{VirtualMachineInstanceSelector: vmi, NamespaceSelector: namespace}},
	}
}

func TestMatchPolicy(t *testing.T) {
	vmiLabels := map[string]string{"app": "db", "tier": "gold"}
	nsLabels := map[string]string{"team": "storage", "env": "prod"}
	noSelectors := MigrationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "nil-selectors"}}
	for _, tc := range []struct {
		name     string
		policies []MigrationPolicy
		vmi, ns  map[string]string
		want     string // "" = none
	}{
		{"no policies", nil, vmiLabels, nsLabels, ""},
		{"empty selectors match every VMI",
			[]MigrationPolicy{policy("all", nil, nil)}, vmiLabels, nsLabels, "all"},
		{"empty selectors match a VMI without labels",
			[]MigrationPolicy{policy("all", LabelSelector{}, LabelSelector{})}, nil, nil, "all"},
		{"absent selectors match every VMI",
			[]MigrationPolicy{noSelectors}, vmiLabels, nsLabels, "nil-selectors"},
		{"VMI selector only",
			[]MigrationPolicy{policy("db", LabelSelector{"app": "db"}, nil)}, vmiLabels, nsLabels, "db"},
		{"VMI selector with another value",
			[]MigrationPolicy{policy("web", LabelSelector{"app": "web"}, nil)}, vmiLabels, nsLabels, ""},
		{"VMI selector naming a label the VMI lacks",
			[]MigrationPolicy{policy("x", LabelSelector{"missing": "db"}, nil)}, vmiLabels, nsLabels, ""},
		{"a VMI selector is not matched against the namespace's labels",
			[]MigrationPolicy{policy("x", LabelSelector{"team": "storage"}, nil)}, vmiLabels, nsLabels, ""},
		{"namespace selector only",
			[]MigrationPolicy{policy("storage", nil, LabelSelector{"team": "storage"})}, vmiLabels, nsLabels, "storage"},
		{"namespace selector, namespace without labels (unreadable)",
			[]MigrationPolicy{policy("storage", nil, LabelSelector{"team": "storage"})}, vmiLabels, nil, ""},
		{"both selectors",
			[]MigrationPolicy{policy("both", LabelSelector{"app": "db"}, LabelSelector{"env": "prod"})}, vmiLabels, nsLabels, "both"},
		{"both selectors, the namespace's does not match",
			[]MigrationPolicy{policy("both", LabelSelector{"app": "db"}, LabelSelector{"env": "dev"})}, vmiLabels, nsLabels, ""},
		{"partial mismatch: one of two VMI labels differs",
			[]MigrationPolicy{policy("partial", LabelSelector{"app": "db", "tier": "silver"}, nil)}, vmiLabels, nsLabels, ""},
		{"more labels win",
			[]MigrationPolicy{
				policy("a-one", LabelSelector{"app": "db"}, nil),
				policy("z-three", LabelSelector{"app": "db", "tier": "gold"}, LabelSelector{"env": "prod"}),
				policy("b-two", LabelSelector{"app": "db"}, LabelSelector{"team": "storage"}),
				policy("c-all", nil, nil),
			}, vmiLabels, nsLabels, "z-three"},
		{"more labels win only if they all match",
			[]MigrationPolicy{
				policy("a-one", LabelSelector{"app": "db"}, nil),
				policy("z-three", LabelSelector{"app": "db", "tier": "gold"}, LabelSelector{"env": "dev"}),
			}, vmiLabels, nsLabels, "a-one"},
		{"a tie goes to the alphabetically first name",
			[]MigrationPolicy{
				policy("zeta", LabelSelector{"app": "db"}, nil),
				policy("beta", nil, LabelSelector{"team": "storage"}),
				policy("gamma", LabelSelector{"tier": "gold"}, nil),
			}, vmiLabels, nsLabels, "beta"},
		{"a tie of empty selectors goes to the first name too",
			[]MigrationPolicy{policy("b", nil, nil), noSelectors, policy("a", nil, nil)}, vmiLabels, nsLabels, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MatchPolicy(tc.policies, tc.vmi, tc.ns)
			switch {
			case got == nil && tc.want != "":
				t.Errorf("no policy, want %s", tc.want)
			case got != nil && got.Name != tc.want:
				t.Errorf("policy %s, want %q", got.Name, tc.want)
			}
		})
	}
}

// The result does not depend on the order of the list.
func TestMatchPolicyIgnoresOrder(t *testing.T) {
	policies := []MigrationPolicy{policy("c", nil, nil), policy("b", LabelSelector{"app": "db"}, nil), policy("a", nil, LabelSelector{"env": "prod"})}
	for i := range policies {
		rotated := append(append([]MigrationPolicy{}, policies[i:]...), policies[:i]...)
		if got := MatchPolicy(rotated, map[string]string{"app": "db"}, map[string]string{"env": "prod"}); got == nil || got.Name != "a" {
			t.Errorf("rotation %d: %v, want a", i, got)
		}
	}
}

func TestApplyTo(t *testing.T) {
	q := func(s string) *resource.Quantity {
		v := resource.MustParse(s)
		return &v
	}
	cluster := (*kubevirtv1.KubeVirt)(nil).EffectiveMigrationConfiguration()
	for _, tc := range []struct {
		name string
		spec MigrationPolicySpec
		want func(*kubevirtv1.MigrationConfiguration)
	}{
		{"nothing set: the cluster's configuration", MigrationPolicySpec{}, func(*kubevirtv1.MigrationConfiguration) {}},
		{"every field", MigrationPolicySpec{
			AllowAutoConverge: ptrTo(true), BandwidthPerMigration: q("64Mi"), CompletionTimeoutPerGiB: ptrTo[int64](30),
			AllowPostCopy: ptrTo(true), AllowWorkloadDisruption: ptrTo(false),
		}, func(c *kubevirtv1.MigrationConfiguration) {
			c.AllowAutoConverge, c.BandwidthPerMigration, c.CompletionTimeoutPerGiB = ptrTo(true), q("64Mi"), ptrTo[int64](30)
			c.AllowPostCopy, c.AllowWorkloadDisruption = ptrTo(true), ptrTo(false)
		}},
		{"an explicit false and 0 override too", MigrationPolicySpec{AllowAutoConverge: ptrTo(false), BandwidthPerMigration: q("0")},
			func(c *kubevirtv1.MigrationConfiguration) {
				c.AllowAutoConverge, c.BandwidthPerMigration = ptrTo(false), q("0")
			}},
		{"allowPostCopy alone leaves allowWorkloadDisruption as the cluster resolved it", MigrationPolicySpec{AllowPostCopy: ptrTo(true)},
			func(c *kubevirtv1.MigrationConfiguration) { c.AllowPostCopy = ptrTo(true) }},
		{"allowWorkloadDisruption alone", MigrationPolicySpec{AllowWorkloadDisruption: ptrTo(true)},
			func(c *kubevirtv1.MigrationConfiguration) { c.AllowWorkloadDisruption = ptrTo(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &MigrationPolicy{Spec: tc.spec}
			got := *cluster.DeepCopy()
			p.ApplyTo(&got)
			want := *cluster.DeepCopy()
			tc.want(&want)
			if !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("got %s, want %s", show(got), show(want))
			}
			for name, f := range map[string]bool{
				"allowAutoConverge": got.AllowAutoConverge == nil, "bandwidthPerMigration": got.BandwidthPerMigration == nil,
				"completionTimeoutPerGiB": got.CompletionTimeoutPerGiB == nil, "progressTimeout": got.ProgressTimeout == nil,
				"allowPostCopy": got.AllowPostCopy == nil, "allowWorkloadDisruption": got.AllowWorkloadDisruption == nil,
			} {
				if f {
					t.Errorf("%s unset after applying to an effective configuration", name)
				}
			}
		})
	}
}

// ApplyTo shares no memory with the policy, and does not write through
// the pointers config held before.
func TestApplyToCopies(t *testing.T) {
	bandwidth := resource.MustParse("1Gi")
	p := &MigrationPolicy{Spec: MigrationPolicySpec{
		BandwidthPerMigration: &bandwidth, AllowPostCopy: ptrTo(true), CompletionTimeoutPerGiB: ptrTo[int64](10),
	}}
	clusterPostCopy, clusterTimeout := false, int64(150)
	clusterBandwidth := resource.MustParse("0")
	config := kubevirtv1.MigrationConfiguration{AllowPostCopy: &clusterPostCopy, CompletionTimeoutPerGiB: &clusterTimeout, BandwidthPerMigration: &clusterBandwidth}
	p.ApplyTo(&config)
	if clusterPostCopy || clusterTimeout != 150 || !clusterBandwidth.IsZero() {
		t.Error("wrote through the configuration's old pointers")
	}
	*p.Spec.AllowPostCopy, *p.Spec.CompletionTimeoutPerGiB = false, 99
	p.Spec.BandwidthPerMigration.Set(5)
	if !*config.AllowPostCopy || *config.CompletionTimeoutPerGiB != 10 || config.BandwidthPerMigration.String() != "1Gi" {
		t.Errorf("the configuration follows the policy's later changes: %s", show(config))
	}
	(*MigrationPolicy)(nil).ApplyTo(&config)
	p.ApplyTo(nil)
}

// The JSON field names are upstream's.
func TestJSONNames(t *testing.T) {
	p := policy("p", LabelSelector{"a": "b"}, LabelSelector{"c": "d"})
	p.Spec.AllowAutoConverge, p.Spec.AllowPostCopy, p.Spec.AllowWorkloadDisruption = ptrTo(true), ptrTo(true), ptrTo(true)
	p.Spec.CompletionTimeoutPerGiB = ptrTo[int64](1)
	b := resource.MustParse("1Mi")
	p.Spec.BandwidthPerMigration = &b
	data, err := json.Marshal(p.Spec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"selectors":{"namespaceSelector":{"c":"d"},"virtualMachineInstanceSelector":{"a":"b"}},"allowAutoConverge":true,"bandwidthPerMigration":"1Mi","completionTimeoutPerGiB":1,"allowPostCopy":true,"allowWorkloadDisruption":true}`
	if string(data) != want {
		t.Errorf("%s\nwant %s", data, want)
	}
}

func show(c kubevirtv1.MigrationConfiguration) string {
	data, _ := json.Marshal(c)
	return string(data)
}
