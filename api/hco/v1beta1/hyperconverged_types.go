package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HyperConvergedName is the only name the operator reconciles, upstream
// and in cclm.
const HyperConvergedName = "kubevirt-hyperconverged"

// HyperConverged is OpenShift Virtualization's user-facing configuration.
// cclm reads its live-migration settings and the decentralized live
// migration gate and writes them into the KubeVirt CR of its namespace
// (spec.configuration.migrations and developerConfiguration.featureGates);
// a field set here wins over an edit of the same field on the KubeVirt CR,
// as with the operator. Unlike upstream, a field left unset here is not
// managed at all (upstream defaults each one and so always manages it),
// so the KubeVirt CR's own value stays.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=hyperconvergeds,singular=hyperconverged,shortName=hco;hcos,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'kubevirt-hyperconverged'",message="the HyperConverged CR must be named kubevirt-hyperconverged: the operator reconciles no other"
type HyperConverged struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec HyperConvergedSpec `json:"spec,omitempty"`
	// +optional
	Status HyperConvergedStatus `json:"status,omitempty"`
}

// HyperConvergedList is a list of HyperConverged.
//
// +kubebuilder:object:root=true
type HyperConvergedList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HyperConverged `json:"items"`
}

// HyperConvergedSpec is the subset of upstream's spec that cclm honours.
type HyperConvergedSpec struct {
	// LiveMigrationConfig tunes live migrations; it becomes the KubeVirt
	// CR's spec.configuration.migrations.
	// +optional
	LiveMigrationConfig LiveMigrationConfigurations `json:"liveMigrationConfig,omitempty"`

	// FeatureGates switches optional features.
	// +optional
	FeatureGates HyperConvergedFeatureGates `json:"featureGates,omitempty"`
}

// LiveMigrationConfigurations are the live-migration settings (upstream's
// names and types; bandwidthPerMigration is a quantity string).
type LiveMigrationConfigurations struct {
	// Network is the NetworkAttachmentDefinition, in this namespace, that
	// carries migration traffic (the OpenShift guide's livemigration-network).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Network *string `json:"network,omitempty"`

	// BandwidthPerMigration limits each migration, in bytes per second,
	// e.g. 64Mi; 0 is unlimited.
	// +optional
	// +kubebuilder:validation:XValidation:rule="isQuantity(self) && !quantity(self).isLessThan(quantity('0'))",message="bandwidthPerMigration must be a quantity of bytes per second such as 64Mi or 1Gi (0 for unlimited)"
	BandwidthPerMigration *string `json:"bandwidthPerMigration,omitempty"`

	// CompletionTimeoutPerGiB is seconds per GiB of memory (plus migrated
	// disk) a migration may take.
	// +optional
	// +kubebuilder:validation:Minimum=1
	CompletionTimeoutPerGiB *int64 `json:"completionTimeoutPerGiB,omitempty"`

	// ProgressTimeout is seconds a migration may make no progress.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ProgressTimeout *int64 `json:"progressTimeout,omitempty"`

	// ParallelMigrationsPerCluster bounds the migrations running at once.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ParallelMigrationsPerCluster *uint32 `json:"parallelMigrationsPerCluster,omitempty"`

	// ParallelOutboundMigrationsPerNode bounds the outgoing migrations of a
	// node running at once.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ParallelOutboundMigrationsPerNode *uint32 `json:"parallelOutboundMigrationsPerNode,omitempty"`

	// AllowAutoConverge lets a migration throttle the guest's vCPUs.
	// +optional
	AllowAutoConverge *bool `json:"allowAutoConverge,omitempty"`

	// AllowPostCopy lets a migration switch to post-copy.
	// +optional
	AllowPostCopy *bool `json:"allowPostCopy,omitempty"`
}

// HyperConvergedFeatureGates are the feature gates cclm knows.
type HyperConvergedFeatureGates struct {
	// DecentralizedLiveMigration enables cross-cluster live migration: the
	// KubeVirt CR gets feature gate DecentralizedLiveMigration (true) or
	// loses it (false).
	// +optional
	DecentralizedLiveMigration *bool `json:"decentralizedLiveMigration,omitempty"`
}

// HyperConvergedStatus is what the operator reports.
type HyperConvergedStatus struct {
	// Conditions: ReconcileComplete, Available, Progressing, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation last written into the KubeVirt
	// CR.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// HyperConverged condition types (upstream's).
const (
	ConditionReconcileComplete = "ReconcileComplete"
	ConditionAvailable         = "Available"
	ConditionProgressing       = "Progressing"
	ConditionDegraded          = "Degraded"
)

func init() {
	knownTypes = append(knownTypes, &HyperConverged{}, &HyperConvergedList{})
}
