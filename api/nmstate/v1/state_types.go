package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// State is an nmstate network state: the interfaces to configure. Upstream
// it is free form (anything nmstate knows); cclm types the subset it
// applies, so that everything else is refused when the policy is created.
type State struct {
	// Interfaces are configured in this order: those to remove first, then
	// ethernet interfaces, then linux bridges (so that a bridge finds its
	// ports ready). Names are unique.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Interfaces []Interface `json:"interfaces,omitempty"`
}

// InterfaceType is an nmstate interface type.
// +kubebuilder:validation:Enum=linux-bridge;ethernet
type InterfaceType string

// The interface types cclm applies.
const (
	InterfaceTypeLinuxBridge InterfaceType = "linux-bridge"
	InterfaceTypeEthernet    InterfaceType = "ethernet"
)

// InterfaceState is the state an interface should be in.
// +kubebuilder:validation:Enum=up;absent
type InterfaceState string

// The interface states cclm applies.
const (
	// InterfaceStateUp: the interface exists (a bridge is created if
	// needed), is configured as desired and is administratively up.
	InterfaceStateUp InterfaceState = "up"
	// InterfaceStateAbsent: a bridge is deleted; an ethernet interface is
	// deactivated (down, out of its bridge, no IPv4 address), as nmstate
	// does with a physical NIC.
	InterfaceStateAbsent InterfaceState = "absent"
)

// Interface is one interface of a desired state.
//
// +kubebuilder:validation:XValidation:rule="has(self.type) || (has(self.state) && self.state == 'absent')",message="type is required unless state is absent: use linux-bridge or ethernet"
// +kubebuilder:validation:XValidation:rule="!has(self.bridge) || (has(self.type) && self.type == 'linux-bridge')",message="bridge settings belong to an interface of type linux-bridge"
// +kubebuilder:validation:XValidation:rule="!has(self.bridge) || !has(self.bridge.port) || self.bridge.port.all(p, p.name != self.name)",message="a linux-bridge cannot be its own port"
type Interface struct {
	// Name is the kernel's interface name, e.g. br-2001 or enp2s0.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="!self.contains('/') && !self.contains(':') && !self.contains(' ') && self != '.' && self != '..'",message="an interface name has no '/', ':' or space and is not '.' or '..'"
	Name string `json:"name"`

	// Type is linux-bridge or ethernet. An ethernet interface must exist
	// on the node (cclm does not create one); a linux-bridge is created.
	// +optional
	Type InterfaceType `json:"type,omitempty"`

	// State is up (the default) or absent.
	// +optional
	State InterfaceState `json:"state,omitempty"`

	// Description is kept as the interface's alias (`ip link show` prints
	// it); empty leaves the alias as it is.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	Description string `json:"description,omitempty"`

	// IPv4 sets the interface's IPv4 addresses; absent leaves them as they
	// are.
	// +optional
	IPv4 *IPv4 `json:"ipv4,omitempty"`

	// Bridge configures a linux-bridge.
	// +optional
	Bridge *LinuxBridge `json:"bridge,omitempty"`
}

// EffectiveState is the interface's state, up when unset.
func (i *Interface) EffectiveState() InterfaceState {
	if i.State == "" {
		return InterfaceStateUp
	}
	return i.State
}

// IPv4 is an interface's IPv4 configuration.
//
// +kubebuilder:validation:XValidation:rule="self.enabled || !has(self.address) || size(self.address) == 0",message="ipv4.address needs ipv4.enabled: true"
type IPv4 struct {
	// Enabled false removes every IPv4 address from the interface; true
	// makes its addresses exactly those listed.
	Enabled bool `json:"enabled"`

	// DHCP is not implemented by cclm: set addresses statically.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self",message="ipv4.dhcp is not supported by cclm's nmstate: list the addresses under ipv4.address"
	DHCP *bool `json:"dhcp,omitempty"`

	// Address lists the static addresses.
	// +optional
	// +listType=map
	// +listMapKey=ip
	// +kubebuilder:validation:MaxItems=32
	Address []IPAddress `json:"address,omitempty"`
}

// IPAddress is a static address with its prefix length.
type IPAddress struct {
	// IP is the address, e.g. 192.168.201.10.
	// +kubebuilder:validation:Format=ipv4
	IP string `json:"ip"`
	// PrefixLength is the network's prefix length, e.g. 24.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	PrefixLength int32 `json:"prefix-length"`
}

// LinuxBridge is a linux-bridge's configuration.
type LinuxBridge struct {
	// Options are the bridge's options.
	// +optional
	Options *BridgeOptions `json:"options,omitempty"`

	// Port lists the bridge's ports: with the list given (even empty),
	// exactly those interfaces are its ports; without it the ports are
	// left as they are. Every port must exist on the node.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Port []BridgePort `json:"port,omitempty"`
}

// BridgeOptions are a linux-bridge's options.
type BridgeOptions struct {
	// STP is the spanning tree protocol setting.
	// +optional
	STP *BridgeSTP `json:"stp,omitempty"`
}

// BridgeSTP switches the spanning tree protocol.
type BridgeSTP struct {
	// Enabled switches STP on or off. Unset leaves it as it is; a new
	// bridge has the kernel's default, off (NetworkManager would turn it
	// on: set it explicitly, as the OpenShift guide does).
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// BridgePort is a port of a linux-bridge.
type BridgePort struct {
	// Name is the port's interface name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	Name string `json:"name"`
}

// ConditionType is the type of an nmstate condition.
type ConditionType string

// ConditionReason is the reason of an nmstate condition.
type ConditionReason string

// Condition is an nmstate condition (upstream's shared.Condition).
type Condition struct {
	Type   ConditionType          `json:"type"`
	Status corev1.ConditionStatus `json:"status"`
	// +optional
	Reason ConditionReason `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	// +nullable
	LastHeartbeatTime metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// +optional
	// +nullable
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
}

// ConditionList is a list of conditions, one per type.
type ConditionList []Condition

// Find returns the condition of that type, or nil.
func (l ConditionList) Find(t ConditionType) *Condition {
	for i := range l {
		if l[i].Type == t {
			return &l[i]
		}
	}
	return nil
}

// IsTrue reports whether the condition of that type is there and True.
func (l ConditionList) IsTrue(t ConditionType) bool {
	c := l.Find(t)
	return c != nil && c.Status == corev1.ConditionTrue
}

// Set sets a condition as upstream does: the transition time moves only
// when the status changes, the heartbeat on every change. It reports
// whether anything but the times changed.
func (l *ConditionList) Set(t ConditionType, status corev1.ConditionStatus, reason ConditionReason, message string, now metav1.Time) bool {
	c := l.Find(t)
	if c == nil {
		*l = append(*l, Condition{Type: t, Status: status, Reason: reason, Message: message, LastHeartbeatTime: now, LastTransitionTime: now})
		return true
	}
	if c.Status == status && c.Reason == reason && c.Message == message {
		return false
	}
	if c.Status != status {
		c.LastTransitionTime = now
	}
	c.Status, c.Reason, c.Message, c.LastHeartbeatTime = status, reason, message, now
	return true
}
