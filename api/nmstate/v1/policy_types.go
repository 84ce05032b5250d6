package v1

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeNetworkConfigurationPolicy (NNCP) is the network configuration the
// nodes its nodeSelector matches should have. Each such node's agent
// applies spec.desiredState inside the node, reports the outcome in a
// NodeNetworkConfigurationEnactment named "<node>.<policy>", and the
// policy's conditions sum the enactments up (Available, Progressing,
// Degraded). A desired state that cannot be applied is rolled back on that
// node. Deleting a policy leaves the nodes' networking as it is, as
// upstream does; set the interfaces absent first to undo them.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=nodenetworkconfigurationpolicies,shortName=nncp;nncps,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=".status.conditions[?(@.status==\"True\")].type"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.status==\"True\")].reason"
type NodeNetworkConfigurationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec NodeNetworkConfigurationPolicySpec `json:"spec,omitempty"`
	// +optional
	Status NodeNetworkConfigurationPolicyStatus `json:"status,omitempty"`
}

// NodeNetworkConfigurationPolicyList is a list of
// NodeNetworkConfigurationPolicy.
//
// +kubebuilder:object:root=true
type NodeNetworkConfigurationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeNetworkConfigurationPolicy `json:"items"`
}

// NodeNetworkConfigurationPolicySpec is what a policy wants where.
type NodeNetworkConfigurationPolicySpec struct {
	// NodeSelector must match a node's labels for the policy to apply to
	// it; empty matches every node.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// DesiredState is the network state to apply.
	// +optional
	DesiredState State `json:"desiredState,omitempty"`
}

// NodeNetworkConfigurationPolicyStatus sums up the policy's enactments.
type NodeNetworkConfigurationPolicyStatus struct {
	// +optional
	Conditions ConditionList `json:"conditions,omitempty"`
}

// Policy condition types and reasons (upstream's).
const (
	PolicyAvailable   ConditionType = "Available"
	PolicyDegraded    ConditionType = "Degraded"
	PolicyProgressing ConditionType = "Progressing"

	PolicyFailedToConfigure        ConditionReason = "FailedToConfigure"
	PolicySuccessfullyConfigured   ConditionReason = "SuccessfullyConfigured"
	PolicyConfigurationProgressing ConditionReason = "ConfigurationProgressing"
	PolicyNoMatchingNode           ConditionReason = "NoMatchingNode"
)

// Labels on an enactment naming its policy and node (upstream's).
const (
	EnactmentPolicyLabel = "nmstate.io/policy"
	EnactmentNodeLabel   = "nmstate.io/node"
)

// EnactmentName is the name of a policy's enactment on a node.
func EnactmentName(node, policy string) string { return fmt.Sprintf("%s.%s", node, policy) }

// NodeNetworkConfigurationEnactment (NNCE) is how a policy went on one
// node: the desired state applied, the policy generation it belongs to and
// the node agent's conditions (Available, Progressing, Failing, ...).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=nodenetworkconfigurationenactments,shortName=nnce;nnces,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=".status.conditions[?(@.status==\"True\")].type"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.status==\"True\")].reason"
type NodeNetworkConfigurationEnactment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Status NodeNetworkConfigurationEnactmentStatus `json:"status,omitempty"`
}

// NodeNetworkConfigurationEnactmentList is a list of
// NodeNetworkConfigurationEnactment.
//
// +kubebuilder:object:root=true
type NodeNetworkConfigurationEnactmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeNetworkConfigurationEnactment `json:"items"`
}

// NodeNetworkConfigurationEnactmentStatus is the outcome on one node.
type NodeNetworkConfigurationEnactmentStatus struct {
	// DesiredState is the state the node agent applied.
	// +optional
	DesiredState State `json:"desiredState,omitempty"`

	// DesiredStateMetaInfo says when it was applied.
	// +optional
	DesiredStateMetaInfo EnactmentMetaInfo `json:"desiredStateMetaInfo,omitempty"`

	// PolicyGeneration is the policy's metadata.generation the conditions
	// are about.
	// +optional
	PolicyGeneration int64 `json:"policyGeneration,omitempty"`

	// +optional
	Conditions ConditionList `json:"conditions,omitempty"`
}

// EnactmentMetaInfo says when a desired state was applied.
type EnactmentMetaInfo struct {
	// +optional
	Version string `json:"version,omitempty"`
	// +optional
	// +nullable
	TimeStamp metav1.Time `json:"time,omitempty"`
}

// Enactment condition types and reasons (upstream's).
const (
	EnactmentAvailable   ConditionType = "Available"
	EnactmentFailing     ConditionType = "Failing"
	EnactmentPending     ConditionType = "Pending"
	EnactmentProgressing ConditionType = "Progressing"
	EnactmentAborted     ConditionType = "Aborted"

	EnactmentFailedToConfigure        ConditionReason = "FailedToConfigure"
	EnactmentSuccessfullyConfigured   ConditionReason = "SuccessfullyConfigured"
	EnactmentConfigurationProgressing ConditionReason = "ConfigurationProgressing"
)

func init() {
	knownTypes = append(knownTypes,
		&NodeNetworkConfigurationPolicy{}, &NodeNetworkConfigurationPolicyList{},
		&NodeNetworkConfigurationEnactment{}, &NodeNetworkConfigurationEnactmentList{},
	)
}
