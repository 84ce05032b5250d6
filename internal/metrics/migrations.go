package metrics

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Upstream KubeVirt's migration metrics of virt-controller, by its names,
// types and labels.
var (
	migrationsInPhase = map[string]*prometheus.Desc{
		"unset":      prometheus.NewDesc("kubevirt_vmi_migrations_in_unset_phase", "Number of current unset migrations: not yet seen by the migration controller.", nil, nil),
		"pending":    prometheus.NewDesc("kubevirt_vmi_migrations_in_pending_phase", "Number of current pending migrations.", nil, nil),
		"scheduling": prometheus.NewDesc("kubevirt_vmi_migrations_in_scheduling_phase", "Number of current scheduling migrations.", nil, nil),
		"running":    prometheus.NewDesc("kubevirt_vmi_migrations_in_running_phase", "Number of current running migrations.", nil, nil),
	}
	migrationSucceeded = prometheus.NewDesc("kubevirt_vmi_migration_succeeded", "Indicates if the VMI migration succeeded.", []string{"vmi", "vmim", "namespace"}, nil)
	migrationFailed    = prometheus.NewDesc("kubevirt_vmi_migration_failed", "Indicates if the VMI migration failed.", []string{"vmi", "vmim", "namespace"}, nil)
	migrationStartTime = prometheus.NewDesc("kubevirt_vmi_migration_start_time_seconds", "The time at which the migration started.", []string{"node", "namespace", "name", "migration_name"}, nil)
	migrationEndTime   = prometheus.NewDesc("kubevirt_vmi_migration_end_time_seconds", "The time at which the migration ended.", []string{"node", "namespace", "name", "migration_name", "status"}, nil)
)

// MigrationCollector reports the migration controller's view of the
// VMIMs, read from reader (the controller's cache) at each scrape.
type MigrationCollector struct {
	Reader client.Reader
}

// Describe sends the descriptors of the collector's metrics.
func (c MigrationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range migrationsInPhase {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{migrationSucceeded, migrationFailed, migrationStartTime, migrationEndTime} {
		ch <- d
	}
}

// Collect reads the VMIMs and sends their metrics; none when the read
// fails (a scrape then lacks them rather than shows zeros).
func (c MigrationCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list kubevirtv1.VirtualMachineInstanceMigrationList
	if err := c.Reader.List(ctx, &list); err != nil {
		return
	}
	for _, m := range MigrationSamples(list.Items) {
		ch <- m
	}
}

// MigrationSamples is pure: the metrics of migrations, as upstream's
// virt-controller reports them.
func MigrationSamples(migrations []kubevirtv1.VirtualMachineInstanceMigration) []prometheus.Metric {
	counts := map[string]int{"unset": 0, "pending": 0, "scheduling": 0, "running": 0}
	var out []prometheus.Metric
	for i := range migrations {
		m := &migrations[i]
		switch phase := m.Status.Phase; {
		case phase == kubevirtv1.MigrationPhaseUnset:
			counts["unset"]++
		case phase == kubevirtv1.MigrationPending:
			counts["pending"]++
		case phase == kubevirtv1.MigrationScheduling:
			counts["scheduling"]++
		case phase == kubevirtv1.MigrationSucceeded:
			out = append(out, prometheus.MustNewConstMetric(migrationSucceeded, prometheus.GaugeValue, 1, m.Spec.VMIName, m.Name, m.Namespace))
		case phase == kubevirtv1.MigrationFailed:
			out = append(out, prometheus.MustNewConstMetric(migrationFailed, prometheus.GaugeValue, 1, m.Spec.VMIName, m.Name, m.Namespace))
		default:
			counts["running"]++
		}
		out = append(out, timeSamples(m)...)
	}
	for phase, n := range counts {
		out = append(out, prometheus.MustNewConstMetric(migrationsInPhase[phase], prometheus.GaugeValue, float64(n)))
	}
	return out
}

// timeSamples are a migration's start and end times, as its state says.
func timeSamples(m *kubevirtv1.VirtualMachineInstanceMigration) []prometheus.Metric {
	state := m.Status.MigrationState
	if state == nil || state.StartTimestamp == nil {
		return nil
	}
	out := []prometheus.Metric{prometheus.MustNewConstMetric(migrationStartTime, prometheus.GaugeValue,
		float64(state.StartTimestamp.Unix()), state.SourceNode, m.Namespace, m.Spec.VMIName, m.Name)}
	if state.EndTimestamp != nil && m.IsFinal() {
		out = append(out, prometheus.MustNewConstMetric(migrationEndTime, prometheus.GaugeValue,
			float64(state.EndTimestamp.Unix()), state.SourceNode, m.Namespace, m.Spec.VMIName, m.Name, strings.ToLower(string(m.Status.Phase))))
	}
	return out
}

// PhaseTransitions is upstream's histogram of how long after its creation
// a migration entered each phase.
type PhaseTransitions struct {
	histogram *prometheus.HistogramVec
}

// NewPhaseTransitions makes the histogram, with upstream's name, label and
// buckets (half a second to an hour).
func NewPhaseTransitions() *PhaseTransitions {
	return &PhaseTransitions{histogram: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kubevirt_vmi_migration_phase_transition_time_from_creation_seconds",
		Help:    "Histogram of VM migration phase transitions duration from creation time in seconds.",
		Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 90, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600},
	}, []string{"phase"})}
}

// Collector is what to register.
func (p *PhaseTransitions) Collector() prometheus.Collector { return p.histogram }

// Observe records the new phase of a migration that changed phase (an
// informer's update), as seconds since its creation to the phase's
// transition timestamp; nothing when the phase is unchanged or has no
// timestamp.
func (p *PhaseTransitions) Observe(old, updated *kubevirtv1.VirtualMachineInstanceMigration) {
	if old == nil || old.Status.Phase == updated.Status.Phase {
		return
	}
	for _, t := range updated.Status.PhaseTransitionTimestamps {
		if t.Phase == updated.Status.Phase {
			seconds := t.PhaseTransitionTimestamp.Sub(updated.CreationTimestamp.Time).Seconds()
			p.histogram.WithLabelValues(string(updated.Status.Phase)).Observe(max(seconds, 0))
			return
		}
	}
}
