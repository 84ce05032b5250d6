package virtcontroller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// dataVolumeReconciler makes each DataVolume's PVC and reports the
// DataVolume's phase (judgeDataVolume decides it).
type dataVolumeReconciler struct {
	client   client.Client
	recorder recorder.EventRecorder
	now      func() time.Time
}

func (r *dataVolumeReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("datavolume").
		For(&cdiv1beta1.DataVolume{}).
		// A DataVolume's PVC has its name; watching by name also follows a
		// PVC made before the DataVolume.
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(sameName)).
		// A default class appearing unblocks DataVolumes that lacked one.
		Watches(&storagev1.StorageClass{}, handler.EnqueueRequestsFromMapFunc(r.dataVolumesWithoutClaim)).
		Complete(r)
}

func (r *dataVolumeReconciler) dataVolumesWithoutClaim(ctx context.Context, _ client.Object) []reconcile.Request {
	var dvs cdiv1beta1.DataVolumeList
	if err := r.client.List(ctx, &dvs); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list DataVolumes")
		return nil
	}
	var requests []reconcile.Request
	for i := range dvs.Items {
		if dvs.Items[i].Status.ClaimName == "" {
			requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&dvs.Items[i])})
		}
	}
	return requests
}

func (r *dataVolumeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	dv := &cdiv1beta1.DataVolume{}
	if err := r.client.Get(ctx, req.NamespacedName, dv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if dv.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // the garbage collector takes the PVC along
	}
	obs := dvObservation{DV: dv, SourceProblem: unsupportedSource(dv.Spec.Source), Now: r.now()}
	if obs.SourceProblem == "" {
		// Nothing half-created: an unsupported DataVolume gets no PVC.
		pvc, problem, err := r.ensureClaim(ctx, dv)
		if err != nil {
			return ctrl.Result{}, err
		}
		obs.PVC, obs.ClaimProblem = pvc, problem
		if pvc != nil {
			if obs.WaitForFirstConsumer, err = r.bindsLate(ctx, pvc); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	return ctrl.Result{}, r.writeStatus(ctx, dv, dataVolumeStatus(obs))
}

// ensureClaim returns the DataVolume's PVC, creating it if missing; problem
// says why it cannot be created yet (no storage class).
func (r *dataVolumeReconciler) ensureClaim(ctx context.Context, dv *cdiv1beta1.DataVolume) (pvc *corev1.PersistentVolumeClaim, problem string, err error) {
	pvc = &corev1.PersistentVolumeClaim{}
	switch err := r.client.Get(ctx, client.ObjectKeyFromObject(dv), pvc); {
	case err == nil:
		return pvc, "", nil
	case !apierrors.IsNotFound(err):
		return nil, "", err
	}
	var classes storagev1.StorageClassList
	if err := r.client.List(ctx, &classes); err != nil {
		return nil, "", err
	}
	desired, err := desiredPVC(dv, scheduling.DefaultStorageClass(classes.Items))
	if err != nil {
		return nil, err.Error(), nil
	}
	desired.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(dv, cdiv1beta1.GroupVersion.WithKind("DataVolume"))}
	if err := r.client.Create(ctx, desired); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, "", nil // the cache had not seen it; its event follows
		}
		r.recorder.Eventf(dv, nil, corev1.EventTypeWarning, "FailedClaimCreate", "CreateClaim", "cannot create PVC %s: %v", desired.Name, err)
		return nil, "", fmt.Errorf("create PVC %s/%s: %w", desired.Namespace, desired.Name, err)
	}
	size := desired.Spec.Resources.Requests[corev1.ResourceStorage]
	r.recorder.Eventf(dv, desired, corev1.EventTypeNormal, "ClaimCreated", "CreateClaim",
		"created PVC %s: %s, class %s, %v", desired.Name, size.String(), ptrOr(desired.Spec.StorageClassName, "(cluster default)"), desired.Spec.AccessModes)
	return desired, "", nil
}

// bindsLate: the PVC's class binds it only once its consumer is placed.
func (r *dataVolumeReconciler) bindsLate(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (bool, error) {
	name := ptrOr(pvc.Spec.StorageClassName, "")
	if name == "" {
		return false, nil
	}
	class := &storagev1.StorageClass{}
	if err := r.client.Get(ctx, client.ObjectKey{Name: name}, class); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	mode := class.VolumeBindingMode
	return mode != nil && *mode == storagev1.VolumeBindingWaitForFirstConsumer, nil
}

func (r *dataVolumeReconciler) writeStatus(ctx context.Context, dv *cdiv1beta1.DataVolume, status cdiv1beta1.DataVolumeStatus) error {
	if equality.Semantic.DeepEqual(dv.Status, status) {
		return nil
	}
	updated := dv.DeepCopy()
	updated.Status = status
	if err := r.client.Status().Update(ctx, updated); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("update status of DataVolume %s/%s: %w", dv.Namespace, dv.Name, err)
	}
	if status.Phase != dv.Status.Phase {
		r.eventPhase(updated)
	}
	return nil
}

// eventPhase tells of a phase change, with the Ready condition's why.
func (r *dataVolumeReconciler) eventPhase(dv *cdiv1beta1.DataVolume) {
	eventType, reason, note := corev1.EventTypeNormal, string(dv.Status.Phase), ""
	if c := dvCondition(dv, cdiv1beta1.DataVolumeReady); c != nil {
		note = c.Message
	}
	if dv.Status.Phase == cdiv1beta1.Failed {
		eventType = corev1.EventTypeWarning
	}
	r.recorder.Eventf(dv, nil, eventType, reason, "UpdatePhase", "DataVolume is %s: %s", dv.Status.Phase, note)
}

func ptrOr(s *string, fallback string) string {
	if s == nil {
		return fallback
	}
	return *s
}
