// Package virtcontroller is cclm's virt controller (`cclm controller`): the
// parts of upstream KubeVirt's virt-controller and of CDI's DataVolume
// controller that cclm needs. It runs as ServiceAccount kubevirt-controller
// in the virt namespace (install.VirtController holds its rights,
// install.InstallVirtController installs them). Its design is in
// docs/design.md ("The virt controller").
package virtcontroller

import (
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Labels and annotations of the contract above.
// StartFailureAnnotation on a VM holds its crash-loop bookkeeping as JSON
// (see startFailure).
const StartFailureAnnotation = kubevirtv1.StartFailureAnnotation

// PodScheduled is the VMI condition the scheduler sets (upstream copies it
// from the virt-launcher pod; cclm has no pod, so the scheduler owns it).
const PodScheduled kubevirtv1.VirtualMachineInstanceConditionType = "PodScheduled"

// ReasonUnschedulable is PodScheduled's reason when no node fits.
const ReasonUnschedulable = "Unschedulable"
