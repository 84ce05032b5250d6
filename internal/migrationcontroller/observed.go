package migrationcontroller

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Observed is everything Step decides on. The reconciler fills it from
// its cache; tests build it by hand.
type Observed struct {
	// Migration is the VMIM to decide for; never nil.
	Migration *kubevirtv1.VirtualMachineInstanceMigration
	// VMI is the VMI the migration names, nil when there is none.
	VMI *kubevirtv1.VirtualMachineInstance
	// Config is the KubeVirt CR's effective migration configuration
	// (EffectiveMigrationConfiguration: every field set). A running
	// migration goes by the copy recorded in its migrationState instead.
	Config kubevirtv1.MigrationConfiguration
	// Siblings are the other VMIMs of the same VMI (same namespace and
	// spec.vmiName), in any phase, decentralized ones included.
	Siblings []kubevirtv1.VirtualMachineInstanceMigration
	// Active counts the other migrations that hold a slot.
	Active ActiveMigrations
	// VMIClaims are the PVCs the VMI's volumes use (those that exist);
	// their sizes count toward the completion timeout.
	VMIClaims []corev1.PersistentVolumeClaim
	// Cluster is what choosing a target node needs; the reconciler reads
	// it only when NeedsCluster says so. Nil counts as an empty cluster.
	Cluster *Cluster
	// Now is the time of the decision.
	Now time.Time
	// Timeouts are the controller's own deadlines.
	Timeouts Timeouts
}

// ActiveMigrations counts migrations other than the observed one in the
// phases that hold a slot (Scheduling through Running).
type ActiveMigrations struct {
	// InCluster is the count across the cluster.
	InCluster int
	// FromSourceNode is the count of those leaving the observed VMI's node.
	FromSourceNode int
}

// Cluster is the scheduling input: every node, VMI, PVC and PV.
type Cluster struct {
	Nodes []corev1.Node
	VMIs  []kubevirtv1.VirtualMachineInstance
	PVCs  []corev1.PersistentVolumeClaim
	PVs   []corev1.PersistentVolume
}

// Timeouts bound the controller's waits; see the package documentation.
// Zero values are replaced by the defaults (withDefaults).
type Timeouts struct {
	// Unschedulable: how long a migration may stay in Scheduling without a
	// node that fits.
	Unschedulable time.Duration
	// TargetReady: from startTimestamp until the target agent reports
	// targetNodeAddress and targetNodeDomainDetected.
	TargetReady time.Duration
	// SourceStart: from TargetReady until the source reports progress.
	SourceStart time.Duration
	// Abort: from an abort request until the agents report its outcome.
	Abort time.Duration
	// Handover: between one agent reporting the end of the migration
	// (completed, or the VMI's node switched) and the other.
	Handover time.Duration
}

// Default timeouts.
const (
	DefaultUnschedulableTimeout = 2 * time.Minute
	DefaultTargetReadyTimeout   = 2 * time.Minute
	DefaultSourceStartTimeout   = 2 * time.Minute
	DefaultAbortTimeout         = time.Minute
	DefaultHandoverTimeout      = time.Minute
)

func (t Timeouts) withDefaults() Timeouts {
	orDefault := func(d, fallback time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return fallback
	}
	return Timeouts{
		Unschedulable: orDefault(t.Unschedulable, DefaultUnschedulableTimeout),
		TargetReady:   orDefault(t.TargetReady, DefaultTargetReadyTimeout),
		SourceStart:   orDefault(t.SourceStart, DefaultSourceStartTimeout),
		Abort:         orDefault(t.Abort, DefaultAbortTimeout),
		Handover:      orDefault(t.Handover, DefaultHandoverTimeout),
	}
}

// NeedsCluster reports whether Step needs Observed.Cluster for this
// migration: only choosing a target does, and listing every node, VMI, PVC
// and PV is not worth it otherwise.
func NeedsCluster(m *kubevirtv1.VirtualMachineInstanceMigration) bool {
	return m.DeletionTimestamp == nil && m.Status.Phase == kubevirtv1.MigrationScheduling
}

// Decision is what Step decided; the reconciler writes it.
type Decision struct {
	// Status is the VMIM's whole status as it should be: phase, phase
	// transition timestamps, conditions and the mirrored migrationState.
	Status kubevirtv1.VirtualMachineInstanceMigrationStatus
	// MigrationState, when not nil, is the VMI's status.migrationState as
	// it should be. It is written first: the VMIM's phase never runs ahead
	// of what the agents can see.
	MigrationState *kubevirtv1.VirtualMachineInstanceMigrationState
	// Finalizer: whether the VMIM should carry MigrationFinalizer.
	Finalizer bool
	// Watermark is the progress watermark to keep (nil: none).
	Watermark *Watermark
	// Events to record on the VMIM once the writes succeeded.
	Events []Event
	// RequeueAfter: look again after this long (0: only on a change).
	RequeueAfter time.Duration
}

// Phase is the phase decided.
func (d Decision) Phase() kubevirtv1.VirtualMachineInstanceMigrationPhase {
	return d.Status.Phase
}

// Event is a Kubernetes event about the VMIM.
type Event struct {
	// Type is corev1.EventTypeNormal or corev1.EventTypeWarning.
	Type    string
	Reason  string
	Message string
}
