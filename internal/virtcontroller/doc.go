// Package virtcontroller is cclm's virt controller: the parts of upstream
// KubeVirt's virt-controller and of CDI's DataVolume controller that cclm
// needs. `cclm controller` runs it as ServiceAccount kubevirt-controller in
// the virt namespace (install.VirtController holds its rights,
// install.InstallVirtController installs them).
//
// Three reconcilers, each a thin driver around pure decision functions that
// are table-tested without a cluster (state in, decision out, I/O outside):
//
//   - the VM controller (vm_controller.go) assigns stable MACs
//     (mac.go), creates the VM's DataVolumes, creates or deletes the VMI as
//     the run strategy says (runstrategy.go) and summarizes it all in the
//     VM's status (vmstatus.go);
//   - the scheduler (scheduler_controller.go) places each new VMI on a node
//     (schedule.go) and tells the storage which node that is;
//   - the DataVolume controller (datavolume_controller.go) makes each
//     DataVolume's PVC and reports its phase (datavolume.go).
//
// # Contract with the other components
//
// Read from Nodes (written by the node agent): label
// kubevirt.io/schedulable=true, labels cpu-model.node.kubevirt.io/<model>
// and cpu-feature.node.kubevirt.io/<feature> ("true"), the Ready condition,
// allocatable (else capacity) memory and ephemeral-storage.
//
// Written on VMIs: status.nodeName, status.phase Pending (unschedulable),
// Scheduled or WaitingForSync (receiver), condition PodScheduled, and label
// kubevirt.io/nodeName mirroring status.nodeName. The node agent takes over
// from Scheduled (Running, Succeeded, Failed) and owns the finalizer
// kubevirt.io/virtualMachineControllerFinalize; this controller never
// touches finalizers and writes VMI metadata with merge patches only.
// A receiver VMI (annotation kubevirt.io/create-migration-target: "true")
// is never scheduled here: the cross-cluster flow places it.
//
// Written on PVCs: annotation volume.kubernetes.io/selected-node when a VMI
// using the unbound PVC is scheduled, as kube-scheduler does. With the
// PV binder's volume.kubernetes.io/storage-provisioner: cclm.io/local that
// is the node agent's cue to provision a local PV on that node.
//
// Written on VMs: spec.template.spec.domain.devices.interfaces[].macAddress
// when empty, and annotation cclm.io/start-failure (crash-loop bookkeeping,
// upstream's status.startFailure, which cclm's API lacks). spec.runStrategy
// after a decentralized (cross-cluster) migration: Always or
// RerunOnFailure becomes Halted on a VM whose VMI migrated away (the VMI
// stays, Succeeded, and is never restarted or deleted here), and
// WaitAsReceiver becomes the value of annotation
// kubevirt.io/restore-run-strategy (Always if absent or unknown) once the
// receiver VMI runs the guest and its migration succeeded.
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
