package migrationcontroller

import (
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// chooseTarget picks the node the VMI moves to with the VMI scheduler's
// own rules (ready, schedulable, node selector, CPU model and features,
// memory, storage room), never the node it runs on. requiredLabels are
// node labels the node must have on top of the VMI's nodeSelector (a
// receiver's: the source cluster's CPU model labels). The result is the
// node, or "" and why none fits.
//
// The VMI's disks are copied to the target during the migration, so their
// current placement must not pin the VMI: its claims are presented to the
// scheduler as unbound, and the PVs bound to them are left out. An
// unbound claim is what the scheduler counts as storage the chosen node
// must still have room for, which is exactly what the copies need.
//
// A receiver VMI (no node: it runs in the source cluster) is placed like
// a new VMI instead: its claims are where the copies go, so a claim
// already bound does pin it.
func chooseTarget(vmi *kubevirtv1.VirtualMachineInstance, cluster *Cluster, requiredLabels map[string]string) (node, reason string) {
	if cluster == nil {
		cluster = &Cluster{}
	}
	vmi, conflict := withRequiredLabels(vmi, requiredLabels)
	source := vmi.Status.NodeName
	if source == "" {
		return chooseReceiver(vmi, cluster, conflict)
	}
	candidates := nodesExcept(cluster.Nodes, source)
	pvcs, pvs := unpinnedStorage(vmi, cluster.PVCs, cluster.PVs)
	node, reason = scheduling.Schedule(vmi, candidates, scheduling.VMIsByNode(cluster.VMIs), pvcs, pvs)
	if node == "" {
		return "", "no target node for the migration (source node " + source + " excluded): " + reason
	}
	return node, reason
}

func chooseReceiver(vmi *kubevirtv1.VirtualMachineInstance, cluster *Cluster, conflict string) (node, reason string) {
	if conflict != "" {
		return "", "no node to receive the migration: " + conflict
	}
	node, reason = scheduling.Schedule(vmi, cluster.Nodes, scheduling.VMIsByNode(cluster.VMIs), cluster.PVCs, cluster.PVs)
	if node == "" {
		return "", "no node to receive the migration: " + reason
	}
	return node, reason
}

// withRequiredLabels is vmi with labels added to its nodeSelector (a copy
// if there are any), or why they cannot be: a label the nodeSelector
// wants with another value.
func withRequiredLabels(vmi *kubevirtv1.VirtualMachineInstance, labels map[string]string) (*kubevirtv1.VirtualMachineInstance, string) {
	if len(labels) == 0 {
		return vmi, ""
	}
	out := vmi.DeepCopy()
	if out.Spec.NodeSelector == nil {
		out.Spec.NodeSelector = map[string]string{}
	}
	for _, key := range slices.Sorted(maps.Keys(labels)) {
		if own, ok := out.Spec.NodeSelector[key]; ok && own != labels[key] {
			return vmi, fmt.Sprintf("the VMI's nodeSelector wants %s=%s but the source needs %s=%s", key, own, key, labels[key])
		}
		out.Spec.NodeSelector[key] = labels[key]
	}
	return out, ""
}

func nodesExcept(nodes []corev1.Node, name string) []corev1.Node {
	return slices.DeleteFunc(slices.Clone(nodes), func(node corev1.Node) bool { return node.Name == name })
}

// unpinnedStorage returns the PVCs with the VMI's own claims turned
// unbound and without a selected node, and the PVs without those the
// claims were bound to. Everything else is passed on as it is, so other
// VMIs' volumes still use up their nodes' storage.
func unpinnedStorage(vmi *kubevirtv1.VirtualMachineInstance, pvcs []corev1.PersistentVolumeClaim, pvs []corev1.PersistentVolume) ([]corev1.PersistentVolumeClaim, []corev1.PersistentVolume) {
	own := map[string]bool{}
	for _, name := range vmi.Spec.ClaimNames() {
		own[name] = true
	}
	movedPVs := map[string]bool{}
	outPVCs := make([]corev1.PersistentVolumeClaim, 0, len(pvcs))
	for i := range pvcs {
		pvc := pvcs[i]
		if pvc.Namespace == vmi.Namespace && own[pvc.Name] {
			if pvc.Spec.VolumeName != "" {
				movedPVs[pvc.Spec.VolumeName] = true
			}
			pvc = *pvc.DeepCopy()
			pvc.Spec.VolumeName = ""
			delete(pvc.Annotations, scheduling.SelectedNodeAnnotation)
		}
		outPVCs = append(outPVCs, pvc)
	}
	outPVs := make([]corev1.PersistentVolume, 0, len(pvs))
	for _, pv := range pvs {
		if !movedPVs[pv.Name] {
			outPVs = append(outPVs, pv)
		}
	}
	return outPVCs, outPVs
}
