package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ForkliftController configures the toolkit controller. Upstream it is the
// operator's free-form CR; cclm accepts only the flag it acts on.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=forkliftcontrollers,scope=Namespaced
// +kubebuilder:subresource:status
type ForkliftController struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ForkliftControllerSpec `json:"spec,omitempty"`
	// +optional
	Status ForkliftControllerStatus `json:"status,omitempty"`
}

// ForkliftControllerList is a list of ForkliftController.
//
// +kubebuilder:object:root=true
type ForkliftControllerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ForkliftController `json:"items"`
}

// ForkliftControllerSpec holds the toolkit's feature flags. Upstream flags
// are strings, not booleans ("true"/"false"), because the operator is
// Ansible-based; cclm keeps that shape.
type ForkliftControllerSpec struct {
	// FeatureOCPLiveMigration enables OpenShift-to-OpenShift live
	// migration plans (spec.type: live): "true" or "false". Default "false".
	// +optional
	// +kubebuilder:validation:XValidation:rule="self in ['true', 'false']",message="spec.feature_ocp_live_migration must be the string \"true\" or \"false\" (quote it in YAML)"
	FeatureOCPLiveMigration string `json:"feature_ocp_live_migration,omitempty"`
	// ControllerMaxVMInFlight bounds the VMs the toolkit migrates at once,
	// across all its running Migrations (upstream's
	// controller_max_vm_inflight). Default 20.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ControllerMaxVMInFlight *int32 `json:"controller_max_vm_inflight,omitempty"`
}

// ForkliftControllerStatus is the observed state of the toolkit controller.
type ForkliftControllerStatus struct {
	// +optional
	Conditions []Condition `json:"conditions,omitempty"`
}

// LiveMigrationEnabled reports whether spec.feature_ocp_live_migration is
// "true".
func (f *ForkliftController) LiveMigrationEnabled() bool {
	return f != nil && f.Spec.FeatureOCPLiveMigration == "true"
}

func init() {
	knownTypes = append(knownTypes, &ForkliftController{}, &ForkliftControllerList{})
}
