package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NetworkResourceNameAnnotation names the device-plugin resource a
// NetworkAttachmentDefinition needs (e.g. a bridge marker resource).
const NetworkResourceNameAnnotation = "k8s.v1.cni.cncf.io/resourceName"

// NetworkAttachmentDefinition is a CNI configuration for a secondary
// network.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=network-attachment-definitions,singular=network-attachment-definition,shortName=net-attach-def,scope=Namespaced
type NetworkAttachmentDefinition struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec NetworkAttachmentDefinitionSpec `json:"spec,omitempty"`
}

// NetworkAttachmentDefinitionList is a list of NetworkAttachmentDefinition.
//
// +kubebuilder:object:root=true
type NetworkAttachmentDefinitionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkAttachmentDefinition `json:"items"`
}

// NetworkAttachmentDefinitionSpec holds the CNI configuration.
type NetworkAttachmentDefinitionSpec struct {
	// Config is the CNI configuration as a JSON document (a single plugin
	// or a plugin list). It is a string, as in the NPWG specification, so
	// its content is not validated by the schema; cclm parses it when the
	// network is used.
	// +optional
	Config string `json:"config,omitempty"`
}

func init() {
	knownTypes = append(knownTypes, &NetworkAttachmentDefinition{}, &NetworkAttachmentDefinitionList{})
}
