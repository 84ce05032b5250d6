// Package storage is the node agent's local volume provisioner: a sparse
// raw file per PersistentVolumeClaim of cclm's local StorageClass that is
// scheduled to this node, freed when its volume is released, and the
// lookups the VMI runtime makes of them (a disk's file, a migration
// target's volume once bound).
package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/cclm-io/cclm/internal/scheduling"
)

// The storage contract with the virt controller and kube-controller-manager:
// the class's provisioner, and the annotations the PV binder and the
// scheduler put on a PVC that waits for its first consumer.
const (
	storageProvisionerAnno  = "volume.kubernetes.io/storage-provisioner"
	provisionedByAnnotation = "pv.kubernetes.io/provisioned-by"
	diskFileSuffix          = ".img"
	// csiDriver names cclm's local volumes as a CSI driver would be named
	// (a DNS subdomain; the provisioner name has a slash).
	csiDriver                 = "local.cclm.io"
	provisioningFailedReason  = "ProvisioningFailed"
	provisioningSucceedReason = "ProvisioningSucceeded"
)

// Volumes provisions this node's local PersistentVolumes: a sparse raw file
// per PVC in the node's storage directory, and frees it when released.
type Volumes struct {
	client   client.Client
	recorder events.EventRecorder
	node     string
	dir      string
	budget   resource.Quantity // the node's ephemeral-storage capacity
}

// New makes the provisioner of a node's local volumes, kept as files in
// dir; budget is what the node offers in all.
func New(kube client.Client, recorder events.EventRecorder, node, dir string, budget resource.Quantity) *Volumes {
	return &Volumes{client: kube, recorder: recorder, node: node, dir: dir, budget: budget}
}

// SetupWithManager runs the provisioner (a volume for each PVC that waits
// for this node) and the deleter (this node's released volumes).
func (s *Volumes) SetupWithManager(mgr ctrl.Manager) error {
	pvcWanted := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		pvc, ok := obj.(*corev1.PersistentVolumeClaim)
		return ok && s.wantsUs(pvc)
	})
	err := ctrl.NewControllerManagedBy(mgr).Named("provisioner").
		For(&corev1.PersistentVolumeClaim{}, builder.WithPredicates(pvcWanted)).
		Complete(reconcile.Func(s.reconcilePVC))
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("deleter").
		For(&corev1.PersistentVolume{}).
		Complete(reconcile.Func(s.reconcilePV))
}

// pvName is the PV for a PVC, named as external provisioners do.
func pvName(pvc *corev1.PersistentVolumeClaim) string { return "pvc-" + string(pvc.UID) }

func (s *Volumes) filePath(pv string) string { return filepath.Join(s.dir, pv+diskFileSuffix) }

// wantsUs tells whether a PVC waits for this node's provisioner.
func (s *Volumes) wantsUs(pvc *corev1.PersistentVolumeClaim) bool {
	return pvc.Spec.VolumeName == "" && pvc.DeletionTimestamp == nil &&
		pvc.Annotations[scheduling.SelectedNodeAnnotation] == s.node &&
		pvc.Annotations[storageProvisionerAnno] == scheduling.LocalProvisioner
}

// ReconcilePVC provisions a PV for a PVC scheduled to this node.
func (s *Volumes) reconcilePVC(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pvc corev1.PersistentVolumeClaim
	if err := s.client.Get(ctx, req.NamespacedName, &pvc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !s.wantsUs(&pvc) {
		return ctrl.Result{}, nil
	}
	var existing corev1.PersistentVolume
	err := s.client.Get(ctx, client.ObjectKey{Name: pvName(&pvc)}, &existing)
	if err == nil {
		return ctrl.Result{}, nil // made earlier; the binder binds it
	}
	if !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if err := s.checkRoom(ctx, size); err != nil {
		s.recorder.Eventf(&pvc, nil, corev1.EventTypeWarning, provisioningFailedReason, "Provision", "%s", err.Error())
		return ctrl.Result{}, nil // retried when a PV is freed (watch on PVs)
	}
	pv := s.newPV(&pvc, size)
	if err := createSparseFile(s.filePath(pv.Name), size.Value()); err != nil {
		s.recorder.Eventf(&pvc, nil, corev1.EventTypeWarning, provisioningFailedReason, "Provision", "%s", err.Error())
		return ctrl.Result{}, err
	}
	if err := s.client.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
		_ = os.Remove(s.filePath(pv.Name)) // nothing half-created
		return ctrl.Result{}, fmt.Errorf("create PV for %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	s.recorder.Eventf(&pvc, nil, corev1.EventTypeNormal, provisioningSucceedReason, "Provision", "provisioned %s (%s) on node %s", pv.Name, size.String(), s.node)
	return ctrl.Result{}, nil
}

// checkRoom refuses a volume the node's storage budget cannot hold, so that
// no file is made that the node cannot back.
func (s *Volumes) checkRoom(ctx context.Context, size resource.Quantity) error {
	used, err := s.usedBytes(ctx)
	if err != nil {
		return err
	}
	if free := s.budget.Value() - used; size.Value() > free {
		return fmt.Errorf("node %s has %s of local storage left (%s in all), not enough for %s: use a smaller disk or another node",
			s.node, resource.NewQuantity(free, resource.BinarySI), s.budget.String(), size.String())
	}
	return nil
}

func (s *Volumes) usedBytes(ctx context.Context) (int64, error) {
	var pvs corev1.PersistentVolumeList
	if err := s.client.List(ctx, &pvs); err != nil {
		return 0, err
	}
	var used int64
	for _, pv := range pvs.Items {
		if s.owns(&pv) {
			quantity := pv.Spec.Capacity[corev1.ResourceStorage]
			used += quantity.Value()
		}
	}
	return used, nil
}

// owns tells whether this node holds the PV's data.
func (s *Volumes) owns(pv *corev1.PersistentVolume) bool {
	return pv.Annotations[provisionedByAnnotation] == scheduling.LocalProvisioner && pv.Annotations[scheduling.StorageNodeAnnotation] == s.node
}

// newPV describes a PVC's volume as a CSI volume of cclm's local driver:
// its data is a file on the node that the storage-node annotation names,
// which a live migration changes (node affinity could not be changed).
func (s *Volumes) newPV(pvc *corev1.PersistentVolumeClaim, size resource.Quantity) *corev1.PersistentVolume {
	volumeMode := corev1.PersistentVolumeFilesystem
	accessModes := pvc.Spec.AccessModes
	if len(accessModes) == 0 {
		accessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        pvName(pvc),
			Annotations: map[string]string{provisionedByAnnotation: scheduling.LocalProvisioner, scheduling.StorageNodeAnnotation: s.node},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   accessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              ptrValue(pvc.Spec.StorageClassName),
			VolumeMode:                    &volumeMode,
			ClaimRef: &corev1.ObjectReference{
				APIVersion: "v1", Kind: "PersistentVolumeClaim",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				CSI: &corev1.CSIPersistentVolumeSource{Driver: csiDriver, VolumeHandle: pvName(pvc)},
			},
		},
	}
}

func ptrValue(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// reconcilePV deletes this node's released volumes and their files.
func (s *Volumes) reconcilePV(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pv corev1.PersistentVolume
	if err := s.client.Get(ctx, req.NamespacedName, &pv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !s.owns(&pv) || pv.Status.Phase != corev1.VolumeReleased || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return ctrl.Result{}, nil
	}
	if err := os.Remove(s.filePath(pv.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ctrl.Result{}, fmt.Errorf("free %s: %w", pv.Name, err)
	}
	if err := s.client.Delete(ctx, &pv); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// DiskPath is the file behind a bound PVC on this node.
func (s *Volumes) DiskPath(ctx context.Context, namespace, claim string) (string, error) {
	var pvc corev1.PersistentVolumeClaim
	if err := s.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: claim}, &pvc); err != nil {
		return "", err
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return "", fmt.Errorf("PVC %s/%s is not bound yet", namespace, claim)
	}
	var pv corev1.PersistentVolume
	if err := s.client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, &pv); err != nil {
		return "", err
	}
	if !s.owns(&pv) {
		return "", fmt.Errorf("PVC %s/%s is bound to %s, whose data is not on node %s", namespace, claim, pv.Name, s.node)
	}
	return s.filePath(pv.Name), nil
}

// createSparseFile makes a file of size bytes that takes no space until
// written; the guest sees zeros, and a migration's mirror skips them.
func createSparseFile(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil // provisioned before a restart of the agent
	}
	if err != nil {
		return err
	}
	if err := file.Truncate(size); err != nil {
		file.Close()
		os.Remove(path)
		return err
	}
	return file.Close()
}

// volumeBindTimeout bounds a migration target's wait for a receiver's PVC
// to be bound.
const volumeBindTimeout = 2 * time.Minute

// volumePollInterval is how often waitBoundPV looks again.
const volumePollInterval = time.Second

// Volume is a bound claim's volume as a migration target needs it.
type Volume struct {
	// Path is the file that holds the volume's data on this node.
	Path string
	// Bytes is the volume's capacity.
	Bytes int64
	// Local tells whether this node holds the volume's data already (a
	// volume provisioned here for the migration), rather than another
	// node of the cluster (an in-cluster migration's source).
	Local bool
}

// WaitBound is the volume of a claim once it is bound, waiting for the
// binding up to volumeBindTimeout: a receiver's PVCs (decentralized
// migration) wait for their first consumer until the migration controller
// selects this node for them, and this node's provisioner then makes
// their volumes.
func (s *Volumes) WaitBound(ctx context.Context, namespace, claim string) (Volume, error) {
	pv, err := s.waitBoundPV(ctx, namespace, claim, volumeBindTimeout)
	if err != nil {
		return Volume{}, err
	}
	size := pv.Spec.Capacity[corev1.ResourceStorage]
	return Volume{Path: s.filePath(pv.Name), Bytes: size.Value(), Local: s.owns(pv)}, nil
}

func (s *Volumes) waitBoundPV(ctx context.Context, namespace, claim string, timeout time.Duration) (*corev1.PersistentVolume, error) {
	var pv *corev1.PersistentVolume
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, volumePollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		pv, lastErr = s.boundPV(ctx, namespace, claim)
		return lastErr == nil, nil
	})
	switch {
	case err == nil:
		return pv, nil
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: %w", lastErr, ctx.Err())
	default:
		return nil, fmt.Errorf("%w after waiting %s; a migration target's PVC is bound once it has annotation %s=%s and a StorageClass with provisioner %s (this node's provisioner then makes its volume): see the PVC's events",
			lastErr, timeout, scheduling.SelectedNodeAnnotation, s.node, scheduling.LocalProvisioner)
	}
}

// Adopt records that this node now holds the data of the claim's volume
// (a migration to this node has copied it), so that the scheduler places
// the VMI's next start here.
func (s *Volumes) Adopt(ctx context.Context, namespace, claim string) error {
	pv, err := s.boundPV(ctx, namespace, claim)
	if err != nil {
		return err
	}
	patch := client.MergeFrom(pv.DeepCopy())
	if pv.Annotations == nil {
		pv.Annotations = map[string]string{}
	}
	pv.Annotations[scheduling.StorageNodeAnnotation] = s.node
	if err := s.client.Patch(ctx, pv, patch); err != nil {
		return fmt.Errorf("move volume %s to node %s: %w", pv.Name, s.node, err)
	}
	return nil
}

// boundPV is the PV a PVC is bound to.
func (s *Volumes) boundPV(ctx context.Context, namespace, claim string) (*corev1.PersistentVolume, error) {
	var pvc corev1.PersistentVolumeClaim
	if err := s.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: claim}, &pvc); err != nil {
		return nil, err
	}
	if pvc.Spec.VolumeName == "" {
		return nil, fmt.Errorf("PVC %s/%s is not bound", namespace, claim)
	}
	var pv corev1.PersistentVolume
	if err := s.client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, &pv); err != nil {
		return nil, err
	}
	return &pv, nil
}
