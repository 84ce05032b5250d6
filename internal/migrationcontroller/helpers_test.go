package migrationcontroller

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	migrationsv1alpha1 "github.com/cclm-io/cclm/api/migrations/v1alpha1"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// The fixtures: VMI "vm" in namespace "ns" runs on node "a" with 1Gi of
// memory; migration "m1" (UID "uid-m1") moves it; nodes a and b are
// ready and roomy.

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const ns, vmiName, uid = "ns", "vm", types.UID("uid-m1")

func at(d time.Duration) time.Time { return t0.Add(d) }

func mt(d time.Duration) metav1.Time { return metav1.NewTime(at(d)) }

func mtp(d time.Duration) *metav1.Time {
	t := mt(d)
	return &t
}

type migrationOption func(*kubevirtv1.VirtualMachineInstanceMigration)

// migration is m1 in phase, with the finalizer once past unset, entered
// at phaseAt.
func migration(phase kubevirtv1.VirtualMachineInstanceMigrationPhase, options ...migrationOption) *kubevirtv1.VirtualMachineInstanceMigration {
	m := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: "m1", Namespace: ns, UID: uid, CreationTimestamp: mt(0)},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: vmiName},
		Status:     kubevirtv1.VirtualMachineInstanceMigrationStatus{Phase: phase},
	}
	if phase != kubevirtv1.MigrationPhaseUnset {
		m.Finalizers = []string{MigrationFinalizer}
		m.Status.PhaseTransitionTimestamps = []kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp{
			{Phase: phase, PhaseTransitionTimestamp: mt(0)},
		}
	}
	for _, option := range options {
		option(m)
	}
	return m
}

func enteredAt(d time.Duration) migrationOption {
	return func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		m.Status.PhaseTransitionTimestamps[len(m.Status.PhaseTransitionTimestamps)-1].PhaseTransitionTimestamp = mt(d)
	}
}

func deleted(m *kubevirtv1.VirtualMachineInstanceMigration) {
	m.DeletionTimestamp = mtp(0)
}

func withoutFinalizer(m *kubevirtv1.VirtualMachineInstanceMigration) {
	m.Finalizers = nil
}

func named(name string, uid types.UID, created time.Duration) migrationOption {
	return func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		m.Name, m.UID, m.CreationTimestamp = name, uid, mt(created)
	}
}

func sendTo(m *kubevirtv1.VirtualMachineInstanceMigration) {
	m.Spec.SendTo = &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: "x", ConnectURL: "10.0.0.1:9185"}
}

func withCondition(t kubevirtv1.VirtualMachineInstanceMigrationConditionType, reason string, since time.Duration) migrationOption {
	return func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		m.Status.Conditions = append(removeCondition(m.Status.Conditions, t), kubevirtv1.VirtualMachineInstanceMigrationCondition{
			Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: "earlier", LastTransitionTime: mt(since),
		})
	}
}

func abortRequestedAt(reason string, since time.Duration) migrationOption {
	return withCondition(ConditionAbortRequested, reason, since)
}

func watermarkAt(remaining, transferred int64, since time.Duration) migrationOption {
	return func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		w := &Watermark{RemainingBytes: remaining, TransferredBytes: transferred, Since: mt(since)}
		m.Annotations = map[string]string{WatermarkAnnotation: w.annotationValue()}
	}
}

func mirrored(state *kubevirtv1.VirtualMachineInstanceMigrationState) migrationOption {
	return func(m *kubevirtv1.VirtualMachineInstanceMigration) { m.Status.MigrationState = state.DeepCopy() }
}

type vmiOption func(*kubevirtv1.VirtualMachineInstance)

// runningVMI is vm, Running and LiveMigratable on node a, 1Gi of memory.
func runningVMI(options ...vmiOption) *kubevirtv1.VirtualMachineInstance {
	memory := resource.MustParse("1Gi")
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: vmiName, Namespace: ns, UID: "uid-vmi"},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{
			Memory: &kubevirtv1.Memory{Guest: &memory},
		}},
		Status: kubevirtv1.VirtualMachineInstanceStatus{
			Phase: kubevirtv1.Running, NodeName: "a",
			Conditions: []kubevirtv1.VirtualMachineInstanceCondition{{
				Type: kubevirtv1.VirtualMachineInstanceIsMigratable, Status: corev1.ConditionTrue, Reason: "Migratable",
			}},
		},
	}
	for _, option := range options {
		option(vmi)
	}
	return vmi
}

func onNode(node string) vmiOption {
	return func(vmi *kubevirtv1.VirtualMachineInstance) { vmi.Status.NodeName = node }
}

func vmiPhase(phase kubevirtv1.VirtualMachineInstancePhase) vmiOption {
	return func(vmi *kubevirtv1.VirtualMachineInstance) { vmi.Status.Phase = phase }
}

func vmiDeleting(vmi *kubevirtv1.VirtualMachineInstance) { vmi.DeletionTimestamp = mtp(0) }

func migratable(status corev1.ConditionStatus, reason, message string) vmiOption {
	return func(vmi *kubevirtv1.VirtualMachineInstance) {
		vmi.Status.Conditions = []kubevirtv1.VirtualMachineInstanceCondition{{
			Type: kubevirtv1.VirtualMachineInstanceIsMigratable, Status: status, Reason: reason, Message: message,
		}}
	}
}

func noConditions(vmi *kubevirtv1.VirtualMachineInstance) { vmi.Status.Conditions = nil }

func withState(state *kubevirtv1.VirtualMachineInstanceMigrationState) vmiOption {
	return func(vmi *kubevirtv1.VirtualMachineInstance) { vmi.Status.MigrationState = state }
}

func withClaim(claim string) vmiOption {
	return func(vmi *kubevirtv1.VirtualMachineInstance) {
		vmi.Spec.Volumes = append(vmi.Spec.Volumes, kubevirtv1.Volume{
			Name: claim, PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		})
	}
}

type stateOption func(*kubevirtv1.VirtualMachineInstanceMigrationState)

// state is m1's migrationState as the controller writes it on Scheduled
// at t0 (a to b, pre-copy, default configuration), changed by options.
func state(options ...stateOption) *kubevirtv1.VirtualMachineInstanceMigrationState {
	config := (*kubevirtv1.KubeVirt)(nil).EffectiveMigrationConfiguration()
	s := &kubevirtv1.VirtualMachineInstanceMigrationState{
		MigrationUID: uid, SourceNode: "a", TargetNode: "b", StartTimestamp: mtp(0),
		Mode: kubevirtv1.MigrationPreCopy, MigrationConfiguration: &config,
	}
	for _, option := range options {
		option(s)
	}
	return s
}

func targetListening(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.TargetNodeAddress = "192.168.201.2"
	s.TargetNodeDomainDetected = true
	s.TargetDirectMigrationNodePorts = map[string]int{"49152": 0}
}

func addressOnly(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	s.TargetNodeAddress = "192.168.201.2"
}

func progress(remaining, transferred, dirtyRate int64) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		targetListening(s)
		s.Progress = &kubevirtv1.MigrationProgress{
			RemainingBytes: remaining, TransferredBytes: transferred, TotalBytes: 1 << 30,
			DirtyRateBytesPerSecond: dirtyRate, Iteration: 3,
		}
	}
}

func completedAt(d time.Duration) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		targetListening(s)
		s.Completed = true
		s.EndTimestamp = mtp(d)
		s.Progress = &kubevirtv1.MigrationProgress{DowntimeMs: 25}
	}
}

func failedWith(reason string) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		s.Failed = true
		s.FailureReason = reason
		s.EndTimestamp = mtp(time.Minute)
	}
}

func abortFlag(s *kubevirtv1.VirtualMachineInstanceMigrationState) { s.AbortRequested = true }

func mode(m kubevirtv1.MigrationMode) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) { s.Mode = m }
}

func ownedBy(other types.UID) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) { s.MigrationUID = other }
}

func configured(change func(*kubevirtv1.MigrationConfiguration)) stateOption {
	return func(s *kubevirtv1.VirtualMachineInstanceMigrationState) { change(s.MigrationConfiguration) }
}

// goldPolicy is the MigrationPolicy "gold" the policy cases match: it
// allows post-copy and auto-converge, limits the bandwidth to 128Mi and
// gives 300 s per GiB; allowWorkloadDisruption it leaves to the cluster.
func goldPolicy() *migrationsv1alpha1.MigrationPolicy {
	bandwidth := resource.MustParse("128Mi")
	allow, perGiB := true, int64(300)
	return &migrationsv1alpha1.MigrationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "gold"},
		Spec: migrationsv1alpha1.MigrationPolicySpec{
			Selectors:         &migrationsv1alpha1.Selectors{VirtualMachineInstanceSelector: migrationsv1alpha1.LabelSelector{"tier": "gold"}},
			AllowAutoConverge: &allow, AllowPostCopy: &allow, BandwidthPerMigration: &bandwidth, CompletionTimeoutPerGiB: &perGiB,
		},
	}
}

// byGoldPolicy is the state's configuration with goldPolicy applied and
// its name recorded.
func byGoldPolicy(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
	goldPolicy().ApplyTo(s.MigrationConfiguration)
	name := "gold"
	s.MigrationPolicyName = &name
}

// underGoldPolicy: the reconciler matched goldPolicy for the VMI.
func underGoldPolicy(obs *Observed) {
	goldPolicy().ApplyTo(&obs.Config)
	obs.PolicyName = "gold"
}

// node is a ready, schedulable node with the memory given and 20Gi of
// storage.
func node(name, memory string) corev1.Node {
	resources := corev1.ResourceList{
		corev1.ResourceMemory:           resource.MustParse(memory),
		corev1.ResourceEphemeralStorage: resource.MustParse("20Gi"),
	}
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			scheduling.SchedulableLabel: "true", "kubernetes.io/hostname": name,
		}},
		Status: corev1.NodeStatus{
			Capacity: resources, Allocatable: resources,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

func notReady(n corev1.Node) corev1.Node {
	n.Status.Conditions[0].Status = corev1.ConditionFalse
	n.Status.Conditions[0].Reason = "NodeStatusUnknown"
	return n
}

// claim is a PVC of the given size, bound to PV pv-<name> when onNode is
// set, which is then local to that node.
func claim(name, size, onNode string) (corev1.PersistentVolumeClaim, []corev1.PersistentVolume) {
	request := corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}
	pvc := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: request}},
	}
	if onNode == "" {
		return pvc, nil
	}
	pvc.Spec.VolumeName = "pv-" + name
	pvc.Annotations = map[string]string{scheduling.SelectedNodeAnnotation: onNode}
	pv := corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-" + name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity: request,
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{onNode}}},
			}}}},
		},
	}
	return pvc, []corev1.PersistentVolume{pv}
}

type observedOption func(*Observed)

// observe is m with the VMI, the default configuration, at now.
func observe(m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, now time.Duration, options ...observedOption) Observed {
	obs := Observed{
		Migration: m, VMI: vmi, Now: at(now),
		Config:  (*kubevirtv1.KubeVirt)(nil).EffectiveMigrationConfiguration(),
		Cluster: &Cluster{Nodes: []corev1.Node{node("a", "8Gi"), node("b", "8Gi")}},
	}
	if vmi != nil {
		obs.Cluster.VMIs = []kubevirtv1.VirtualMachineInstance{*vmi}
	}
	for _, option := range options {
		option(&obs)
	}
	return obs
}

func withSiblings(others ...*kubevirtv1.VirtualMachineInstanceMigration) observedOption {
	return func(obs *Observed) {
		for _, other := range others {
			obs.Siblings = append(obs.Siblings, *other)
		}
	}
}

func active(inCluster, fromNode int) observedOption {
	return func(obs *Observed) { obs.Active = ActiveMigrations{InCluster: inCluster, FromSourceNode: fromNode} }
}

// arriving: the other active migrations arrive at these nodes, so many
// each.
func arriving(counts map[string]int) observedOption {
	return func(obs *Observed) { obs.Active.IntoNode = counts }
}

func limits(perCluster, perNode uint32) observedOption {
	return func(obs *Observed) {
		obs.Config.ParallelMigrationsPerCluster = &perCluster
		obs.Config.ParallelOutboundMigrationsPerNode = &perNode
	}
}

func nodes(list ...corev1.Node) observedOption {
	return func(obs *Observed) { obs.Cluster.Nodes = list }
}

func storage(pvcs []corev1.PersistentVolumeClaim, pvs []corev1.PersistentVolume) observedOption {
	return func(obs *Observed) {
		obs.Cluster.PVCs, obs.Cluster.PVs = pvcs, pvs
		obs.VMIClaims = pvcs
	}
}

func noCluster(obs *Observed) { obs.Cluster = nil }
