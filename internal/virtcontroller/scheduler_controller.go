package virtcontroller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// scheduler places new VMIs on nodes (Schedule decides) and keeps the
// kubevirt.io/nodeName label in line with status.nodeName.
//
// It runs one reconcile at a time and, after placing a VMI, waits until its
// cache shows the placement: the next VMI is then weighed against nodes
// that already count the previous one, so two VMIs never both take the
// same free memory (kube-scheduler's assume cache, the simple way).
type scheduler struct {
	client   client.Client
	recorder recorder.EventRecorder
	now      func() time.Time
	// placed holds the placements the cache does not show yet: the next
	// placement waits for them (see expectCache).
	placed *kube.Expectations
}

// cacheCatchUp bounds the wait for the cache to show a placement.
const cacheCatchUp = 10 * time.Second

// newScheduler places VMIs with client's view of the cluster.
func newScheduler(c client.Client, r recorder.EventRecorder) *scheduler {
	return &scheduler{client: c, recorder: r, now: time.Now, placed: kube.NewExpectations(cacheCatchUp)}
}

func (s *scheduler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("vmi-scheduler").
		// Any VMI change may free room (ended, deleted, moved): look at
		// every waiting VMI again, and at the changed one itself.
		Watches(&kubevirtv1.VirtualMachineInstance{}, handler.EnqueueRequestsFromMapFunc(s.waitingVMIsAnd)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(s.waitingVMIsAnd)).
		Watches(&corev1.PersistentVolume{}, handler.EnqueueRequestsFromMapFunc(s.waitingVMIsAnd)).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(s.waitingVMIsAnd)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(s)
}

// waitingVMIsAnd maps any event to the VMIs waiting for a node, plus the
// object itself if it is a VMI.
func (s *scheduler) waitingVMIsAnd(ctx context.Context, obj client.Object) []reconcile.Request {
	var requests []reconcile.Request
	if _, isVMI := obj.(*kubevirtv1.VirtualMachineInstance); isVMI {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
	}
	var vmis kubevirtv1.VirtualMachineInstanceList
	if err := s.client.List(ctx, &vmis); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list VMIs waiting for a node")
		return requests
	}
	for i := range vmis.Items {
		if awaitsNode(&vmis.Items[i]) {
			requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&vmis.Items[i])})
		}
	}
	return requests
}

// awaitsNode: a VMI this scheduler must place. Receivers are placed by the
// cross-cluster flow.
func awaitsNode(vmi *kubevirtv1.VirtualMachineInstance) bool {
	if vmi.DeletionTimestamp != nil || vmi.Status.NodeName != "" || isReceiver(vmi) {
		return false
	}
	switch vmi.Status.Phase {
	case kubevirtv1.VmPhaseUnset, kubevirtv1.Pending, kubevirtv1.Scheduling:
		return true
	}
	return false
}

func (s *scheduler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := s.client.Get(ctx, req.NamespacedName, vmi); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if vmi.Status.NodeName != "" {
		return ctrl.Result{}, s.syncNodeLabel(ctx, vmi)
	}
	if !awaitsNode(vmi) {
		return ctrl.Result{}, nil
	}
	if s.placed.Pending(ctx, func(key string) {
		ctrl.LoggerFrom(ctx).Info("cache did not show a placement in time; scheduling on", "vmi", key)
	}) {
		return ctrl.Result{RequeueAfter: kube.ExpectationsRetry}, nil
	}
	snapshot, err := s.snapshot(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	node, why := scheduling.Schedule(vmi, snapshot.nodes, scheduling.VMIsByNode(snapshot.vmis), snapshot.pvcs, snapshot.pvs)
	if node == "" {
		return ctrl.Result{}, s.markUnschedulable(ctx, vmi, why)
	}
	return ctrl.Result{}, s.bind(ctx, vmi, node, why, snapshot.pvcs)
}

// clusterSnapshot is what Schedule weighs, read from the cache.
type clusterSnapshot struct {
	nodes []corev1.Node
	vmis  []kubevirtv1.VirtualMachineInstance
	pvcs  []corev1.PersistentVolumeClaim
	pvs   []corev1.PersistentVolume
}

func (s *scheduler) snapshot(ctx context.Context) (*clusterSnapshot, error) {
	var nodes corev1.NodeList
	var vmis kubevirtv1.VirtualMachineInstanceList
	var pvcs corev1.PersistentVolumeClaimList
	var pvs corev1.PersistentVolumeList
	// All PVCs, not only the VMI's namespace: claims of other namespaces
	// placed on a node reserve its storage too.
	for _, list := range []client.ObjectList{&nodes, &vmis, &pvcs, &pvs} {
		if err := s.client.List(ctx, list); err != nil {
			return nil, err
		}
	}
	return &clusterSnapshot{nodes: nodes.Items, vmis: vmis.Items, pvcs: pvcs.Items, pvs: pvs.Items}, nil
}

// markUnschedulable records why no node fits: phase Pending, PodScheduled
// False/Unschedulable, and a FailedScheduling event when the why changed.
func (s *scheduler) markUnschedulable(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, why string) error {
	now := metav1.NewTime(s.now().Truncate(time.Second))
	status := *vmi.Status.DeepCopy()
	if status.Phase == kubevirtv1.VmPhaseUnset {
		status = withPhase(status, kubevirtv1.Pending, now)
	}
	status.Conditions = setVMICondition(status.Conditions, kubevirtv1.VirtualMachineInstanceCondition{
		Type: PodScheduled, Status: corev1.ConditionFalse, Reason: ReasonUnschedulable, Message: why,
	}, now)
	if equality.Semantic.DeepEqual(vmi.Status, status) {
		return nil
	}
	updated := vmi.DeepCopy()
	updated.Status = status
	if err := s.client.Status().Update(ctx, updated); err != nil {
		return ignoreStale(err)
	}
	s.recorder.Eventf(updated, nil, corev1.EventTypeWarning, "FailedScheduling", "Schedule", "%s", why)
	return nil
}

// bind places the VMI: first the storage learns the node (so that the node
// agent provisions there), then the VMI's status, then its label.
func (s *scheduler) bind(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, node, why string, pvcs []corev1.PersistentVolumeClaim) error {
	if err := s.selectNodeForClaims(ctx, vmi, node, pvcs); err != nil {
		return err
	}
	now := metav1.NewTime(s.now().Truncate(time.Second))
	updated := vmi.DeepCopy()
	updated.Status.NodeName = node
	updated.Status = withPhase(updated.Status, kubevirtv1.Scheduled, now)
	updated.Status.Conditions = setVMICondition(updated.Status.Conditions, kubevirtv1.VirtualMachineInstanceCondition{
		Type: PodScheduled, Status: corev1.ConditionTrue, Reason: "Scheduled", Message: "assigned to node " + node + ": " + why,
	}, now)
	if err := s.client.Status().Update(ctx, updated); err != nil {
		return ignoreStale(err)
	}
	s.recorder.Eventf(updated, nil, corev1.EventTypeNormal, "Scheduled", "Schedule",
		"assigned %s/%s to node %s: %s", vmi.Namespace, vmi.Name, node, why)
	if err := s.syncNodeLabel(ctx, updated); err != nil {
		return err
	}
	s.expectCache(updated)
	return nil
}

// selectNodeForClaims sets volume.kubernetes.io/selected-node on the VMI's
// unbound claims, as kube-scheduler does for a pod's.
func (s *scheduler) selectNodeForClaims(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, node string, pvcs []corev1.PersistentVolumeClaim) error {
	for _, claim := range vmi.Spec.ClaimNames() {
		pvc := scheduling.FindPVC(pvcs, vmi.Namespace, claim)
		if pvc == nil || pvc.Spec.VolumeName != "" || pvc.Annotations[scheduling.SelectedNodeAnnotation] == node {
			continue
		}
		patch := client.MergeFrom(pvc.DeepCopy())
		annotated := pvc.DeepCopy()
		if annotated.Annotations == nil {
			annotated.Annotations = map[string]string{}
		}
		annotated.Annotations[scheduling.SelectedNodeAnnotation] = node
		if err := s.client.Patch(ctx, annotated, patch); err != nil {
			return fmt.Errorf("select node %s for PVC %s/%s: %w", node, pvc.Namespace, pvc.Name, err)
		}
	}
	return nil
}

// syncNodeLabel makes label kubevirt.io/nodeName say status.nodeName; the
// node agents select their VMIs by it. A merge patch, so that finalizers
// and labels written by others stay as they are.
func (s *scheduler) syncNodeLabel(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	if vmi.Labels[kubevirtv1.NodeNameLabel] == vmi.Status.NodeName {
		return nil
	}
	patch := client.MergeFrom(vmi.DeepCopy())
	labelled := vmi.DeepCopy()
	if labelled.Labels == nil {
		labelled.Labels = map[string]string{}
	}
	labelled.Labels[kubevirtv1.NodeNameLabel] = vmi.Status.NodeName
	if err := s.client.Patch(ctx, labelled, patch); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

// expectCache holds the next placement back until the cache shows the VMI
// on its node and its claims' selected node, which it counts on.
func (s *scheduler) expectCache(placed *kubevirtv1.VirtualMachineInstance) {
	key := client.ObjectKeyFromObject(placed)
	s.placed.Expect(key.String(), func(ctx context.Context) bool {
		current := &kubevirtv1.VirtualMachineInstance{}
		if err := s.client.Get(ctx, key, current); err != nil {
			return apierrors.IsNotFound(err)
		}
		if current.UID != placed.UID {
			return true // replaced meanwhile: nothing left to wait for
		}
		return current.Status.NodeName != "" && s.claimsShowNode(ctx, placed)
	})
}

func (s *scheduler) claimsShowNode(ctx context.Context, placed *kubevirtv1.VirtualMachineInstance) bool {
	for _, claim := range placed.Spec.ClaimNames() {
		pvc := &corev1.PersistentVolumeClaim{}
		if err := s.client.Get(ctx, client.ObjectKey{Namespace: placed.Namespace, Name: claim}, pvc); err != nil {
			continue // gone or unreadable: nothing to count on
		}
		if pvc.Spec.VolumeName == "" && pvc.Annotations[scheduling.SelectedNodeAnnotation] != placed.Status.NodeName {
			return false
		}
	}
	return true
}

// ignoreStale: a conflict or a vanished object means the VMI changed, and
// its watch event brings it back.
func ignoreStale(err error) error {
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
