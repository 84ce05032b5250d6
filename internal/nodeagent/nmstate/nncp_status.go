package nmstate

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
)

// The conditions of enactments and policies, as kubernetes-nmstate sets
// them (types, reasons and messages are upstream's; a Degraded policy's
// message also names the failed nodes and why).

// enactmentPhase is where an enactment stands.
type enactmentPhase int

const (
	enactmentProgressing enactmentPhase = iota
	enactmentAvailable
	enactmentFailing
)

// setEnactmentConditions sets the enactment's conditions for phase;
// message is the failure for enactmentFailing. It reports whether anything
// but the times changed.
func setEnactmentConditions(conditions *nmstatev1.ConditionList, phase enactmentPhase, message string, now metav1.Time) bool {
	type set struct {
		t       nmstatev1.ConditionType
		status  corev1.ConditionStatus
		reason  nmstatev1.ConditionReason
		message string
	}
	var sets []set
	switch phase {
	case enactmentProgressing:
		sets = []set{
			{nmstatev1.EnactmentProgressing, corev1.ConditionTrue, nmstatev1.EnactmentConfigurationProgressing, "Applying desired state"},
			{nmstatev1.EnactmentAvailable, corev1.ConditionUnknown, nmstatev1.EnactmentConfigurationProgressing, ""},
			{nmstatev1.EnactmentFailing, corev1.ConditionUnknown, nmstatev1.EnactmentConfigurationProgressing, ""},
		}
	case enactmentAvailable:
		sets = []set{
			{nmstatev1.EnactmentAvailable, corev1.ConditionTrue, nmstatev1.EnactmentSuccessfullyConfigured, "successfully reconciled"},
			{nmstatev1.EnactmentProgressing, corev1.ConditionFalse, nmstatev1.EnactmentSuccessfullyConfigured, ""},
			{nmstatev1.EnactmentFailing, corev1.ConditionFalse, nmstatev1.EnactmentSuccessfullyConfigured, ""},
		}
	case enactmentFailing:
		sets = []set{
			{nmstatev1.EnactmentFailing, corev1.ConditionTrue, nmstatev1.EnactmentFailedToConfigure, message},
			{nmstatev1.EnactmentAvailable, corev1.ConditionFalse, nmstatev1.EnactmentFailedToConfigure, ""},
			{nmstatev1.EnactmentProgressing, corev1.ConditionFalse, nmstatev1.EnactmentFailedToConfigure, ""},
		}
	}
	sets = append(sets,
		set{nmstatev1.EnactmentPending, corev1.ConditionFalse, "", ""},
		set{nmstatev1.EnactmentAborted, corev1.ConditionFalse, "", ""},
	)
	changed := false
	for _, s := range sets {
		if conditions.Set(s.t, s.status, s.reason, s.message, now) {
			changed = true
		}
	}
	return changed
}

// enactmentFinished reports whether the enactment is final for the policy
// generation: Available or Failing.
func enactmentFinished(e *nmstatev1.NodeNetworkConfigurationEnactment, generation int64) bool {
	if e.Status.PolicyGeneration != generation {
		return false
	}
	return e.Status.Conditions.IsTrue(nmstatev1.EnactmentAvailable) || e.Status.Conditions.IsTrue(nmstatev1.EnactmentFailing)
}

// policyTally counts how a policy stands on the nodes it matches.
type policyTally struct {
	Matching, Available, Failing int
	// Failures are "<node>: <message>" of the failing nodes, by node.
	Failures []string
}

// Finished is the number of matching nodes whose enactment is final.
func (t policyTally) Finished() int { return t.Available + t.Failing }

// nodeMatches reports whether a policy's nodeSelector matches a node.
func nodeMatches(policy *nmstatev1.NodeNetworkConfigurationPolicy, node *corev1.Node) bool {
	return labels.SelectorFromSet(policy.Spec.NodeSelector).Matches(labels.Set(node.Labels))
}

// tallyPolicy counts the policy's matching nodes and their enactments of
// the policy's current generation (an enactment of an older generation,
// or none, counts as progressing).
func tallyPolicy(policy *nmstatev1.NodeNetworkConfigurationPolicy, nodes []corev1.Node, enactments []nmstatev1.NodeNetworkConfigurationEnactment) policyTally {
	byName := map[string]*nmstatev1.NodeNetworkConfigurationEnactment{}
	for i := range enactments {
		byName[enactments[i].Name] = &enactments[i]
	}
	var tally policyTally
	for i := range nodes {
		node := &nodes[i]
		if !nodeMatches(policy, node) {
			continue
		}
		tally.Matching++
		e, found := byName[nmstatev1.EnactmentName(node.Name, policy.Name)]
		if !found || e.Status.PolicyGeneration != policy.Generation {
			continue
		}
		switch {
		case e.Status.Conditions.IsTrue(nmstatev1.EnactmentAvailable):
			tally.Available++
		case e.Status.Conditions.IsTrue(nmstatev1.EnactmentFailing):
			tally.Failing++
			message := ""
			if c := e.Status.Conditions.Find(nmstatev1.EnactmentFailing); c != nil {
				message = c.Message
			}
			tally.Failures = append(tally.Failures, node.Name+": "+message)
		}
	}
	slices.Sort(tally.Failures)
	return tally
}

// maxDegradedMessage bounds the failures quoted in a policy's message.
const maxDegradedMessage = 2048

// setPolicyConditions sets a policy's Available, Progressing and Degraded
// from its tally; it reports whether anything but the times changed.
func setPolicyConditions(conditions *nmstatev1.ConditionList, tally policyTally, now metav1.Time) bool {
	type set struct {
		t       nmstatev1.ConditionType
		status  corev1.ConditionStatus
		reason  nmstatev1.ConditionReason
		message string
	}
	var sets []set
	switch {
	case tally.Matching == 0:
		sets = []set{
			{nmstatev1.PolicyAvailable, corev1.ConditionTrue, nmstatev1.PolicyNoMatchingNode, "Policy does not match any node"},
			{nmstatev1.PolicyDegraded, corev1.ConditionFalse, nmstatev1.PolicyNoMatchingNode, ""},
			{nmstatev1.PolicyProgressing, corev1.ConditionFalse, nmstatev1.PolicyNoMatchingNode, ""},
		}
	case tally.Finished() < tally.Matching:
		sets = []set{
			{nmstatev1.PolicyProgressing, corev1.ConditionTrue, nmstatev1.PolicyConfigurationProgressing,
				fmt.Sprintf("Policy is progressing %d/%d nodes finished", tally.Finished(), tally.Matching)},
			{nmstatev1.PolicyAvailable, corev1.ConditionUnknown, nmstatev1.PolicyConfigurationProgressing, ""},
			{nmstatev1.PolicyDegraded, corev1.ConditionUnknown, nmstatev1.PolicyConfigurationProgressing, ""},
		}
	case tally.Failing > 0:
		message := fmt.Sprintf("%d/%d nodes failed to configure: %s", tally.Failing, tally.Matching, strings.Join(tally.Failures, "; "))
		if len(message) > maxDegradedMessage {
			message = message[:maxDegradedMessage-3] + "..."
		}
		sets = []set{
			{nmstatev1.PolicyDegraded, corev1.ConditionTrue, nmstatev1.PolicyFailedToConfigure, message},
			{nmstatev1.PolicyAvailable, corev1.ConditionFalse, nmstatev1.PolicyFailedToConfigure, ""},
			{nmstatev1.PolicyProgressing, corev1.ConditionFalse, nmstatev1.PolicyFailedToConfigure, ""},
		}
	default:
		sets = []set{
			{nmstatev1.PolicyAvailable, corev1.ConditionTrue, nmstatev1.PolicySuccessfullyConfigured,
				fmt.Sprintf("%d/%d nodes successfully configured", tally.Available, tally.Matching)},
			{nmstatev1.PolicyDegraded, corev1.ConditionFalse, nmstatev1.PolicySuccessfullyConfigured, ""},
			{nmstatev1.PolicyProgressing, corev1.ConditionFalse, nmstatev1.PolicySuccessfullyConfigured, ""},
		}
	}
	changed := false
	for _, s := range sets {
		if conditions.Set(s.t, s.status, s.reason, s.message, now) {
			changed = true
		}
	}
	return changed
}
