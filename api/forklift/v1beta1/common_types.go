package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition is a Forklift condition. Unlike metav1.Condition it carries a
// category, which decides whether it blocks readiness: Critical and Error
// block, Warn and Advisory do not, Required conditions must be present.
type Condition struct {
	// Type of the condition, e.g. Ready, Executing, Succeeded, Failed.
	Type string `json:"type"`
	// Status is "True" or "False".
	Status string `json:"status"`
	// Reason is a CamelCase reason for the condition.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Category is Critical, Error, Warn, Required or Advisory.
	Category string `json:"category"`
	// Message is the human-readable description.
	// +optional
	Message string `json:"message,omitempty"`
	// LastTransitionTime is when the status last changed.
	LastTransitionTime metav1.Time `json:"lastTransitionTime"`
	// Durable conditions are never removed by re-staging.
	// +optional
	Durable bool `json:"durable,omitempty"`
	// Items referenced by the message, e.g. the VMs that fail a check.
	// +optional
	Items []string `json:"items,omitempty"`
}

// Condition statuses and categories (Forklift values).
const (
	ConditionTrue  = "True"
	ConditionFalse = "False"

	CategoryCritical = "Critical"
	CategoryError    = "Error"
	CategoryWarn     = "Warn"
	CategoryRequired = "Required"
	CategoryAdvisory = "Advisory"
)

// Common condition types.
const (
	ConditionReady     = "Ready"
	ConditionExecuting = "Executing"
	ConditionRunning   = "Running"
	ConditionSucceeded = "Succeeded"
	ConditionFailed    = "Failed"
	ConditionCanceled  = "Canceled"
)

// FindCondition returns the condition of the given type, or nil.
func FindCondition(conditions []Condition, condType string) *Condition {
	for i := range conditions {
		if conditions[i].Type == condType {
			return &conditions[i]
		}
	}
	return nil
}

// Ref refers to an object of a provider's inventory (a VM, a network, a
// storage class). At least one of id, name or type is set.
//
// +kubebuilder:validation:XValidation:rule="has(self.id) || has(self.name) || has(self.type)",message="set id or name (a network source may instead give only type: pod)"
type Ref struct {
	// ID of the object in the provider's inventory; for an OpenShift
	// provider, the object's UID.
	// +optional
	ID string `json:"id,omitempty"`
	// Name of the object.
	// +optional
	Name string `json:"name,omitempty"`
	// Namespace of the object (OpenShift providers).
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Type qualifies the name, e.g. "pod" for the pod network.
	// +optional
	Type string `json:"type,omitempty"`
}

// Timed records when something started and completed.
type Timed struct {
	// +optional
	// +nullable
	Started *metav1.Time `json:"started,omitempty"`
	// +optional
	// +nullable
	Completed *metav1.Time `json:"completed,omitempty"`
}

// Progress counts completed units of work out of a total.
type Progress struct {
	// Completed units.
	Completed int64 `json:"completed"`
	// Total units.
	Total int64 `json:"total"`
}

// Error is what failed, and in which phase.
type Error struct {
	// Phase the error happened in.
	Phase string `json:"phase"`
	// Reasons, one per distinct failure.
	Reasons []string `json:"reasons"`
}

// Task is a unit of work within a pipeline step.
type Task struct {
	Timed `json:",inline"`
	// Name of the task.
	Name string `json:"name"`
	// Description of the task.
	// +optional
	Description string `json:"description,omitempty"`
	// Phase of the task.
	// +optional
	Phase string `json:"phase,omitempty"`
	// Reason for the phase.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Progress of the task.
	// +optional
	Progress Progress `json:"progress"`
	// Annotations carry step-specific details (cclm: transfer figures).
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// Error, if the task failed.
	// +optional
	Error *Error `json:"error,omitempty"`
}

// Step is a step of a VM's migration pipeline.
type Step struct {
	Task `json:",inline"`
	// Tasks nested in the step.
	// +optional
	Tasks []Task `json:"tasks,omitempty"`
}

// VMStatus is the migration status of one VM.
type VMStatus struct {
	Timed `json:",inline"`
	Ref   `json:",inline"`
	// Pipeline is the VM's migration steps, in order.
	// +optional
	Pipeline []Step `json:"pipeline"`
	// Phase is the VM's current pipeline phase.
	// +optional
	Phase string `json:"phase"`
	// Error, if the VM's migration failed.
	// +optional
	Error *Error `json:"error,omitempty"`
	// Conditions of the VM's migration.
	// +optional
	Conditions []Condition `json:"conditions,omitempty"`
}
