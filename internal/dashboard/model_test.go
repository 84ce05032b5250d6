package dashboard

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

func vmiAt(name, node string) kubevirtv1.VirtualMachineInstance {
	vmi := kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	vmi.Status.NodeName, vmi.Status.Phase = node, kubevirtv1.Running
	return vmi
}

// A cluster's column puts each running VMI on its node and each VM with
// where it runs; a halted VM has no node.
func TestClusterView(t *testing.T) {
	ready := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w0"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	down := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}}
	vm := func(name, status string) kubevirtv1.VirtualMachine {
		v := kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
		v.Status.PrintableStatus = kubevirtv1.VirtualMachinePrintableStatus(status)
		return v
	}
	view := clusterView(ClusterObjects{Name: "ocp7", Role: "source",
		Nodes: []corev1.Node{down, ready},
		VMs:   []kubevirtv1.VirtualMachine{vm("web", "Running"), vm("db", "Stopped")},
		VMIs:  []kubevirtv1.VirtualMachineInstance{vmiAt("web", "w0")},
	})
	if len(view.Nodes) != 2 || view.Nodes[0].Name != "w0" || !view.Nodes[0].Ready || len(view.Nodes[0].VMIs) != 1 || view.Nodes[0].VMIs[0] != "ns/web" {
		t.Errorf("nodes: %+v", view.Nodes)
	}
	if view.Nodes[1].Ready || len(view.Nodes[1].VMIs) != 0 || view.Nodes[1].VMIs == nil {
		t.Errorf("a node without Ready and VMIs: %+v (VMIs must be [] in JSON, not null)", view.Nodes[1])
	}
	if len(view.VMs) != 2 || view.VMs[0].Name != "db" || view.VMs[0].Running || view.VMs[1].Node != "w0" || !view.VMs[1].Running {
		t.Errorf("VMs: %+v", view.VMs)
	}
}

// A migration is followed on the sending VMI: one point per new sample
// with the throughput since the previous one, the downtime once it
// completed, and "Ended" when the VMI went away before that.
func TestHistoryFollowsTheSendingVMI(t *testing.T) {
	start := time.Unix(1000, 0)
	sample := func(at time.Duration, transferred int64, completed bool) kubevirtv1.VirtualMachineInstance {
		vmi := vmiAt("web", "w0")
		updated := metav1.NewTime(start.Add(at))
		started := metav1.NewTime(start)
		vmi.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{
			MigrationUID: "m1", SourceNode: "w0", TargetNode: "w1", StartTimestamp: &started, Completed: completed,
			Progress: &kubevirtv1.MigrationProgress{TransferredBytes: transferred, RemainingBytes: 100 - transferred, Iteration: 1, UpdatedTimestamp: &updated},
		}
		if completed {
			ended := metav1.NewTime(start.Add(at))
			vmi.Status.MigrationState.EndTimestamp = &ended
			vmi.Status.MigrationState.Progress.DowntimeMs = 42
		}
		return vmi
	}
	h := newHistory()
	observe := func(vmis ...kubevirtv1.VirtualMachineInstance) MigrationView {
		h.observe("ocp7", vmis, start.Add(time.Minute))
		views := h.views()
		if len(views) != 1 {
			t.Fatalf("views: %+v", views)
		}
		return views[0]
	}
	observe(sample(time.Second, 10, false))
	observe(sample(time.Second, 10, false)) // the same sample again: no new point
	m := observe(sample(3*time.Second, 50, false))
	if len(m.Points) != 2 || m.Points[1].Throughput != 20 || m.State != "Running" {
		t.Fatalf("two samples two seconds apart, 40 bytes: %+v", m)
	}
	m = observe(sample(4*time.Second, 100, true))
	if m.State != "Succeeded" || m.DowntimeMs == nil || *m.DowntimeMs != 42 || m.DurationMs != 4000 {
		t.Errorf("completed: %+v", m)
	}

	gone := newHistory()
	gone.observe("ocp7", []kubevirtv1.VirtualMachineInstance{sample(time.Second, 10, false)}, start)
	gone.observe("ocp1", nil, start) // another cluster's VMIs say nothing of ocp7's
	if views := gone.views(); views[0].State != "Running" {
		t.Errorf("after another cluster's read: %+v", views[0])
	}
	gone.observe("ocp7", nil, start.Add(5*time.Second))
	if views := gone.views(); views[0].State != migrationStateGone || views[0].DurationMs != 5000 {
		t.Errorf("the sending VMI went away: %+v", views[0])
	}
}

// A cross-cluster migration shows once: the receiving VMI carries the
// sender's figures under the sending VMIM's UID.
func TestHistoryShowsACrossClusterMigrationOnce(t *testing.T) {
	at := metav1.NewTime(time.Unix(1000, 0))
	half := func(localUID string) kubevirtv1.VirtualMachineInstance {
		vmi := vmiAt("web", "w0")
		vmi.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{
			MigrationUID: types.UID(localUID),
			SourceState:  &kubevirtv1.VirtualMachineInstanceMigrationSourceState{VirtualMachineInstanceCommonMigrationState: kubevirtv1.VirtualMachineInstanceCommonMigrationState{MigrationUID: "sending"}},
			Progress:     &kubevirtv1.MigrationProgress{TransferredBytes: 10, UpdatedTimestamp: &at},
		}
		return vmi
	}
	h := newHistory()
	h.observe("ocp7", []kubevirtv1.VirtualMachineInstance{half("sending")}, at.Time)
	h.observe("ocp1", []kubevirtv1.VirtualMachineInstance{half("receiving")}, at.Time)
	views := h.views()
	if len(views) != 1 || views[0].Cluster != "ocp7" || views[0].PeerCluster != "ocp1" || len(views[0].Points) != 1 {
		t.Errorf("views: %+v", views)
	}
}
