package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProviderType is the kind of virtualization platform a provider is.
// cclm implements only openshift (OpenShift/KubeVirt clusters); Forklift's
// other types (vsphere, ovirt, openstack, ova, ...) are refused.
//
// +kubebuilder:validation:Enum=openshift
type ProviderType string

// Provider types.
const (
	OpenShift ProviderType = "openshift"
)

// Keys of the provider Secret (Forklift names).
const (
	// SecretToken is the service-account token for the provider's cluster.
	SecretToken = "token"
	// SecretCACert is the PEM CA bundle of the provider's API server.
	SecretCACert = "ca.crt"
	// SecretInsecureSkipVerify ("true") disables TLS verification.
	SecretInsecureSkipVerify = "insecureSkipVerify"
)

// Provider is a cluster VMs migrate from or to. An openshift provider with
// an empty url is the local ("host") cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=providers,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=".spec.type"
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Connected",type=string,JSONPath=".status.conditions[?(@.type=='ConnectionTestSucceeded')].status"
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".spec.url"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type Provider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ProviderSpec `json:"spec"`
	// +optional
	Status ProviderStatus `json:"status,omitempty"`
}

// ProviderList is a list of Provider.
//
// +kubebuilder:object:root=true
type ProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Provider `json:"items"`
}

// ProviderSpec says where the provider is and how to log in.
//
// +kubebuilder:validation:XValidation:rule="!has(self.url) || size(self.url) == 0 || (has(self.secret) && has(self.secret.name) && size(self.secret.name) > 0)",message="spec.secret.name is required for a remote provider (spec.url set): name the Secret holding the cluster's service-account token"
type ProviderSpec struct {
	// Type of the provider. A pointer as upstream: it is required, and the
	// pointer lets Go callers tell a missing type from a decoded one.
	Type *ProviderType `json:"type"`

	// URL of the provider's API server, e.g. https://api.ocp7.example:6443.
	// Empty for the local cluster.
	// +optional
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || self.startsWith('https://') || self.startsWith('http://')",message="spec.url must be the API server URL, e.g. https://api.ocp7.example.com:6443, or empty for the local cluster"
	URL string `json:"url,omitempty"`

	// Secret holds the credentials (keys token, ca.crt, insecureSkipVerify).
	// +optional
	Secret corev1.ObjectReference `json:"secret,omitempty"`

	// Settings are provider-specific settings; none are used for openshift.
	// +optional
	Settings map[string]string `json:"settings,omitempty"`
}

// ProviderStatus is the observed state of a provider.
type ProviderStatus struct {
	// Phase is e.g. Ready, ValidationFailed, ConnectionFailed.
	// +optional
	Phase string `json:"phase,omitempty"`
	// +optional
	Conditions []Condition `json:"conditions,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// IsHost reports whether the provider is the local cluster.
func (p *Provider) IsHost() bool {
	return p.Spec.Type != nil && *p.Spec.Type == OpenShift && p.Spec.URL == ""
}

func init() {
	knownTypes = append(knownTypes, &Provider{}, &ProviderList{})
}
