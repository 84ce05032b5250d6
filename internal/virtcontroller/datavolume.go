package virtcontroller

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
)

// unsupportedSource says why cclm cannot fill a DataVolume from its source
// and what to do instead, or "" if it can. cclm makes blank volumes only:
// that is what a cross-cluster migration's target disks are, and what a
// guest that installs itself needs.
func unsupportedSource(source *cdiv1beta1.DataVolumeSource) string {
	var kind string
	switch {
	case source == nil:
		return "spec.source is missing: set spec.source.blank: {} for an empty disk"
	case source.Blank != nil:
		return ""
	case source.HTTP != nil:
		kind = "http"
	case source.Registry != nil:
		kind = "registry"
	case source.PVC != nil:
		kind = "pvc (clone)"
	default:
		return "spec.source names no source: set spec.source.blank: {} for an empty disk"
	}
	return fmt.Sprintf("source %s is not supported by cclm yet; only blank DataVolumes are: use spec.source.blank: {} "+
		"and write the data from inside the guest (for the built-in guest image use a containerDisk volume)", kind)
}

// errNoStorageClass: the DataVolume names no class and none is default.
var errNoStorageClass = errors.New("spec.storage.storageClassName is unset and no StorageClass is marked default; " +
	"set storageClassName, or install cclm's default class cclm-local")

// desiredPVC is the PVC a DataVolume asks for (without owner: the driver
// adds it). spec.pvc is taken as is; spec.storage is defaulted as CDI does:
// ReadWriteOnce, Filesystem, the default StorageClass.
func desiredPVC(dv *cdiv1beta1.DataVolume, defaultClass string) (*corev1.PersistentVolumeClaim, error) {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
		Name: dv.Name, Namespace: dv.Namespace, Labels: maps.Clone(dv.Labels),
	}}
	switch {
	case dv.Spec.PVC != nil:
		pvc.Spec = *dv.Spec.PVC.DeepCopy()
	case dv.Spec.Storage != nil:
		spec, err := claimSpecFromStorage(dv.Spec.Storage, defaultClass)
		if err != nil {
			return nil, err
		}
		pvc.Spec = spec
	default:
		return nil, errors.New("neither spec.storage nor spec.pvc is set")
	}
	return pvc, nil
}

func claimSpecFromStorage(storage *cdiv1beta1.StorageSpec, defaultClass string) (corev1.PersistentVolumeClaimSpec, error) {
	spec := corev1.PersistentVolumeClaimSpec{
		AccessModes: slices.Clone(storage.AccessModes),
		Resources:   *storage.Resources.DeepCopy(),
		VolumeMode:  storage.VolumeMode,
	}
	if len(spec.AccessModes) == 0 {
		spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	if spec.VolumeMode == nil {
		filesystem := corev1.PersistentVolumeFilesystem
		spec.VolumeMode = &filesystem
	}
	switch {
	case storage.StorageClassName != nil:
		class := *storage.StorageClassName
		spec.StorageClassName = &class
	case defaultClass != "":
		spec.StorageClassName = &defaultClass
	default:
		return spec, errNoStorageClass
	}
	return spec, nil
}

// dvObservation is everything a DataVolume's status is computed from.
type dvObservation struct {
	DV *cdiv1beta1.DataVolume
	// PVC is the DataVolume's claim, nil while there is none.
	PVC *corev1.PersistentVolumeClaim
	// WaitForFirstConsumer: the PVC's class binds only once a consumer is
	// scheduled.
	WaitForFirstConsumer bool
	// SourceProblem (unsupportedSource) fails the DataVolume.
	SourceProblem string
	// ClaimProblem says why the PVC cannot be made (yet).
	ClaimProblem string
	Now          time.Time
}

// dvVerdict is the phase and the why of it.
type dvVerdict struct {
	phase        cdiv1beta1.DataVolumePhase
	bound        corev1.ConditionStatus
	reason, note string
}

func judgeDataVolume(obs dvObservation) dvVerdict {
	pvc := obs.PVC
	switch {
	case obs.SourceProblem != "":
		return dvVerdict{cdiv1beta1.Failed, corev1.ConditionFalse, "UnsupportedSource", obs.SourceProblem}
	case pvc == nil && obs.ClaimProblem != "":
		return dvVerdict{cdiv1beta1.Pending, corev1.ConditionFalse, "ClaimNotCreated", "cannot create the PVC: " + obs.ClaimProblem}
	case pvc == nil:
		return dvVerdict{cdiv1beta1.Pending, corev1.ConditionFalse, "ClaimPending", "the PVC is being created"}
	case pvc.Status.Phase == corev1.ClaimBound:
		return dvVerdict{cdiv1beta1.Succeeded, corev1.ConditionTrue, "Bound", fmt.Sprintf("PVC %s is bound to %s", pvc.Name, pvc.Spec.VolumeName)}
	case pvc.Status.Phase == corev1.ClaimLost:
		return dvVerdict{cdiv1beta1.Failed, corev1.ConditionFalse, "ClaimLost", fmt.Sprintf("PVC %s lost its volume %s; delete the DataVolume and create it again", pvc.Name, pvc.Spec.VolumeName)}
	case obs.WaitForFirstConsumer:
		return dvVerdict{cdiv1beta1.WaitForFirstConsumer, corev1.ConditionFalse, "WaitForFirstConsumer",
			fmt.Sprintf("PVC %s waits for its first consumer: it is provisioned on the node a VMI using it is scheduled to", pvc.Name)}
	default:
		return dvVerdict{cdiv1beta1.Pending, corev1.ConditionFalse, "Pending", fmt.Sprintf("PVC %s waits for a volume", pvc.Name)}
	}
}

// dataVolumeStatus is the DataVolume's status for an observation, with
// CDI's conditions Bound, Ready and Running.
func dataVolumeStatus(obs dvObservation) cdiv1beta1.DataVolumeStatus {
	verdict := judgeDataVolume(obs)
	now := metav1.NewTime(obs.Now.Truncate(time.Second))
	status := *obs.DV.Status.DeepCopy()
	status.Phase = verdict.phase
	status.ClaimName = ""
	if obs.PVC != nil {
		status.ClaimName = obs.PVC.Name
	}
	status.Progress = "N/A"
	if verdict.phase == cdiv1beta1.Succeeded {
		status.Progress = "100.0%"
	}
	ready := corev1.ConditionFalse
	if verdict.phase == cdiv1beta1.Succeeded {
		ready = corev1.ConditionTrue
	}
	status.Conditions = setDVCondition(status.Conditions, cdiv1beta1.DataVolumeCondition{
		Type: cdiv1beta1.DataVolumeBound, Status: verdict.bound, Reason: verdict.reason, Message: verdict.note,
	}, now)
	status.Conditions = setDVCondition(status.Conditions, cdiv1beta1.DataVolumeCondition{
		Type: cdiv1beta1.DataVolumeReady, Status: ready, Reason: verdict.reason, Message: verdict.note,
	}, now)
	// Blank volumes need no import: nothing ever runs.
	status.Conditions = setDVCondition(status.Conditions, cdiv1beta1.DataVolumeCondition{
		Type: cdiv1beta1.DataVolumeRunning, Status: corev1.ConditionFalse, Reason: "NoImport", Message: "blank volumes need no import",
	}, now)
	return status
}

// dataVolumeReadiness sorts a VM's DataVolumes (nil: does not exist yet)
// into failed and still provisioning. WaitForFirstConsumer counts as ready:
// the VMI is that first consumer, so waiting for it would never end.
func dataVolumeReadiness(names []string, dataVolumes map[string]*cdiv1beta1.DataVolume) volumeReadiness {
	readiness := volumeReadiness{Referenced: len(names) > 0}
	for _, name := range names {
		dv := dataVolumes[name]
		switch {
		case dv == nil:
			readiness.Pending = append(readiness.Pending, fmt.Sprintf("DataVolume %s does not exist yet", name))
		case dv.Status.Phase == cdiv1beta1.Failed:
			readiness.Failed = append(readiness.Failed, fmt.Sprintf("DataVolume %s failed: %s", name, dvFailureMessage(dv)))
		case dv.Status.Phase == cdiv1beta1.Succeeded, dv.Status.Phase == cdiv1beta1.WaitForFirstConsumer, dv.Status.Phase == cdiv1beta1.PVCBound:
		default:
			readiness.Pending = append(readiness.Pending, fmt.Sprintf("DataVolume %s is %s", name, dvPhaseOrUnset(dv.Status.Phase)))
		}
	}
	return readiness
}

func dvFailureMessage(dv *cdiv1beta1.DataVolume) string {
	if c := dvCondition(dv, cdiv1beta1.DataVolumeReady); c != nil && c.Message != "" {
		return c.Message
	}
	return "phase Failed"
}

func dvPhaseOrUnset(phase cdiv1beta1.DataVolumePhase) string {
	if phase == "" {
		return "new (no phase yet)"
	}
	return string(phase)
}
