package v1

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestIsFeatureGateEnabled(t *testing.T) {
	kv := &KubeVirt{Spec: KubeVirtSpec{Configuration: KubeVirtConfiguration{
		DeveloperConfiguration: &DeveloperConfiguration{FeatureGates: []string{"Snapshot", "decentralizedlivemigration"}},
	}}}
	if !kv.IsFeatureGateEnabled(DecentralizedLiveMigrationGate) {
		t.Error("gate listed in another letter case not found")
	}
	if kv.IsFeatureGateEnabled("HotplugVolumes") {
		t.Error("unlisted gate reported enabled")
	}
	var nilKV *KubeVirt
	if nilKV.IsFeatureGateEnabled(DecentralizedLiveMigrationGate) || (&KubeVirt{}).IsFeatureGateEnabled(DecentralizedLiveMigrationGate) {
		t.Error("gate enabled without configuration")
	}
}

func TestEffectiveMigrationConfigurationDefaults(t *testing.T) {
	var nilKV *KubeVirt
	for _, kv := range []*KubeVirt{nilKV, {}} {
		c := kv.EffectiveMigrationConfiguration()
		if !c.BandwidthPerMigration.IsZero() {
			t.Errorf("bandwidth %v, want 0 (unlimited)", c.BandwidthPerMigration)
		}
		if *c.CompletionTimeoutPerGiB != 150 || *c.ProgressTimeout != 150 {
			t.Errorf("timeouts %d/%d, want 150/150", *c.CompletionTimeoutPerGiB, *c.ProgressTimeout)
		}
		if *c.ParallelMigrationsPerCluster != 5 || *c.ParallelOutboundMigrationsPerNode != 2 {
			t.Errorf("parallelism %d/%d, want 5/2", *c.ParallelMigrationsPerCluster, *c.ParallelOutboundMigrationsPerNode)
		}
		if *c.AllowAutoConverge || *c.AllowPostCopy || *c.AllowWorkloadDisruption {
			t.Error("autoConverge/postCopy/workloadDisruption default to false")
		}
		if c.Network != "" {
			t.Errorf("network %q, want pod network", c.Network)
		}
	}
}

func TestEffectiveMigrationConfigurationOverrides(t *testing.T) {
	bw := resource.MustParse("64Mi")
	in := &MigrationConfiguration{
		Network:               "livemigration-network",
		BandwidthPerMigration: &bw,
		ProgressTimeout:       ptr(int64(30)),
		AllowPostCopy:         ptr(true),
	}
	kv := &KubeVirt{Spec: KubeVirtSpec{Configuration: KubeVirtConfiguration{MigrationConfiguration: in}}}
	c := kv.EffectiveMigrationConfiguration()
	if c.Network != "livemigration-network" || c.BandwidthPerMigration.Cmp(bw) != 0 || *c.ProgressTimeout != 30 {
		t.Errorf("explicit values not kept: %+v", c)
	}
	if !*c.AllowWorkloadDisruption {
		t.Error("allowWorkloadDisruption must follow allowPostCopy when unset")
	}
	*c.ProgressTimeout = 1
	if *in.ProgressTimeout != 30 {
		t.Error("result aliases the KubeVirt object")
	}
	in.AllowWorkloadDisruption = ptr(false)
	if *kv.EffectiveMigrationConfiguration().AllowWorkloadDisruption {
		t.Error("explicit allowWorkloadDisruption=false overridden")
	}
}

func TestEffectiveSynchronizationPort(t *testing.T) {
	for _, tc := range []struct {
		port *intstr.IntOrString
		want int32
	}{
		{nil, 9185},
		{ptr(intstr.FromString("9186")), 9186},
		{ptr(intstr.FromInt32(9187)), 9187},
		{ptr(intstr.FromString("bogus")), 9185},
		{ptr(intstr.FromInt32(70000)), 9185},
	} {
		kv := &KubeVirt{Spec: KubeVirtSpec{SynchronizationPort: tc.port}}
		if got := kv.EffectiveSynchronizationPort(); got != tc.want {
			t.Errorf("%v: got %d, want %d", tc.port, got, tc.want)
		}
	}
	var nilKV *KubeVirt
	if nilKV.EffectiveSynchronizationPort() != DefaultSynchronizationPort {
		t.Error("nil KubeVirt")
	}
}

func TestEffectiveRunStrategy(t *testing.T) {
	for _, tc := range []struct {
		running  *bool
		strategy *VirtualMachineRunStrategy
		want     VirtualMachineRunStrategy
	}{
		{nil, nil, RunStrategyHalted},
		{ptr(true), nil, RunStrategyAlways},
		{ptr(false), nil, RunStrategyHalted},
		{nil, ptr(RunStrategyWaitAsReceiver), RunStrategyWaitAsReceiver},
	} {
		vm := &VirtualMachine{Spec: VirtualMachineSpec{Running: tc.running, RunStrategy: tc.strategy}}
		if got := vm.EffectiveRunStrategy(); got != tc.want {
			t.Errorf("running=%v strategy=%v: got %s, want %s", tc.running, tc.strategy, got, tc.want)
		}
	}
}

func TestIsDecentralized(t *testing.T) {
	send := &VirtualMachineInstanceMigrationSource{MigrationID: "id", ConnectURL: "10.0.0.1:9185"}
	recv := &VirtualMachineInstanceMigrationTarget{MigrationID: "id"}
	for _, tc := range []struct {
		spec                VirtualMachineInstanceMigrationSpec
		dec, source, target bool
	}{
		{VirtualMachineInstanceMigrationSpec{VMIName: "a"}, false, false, false},
		{VirtualMachineInstanceMigrationSpec{VMIName: "a", SendTo: send}, true, true, false},
		{VirtualMachineInstanceMigrationSpec{VMIName: "a", Receive: recv}, true, false, true},
		{VirtualMachineInstanceMigrationSpec{VMIName: "a", SendTo: send, Receive: recv}, false, false, false},
	} {
		m := &VirtualMachineInstanceMigration{Spec: tc.spec}
		if m.IsDecentralized() != tc.dec || m.IsDecentralizedSource() != tc.source || m.IsDecentralizedTarget() != tc.target {
			t.Errorf("%+v: got %v/%v/%v", tc.spec, m.IsDecentralized(), m.IsDecentralizedSource(), m.IsDecentralizedTarget())
		}
	}
}
