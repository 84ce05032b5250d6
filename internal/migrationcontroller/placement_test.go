package migrationcontroller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/cclm-io/cclm/internal/scheduling"
)

// The VMI's own claims are presented unbound and without a selected node,
// their PVs are left out; other claims and PVs stay as they are.
func TestUnpinnedStorage(t *testing.T) {
	own, ownPVs := claim("disk", "1Gi", "a")
	other, otherPVs := claim("data", "1Gi", "a")
	other.Namespace = "elsewhere"
	other.Name = "disk" // same name, other namespace: not the VMI's
	vmi := runningVMI(withClaim("disk"))
	pvcs, pvs := unpinnedStorage(vmi, []corev1.PersistentVolumeClaim{own, other}, append(ownPVs, corev1.PersistentVolume{ObjectMeta: otherPVs[0].ObjectMeta}))
	if len(pvcs) != 2 || pvcs[0].Spec.VolumeName != "" || pvcs[0].Annotations[scheduling.SelectedNodeAnnotation] != "" {
		t.Errorf("own claim still pinned: %+v", pvcs[0])
	}
	if pvcs[1].Spec.VolumeName != "pv-data" || pvcs[1].Annotations[scheduling.SelectedNodeAnnotation] != "a" {
		t.Errorf("another namespace's claim changed: %+v", pvcs[1])
	}
	if len(pvs) != 1 || pvs[0].Name != "pv-data" {
		t.Errorf("PVs %v, want only pv-data", pvs)
	}
	if own.Spec.VolumeName != "pv-disk" {
		t.Error("the input claim was modified")
	}
}

// The scheduler's reason says the source was excluded.
func TestChooseTargetNeverTheSource(t *testing.T) {
	node, reason := chooseTarget(runningVMI(), &Cluster{Nodes: []corev1.Node{node("a", "8Gi")}}, nil)
	if node != "" || reason != "no target node for the migration (source node a excluded): 0/0 nodes are available: no node is registered; is a node agent running?" {
		t.Errorf("got %q, %q", node, reason)
	}
}
