package v1

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DecentralizedLiveMigrationGate is the feature gate that enables
// decentralized (cross-cluster) live migration: VMIMs with sendTo/receive and
// VMs with runStrategy WaitAsReceiver. Compared case-insensitively, as
// upstream does.
const DecentralizedLiveMigrationGate = "DecentralizedLiveMigration"

// Upstream defaults for spec.configuration.migrations and
// spec.synchronizationPort. They are applied by EffectiveMigrationConfiguration
// and EffectiveSynchronizationPort rather than by CRD defaulting so that the
// stored object keeps saying only what the user wrote, as upstream does.
const (
	DefaultCompletionTimeoutPerGiB           int64  = 150
	DefaultProgressTimeout                   int64  = 150
	DefaultParallelMigrationsPerCluster      uint32 = 5
	DefaultParallelOutboundMigrationsPerNode uint32 = 2
	DefaultSynchronizationPort               int32  = 9185
	// DefaultParallelMigrationThreads is cclm's (upstream uses 8 and has
	// no setting; see MigrationConfiguration.ParallelMigrationThreads).
	DefaultParallelMigrationThreads uint32 = 2
)

// KubeVirt is the cluster-wide KubeVirt configuration. cclm reads it (its
// feature gates, migration tuning and synchronization port); it does not
// deploy anything from it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=kubevirts,shortName=kv;kvs,categories=all,scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=".status.phase"
type KubeVirt struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec KubeVirtSpec `json:"spec"`
	// +optional
	Status KubeVirtStatus `json:"status,omitempty"`
}

// KubeVirtList is a list of KubeVirt.
//
// +kubebuilder:object:root=true
type KubeVirtList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KubeVirt `json:"items"`
}

// KubeVirtSpec is the subset of upstream's KubeVirtSpec that cclm honours.
type KubeVirtSpec struct {
	// SynchronizationPort is the port the synchronization controller
	// listens on for cross-cluster VMI status synchronization. Upstream
	// declares it as a string ("9185"); an integer is accepted too.
	// Defaults to 9185.
	// +optional
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 65535) : (self.matches('^[0-9]{1,5}$') && int(self) >= 1 && int(self) <= 65535)",message="spec.synchronizationPort must be a TCP port number between 1 and 65535 (default \"9185\")"
	SynchronizationPort *intstr.IntOrString `json:"synchronizationPort,omitempty"`

	// Configuration holds the KubeVirt configuration.
	// +optional
	Configuration KubeVirtConfiguration `json:"configuration,omitempty"`
}

// KubeVirtConfiguration holds the cluster-wide KubeVirt configuration.
type KubeVirtConfiguration struct {
	// CPUModel is the default CPU model of VMIs that do not set one
	// (upstream default: host-model).
	// +optional
	CPUModel string `json:"cpuModel,omitempty"`

	// DeveloperConfiguration holds feature gates.
	// +optional
	DeveloperConfiguration *DeveloperConfiguration `json:"developerConfiguration,omitempty"`

	// MigrationConfiguration holds live migration tuning.
	// +optional
	MigrationConfiguration *MigrationConfiguration `json:"migrations,omitempty"`
}

// DeveloperConfiguration holds feature gates.
type DeveloperConfiguration struct {
	// FeatureGates lists the enabled feature gates, e.g.
	// DecentralizedLiveMigration. Names compare case-insensitively.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=128
	FeatureGates []string `json:"featureGates,omitempty"`
}

// MigrationConfiguration holds live migration options (upstream
// spec.configuration.migrations). It is also recorded, resolved, in
// VirtualMachineInstanceMigrationState.migrationConfiguration.
//
// Every tunable is a pointer so that "not set, use the default" can be told
// apart from an explicit zero or false (e.g. bandwidthPerMigration 0 means
// unlimited, allowWorkloadDisruption unset means "follow allowPostCopy").
type MigrationConfiguration struct {
	// Network is the name of the NetworkAttachmentDefinition, in the
	// KubeVirt namespace, that carries migration traffic (interface
	// migration0). Empty means the pod network.
	// +optional
	Network string `json:"network,omitempty"`

	// BandwidthPerMigration limits the bandwidth of one migration, in bytes
	// per second. 0 (the default) means unlimited.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!isQuantity(string(self)) || !quantity(string(self)).isLessThan(quantity('0'))",message="bandwidthPerMigration must not be negative; use 0 for unlimited or a rate such as 64Mi"
	BandwidthPerMigration *resource.Quantity `json:"bandwidthPerMigration,omitempty"`

	// CompletionTimeoutPerGiB is the number of seconds per GiB of memory
	// (plus migrated disk) a migration may take before it is aborted or
	// switched to post-copy. Defaults to 150.
	// +optional
	// +kubebuilder:validation:Minimum=1
	CompletionTimeoutPerGiB *int64 `json:"completionTimeoutPerGiB,omitempty"`

	// ProgressTimeout is the number of seconds a migration may make no
	// progress before it is aborted. Defaults to 150.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ProgressTimeout *int64 `json:"progressTimeout,omitempty"`

	// ParallelMigrationsPerCluster is the number of migrations that may run
	// at once in the cluster. Defaults to 5.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ParallelMigrationsPerCluster *uint32 `json:"parallelMigrationsPerCluster,omitempty"`

	// ParallelOutboundMigrationsPerNode is the number of outgoing migrations
	// that may run at once from one node. Defaults to 2.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ParallelOutboundMigrationsPerNode *uint32 `json:"parallelOutboundMigrationsPerNode,omitempty"`

	// ParallelMigrationThreads is the number of parallel connections
	// (QEMU's multifd channels) that carry a migration's memory, each
	// mutually authenticated by TLS like the main stream. 0 sends memory
	// over the main stream alone. Defaults to 2. A migration that may
	// switch to post-copy uses the main stream alone (QEMU 10.0 does not
	// combine the two).
	//
	// A cclm addition to this struct, named after upstream's
	// MigrationOptions.ParallelMigrationThreads (KubeVirt sets 8 threads
	// and has no cluster-wide setting); 2 suit nodes with few cores.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	ParallelMigrationThreads *uint32 `json:"parallelMigrationThreads,omitempty"`

	// AllowAutoConverge lets the migration throttle the guest's vCPUs to
	// make it converge. Defaults to false.
	// +optional
	AllowAutoConverge *bool `json:"allowAutoConverge,omitempty"`

	// AllowPostCopy lets a migration that reaches its completion timeout
	// switch to post-copy. Defaults to false.
	// +optional
	AllowPostCopy *bool `json:"allowPostCopy,omitempty"`

	// AllowWorkloadDisruption lets a migration that reaches its completion
	// timeout pause the guest (or switch to post-copy, if allowed) instead
	// of being aborted. Defaults to the value of allowPostCopy.
	// +optional
	AllowWorkloadDisruption *bool `json:"allowWorkloadDisruption,omitempty"`
}

// KubeVirtStatus is the observed state of the KubeVirt deployment.
type KubeVirtStatus struct {
	// Phase is Deploying, Deployed, Deleting or Deleted.
	// +optional
	Phase KubeVirtPhase `json:"phase,omitempty"`

	// SynchronizationAddresses are the host:port addresses of this
	// cluster's synchronization controller, as peers should dial them.
	// +optional
	// +listType=atomic
	SynchronizationAddresses []string `json:"synchronizationAddresses,omitempty"`

	// +optional
	Conditions []KubeVirtCondition `json:"conditions,omitempty"`
}

// KubeVirtPhase is the phase of a KubeVirt deployment.
type KubeVirtPhase string

// KubeVirt phases.
const (
	KubeVirtPhaseDeploying KubeVirtPhase = "Deploying"
	KubeVirtPhaseDeployed  KubeVirtPhase = "Deployed"
	KubeVirtPhaseDeleting  KubeVirtPhase = "Deleting"
	KubeVirtPhaseDeleted   KubeVirtPhase = "Deleted"
)

// KubeVirtConditionType is the type of a KubeVirt condition.
type KubeVirtConditionType string

// KubeVirt condition types.
const (
	KubeVirtConditionAvailable   KubeVirtConditionType = "Available"
	KubeVirtConditionProgressing KubeVirtConditionType = "Progressing"
	KubeVirtConditionDegraded    KubeVirtConditionType = "Degraded"
	KubeVirtConditionCreated     KubeVirtConditionType = "Created"
)

// KubeVirtCondition is a condition of the KubeVirt deployment.
type KubeVirtCondition struct {
	Type   KubeVirtConditionType  `json:"type"`
	Status corev1.ConditionStatus `json:"status"`
	// +optional
	// +nullable
	LastProbeTime metav1.Time `json:"lastProbeTime,omitempty"`
	// +optional
	// +nullable
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// IsFeatureGateEnabled reports whether the named feature gate is listed in
// spec.configuration.developerConfiguration.featureGates, comparing
// case-insensitively. A nil KubeVirt has no gates enabled.
func (kv *KubeVirt) IsFeatureGateEnabled(name string) bool {
	if kv == nil || kv.Spec.Configuration.DeveloperConfiguration == nil {
		return false
	}
	for _, g := range kv.Spec.Configuration.DeveloperConfiguration.FeatureGates {
		if strings.EqualFold(g, name) {
			return true
		}
	}
	return false
}

// EffectiveMigrationConfiguration returns spec.configuration.migrations with
// every unset tunable replaced by its upstream default, so callers never have
// to nil-check. The result shares no memory with kv. A nil KubeVirt yields
// the pure defaults.
func (kv *KubeVirt) EffectiveMigrationConfiguration() MigrationConfiguration {
	var out MigrationConfiguration
	if kv != nil && kv.Spec.Configuration.MigrationConfiguration != nil {
		kv.Spec.Configuration.MigrationConfiguration.DeepCopyInto(&out)
	}
	if out.BandwidthPerMigration == nil {
		q := resource.MustParse("0")
		out.BandwidthPerMigration = &q
	}
	if out.CompletionTimeoutPerGiB == nil {
		out.CompletionTimeoutPerGiB = ptr(DefaultCompletionTimeoutPerGiB)
	}
	if out.ProgressTimeout == nil {
		out.ProgressTimeout = ptr(DefaultProgressTimeout)
	}
	if out.ParallelMigrationsPerCluster == nil {
		out.ParallelMigrationsPerCluster = ptr(DefaultParallelMigrationsPerCluster)
	}
	if out.ParallelOutboundMigrationsPerNode == nil {
		out.ParallelOutboundMigrationsPerNode = ptr(DefaultParallelOutboundMigrationsPerNode)
	}
	if out.ParallelMigrationThreads == nil {
		out.ParallelMigrationThreads = ptr(DefaultParallelMigrationThreads)
	}
	if out.AllowAutoConverge == nil {
		out.AllowAutoConverge = ptr(false)
	}
	if out.AllowPostCopy == nil {
		out.AllowPostCopy = ptr(false)
	}
	if out.AllowWorkloadDisruption == nil {
		// Upstream: disruption is allowed exactly when post-copy is.
		out.AllowWorkloadDisruption = ptr(*out.AllowPostCopy)
	}
	return out
}

// EffectiveSynchronizationPort returns spec.synchronizationPort, or 9185 when
// it is unset. The CRD schema only admits valid ports; should an invalid
// value get through anyway (e.g. an object built in Go), the default is
// returned as well.
func (kv *KubeVirt) EffectiveSynchronizationPort() int32 {
	if kv == nil || kv.Spec.SynchronizationPort == nil {
		return DefaultSynchronizationPort
	}
	p := kv.Spec.SynchronizationPort
	n := int(p.IntVal)
	if p.Type == intstr.String {
		v, err := strconv.Atoi(p.StrVal)
		if err != nil {
			return DefaultSynchronizationPort
		}
		n = v
	}
	if n < 1 || n > 65535 {
		return DefaultSynchronizationPort
	}
	return int32(n)
}

func ptr[T any](v T) *T { return &v }

func init() {
	knownTypes = append(knownTypes, &KubeVirt{}, &KubeVirtList{})
}
