package toolkit

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/metrics"
)

// Forklift's metrics of two live Plans from an openshift provider: one
// executing (its VM 48 MiB into Migrate, 30 s in), one blocked; an ended
// Migration counts by its outcome and its VMs by theirs.
func TestToolkitSamples(t *testing.T) {
	now := time.Unix(1000, 0)
	started := metav1.NewTime(now.Add(-30 * time.Second))
	providers := []forkliftv1beta1.Provider{
		{ObjectMeta: metav1.ObjectMeta{Name: "ocp7", Namespace: "mtv"}, Spec: forkliftv1beta1.ProviderSpec{Type: ptr.To(forkliftv1beta1.ProviderType("openshift")), URL: "https://ocp7:6443"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "host", Namespace: "mtv"}, Spec: forkliftv1beta1.ProviderSpec{Type: ptr.To(forkliftv1beta1.ProviderType("openshift"))}},
	}
	plan := func(name string, conditions ...forkliftv1beta1.Condition) forkliftv1beta1.Plan {
		return forkliftv1beta1.Plan{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "mtv", UID: types.UID("uid-" + name)},
			Spec: forkliftv1beta1.PlanSpec{Type: forkliftv1beta1.MigrationLive, VMs: make([]forkliftv1beta1.PlanVM, 2),
				Provider: forkliftv1beta1.ProviderPair{Source: corev1.ObjectReference{Name: "ocp7"}, Destination: corev1.ObjectReference{Name: "host"}}},
			Status: forkliftv1beta1.PlanStatus{Conditions: conditions},
		}
	}
	running := plan("running", forkliftv1beta1.Condition{Type: forkliftv1beta1.ConditionExecuting, Status: forkliftv1beta1.ConditionTrue})
	moving := forkliftv1beta1.VMStatus{Pipeline: []forkliftv1beta1.Step{{Task: forkliftv1beta1.Task{Name: TaskMigrate, Progress: forkliftv1beta1.Progress{Completed: 48 << 20, Total: 128 << 20}}}}}
	running.Status.Migration = forkliftv1beta1.PlanMigrationStatus{Timed: forkliftv1beta1.Timed{Started: &started}, VMs: []forkliftv1beta1.VMStatus{moving}}
	blocked := plan("blocked", forkliftv1beta1.Condition{Type: "VMNotFound", Status: forkliftv1beta1.ConditionTrue, Category: forkliftv1beta1.CategoryCritical})
	ended := forkliftv1beta1.Timed{Started: &started, Completed: &started}
	succeededVM := forkliftv1beta1.VMStatus{Timed: ended, Phase: VMPhaseCompleted, Conditions: []forkliftv1beta1.Condition{{Type: VMSucceeded, Status: forkliftv1beta1.ConditionTrue}}}
	canceledVM := forkliftv1beta1.VMStatus{Timed: ended, Phase: VMPhaseCompleted, Conditions: []forkliftv1beta1.Condition{{Type: VMCanceled, Status: forkliftv1beta1.ConditionTrue}}}
	migrations := []forkliftv1beta1.Migration{
		{ObjectMeta: metav1.ObjectMeta{Name: "done", Namespace: "mtv"}, Spec: forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: "running"}},
			Status: forkliftv1beta1.MigrationStatus{Conditions: []forkliftv1beta1.Condition{{Type: forkliftv1beta1.ConditionCanceled, Status: forkliftv1beta1.ConditionTrue}},
				VMs: []forkliftv1beta1.VMStatus{succeededVM, canceledVM}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ongoing", Namespace: "mtv"}, Spec: forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: "running"}}},
	}
	want := `
# HELP mtv_migrated_vms_total Individual VM migration outcomes sorted by status, provider, mode and target
# TYPE mtv_migrated_vms_total counter
mtv_migrated_vms_total{mode="Live",provider="openshift",status="Canceled",target="Local"} 1
mtv_migrated_vms_total{mode="Live",provider="openshift",status="Succeeded",target="Local"} 1
# HELP mtv_migration_data_transferred_bytes Total data transferred during VM migrations in bytes
# TYPE mtv_migration_data_transferred_bytes gauge
mtv_migration_data_transferred_bytes{mode="Live",plan="uid-running",provider="openshift",target="Local"} 5.0331648e+07
# HELP mtv_migration_duration_seconds Duration of VM migrations in seconds
# TYPE mtv_migration_duration_seconds gauge
mtv_migration_duration_seconds{mode="Live",plan="uid-running",provider="openshift",target="Local"} 30
# HELP mtv_migrations_status_total VM Migrations sorted by status, provider, mode and target
# TYPE mtv_migrations_status_total counter
mtv_migrations_status_total{mode="Live",provider="openshift",status="Canceled",target="Local"} 1
# HELP mtv_planned_vms_total Number of VMs listed in migration plan specs
# TYPE mtv_planned_vms_total counter
mtv_planned_vms_total{mode="Live",provider="openshift",target="Local"} 4
# HELP mtv_plans_status VM migration Plans sorted by status, provider, mode and target
# TYPE mtv_plans_status gauge
mtv_plans_status{mode="Live",provider="openshift",status="Blocked",target="Local"} 1
mtv_plans_status{mode="Live",provider="openshift",status="Executing",target="Local"} 1
`
	got := metrics.Fixed(ToolkitSamples([]forkliftv1beta1.Plan{running, blocked}, migrations, providers, now))
	if err := testutil.CollectAndCompare(got, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
