package toolkit

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

// Forklift's controller metrics, by its names, types and labels: provider
// is the source provider's type, mode Cold, Warm or Live, target Local
// (the host provider) or Remote; plan is the Plan's UID.
var (
	mtvLabels                = []string{"provider", "mode", "target"}
	mtvMigrationsStatusTotal = prometheus.NewDesc("mtv_migrations_status_total", "VM Migrations sorted by status, provider, mode and target",
		append([]string{"status"}, mtvLabels...), nil)
	mtvPlansStatus = prometheus.NewDesc("mtv_plans_status", "VM migration Plans sorted by status, provider, mode and target",
		append([]string{"status"}, mtvLabels...), nil)
	mtvMigratedVMsTotal = prometheus.NewDesc("mtv_migrated_vms_total", "Individual VM migration outcomes sorted by status, provider, mode and target",
		append([]string{"status"}, mtvLabels...), nil)
	mtvPlannedVMsTotal      = prometheus.NewDesc("mtv_planned_vms_total", "Number of VMs listed in migration plan specs", mtvLabels, nil)
	mtvMigrationDuration    = prometheus.NewDesc("mtv_migration_duration_seconds", "Duration of VM migrations in seconds", append(mtvLabels, "plan"), nil)
	mtvMigrationTransferred = prometheus.NewDesc("mtv_migration_data_transferred_bytes", "Total data transferred during VM migrations in bytes", append(mtvLabels, "plan"), nil)
	mtvDescriptions         = []*prometheus.Desc{mtvMigrationsStatusTotal, mtvPlansStatus, mtvMigratedVMsTotal, mtvPlannedVMsTotal, mtvMigrationDuration, mtvMigrationTransferred}
)

// Collector reports the toolkit's Plans and Migrations as Forklift's
// controller does, read from reader (the manager's cache) at each scrape.
type Collector struct {
	Reader client.Reader
	Now    func() time.Time
}

// Describe sends the descriptors of the collector's metrics.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range mtvDescriptions {
		ch <- d
	}
}

// Collect sends the metrics; none when a read fails (a scrape then lacks
// them rather than shows zeros).
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var plans forkliftv1beta1.PlanList
	var migrations forkliftv1beta1.MigrationList
	var providers forkliftv1beta1.ProviderList
	for _, list := range []client.ObjectList{&plans, &migrations, &providers} {
		if err := c.Reader.List(ctx, list); err != nil {
			return
		}
	}
	for _, m := range ToolkitSamples(plans.Items, migrations.Items, providers.Items, c.Now()) {
		ch <- m
	}
}

// planLabels are the provider, mode and target of a Plan.
type planLabels [3]string

// ToolkitSamples is pure: the mtv_* metrics of the plans and migrations.
// A Migration counts by its outcome once it ended, and each of its VMs by
// theirs; a Plan's duration and bytes are those of its current or last
// execution.
func ToolkitSamples(plans []forkliftv1beta1.Plan, migrations []forkliftv1beta1.Migration, providers []forkliftv1beta1.Provider, now time.Time) []prometheus.Metric {
	labelsOf := map[string]planLabels{} // by namespace/name of the Plan
	plansByStatus := map[[4]string]int{}
	planned := map[planLabels]int{}
	var out []prometheus.Metric
	for i := range plans {
		plan := &plans[i]
		labels := labelsOfPlan(plan, providers)
		labelsOf[plan.Namespace+"/"+plan.Name] = labels
		plansByStatus[[4]string{PlanStatus(plan), labels[0], labels[1], labels[2]}]++
		planned[labels] += len(plan.Spec.VMs)
		execution := plan.Status.Migration
		if execution.Started != nil {
			out = append(out,
				prometheus.MustNewConstMetric(mtvMigrationDuration, prometheus.GaugeValue, elapsed(execution.Timed, now).Seconds(), labels[0], labels[1], labels[2], string(plan.UID)),
				prometheus.MustNewConstMetric(mtvMigrationTransferred, prometheus.GaugeValue, float64(transferredBytes(execution.VMs)), labels[0], labels[1], labels[2], string(plan.UID)))
		}
	}
	migrationsByStatus := map[[4]string]int{}
	vmsByStatus := map[[4]string]int{}
	for i := range migrations {
		m := &migrations[i]
		outcome := MigrationOutcome(m)
		if outcome == nil {
			continue
		}
		labels := labelsOf[m.Namespace+"/"+m.Spec.Plan.Name]
		migrationsByStatus[[4]string{outcome.Type, labels[0], labels[1], labels[2]}]++
		for _, vm := range m.Status.VMs {
			if vmOutcome := VMOutcome(vm); vmOutcome != "" {
				vmsByStatus[[4]string{vmOutcome, labels[0], labels[1], labels[2]}]++
			}
		}
	}
	for key, n := range plansByStatus {
		out = append(out, prometheus.MustNewConstMetric(mtvPlansStatus, prometheus.GaugeValue, float64(n), key[:]...))
	}
	for key, n := range migrationsByStatus {
		out = append(out, prometheus.MustNewConstMetric(mtvMigrationsStatusTotal, prometheus.CounterValue, float64(n), key[:]...))
	}
	for key, n := range vmsByStatus {
		out = append(out, prometheus.MustNewConstMetric(mtvMigratedVMsTotal, prometheus.CounterValue, float64(n), key[:]...))
	}
	for labels, n := range planned {
		out = append(out, prometheus.MustNewConstMetric(mtvPlannedVMsTotal, prometheus.CounterValue, float64(n), labels[:]...))
	}
	return out
}

func labelsOfPlan(plan *forkliftv1beta1.Plan, providers []forkliftv1beta1.Provider) planLabels {
	labels := planLabels{"unknown", modeOf(plan.Spec.Type), "Local"}
	for _, p := range providers {
		if p.Namespace == providerNamespace(plan.Spec.Provider.Source.Namespace, plan) && p.Name == plan.Spec.Provider.Source.Name && p.Spec.Type != nil {
			labels[0] = string(*p.Spec.Type)
		}
		if p.Namespace == providerNamespace(plan.Spec.Provider.Destination.Namespace, plan) && p.Name == plan.Spec.Provider.Destination.Name && p.Spec.URL != "" {
			labels[2] = "Remote"
		}
	}
	return labels
}

func providerNamespace(namespace string, plan *forkliftv1beta1.Plan) string {
	if namespace == "" {
		return plan.Namespace
	}
	return namespace
}

// modeOf is Forklift's mode label: Cold, Warm or Live.
func modeOf(t forkliftv1beta1.MigrationType) string {
	if t == "" {
		return "Cold"
	}
	return strings.ToUpper(string(t[:1])) + string(t[1:])
}

// PlanStatus is a Plan's status as Forklift's metrics label it: the first of Succeeded, Failed, Canceled,
// Executing that is True, else Blocked when a blocking condition holds,
// Ready, or Pending.
func PlanStatus(plan *forkliftv1beta1.Plan) string {
	for _, t := range []string{forkliftv1beta1.ConditionSucceeded, forkliftv1beta1.ConditionFailed, forkliftv1beta1.ConditionCanceled, forkliftv1beta1.ConditionExecuting, forkliftv1beta1.ConditionReady} {
		if c := forkliftv1beta1.FindCondition(plan.Status.Conditions, t); c != nil && c.Status == forkliftv1beta1.ConditionTrue {
			return t
		}
	}
	for _, c := range plan.Status.Conditions {
		if c.Status == forkliftv1beta1.ConditionTrue && (c.Category == forkliftv1beta1.CategoryCritical || c.Category == forkliftv1beta1.CategoryError) {
			return "Blocked"
		}
	}
	return "Pending"
}

func elapsed(timed forkliftv1beta1.Timed, now time.Time) time.Duration {
	end := now
	if timed.Completed != nil {
		end = timed.Completed.Time
	}
	return end.Sub(timed.Started.Time)
}

// transferredBytes sums the VMs' Migrate tasks' bytes.
func transferredBytes(vms []forkliftv1beta1.VMStatus) int64 {
	var total int64
	for _, vm := range vms {
		if migrate := FindVMTask(vm, TaskMigrate); migrate != nil {
			total += migrate.Progress.Completed
		}
	}
	return total
}
