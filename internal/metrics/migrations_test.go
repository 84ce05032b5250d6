package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

func TestMigrationSamples(t *testing.T) {
	started, ended := metav1.Unix(1000, 0), metav1.Unix(1060, 0)
	vmim := func(name string, phase kubevirtv1.VirtualMachineInstanceMigrationPhase) kubevirtv1.VirtualMachineInstanceMigration {
		m := kubevirtv1.VirtualMachineInstanceMigration{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
		m.Spec.VMIName, m.Status.Phase = "vm-"+name, phase
		return m
	}
	done := vmim("done", kubevirtv1.MigrationSucceeded)
	done.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{SourceNode: "n1", StartTimestamp: &started, EndTimestamp: &ended}
	migrations := []kubevirtv1.VirtualMachineInstanceMigration{
		vmim("new", kubevirtv1.MigrationPhaseUnset), vmim("queued", kubevirtv1.MigrationPending),
		vmim("placing", kubevirtv1.MigrationScheduling), vmim("moving", kubevirtv1.MigrationRunning),
		vmim("preparing", kubevirtv1.MigrationPreparingTarget), vmim("broken", kubevirtv1.MigrationFailed), done,
	}
	want := `
# HELP kubevirt_vmi_migration_end_time_seconds The time at which the migration ended.
# TYPE kubevirt_vmi_migration_end_time_seconds gauge
kubevirt_vmi_migration_end_time_seconds{migration_name="done",name="vm-done",namespace="ns",node="n1",status="succeeded"} 1060
# HELP kubevirt_vmi_migration_failed Indicates if the VMI migration failed.
# TYPE kubevirt_vmi_migration_failed gauge
kubevirt_vmi_migration_failed{namespace="ns",vmi="vm-broken",vmim="broken"} 1
# HELP kubevirt_vmi_migration_start_time_seconds The time at which the migration started.
# TYPE kubevirt_vmi_migration_start_time_seconds gauge
kubevirt_vmi_migration_start_time_seconds{migration_name="done",name="vm-done",namespace="ns",node="n1"} 1000
# HELP kubevirt_vmi_migration_succeeded Indicates if the VMI migration succeeded.
# TYPE kubevirt_vmi_migration_succeeded gauge
kubevirt_vmi_migration_succeeded{namespace="ns",vmi="vm-done",vmim="done"} 1
# HELP kubevirt_vmi_migrations_in_pending_phase Number of current pending migrations.
# TYPE kubevirt_vmi_migrations_in_pending_phase gauge
kubevirt_vmi_migrations_in_pending_phase 1
# HELP kubevirt_vmi_migrations_in_running_phase Number of current running migrations.
# TYPE kubevirt_vmi_migrations_in_running_phase gauge
kubevirt_vmi_migrations_in_running_phase 2
# HELP kubevirt_vmi_migrations_in_scheduling_phase Number of current scheduling migrations.
# TYPE kubevirt_vmi_migrations_in_scheduling_phase gauge
kubevirt_vmi_migrations_in_scheduling_phase 1
# HELP kubevirt_vmi_migrations_in_unset_phase Number of current unset migrations: not yet seen by the migration controller.
# TYPE kubevirt_vmi_migrations_in_unset_phase gauge
kubevirt_vmi_migrations_in_unset_phase 1
`
	if err := testutil.CollectAndCompare(Fixed(MigrationSamples(migrations)), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestTransferCollector(t *testing.T) {
	c := TransferCollector{Node: "n1", Transfers: func() []Transfer {
		return []Transfer{{Namespace: "ns", Name: "vm", TotalBytes: 100, ProcessedBytes: 60, RemainingBytes: 40, DirtyRate: 5, TransferRate: 2e6}}
	}}
	want := `
# HELP kubevirt_vmi_migration_data_processed_bytes The total Guest OS data processed and migrated to the new VM.
# TYPE kubevirt_vmi_migration_data_processed_bytes gauge
kubevirt_vmi_migration_data_processed_bytes{name="vm",namespace="ns",node="n1"} 60
# HELP kubevirt_vmi_migration_memory_transfer_rate_bytes The rate at which the memory is being transferred.
# TYPE kubevirt_vmi_migration_memory_transfer_rate_bytes gauge
kubevirt_vmi_migration_memory_transfer_rate_bytes{name="vm",namespace="ns",node="n1"} 2e+06
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kubevirt_vmi_migration_data_processed_bytes", "kubevirt_vmi_migration_memory_transfer_rate_bytes"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c); n != 5 {
		t.Errorf("%d series for one transfer, want 5", n)
	}
}

// A phase change observes the seconds from creation to the new phase's
// timestamp under the phase; an update without a phase change observes
// nothing.
func TestPhaseTransitions(t *testing.T) {
	created := metav1.Unix(1000, 0)
	vmim := func(phase kubevirtv1.VirtualMachineInstanceMigrationPhase) *kubevirtv1.VirtualMachineInstanceMigration {
		m := &kubevirtv1.VirtualMachineInstanceMigration{ObjectMeta: metav1.ObjectMeta{Name: "m", CreationTimestamp: created}}
		m.Status.Phase = phase
		m.Status.PhaseTransitionTimestamps = []kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp{
			{Phase: kubevirtv1.MigrationRunning, PhaseTransitionTimestamp: metav1.Unix(1002, 0)},
			{Phase: kubevirtv1.MigrationSucceeded, PhaseTransitionTimestamp: metav1.Unix(1007, 0)},
		}
		return m
	}
	p := NewPhaseTransitions()
	p.Observe(vmim(kubevirtv1.MigrationRunning), vmim(kubevirtv1.MigrationRunning))
	p.Observe(nil, vmim(kubevirtv1.MigrationRunning))
	p.Observe(vmim(kubevirtv1.MigrationRunning), vmim(kubevirtv1.MigrationSucceeded))
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(p.Collector())
	families, err := registry.Gather()
	if err != nil || len(families) != 1 || len(families[0].Metric) != 1 {
		t.Fatalf("gathered %v (%v), want one series (Succeeded)", families, err)
	}
	series := families[0].Metric[0]
	if label := series.Label[0]; label.GetName() != "phase" || label.GetValue() != "Succeeded" {
		t.Errorf("label %v", label)
	}
	if h := series.Histogram; h.GetSampleCount() != 1 || h.GetSampleSum() != 7 {
		t.Errorf("count %d, sum %v; want one observation of 7 s", h.GetSampleCount(), h.GetSampleSum())
	}
}
