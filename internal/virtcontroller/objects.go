package virtcontroller

import (
	"maps"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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
	setFirmwareUUID(vmi)
	if receiver {
		if vmi.Annotations == nil {
			vmi.Annotations = map[string]string{}
		}
		vmi.Annotations[kubevirtv1.CreateMigrationTargetAnnotation] = "true"
	}
	return vmi
}

// firmwareUUIDNamespace is upstream KubeVirt's name space for firmware
// UUIDs derived from VM names.
var firmwareUUIDNamespace = uuid.MustParse("6a1a24a1-4061-4607-8bf4-a3963d0c5895")

// setFirmwareUUID gives the VMI the firmware UUID upstream gives it when
// the template has none: a name-based UUID of the VM's name. The guest
// sees it, and a live migration checks that both QEMUs carry the same, so
// it must not depend on anything that differs between clusters (the VMI's
// UID does): the receiver VM of the same name gets the same UUID.
func setFirmwareUUID(vmi *kubevirtv1.VirtualMachineInstance) {
	if vmi.Spec.Domain.Firmware == nil {
		vmi.Spec.Domain.Firmware = &kubevirtv1.Firmware{}
	}
	if vmi.Spec.Domain.Firmware.UUID == "" {
		vmi.Spec.Domain.Firmware.UUID = types.UID(uuid.NewSHA1(firmwareUUIDNamespace, []byte(vmi.Name)).String())
	}
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
