package virtcontroller

import (
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// controllerRef makes vm the controller of what it creates: deleting the
// VM deletes them (garbage collector), and with foreground deletion the VM
// stays until they are gone (blockOwnerDeletion).
func controllerRef(vm *kubevirtv1.VirtualMachine) metav1.OwnerReference {
	return *metav1.NewControllerRef(vm, kubevirtv1.GroupVersion.WithKind("VirtualMachine"))
}

// newVMI is the VMI a VM runs: same name and namespace, the template's
// labels, annotations and spec. A receiver VMI is marked as a migration
// target; it waits for the incoming migration instead of booting.
func newVMI(vm *kubevirtv1.VirtualMachine, receiver bool) *kubevirtv1.VirtualMachineInstance {
	template := vm.Spec.Template
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{
			Name:            vm.Name,
			Namespace:       vm.Namespace,
			Labels:          maps.Clone(template.ObjectMeta.Labels),
			Annotations:     maps.Clone(template.ObjectMeta.Annotations),
			OwnerReferences: []metav1.OwnerReference{controllerRef(vm)},
		},
		Spec: *template.Spec.DeepCopy(),
	}
	if receiver {
		if vmi.Annotations == nil {
			vmi.Annotations = map[string]string{}
		}
		vmi.Annotations[kubevirtv1.CreateMigrationTargetAnnotation] = "true"
	}
	return vmi
}

// isReceiver: the VMI is the empty target of an incoming migration.
func isReceiver(vmi *kubevirtv1.VirtualMachineInstance) bool {
	return vmi.Annotations[kubevirtv1.CreateMigrationTargetAnnotation] == "true"
}

// newDataVolume is the DataVolume of one of the VM's dataVolumeTemplates.
func newDataVolume(vm *kubevirtv1.VirtualMachine, template *kubevirtv1.DataVolumeTemplateSpec) *cdiv1beta1.DataVolume {
	return &cdiv1beta1.DataVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:            template.ObjectMeta.Name,
			Namespace:       vm.Namespace,
			Labels:          maps.Clone(template.ObjectMeta.Labels),
			Annotations:     maps.Clone(template.ObjectMeta.Annotations),
			OwnerReferences: []metav1.OwnerReference{controllerRef(vm)},
		},
		Spec: *template.Spec.DeepCopy(),
	}
}

// withPhase returns status with the phase set and its transition recorded
// (once per phase change, as upstream's phaseTransitionTimestamps).
func withPhase(status kubevirtv1.VirtualMachineInstanceStatus, phase kubevirtv1.VirtualMachineInstancePhase, now metav1.Time) kubevirtv1.VirtualMachineInstanceStatus {
	if status.Phase == phase {
		return status
	}
	status.Phase = phase
	status.PhaseTransitionTimestamps = append(status.PhaseTransitionTimestamps,
		kubevirtv1.VirtualMachineInstancePhaseTransitionTimestamp{Phase: phase, PhaseTransitionTimestamp: now})
	return status
}
