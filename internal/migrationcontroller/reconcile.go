package migrationcontroller

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	migrationsv1alpha1 "github.com/cclm-io/cclm/api/migrations/v1alpha1"
	"github.com/cclm-io/cclm/internal/kube"
)

// reconciler is the driver around Step: it reads, calls Step, writes.
type reconciler struct {
	client    client.Client
	recorder  recorder.EventRecorder
	namespace string
	timeouts  Timeouts
	// written holds the writes the cache does not show yet: the next
	// decision waits for them (see expectCache).
	written *kube.Expectations
	now     func() time.Time
}

// staleRetry: after a write lost to a newer version, look again this soon
// (the newer version's own event usually comes first).
const staleRetry = time.Second

// maxEventNote is the longest note events.k8s.io accepts.
const maxEventNote = 1024

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.written.Pending(ctx, func(key string) {
		ctrl.LoggerFrom(ctx).Info("the cache did not show a write in time; going on", "object", key)
	}) {
		return ctrl.Result{RequeueAfter: kube.ExpectationsRetry}, nil
	}
	m := &kubevirtv1.VirtualMachineInstanceMigration{}
	if err := r.client.Get(ctx, req.NamespacedName, m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	obs, err := r.observe(ctx, m)
	if err != nil {
		return ctrl.Result{}, err
	}
	decision := Step(*obs)
	if err := r.apply(ctx, obs, decision); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return ctrl.Result{RequeueAfter: staleRetry}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: decision.RequeueAfter}, nil
}

// ---- reading ----

func (r *reconciler) observe(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration) (*Observed, error) {
	obs := &Observed{Migration: m, Now: r.now().Truncate(time.Second), Timeouts: r.timeouts}
	var err error
	if obs.VMI, err = r.getVMI(ctx, m.Namespace, m.Spec.VMIName); err != nil {
		return nil, err
	}
	if obs.Config, obs.PolicyName, err = r.migrationConfig(ctx, obs.VMI); err != nil {
		return nil, err
	}
	var all kubevirtv1.VirtualMachineInstanceMigrationList
	if err := r.client.List(ctx, &all); err != nil {
		return nil, err
	}
	obs.Siblings = siblings(m, all.Items)
	if obs.Active, err = r.activeMigrations(ctx, m, obs.VMI, all.Items); err != nil {
		return nil, err
	}
	if obs.VMIClaims, err = r.claimsOf(ctx, obs.VMI); err != nil {
		return nil, err
	}
	if NeedsCluster(m, obs.VMI) {
		if obs.Cluster, err = r.cluster(ctx); err != nil {
			return nil, err
		}
	}
	return obs, nil
}

func (r *reconciler) getVMI(ctx context.Context, namespace, name string) (*kubevirtv1.VirtualMachineInstance, error) {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	err := r.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, vmi)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return vmi, nil
}

// migrationConfig is the migration configuration for vmi (nil: none)
// and the name of the MigrationPolicy applied to it ("" for none): the
// effective configuration of the KubeVirt CR (the oldest, should there be
// several; the defaults without one) with the policy that matches the VMI
// and its Namespace applied over it (configFor).
func (r *reconciler) migrationConfig(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (kubevirtv1.MigrationConfiguration, string, error) {
	var list kubevirtv1.KubeVirtList
	if err := r.client.List(ctx, &list, client.InNamespace(r.namespace)); err != nil {
		return kubevirtv1.MigrationConfiguration{}, "", err
	}
	var oldest *kubevirtv1.KubeVirt
	for i := range list.Items {
		kv := &list.Items[i]
		if oldest == nil || kv.CreationTimestamp.Before(&oldest.CreationTimestamp) {
			oldest = kv
		}
	}
	cluster := oldest.EffectiveMigrationConfiguration()
	if vmi == nil {
		return cluster, "", nil
	}
	var policies migrationsv1alpha1.MigrationPolicyList
	// Without the MigrationPolicy CRD (a cluster whose CRDs predate it)
	// there can be no policy.
	if err := r.client.List(ctx, &policies); err != nil && !meta.IsNoMatchError(err) {
		return kubevirtv1.MigrationConfiguration{}, "", fmt.Errorf("list MigrationPolicies: %w", err)
	}
	namespace := &corev1.Namespace{}
	err := r.client.Get(ctx, client.ObjectKey{Name: vmi.Namespace}, namespace)
	switch {
	case apierrors.IsNotFound(err):
		// Matched with no namespace labels: only policies without a
		// namespaceSelector can match.
		namespace = &corev1.Namespace{}
	case err != nil:
		return kubevirtv1.MigrationConfiguration{}, "", fmt.Errorf("read the namespace of VMI %s/%s: %w", vmi.Namespace, vmi.Name, err)
	}
	config, name := configFor(cluster, policies.Items, vmi.Labels, namespace.Labels)
	return config, name, nil
}

// configFor is cluster with the policy of policies that matches a VMI of
// vmiLabels in a Namespace of namespaceLabels applied over it
// (migrationsv1alpha1.MatchPolicy, ApplyTo), and that policy's name; cluster
// and "" when none matches. A policy sets only what it names: an unset
// allowWorkloadDisruption keeps the cluster's (already resolved) value even
// when the policy sets allowPostCopy, as upstream.
func configFor(cluster kubevirtv1.MigrationConfiguration, policies []migrationsv1alpha1.MigrationPolicy, vmiLabels, namespaceLabels map[string]string) (kubevirtv1.MigrationConfiguration, string) {
	policy := migrationsv1alpha1.MatchPolicy(policies, vmiLabels, namespaceLabels)
	if policy == nil {
		return cluster, ""
	}
	config := *cluster.DeepCopy()
	policy.ApplyTo(&config)
	return config, policy.Name
}

// siblings are the other migrations of m's VMI.
func siblings(m *kubevirtv1.VirtualMachineInstanceMigration, all []kubevirtv1.VirtualMachineInstanceMigration) []kubevirtv1.VirtualMachineInstanceMigration {
	var out []kubevirtv1.VirtualMachineInstanceMigration
	for _, other := range all {
		if other.UID != m.UID && other.Namespace == m.Namespace && other.Spec.VMIName == m.Spec.VMIName {
			out = append(out, other)
		}
	}
	return out
}

// activeMigrations counts the other migrations holding a slot, those of
// them leaving the VMI's node, and those arriving at each node. A
// migration's source node is in its mirrored state once scheduled, else
// its VMI's node; its target node is there once scheduled.
func (r *reconciler) activeMigrations(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, all []kubevirtv1.VirtualMachineInstanceMigration) (ActiveMigrations, error) {
	var active ActiveMigrations
	sourceNode := ""
	if vmi != nil {
		sourceNode = vmi.Status.NodeName
	}
	for i := range all {
		other := &all[i]
		if other.UID == m.UID || other.IsFinal() || !holdsSlot(other.Status.Phase) {
			continue
		}
		active.InCluster++
		if state := other.Status.MigrationState; state != nil && state.TargetNode != "" {
			if active.IntoNode == nil {
				active.IntoNode = map[string]int{}
			}
			active.IntoNode[state.TargetNode]++
		}
		if sourceNode == "" || other.IsDecentralizedTarget() {
			continue
		}
		from, err := r.sourceNodeOf(ctx, other)
		if err != nil {
			return active, err
		}
		if from == sourceNode {
			active.FromSourceNode++
		}
	}
	return active, nil
}

func (r *reconciler) sourceNodeOf(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration) (string, error) {
	if state := m.Status.MigrationState; state != nil && state.SourceNode != "" {
		return state.SourceNode, nil
	}
	vmi, err := r.getVMI(ctx, m.Namespace, m.Spec.VMIName)
	if err != nil || vmi == nil {
		return "", err
	}
	return vmi.Status.NodeName, nil
}

// claimsOf are the VMI's PVCs that exist.
func (r *reconciler) claimsOf(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) ([]corev1.PersistentVolumeClaim, error) {
	if vmi == nil {
		return nil, nil
	}
	var claims []corev1.PersistentVolumeClaim
	for _, name := range vmi.Spec.ClaimNames() {
		pvc := corev1.PersistentVolumeClaim{}
		err := r.client.Get(ctx, client.ObjectKey{Namespace: vmi.Namespace, Name: name}, &pvc)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		claims = append(claims, pvc)
	}
	return claims, nil
}

func (r *reconciler) cluster(ctx context.Context) (*Cluster, error) {
	var nodes corev1.NodeList
	var vmis kubevirtv1.VirtualMachineInstanceList
	var pvcs corev1.PersistentVolumeClaimList
	var pvs corev1.PersistentVolumeList
	for _, list := range []client.ObjectList{&nodes, &vmis, &pvcs, &pvs} {
		if err := r.client.List(ctx, list); err != nil {
			return nil, err
		}
	}
	return &Cluster{Nodes: nodes.Items, VMIs: vmis.Items, PVCs: pvcs.Items, PVs: pvs.Items}, nil
}

// ---- writing ----

// apply writes the decision: the VMI's status first (migrationState, and
// the phase of a receiver that failed: the agents act on it; the VMIM's
// phase must not claim more than they can see), then a receiver's claims'
// selected node, then the VMIM's status, then its metadata (finalizer,
// watermark), then the events. Every write is conditional on the version
// observed.
func (r *reconciler) apply(ctx context.Context, obs *Observed, d Decision) error {
	if err := r.writeVMIStatus(ctx, obs, d); err != nil {
		return err
	}
	if err := r.placeClaims(ctx, obs, d.PlaceClaims); err != nil {
		return err
	}
	m := obs.Migration.DeepCopy()
	observedVersion := m.ResourceVersion
	if !equality.Semantic.DeepEqual(m.Status, d.Status) {
		m.Status = d.Status
		if err := r.client.Status().Update(ctx, m); err != nil {
			return fmt.Errorf("write status of migration %s/%s: %w", m.Namespace, m.Name, err)
		}
	}
	if setMetadata(m, d) {
		if err := r.client.Update(ctx, m); err != nil {
			return fmt.Errorf("write finalizer and annotations of migration %s/%s: %w", m.Namespace, m.Name, err)
		}
	}
	for _, e := range d.Events {
		r.recorder.Eventf(m, nil, e.Type, e.Reason, "Migrate", "%s", truncate(e.Message, maxEventNote))
	}
	if m.ResourceVersion != observedVersion {
		r.expectCache(&kubevirtv1.VirtualMachineInstanceMigration{}, m, observedVersion)
	}
	return nil
}

// writeVMIStatus writes the VMI's migrationState and marks it Failed, as
// the decision says, in one update.
func (r *reconciler) writeVMIStatus(ctx context.Context, obs *Observed, d Decision) error {
	vmi := obs.VMI
	if vmi == nil {
		return nil
	}
	updated := vmi.DeepCopy()
	if d.MigrationState != nil {
		updated.Status.MigrationState = d.MigrationState.DeepCopy()
	}
	if d.FailVMI != nil {
		markFailed(&updated.Status, *d.FailVMI, metav1.NewTime(obs.Now))
	}
	if equality.Semantic.DeepEqual(vmi.Status, updated.Status) {
		return nil
	}
	if err := r.client.Status().Update(ctx, updated); err != nil {
		return fmt.Errorf("write the status of VMI %s/%s: %w", vmi.Namespace, vmi.Name, err)
	}
	r.expectCache(&kubevirtv1.VirtualMachineInstance{}, updated, vmi.ResourceVersion)
	return nil
}

// markFailed sets the VMI phase Failed with why, as the node agents mark
// a VMI that failed: status.reason and the Ready condition.
func markFailed(status *kubevirtv1.VirtualMachineInstanceStatus, failure VMIFailure, now metav1.Time) {
	if status.Phase != kubevirtv1.Failed {
		status.Phase = kubevirtv1.Failed
		status.PhaseTransitionTimestamps = append(status.PhaseTransitionTimestamps,
			kubevirtv1.VirtualMachineInstancePhaseTransitionTimestamp{Phase: kubevirtv1.Failed, PhaseTransitionTimestamp: now})
	}
	status.Reason = failure.Message
	ready := kubevirtv1.VirtualMachineInstanceCondition{
		Type: kubevirtv1.VirtualMachineInstanceReady, Status: corev1.ConditionFalse,
		Reason: failure.Reason, Message: failure.Message, LastTransitionTime: now,
	}
	for i := range status.Conditions {
		if status.Conditions[i].Type == kubevirtv1.VirtualMachineInstanceReady {
			status.Conditions[i] = ready
			return
		}
	}
	status.Conditions = append(status.Conditions, ready)
}

// placeClaims annotates the claims with the chosen node, each patch
// conditional on the claim's observed version.
func (r *reconciler) placeClaims(ctx context.Context, obs *Observed, placement *ClaimPlacement) error {
	if placement == nil || obs.VMI == nil {
		return nil
	}
	for _, name := range placement.Claims {
		pvc := findClaim(obs.VMIClaims, obs.VMI.Namespace, name)
		if pvc == nil || pvc.Annotations[SelectedNodeAnnotation] == placement.Node {
			continue
		}
		updated := pvc.DeepCopy()
		if updated.Annotations == nil {
			updated.Annotations = map[string]string{}
		}
		updated.Annotations[SelectedNodeAnnotation] = placement.Node
		if err := r.client.Patch(ctx, updated, client.MergeFromWithOptions(pvc, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("annotate claim %s/%s with %s=%s: %w", pvc.Namespace, pvc.Name, SelectedNodeAnnotation, placement.Node, err)
		}
	}
	return nil
}

func findClaim(claims []corev1.PersistentVolumeClaim, namespace, name string) *corev1.PersistentVolumeClaim {
	for i := range claims {
		if claims[i].Namespace == namespace && claims[i].Name == name {
			return &claims[i]
		}
	}
	return nil
}

// setMetadata makes m's finalizer and watermark annotation what d says and
// reports whether anything changed.
func setMetadata(m *kubevirtv1.VirtualMachineInstanceMigration, d Decision) bool {
	changed := false
	if has := controllerutil.ContainsFinalizer(m, MigrationFinalizer); has != d.Finalizer {
		if d.Finalizer {
			controllerutil.AddFinalizer(m, MigrationFinalizer)
		} else {
			controllerutil.RemoveFinalizer(m, MigrationFinalizer)
		}
		changed = true
	}
	current, present := m.Annotations[WatermarkAnnotation]
	switch {
	case d.Watermark == nil && present:
		delete(m.Annotations, WatermarkAnnotation)
		changed = true
	case d.Watermark != nil && current != d.Watermark.annotationValue():
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations[WatermarkAnnotation] = d.Watermark.annotationValue()
		changed = true
	}
	return changed
}

// expectCache holds the next decision back until the cache shows a
// version of written newer than observedVersion, or that it is gone. With
// one reconcile at a time this makes the next decision see this one's
// effect: the slot it took, the target memory it reserved.
func (r *reconciler) expectCache(into client.Object, written client.Object, observedVersion string) {
	key := client.ObjectKeyFromObject(written)
	r.written.Expect(fmt.Sprintf("%T %s", into, key), func(ctx context.Context) bool {
		if err := r.client.Get(ctx, key, into); err != nil {
			return apierrors.IsNotFound(err)
		}
		return into.GetResourceVersion() != observedVersion
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cutting may split a UTF-8 sequence; drop the broken tail.
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}
