package v1alpha1

import (
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// MatchPolicy returns the policy, of policies, that applies to a VMI with
// labels vmiLabels in a Namespace with labels namespaceLabels, or nil if
// none matches. It is upstream's matching: a policy matches when every
// label of its virtualMachineInstanceSelector is on the VMI and every label
// of its namespaceSelector on the Namespace, each with the value given (an
// empty or absent selector matches every VMI); of the matching policies the
// one with the most selector labels (both selectors together) wins, a tie
// going to the alphabetically first name.
//
// The result points into policies; nil label maps are empty.
func MatchPolicy(policies []MigrationPolicy, vmiLabels, namespaceLabels map[string]string) *MigrationPolicy {
	var best *MigrationPolicy
	bestLabels := -1
	for i := range policies {
		p := &policies[i]
		n, ok := p.matchingLabels(vmiLabels, namespaceLabels)
		if !ok {
			continue
		}
		if n > bestLabels || n == bestLabels && p.Name < best.Name {
			best, bestLabels = p, n
		}
	}
	return best
}

// matchingLabels reports whether p matches and, if so, how many selector
// labels it matched on.
func (p *MigrationPolicy) matchingLabels(vmiLabels, namespaceLabels map[string]string) (int, bool) {
	s := p.Spec.Selectors
	if s == nil {
		return 0, true
	}
	if !subsetOf(s.VirtualMachineInstanceSelector, vmiLabels) || !subsetOf(s.NamespaceSelector, namespaceLabels) {
		return 0, false
	}
	return len(s.VirtualMachineInstanceSelector) + len(s.NamespaceSelector), true
}

// subsetOf: every label of selector is in labels with the same value.
func subsetOf(selector LabelSelector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ApplyTo overrides config with the fields p's spec sets; the fields it
// leaves unset keep config's values. Applied to an effective configuration
// (kubevirtv1.KubeVirt.EffectiveMigrationConfiguration: every field set),
// the result has every field set too.
//
// allowWorkloadDisruption left unset keeps config's value even when the
// policy sets allowPostCopy, as upstream: the "follows allowPostCopy"
// default belongs to the cluster-wide configuration and was resolved there
// already. A policy that wants both says so in both fields.
//
// The fields written are fresh copies: config shares no memory with p
// afterwards, and what config pointed to before is not written through.
// A nil p or config is a no-op.
func (p *MigrationPolicy) ApplyTo(config *kubevirtv1.MigrationConfiguration) {
	if p == nil || config == nil {
		return
	}
	spec := &p.Spec
	if spec.AllowAutoConverge != nil {
		config.AllowAutoConverge = ptrTo(*spec.AllowAutoConverge)
	}
	if spec.BandwidthPerMigration != nil {
		q := spec.BandwidthPerMigration.DeepCopy()
		config.BandwidthPerMigration = &q
	}
	if spec.CompletionTimeoutPerGiB != nil {
		config.CompletionTimeoutPerGiB = ptrTo(*spec.CompletionTimeoutPerGiB)
	}
	if spec.AllowPostCopy != nil {
		config.AllowPostCopy = ptrTo(*spec.AllowPostCopy)
	}
	if spec.AllowWorkloadDisruption != nil {
		config.AllowWorkloadDisruption = ptrTo(*spec.AllowWorkloadDisruption)
	}
}

func ptrTo[T any](v T) *T { return &v }
