package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MigrationPolicy holds migration settings for the VMIs its selectors
// match. For a migration, the matching policy with the most selector
// labels (MatchPolicy) overrides the KubeVirt CR's
// spec.configuration.migrations with the fields it sets (ApplyTo); the
// result is recorded in the VMI's status.migrationState, with the
// policy's name in migrationPolicyName.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=migrationpolicies,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type MigrationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MigrationPolicySpec `json:"spec"`
	// +optional
	Status MigrationPolicyStatus `json:"status,omitempty"`
}

// MigrationPolicyList is a list of MigrationPolicy.
//
// +kubebuilder:object:root=true
type MigrationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MigrationPolicy `json:"items"`
}

// MigrationPolicySpec is which VMIs the policy is for and the settings it
// overrides. A field left unset keeps the KubeVirt CR's value (or its
// default).
type MigrationPolicySpec struct {
	// Selectors say which VMIs the policy is for. Required, as upstream;
	// empty selectors ({}) match every VMI.
	Selectors *Selectors `json:"selectors"`

	// AllowAutoConverge lets the migration throttle the guest's vCPUs to
	// make it converge.
	// +optional
	AllowAutoConverge *bool `json:"allowAutoConverge,omitempty"`

	// BandwidthPerMigration limits the bandwidth of one migration, in
	// bytes per second; 0 means unlimited.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || !quantity(string(self)).isLessThan(quantity('0'))",message="bandwidthPerMigration must not be negative; use 0 for unlimited or a rate such as 64Mi"
	BandwidthPerMigration *resource.Quantity `json:"bandwidthPerMigration,omitempty"`

	// CompletionTimeoutPerGiB is the number of seconds per GiB of memory
	// (plus migrated disk) a migration may take before it is aborted,
	// switched to post-copy or paused.
	// +optional
	// +kubebuilder:validation:Minimum=1
	CompletionTimeoutPerGiB *int64 `json:"completionTimeoutPerGiB,omitempty"`

	// AllowPostCopy lets a migration that reaches its completion timeout
	// switch to post-copy.
	// +optional
	AllowPostCopy *bool `json:"allowPostCopy,omitempty"`

	// AllowWorkloadDisruption lets a migration that reaches its completion
	// timeout pause the guest (or switch to post-copy, if allowed) instead
	// of being aborted. Unset keeps the cluster's value, which itself
	// follows the cluster's allowPostCopy when the KubeVirt CR does not
	// set it; a policy's allowPostCopy does not change it.
	// +optional
	AllowWorkloadDisruption *bool `json:"allowWorkloadDisruption,omitempty"`
}

// LabelSelector is a set of labels that must all be present with these
// values (no expressions, as upstream).
type LabelSelector map[string]string

// Selectors say which VMIs a policy is for: every label of
// virtualMachineInstanceSelector must be on the VMI, and every label of
// namespaceSelector on the VMI's Namespace, each with the value given. An
// empty or absent selector matches every VMI.
type Selectors struct {
	// NamespaceSelector are labels of the VMI's Namespace.
	// +optional
	NamespaceSelector LabelSelector `json:"namespaceSelector,omitempty"`

	// VirtualMachineInstanceSelector are labels of the VMI.
	// +optional
	VirtualMachineInstanceSelector LabelSelector `json:"virtualMachineInstanceSelector,omitempty"`
}

// MigrationPolicyStatus is empty, as upstream's.
type MigrationPolicyStatus struct{}

func init() {
	knownTypes = append(knownTypes, &MigrationPolicy{}, &MigrationPolicyList{})
}
