package migrationcontroller

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// Observed is everything Step decides on. The reconciler fills it from
// its cache; tests build it by hand.
type Observed struct {
	// Migration is the VMIM to decide for; never nil.
	Migration *kubevirtv1.VirtualMachineInstanceMigration
	// VMI is the VMI the migration names, nil when there is none.
	VMI *kubevirtv1.VirtualMachineInstance
	// Config is the migration configuration for this VMI: the KubeVirt
	// CR's effective one (EffectiveMigrationConfiguration: every field
	// set) with the matching MigrationPolicy, if any, applied over it
	// (every field stays set). A running migration goes by the copy
	// recorded in its migrationState instead.
	Config kubevirtv1.MigrationConfiguration
	// PolicyName is the MigrationPolicy applied to Config, "" for none.
	PolicyName string
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
// phases that hold a slot (Scheduling or Synchronizing through Running;
// a receiving half from Scheduled, once its source synchronized and a
// node was chosen for it).
type ActiveMigrations struct {
	// InCluster is the count across the cluster.
	InCluster int
	// FromSourceNode is the count of those leaving the observed VMI's node.
	FromSourceNode int
	// IntoNode counts those arriving at each node (the target node of
	// their migrationState, once they have one): in-cluster migrations
	// and the receiving halves of decentralized ones.
	IntoNode map[string]int
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
	// Sync bounds the synchronization with the peer cluster of a
	// decentralized migration: on the source, from startTimestamp until
	// the target cluster's node is ready (targetNodeAddress and
	// targetNodeDomainDetected); on the target, from entering
	// WaitingForSync until the source cluster pushed its half.
	Sync time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	orDefault := func(d, fallback time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return fallback
	}
	return Timeouts{
		Unschedulable: orDefault(t.Unschedulable, kubevirtv1.DefaultMigrationUnschedulableTimeout),
		TargetReady:   orDefault(t.TargetReady, kubevirtv1.DefaultMigrationTargetReadyTimeout),
		SourceStart:   orDefault(t.SourceStart, kubevirtv1.DefaultMigrationSourceStartTimeout),
		Abort:         orDefault(t.Abort, kubevirtv1.DefaultMigrationAbortTimeout),
		Handover:      orDefault(t.Handover, kubevirtv1.DefaultMigrationHandoverTimeout),
		Sync:          orDefault(t.Sync, kubevirtv1.DefaultMigrationSyncTimeout),
	}
}

// NeedsCluster reports whether Step needs Observed.Cluster for migration
// m of VMI vmi (nil if there is none): only choosing a target node does,
// and listing every node, VMI, PVC and PV is not worth it otherwise. A
// classic migration chooses in Pending (as soon as a slot is free) or
// Scheduling; a receive migration in WaitingForSync, once the source
// cluster pushed its half.
func NeedsCluster(m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance) bool {
	if !choosesNode(m) {
		return false
	}
	if roleOf(m) == roleClassic {
		return true
	}
	if vmi == nil {
		return false
	}
	state := vmi.Status.MigrationState
	return state != nil && state.SourceState != nil && state.SourceState.MigrationUID != ""
}

// choosesNode: m is in the phase where it chooses its target node (it
// may still wait for what it needs to).
func choosesNode(m *kubevirtv1.VirtualMachineInstanceMigration) bool {
	if m.DeletionTimestamp != nil {
		return false
	}
	switch roleOf(m) {
	case roleClassic:
		return m.Status.Phase == kubevirtv1.MigrationPending || m.Status.Phase == kubevirtv1.MigrationScheduling
	case roleTarget:
		return m.Status.Phase == kubevirtv1.MigrationWaitingForSync
	}
	return false
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
	// PlaceClaims, when not nil, asks for SelectedNodeAnnotation on a
	// receiver VMI's unbound claims that lack it (written after the VMI's
	// state, before the VMIM's status).
	PlaceClaims *ClaimPlacement
	// FailVMI, when not nil, marks the VMI Failed, in the same write as
	// MigrationState. Only ever a receiver VMI on no node (phase
	// WaitingForSync) whose migration failed.
	FailVMI *VMIFailure
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

// ClaimPlacement names the node chosen for a receiver VMI's claims.
type ClaimPlacement struct {
	// Node is the value of SelectedNodeAnnotation.
	Node string
	// Claims are PVC names in the VMI's namespace, sorted.
	Claims []string
}

// VMIFailure is why a VMI is marked Failed.
type VMIFailure struct {
	// Reason is CamelCase, for the VMI's Ready condition.
	Reason string
	// Message is the VMI's status.reason and the condition's message.
	Message string
}

// SelectedNodeAnnotation is the annotation PlaceClaims asks for
// (kube-scheduler's, as the VMI scheduler sets it).
const SelectedNodeAnnotation = scheduling.SelectedNodeAnnotation

// Event is a Kubernetes event about the VMIM.
type Event struct {
	// Type is corev1.EventTypeNormal or corev1.EventTypeWarning.
	Type    string
	Reason  string
	Message string
}
