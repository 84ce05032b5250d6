package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Migration is one execution of a plan.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=migrations,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Running",type=string,JSONPath=".status.conditions[?(@.type=='Running')].status"
// +kubebuilder:printcolumn:name="Succeeded",type=string,JSONPath=".status.conditions[?(@.type=='Succeeded')].status"
// +kubebuilder:printcolumn:name="Failed",type=string,JSONPath=".status.conditions[?(@.type=='Failed')].status"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type Migration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MigrationSpec `json:"spec"`
	// +optional
	Status MigrationStatus `json:"status,omitempty"`
}

// MigrationList is a list of Migration.
//
// +kubebuilder:object:root=true
type MigrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Migration `json:"items"`
}

// MigrationSpec names the plan to execute and the VMs to cancel.
type MigrationSpec struct {
	// Plan to execute.
	// +kubebuilder:validation:XValidation:rule="has(self.name) && size(self.name) > 0",message="spec.plan.name is required: name the Plan to execute"
	Plan corev1.ObjectReference `json:"plan"`

	// Cancel lists VMs whose migration is to be cancelled.
	// +optional
	// +kubebuilder:validation:MaxItems=1024
	Cancel []Ref `json:"cancel,omitempty"`
}

// MigrationStatus is the observed state of a migration.
type MigrationStatus struct {
	Timed `json:",inline"`
	// +optional
	Conditions []Condition `json:"conditions,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// VMs, one status per VM.
	// +optional
	VMs []VMStatus `json:"vms,omitempty"`
}

// Canceled reports whether the VM with the given ref is to be cancelled,
// matching by ID as Forklift does, or by namespace/name when no ID is given.
func (s *MigrationSpec) Canceled(vm Ref) bool {
	for _, c := range s.Cancel {
		if c.ID != "" && c.ID == vm.ID {
			return true
		}
		if c.ID == "" && c.Name != "" && c.Name == vm.Name && c.Namespace == vm.Namespace {
			return true
		}
	}
	return false
}

func init() {
	knownTypes = append(knownTypes, &Migration{}, &MigrationList{})
}
