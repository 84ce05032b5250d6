package scheduling

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// The node-affinity semantics of Kubernetes (what the PV's
// spec.nodeAffinity means), written out here rather than importing
// k8s.io/component-helpers for one function.

// nodeSelectorMatches: the terms are ORed; an empty term matches nothing.
func nodeSelectorMatches(selector *corev1.NodeSelector, node *corev1.Node) bool {
	for _, term := range selector.NodeSelectorTerms {
		if nodeSelectorTermMatches(term, node) {
			return true
		}
	}
	return false
}

// nodeSelectorTermMatches: the requirements of a term are ANDed.
func nodeSelectorTermMatches(term corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	for _, req := range term.MatchExpressions {
		value, present := node.Labels[req.Key]
		if !requirementMatches(req, value, present) {
			return false
		}
	}
	for _, req := range term.MatchFields {
		// metadata.name is the only field Kubernetes supports here.
		if req.Key != "metadata.name" || !requirementMatches(req, node.Name, true) {
			return false
		}
	}
	return true
}

func requirementMatches(req corev1.NodeSelectorRequirement, value string, present bool) bool {
	switch req.Operator {
	case corev1.NodeSelectorOpIn:
		return present && slices.Contains(req.Values, value)
	case corev1.NodeSelectorOpNotIn:
		return !present || !slices.Contains(req.Values, value)
	case corev1.NodeSelectorOpExists:
		return present
	case corev1.NodeSelectorOpDoesNotExist:
		return !present
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		return present && len(req.Values) == 1 && compareInts(value, req.Values[0], req.Operator)
	default:
		return false
	}
}

func compareInts(value, bound string, op corev1.NodeSelectorOperator) bool {
	v, err1 := strconv.ParseInt(value, 10, 64)
	b, err2 := strconv.ParseInt(bound, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	if op == corev1.NodeSelectorOpGt {
		return v > b
	}
	return v < b
}

// pvLocal tells whether the PV is local to one node.
func pvLocal(pv *corev1.PersistentVolume) bool {
	return pv.Annotations[StorageNodeAnnotation] != "" || (pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil)
}

// pvOnNode: the PV is local storage reachable from that node only, per its
// storage-node annotation or its node affinity. Other PVs are not local to
// any node.
func pvOnNode(pv *corev1.PersistentVolume, node *corev1.Node) bool {
	if holder := pv.Annotations[StorageNodeAnnotation]; holder != "" {
		return holder == node.Name
	}
	affinity := pv.Spec.NodeAffinity
	return affinity != nil && affinity.Required != nil && nodeSelectorMatches(affinity.Required, node)
}
