// Package hco does what OpenShift's HyperConverged Cluster Operator does in
// the OpenShift guide: it writes the HyperConverged CR's live-migration
// settings and decentralizedLiveMigration feature gate into the KubeVirt CR
// of the same namespace, and reverts edits of those fields there. It runs
// inside the virt controller (`cclm controller`). How it differs from the
// operator: docs/design.md ("HyperConverged").
package hco

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	hcov1beta1 "github.com/cclm-io/cclm/api/hco/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// ManagedFieldsAnnotation on the KubeVirt CR lists, comma-separated, the
// fields the HyperConverged CR set at its last reconcile.
const ManagedFieldsAnnotation = "cclm.io/hyperconverged-managed-fields"

// The field names in ManagedFieldsAnnotation.
const (
	fieldNetwork                  = "migrations.network"
	fieldBandwidth                = "migrations.bandwidthPerMigration"
	fieldCompletionTimeout        = "migrations.completionTimeoutPerGiB"
	fieldProgressTimeout          = "migrations.progressTimeout"
	fieldParallelPerCluster       = "migrations.parallelMigrationsPerCluster"
	fieldParallelOutboundsPerNode = "migrations.parallelOutboundMigrationsPerNode"
	fieldAllowAutoConverge        = "migrations.allowAutoConverge"
	fieldAllowPostCopy            = "migrations.allowPostCopy"
	fieldDecentralizedGate        = "featureGates." + kubevirtv1.DecentralizedLiveMigrationGate
)

// migrationField maps one liveMigrationConfig field onto the KubeVirt CR's
// migrations.
type migrationField struct {
	name string
	// set reports whether the HyperConverged CR sets it.
	set func(*hcov1beta1.LiveMigrationConfigurations) bool
	// copy writes the HyperConverged value into migrations.
	copy func(*hcov1beta1.LiveMigrationConfigurations, *kubevirtv1.MigrationConfiguration) error
	// clear unsets it in migrations.
	clear func(*kubevirtv1.MigrationConfiguration)
}

// pointerField is a migrationField for a field that is a pointer of the
// same type on both sides.
func pointerField[T any](name string, from func(*hcov1beta1.LiveMigrationConfigurations) **T, to func(*kubevirtv1.MigrationConfiguration) **T) migrationField {
	return migrationField{
		name: name,
		set:  func(h *hcov1beta1.LiveMigrationConfigurations) bool { return *from(h) != nil },
		copy: func(h *hcov1beta1.LiveMigrationConfigurations, m *kubevirtv1.MigrationConfiguration) error {
			value := **from(h)
			*to(m) = &value
			return nil
		},
		clear: func(m *kubevirtv1.MigrationConfiguration) { *to(m) = nil },
	}
}

var migrationFields = []migrationField{
	{
		name: fieldNetwork,
		set:  func(h *hcov1beta1.LiveMigrationConfigurations) bool { return h.Network != nil },
		copy: func(h *hcov1beta1.LiveMigrationConfigurations, m *kubevirtv1.MigrationConfiguration) error {
			m.Network = *h.Network
			return nil
		},
		clear: func(m *kubevirtv1.MigrationConfiguration) { m.Network = "" },
	},
	{
		name: fieldBandwidth,
		set:  func(h *hcov1beta1.LiveMigrationConfigurations) bool { return h.BandwidthPerMigration != nil },
		copy: func(h *hcov1beta1.LiveMigrationConfigurations, m *kubevirtv1.MigrationConfiguration) error {
			q, err := resource.ParseQuantity(*h.BandwidthPerMigration)
			if err != nil || q.Sign() < 0 {
				return fmt.Errorf("spec.liveMigrationConfig.bandwidthPerMigration %q is not a quantity of bytes per second such as 64Mi", *h.BandwidthPerMigration)
			}
			if existing := m.BandwidthPerMigration; existing != nil && existing.Cmp(q) == 0 {
				return nil // the same value, perhaps written another way
			}
			m.BandwidthPerMigration = &q
			return nil
		},
		clear: func(m *kubevirtv1.MigrationConfiguration) { m.BandwidthPerMigration = nil },
	},
	pointerField(fieldCompletionTimeout,
		func(h *hcov1beta1.LiveMigrationConfigurations) **int64 { return &h.CompletionTimeoutPerGiB },
		func(m *kubevirtv1.MigrationConfiguration) **int64 { return &m.CompletionTimeoutPerGiB }),
	pointerField(fieldProgressTimeout,
		func(h *hcov1beta1.LiveMigrationConfigurations) **int64 { return &h.ProgressTimeout },
		func(m *kubevirtv1.MigrationConfiguration) **int64 { return &m.ProgressTimeout }),
	pointerField(fieldParallelPerCluster,
		func(h *hcov1beta1.LiveMigrationConfigurations) **uint32 { return &h.ParallelMigrationsPerCluster },
		func(m *kubevirtv1.MigrationConfiguration) **uint32 { return &m.ParallelMigrationsPerCluster }),
	pointerField(fieldParallelOutboundsPerNode,
		func(h *hcov1beta1.LiveMigrationConfigurations) **uint32 { return &h.ParallelOutboundMigrationsPerNode },
		func(m *kubevirtv1.MigrationConfiguration) **uint32 { return &m.ParallelOutboundMigrationsPerNode }),
	pointerField(fieldAllowAutoConverge,
		func(h *hcov1beta1.LiveMigrationConfigurations) **bool { return &h.AllowAutoConverge },
		func(m *kubevirtv1.MigrationConfiguration) **bool { return &m.AllowAutoConverge }),
	pointerField(fieldAllowPostCopy,
		func(h *hcov1beta1.LiveMigrationConfigurations) **bool { return &h.AllowPostCopy },
		func(m *kubevirtv1.MigrationConfiguration) **bool { return &m.AllowPostCopy }),
}

// Desired is the KubeVirt configuration the HyperConverged spec asks for:
// current with every field the spec sets overwritten, every field it set
// before (previouslyManaged) but no longer does cleared, and everything
// else as it is. It returns the fields it now manages, sorted. current is
// not modified.
func Desired(spec hcov1beta1.HyperConvergedSpec, current kubevirtv1.KubeVirtConfiguration, previouslyManaged []string) (kubevirtv1.KubeVirtConfiguration, []string, error) {
	out := *current.DeepCopy()
	var managed []string
	migrations := &kubevirtv1.MigrationConfiguration{}
	if out.MigrationConfiguration != nil {
		migrations = out.MigrationConfiguration
	}
	hco := &spec.LiveMigrationConfig
	for _, f := range migrationFields {
		switch {
		case f.set(hco):
			if err := f.copy(hco, migrations); err != nil {
				return current, nil, err
			}
			managed = append(managed, f.name)
		case slices.Contains(previouslyManaged, f.name):
			f.clear(migrations)
		}
	}
	out.MigrationConfiguration = migrations
	if *migrations == (kubevirtv1.MigrationConfiguration{}) {
		out.MigrationConfiguration = nil
	}

	gate := spec.FeatureGates.DecentralizedLiveMigration
	switch {
	case gate != nil:
		setGate(&out, kubevirtv1.DecentralizedLiveMigrationGate, *gate)
		managed = append(managed, fieldDecentralizedGate)
	case slices.Contains(previouslyManaged, fieldDecentralizedGate):
		setGate(&out, kubevirtv1.DecentralizedLiveMigrationGate, false)
	}
	slices.Sort(managed)
	return out, managed, nil
}

// setGate lists the gate (once, in any letter case) or removes it.
func setGate(config *kubevirtv1.KubeVirtConfiguration, gate string, on bool) {
	dev := config.DeveloperConfiguration
	if dev == nil {
		dev = &kubevirtv1.DeveloperConfiguration{}
	}
	listed := slices.ContainsFunc(dev.FeatureGates, func(g string) bool { return strings.EqualFold(g, gate) })
	switch {
	case on && !listed:
		dev.FeatureGates = append(dev.FeatureGates, gate)
	case !on:
		dev.FeatureGates = slices.DeleteFunc(dev.FeatureGates, func(g string) bool { return strings.EqualFold(g, gate) })
		if len(dev.FeatureGates) == 0 {
			dev.FeatureGates = nil
		}
	}
	config.DeveloperConfiguration = dev
	if len(dev.FeatureGates) == 0 {
		config.DeveloperConfiguration = nil
	}
}

// parseManaged reads ManagedFieldsAnnotation.
func parseManaged(value string) []string {
	var out []string
	for _, f := range strings.Split(value, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
