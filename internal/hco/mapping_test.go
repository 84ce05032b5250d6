package hco

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	hcov1beta1 "github.com/cclm-io/cclm/api/hco/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

func ptr[T any](v T) *T { return &v }

func quantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

// seedSpec is the seed's "Instantiate with following changes".
func seedSpec() hcov1beta1.HyperConvergedSpec {
	return hcov1beta1.HyperConvergedSpec{
		LiveMigrationConfig: hcov1beta1.LiveMigrationConfigurations{Network: ptr("livemigration-network")},
		FeatureGates:        hcov1beta1.HyperConvergedFeatureGates{DecentralizedLiveMigration: ptr(true)},
	}
}

func TestDesired(t *testing.T) {
	gates := func(g ...string) *kubevirtv1.DeveloperConfiguration {
		return &kubevirtv1.DeveloperConfiguration{FeatureGates: g}
	}
	cases := []struct {
		name        string
		spec        hcov1beta1.HyperConvergedSpec
		current     kubevirtv1.KubeVirtConfiguration
		previous    []string
		want        kubevirtv1.KubeVirtConfiguration
		wantManaged []string
	}{
		{
			name: "nothing set, nothing managed: the KubeVirt CR is left alone",
			current: kubevirtv1.KubeVirtConfiguration{CPUModel: "Haswell-v4", DeveloperConfiguration: gates("Snapshot"),
				MigrationConfiguration: &kubevirtv1.MigrationConfiguration{ProgressTimeout: ptr(int64(15))}},
			want: kubevirtv1.KubeVirtConfiguration{CPUModel: "Haswell-v4", DeveloperConfiguration: gates("Snapshot"),
				MigrationConfiguration: &kubevirtv1.MigrationConfiguration{ProgressTimeout: ptr(int64(15))}},
		},
		{
			name:        "the seed's settings on an empty KubeVirt CR",
			spec:        seedSpec(),
			want:        kubevirtv1.KubeVirtConfiguration{DeveloperConfiguration: gates("DecentralizedLiveMigration"), MigrationConfiguration: &kubevirtv1.MigrationConfiguration{Network: "livemigration-network"}},
			wantManaged: []string{fieldDecentralizedGate, fieldNetwork},
		},
		{
			name: "the seed's settings keep the KubeVirt CR's own gates and tunables",
			spec: seedSpec(),
			current: kubevirtv1.KubeVirtConfiguration{CPUModel: "host-model", DeveloperConfiguration: gates("Snapshot", "decentralizedlivemigration"),
				MigrationConfiguration: &kubevirtv1.MigrationConfiguration{Network: "edited-by-hand", BandwidthPerMigration: quantity("8Mi"), AllowWorkloadDisruption: ptr(true)}},
			want: kubevirtv1.KubeVirtConfiguration{CPUModel: "host-model", DeveloperConfiguration: gates("Snapshot", "decentralizedlivemigration"),
				MigrationConfiguration: &kubevirtv1.MigrationConfiguration{Network: "livemigration-network", BandwidthPerMigration: quantity("8Mi"), AllowWorkloadDisruption: ptr(true)}},
			wantManaged: []string{fieldDecentralizedGate, fieldNetwork},
		},
		{
			name: "every tunable",
			spec: hcov1beta1.HyperConvergedSpec{LiveMigrationConfig: hcov1beta1.LiveMigrationConfigurations{
				Network: ptr("n"), BandwidthPerMigration: ptr("64Mi"), CompletionTimeoutPerGiB: ptr(int64(800)), ProgressTimeout: ptr(int64(300)),
				ParallelMigrationsPerCluster: ptr(uint32(3)), ParallelOutboundMigrationsPerNode: ptr(uint32(1)), AllowAutoConverge: ptr(true), AllowPostCopy: ptr(false),
			}},
			current: kubevirtv1.KubeVirtConfiguration{MigrationConfiguration: &kubevirtv1.MigrationConfiguration{BandwidthPerMigration: quantity("8Mi"), ProgressTimeout: ptr(int64(15))}},
			want: kubevirtv1.KubeVirtConfiguration{MigrationConfiguration: &kubevirtv1.MigrationConfiguration{
				Network: "n", BandwidthPerMigration: quantity("64Mi"), CompletionTimeoutPerGiB: ptr(int64(800)), ProgressTimeout: ptr(int64(300)),
				ParallelMigrationsPerCluster: ptr(uint32(3)), ParallelOutboundMigrationsPerNode: ptr(uint32(1)), AllowAutoConverge: ptr(true), AllowPostCopy: ptr(false),
			}},
			wantManaged: []string{fieldAllowAutoConverge, fieldAllowPostCopy, fieldBandwidth, fieldCompletionTimeout, fieldNetwork,
				fieldParallelPerCluster, fieldParallelOutboundsPerNode, fieldProgressTimeout},
		},
		{
			name:        "a bandwidth written another way is the same",
			spec:        hcov1beta1.HyperConvergedSpec{LiveMigrationConfig: hcov1beta1.LiveMigrationConfigurations{BandwidthPerMigration: ptr("1Gi")}},
			current:     kubevirtv1.KubeVirtConfiguration{MigrationConfiguration: &kubevirtv1.MigrationConfiguration{BandwidthPerMigration: quantity("1024Mi")}},
			want:        kubevirtv1.KubeVirtConfiguration{MigrationConfiguration: &kubevirtv1.MigrationConfiguration{BandwidthPerMigration: quantity("1024Mi")}},
			wantManaged: []string{fieldBandwidth},
		},
		{
			name:        "the gate switched off removes it in any letter case",
			spec:        hcov1beta1.HyperConvergedSpec{FeatureGates: hcov1beta1.HyperConvergedFeatureGates{DecentralizedLiveMigration: ptr(false)}},
			current:     kubevirtv1.KubeVirtConfiguration{DeveloperConfiguration: gates("decentralizedLiveMigration", "Snapshot")},
			want:        kubevirtv1.KubeVirtConfiguration{DeveloperConfiguration: gates("Snapshot")},
			wantManaged: []string{fieldDecentralizedGate},
		},
		{
			name:        "fields no longer set are cleared, those never managed kept",
			spec:        hcov1beta1.HyperConvergedSpec{LiveMigrationConfig: hcov1beta1.LiveMigrationConfigurations{ProgressTimeout: ptr(int64(60))}},
			current:     kubevirtv1.KubeVirtConfiguration{DeveloperConfiguration: gates("DecentralizedLiveMigration"), MigrationConfiguration: &kubevirtv1.MigrationConfiguration{Network: "livemigration-network", AllowPostCopy: ptr(true)}},
			previous:    []string{fieldDecentralizedGate, fieldNetwork},
			want:        kubevirtv1.KubeVirtConfiguration{MigrationConfiguration: &kubevirtv1.MigrationConfiguration{ProgressTimeout: ptr(int64(60)), AllowPostCopy: ptr(true)}},
			wantManaged: []string{fieldProgressTimeout},
		},
		{
			name:     "all cleared leaves no empty sections",
			current:  kubevirtv1.KubeVirtConfiguration{DeveloperConfiguration: gates("DecentralizedLiveMigration"), MigrationConfiguration: &kubevirtv1.MigrationConfiguration{Network: "n"}},
			previous: []string{fieldDecentralizedGate, fieldNetwork},
			want:     kubevirtv1.KubeVirtConfiguration{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.current.DeepCopy()
			got, managed, err := Desired(tc.spec, tc.current, tc.previous)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("configuration\n got %+v\nwant %+v", describe(got), describe(tc.want))
			}
			if !slices.Equal(managed, tc.wantManaged) {
				t.Errorf("managed %v, want %v", managed, tc.wantManaged)
			}
			if !equality.Semantic.DeepEqual(*before, tc.current) {
				t.Error("Desired modified its input")
			}
			// Applying the result again changes nothing.
			again, _, err := Desired(tc.spec, got, managed)
			if err != nil || !equality.Semantic.DeepEqual(again, got) {
				t.Errorf("not idempotent: %+v", describe(again))
			}
		})
	}
}

func TestDesiredRefusesABadBandwidth(t *testing.T) {
	spec := hcov1beta1.HyperConvergedSpec{LiveMigrationConfig: hcov1beta1.LiveMigrationConfigurations{BandwidthPerMigration: ptr("fast")}}
	if _, _, err := Desired(spec, kubevirtv1.KubeVirtConfiguration{}, nil); err == nil {
		t.Fatal("bandwidthPerMigration \"fast\" accepted")
	}
}

func TestParseManaged(t *testing.T) {
	if got := parseManaged(" migrations.network, ,featureGates.DecentralizedLiveMigration"); !slices.Equal(got, []string{fieldNetwork, fieldDecentralizedGate}) {
		t.Fatal(got)
	}
	if parseManaged("") != nil {
		t.Fatal("empty annotation")
	}
}

func describe(c kubevirtv1.KubeVirtConfiguration) any {
	type view struct {
		CPUModel   string
		Gates      []string
		Migrations *kubevirtv1.MigrationConfiguration
	}
	v := view{CPUModel: c.CPUModel, Migrations: c.MigrationConfiguration}
	if c.DeveloperConfiguration != nil {
		v.Gates = c.DeveloperConfiguration.FeatureGates
	}
	return v
}
