package virtcontroller

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// The three API groups have three condition types of the same shape; each
// helper below sets one condition, keeping lastTransitionTime when the
// status did not change (cluster-api style: the time says since when the
// status holds, not when the controller last wrote it).

func setVMICondition(conditions []kubevirtv1.VirtualMachineInstanceCondition, c kubevirtv1.VirtualMachineInstanceCondition, now metav1.Time) []kubevirtv1.VirtualMachineInstanceCondition {
	for i := range conditions {
		if conditions[i].Type != c.Type {
			continue
		}
		c.LastTransitionTime = conditions[i].LastTransitionTime
		if conditions[i].Status != c.Status || c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
		}
		conditions[i] = c
		return conditions
	}
	c.LastTransitionTime = now
	return append(conditions, c)
}

func vmiCondition(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType) *kubevirtv1.VirtualMachineInstanceCondition {
	if vmi == nil {
		return nil
	}
	for i := range vmi.Status.Conditions {
		if vmi.Status.Conditions[i].Type == t {
			return &vmi.Status.Conditions[i]
		}
	}
	return nil
}

func vmiConditionIs(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType, status corev1.ConditionStatus) bool {
	c := vmiCondition(vmi, t)
	return c != nil && c.Status == status
}

// carryVMTransitionTimes gives each condition of next the transition time
// of the same condition in prev if its status is unchanged, else now;
// conditions that already carry a time (mirrored from the VMI) keep it.
func carryVMTransitionTimes(prev, next []kubevirtv1.VirtualMachineCondition, now metav1.Time) {
	for i := range next {
		if !next[i].LastTransitionTime.IsZero() {
			continue
		}
		next[i].LastTransitionTime = now
		for _, old := range prev {
			if old.Type == next[i].Type && old.Status == next[i].Status && !old.LastTransitionTime.IsZero() {
				next[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
}

func setDVCondition(conditions []cdiv1beta1.DataVolumeCondition, c cdiv1beta1.DataVolumeCondition, now metav1.Time) []cdiv1beta1.DataVolumeCondition {
	for i := range conditions {
		if conditions[i].Type != c.Type {
			continue
		}
		c.LastTransitionTime = conditions[i].LastTransitionTime
		c.LastHeartbeatTime = conditions[i].LastHeartbeatTime
		if conditions[i].Status != c.Status || c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
		}
		conditions[i] = c
		return conditions
	}
	c.LastTransitionTime = now
	return append(conditions, c)
}

func dvCondition(dv *cdiv1beta1.DataVolume, t cdiv1beta1.DataVolumeConditionType) *cdiv1beta1.DataVolumeCondition {
	for i := range dv.Status.Conditions {
		if dv.Status.Conditions[i].Type == t {
			return &dv.Status.Conditions[i]
		}
	}
	return nil
}
