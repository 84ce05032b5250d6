package migrationcontroller

import (
	corev1 "k8s.io/api/core/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/virtcontroller"
)

// chooseTarget picks the node the VMI moves to with the VMI scheduler's
// own rules (ready, schedulable, node selector, CPU model and features,
// memory, storage room), never the node it runs on. The result is the
// node, or "" and why none fits.
//
// The VMI's disks are copied to the target during the migration, so their
// current placement must not pin the VMI: its claims are presented to the
// scheduler as unbound, and the PVs bound to them are left out. An
// unbound claim is what the scheduler counts as storage the chosen node
// must still have room for, which is exactly what the copies need.
func chooseTarget(vmi *kubevirtv1.VirtualMachineInstance, cluster *Cluster) (node, reason string) {
	if cluster == nil {
		cluster = &Cluster{}
	}
	source := vmi.Status.NodeName
	candidates := nodesExcept(cluster.Nodes, source)
	pvcs, pvs := unpinnedStorage(vmi, cluster.PVCs, cluster.PVs)
	node, reason = virtcontroller.Schedule(vmi, candidates, virtcontroller.VMIsByNode(cluster.VMIs), pvcs, pvs)
	if node == "" {
		return "", "no target node for the migration (source node " + source + " excluded): " + reason
	}
	return node, reason
}

func nodesExcept(nodes []corev1.Node, name string) []corev1.Node {
	var kept []corev1.Node
	for _, node := range nodes {
		if node.Name != name {
			kept = append(kept, node)
		}
	}
	return kept
}

// unpinnedStorage returns the PVCs with the VMI's own claims turned
// unbound and without a selected node, and the PVs without those the
// claims were bound to. Everything else is passed on as it is, so other
// VMIs' volumes still use up their nodes' storage.
func unpinnedStorage(vmi *kubevirtv1.VirtualMachineInstance, pvcs []corev1.PersistentVolumeClaim, pvs []corev1.PersistentVolume) ([]corev1.PersistentVolumeClaim, []corev1.PersistentVolume) {
	own := map[string]bool{}
	for _, name := range claimNames(vmi) {
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
			delete(pvc.Annotations, virtcontroller.SelectedNodeAnnotation)
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
