package dashboard

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/toolkit"
)

// Snapshot is what the page shows, sent whole on every change.
type Snapshot struct {
	At         time.Time       `json:"at"`
	Clusters   []ClusterView   `json:"clusters"`
	Migrations []MigrationView `json:"migrations"`
	Plans      []PlanView      `json:"plans"`
}

// ClusterView is one cluster's column: its nodes and VMs.
type ClusterView struct {
	Name  string     `json:"name"`
	Role  string     `json:"role"`
	Nodes []NodeView `json:"nodes"`
	VMs   []VMView   `json:"vms"`
	// Problems say what the user's kubeconfig cannot read there.
	Problems []string `json:"problems,omitempty"`
}

// NodeView is a node and the VMIs that run on it.
type NodeView struct {
	Name  string   `json:"name"`
	Ready bool     `json:"ready"`
	VMIs  []string `json:"vmis"` // namespace/name
}

// VMView is a VM and where its VMI runs.
type VMView struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Node      string `json:"node,omitempty"`
	Running   bool   `json:"running"`
}

// Point is one sample of a running migration's transfer.
type Point struct {
	At          int64   `json:"t"` // Unix milliseconds
	Transferred int64   `json:"transferred"`
	Remaining   int64   `json:"remaining"`
	DirtyRate   int64   `json:"dirtyRate"`
	Throughput  float64 `json:"throughput"` // bytes/s since the previous point
	Iteration   int64   `json:"iteration"`
}

// MigrationView is one migration as the sending VMI's migrationState
// tells it: its samples while it runs, its time and downtime once ended.
type MigrationView struct {
	Key     string `json:"key"`
	Cluster string `json:"cluster"`
	// PeerCluster is the other cluster of a cross-cluster migration.
	PeerCluster string     `json:"peerCluster,omitempty"`
	Namespace   string     `json:"namespace"`
	VMI         string     `json:"vmi"`
	SourceNode  string     `json:"sourceNode,omitempty"`
	TargetNode  string     `json:"targetNode,omitempty"`
	Started     *time.Time `json:"started,omitempty"`
	Ended       *time.Time `json:"ended,omitempty"`
	State       string     `json:"state"` // Running, Succeeded, Failed
	DurationMs  int64      `json:"durationMs,omitempty"`
	DowntimeMs  *int64     `json:"downtimeMs,omitempty"`
	Iteration   int64      `json:"iteration"`
	Points      []Point    `json:"points"`
}

// PlanView is a toolkit Plan and each VM's step.
type PlanView struct {
	Cluster   string       `json:"cluster"`
	Namespace string       `json:"namespace"`
	Name      string       `json:"name"`
	Ready     bool         `json:"ready"`
	State     string       `json:"state"`
	VMs       []PlanVMView `json:"vms"`
}

// PlanVMView is one VM of a Plan.
type PlanVMView struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Step        string `json:"step"`
	Result      string `json:"result,omitempty"`
	Transferred int64  `json:"transferred"`
	DowntimeMs  *int64 `json:"downtimeMs,omitempty"`
	DurationMs  int64  `json:"durationMs,omitempty"`
}

// Limits that keep the page light with many VMs and a long session.
const (
	maxPoints             = 600 // ten minutes of one-second samples
	maxEndedMigrations    = 100
	migrationStateRunning = "Running"
	// migrationStateGone: the sending VMI went away before its final
	// figures were seen.
	migrationStateGone = "Ended"
)

// ClusterObjects is what the dashboard reads of one cluster.
type ClusterObjects struct {
	Name, Role string
	Nodes      []corev1.Node
	VMs        []kubevirtv1.VirtualMachine
	VMIs       []kubevirtv1.VirtualMachineInstance
	Plans      []forkliftv1beta1.Plan
	Problems   []string
	// VMIsRead: the VMIs were listed (their informer has synced).
	VMIsRead bool
}

// clusterView is pure: a cluster's column.
func clusterView(objects ClusterObjects) ClusterView {
	view := ClusterView{Name: objects.Name, Role: objects.Role, Problems: objects.Problems, Nodes: []NodeView{}, VMs: []VMView{}}
	onNode := map[string][]string{}
	vmiOf := map[string]*kubevirtv1.VirtualMachineInstance{}
	for i := range objects.VMIs {
		vmi := &objects.VMIs[i]
		key := vmi.Namespace + "/" + vmi.Name
		vmiOf[key] = vmi
		if vmi.Status.NodeName != "" && vmi.Status.Phase == kubevirtv1.Running {
			onNode[vmi.Status.NodeName] = append(onNode[vmi.Status.NodeName], key)
		}
	}
	for _, node := range objects.Nodes {
		vmis := append([]string{}, onNode[node.Name]...)
		slices.Sort(vmis)
		view.Nodes = append(view.Nodes, NodeView{Name: node.Name, Ready: nodeReady(node), VMIs: vmis})
	}
	for _, vm := range objects.VMs {
		v := VMView{Namespace: vm.Namespace, Name: vm.Name, Status: string(vm.Status.PrintableStatus)}
		if vmi := vmiOf[vm.Namespace+"/"+vm.Name]; vmi != nil && vmi.Status.Phase == kubevirtv1.Running {
			v.Node, v.Running = vmi.Status.NodeName, true
		}
		if v.Status == "" {
			v.Status = string(vm.EffectiveRunStrategy())
		}
		view.VMs = append(view.VMs, v)
	}
	slices.SortFunc(view.Nodes, func(a, b NodeView) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(view.VMs, func(a, b VMView) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return view
}

func nodeReady(node corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// history remembers migrations across snapshots: their samples while the
// sending VMI shows them, and their outcome after the VMI is gone.
type history struct {
	migrations map[string]*MigrationView
}

func newHistory() *history { return &history{migrations: map[string]*MigrationView{}} }

// observe takes the migration figures of a cluster's VMIs: only the
// sending side writes progress, so a migration is followed on the VMI
// whose migrationState carries it.
func (h *history) observe(cluster string, vmis []kubevirtv1.VirtualMachineInstance, now time.Time) {
	seen := map[string]bool{}
	for i := range vmis {
		vmi := &vmis[i]
		state := vmi.Status.MigrationState
		if state == nil || state.Progress == nil || state.MigrationUID == "" {
			continue
		}
		key := migrationKey(state)
		m := h.migrations[key]
		if m == nil {
			m = &MigrationView{Key: key, Cluster: cluster, Namespace: vmi.Namespace, VMI: vmi.Name, Points: []Point{}}
			h.migrations[key] = m
		}
		if cluster != m.Cluster {
			m.PeerCluster = cluster
		}
		m.update(state)
		seen[key] = true
	}
	// A sending VMI that went away mid-migration (a cross-cluster source
	// is deleted once the target runs) ends what it showed; its outcome is
	// the Plan's, or the target's, to tell.
	for key, m := range h.migrations {
		if m.Cluster == cluster && m.State == migrationStateRunning && !seen[key] {
			m.State, m.Ended = migrationStateGone, &now
			if m.Started != nil {
				m.DurationMs = now.Sub(*m.Started).Milliseconds()
			}
		}
	}
	h.forgetOldest()
}

// migrationKey names a migration once across clusters: the sending
// VMIM's UID, which the synchronization controller copies into the
// receiving VMI's state (with the sender's figures) in a cross-cluster
// migration.
func migrationKey(state *kubevirtv1.VirtualMachineInstanceMigrationState) string {
	if state.SourceState != nil && state.SourceState.MigrationUID != "" {
		return string(state.SourceState.MigrationUID)
	}
	return string(state.MigrationUID)
}

// update records the state's figures: a new point when the sample is
// newer than the last, and the outcome once it ended.
func (m *MigrationView) update(state *kubevirtv1.VirtualMachineInstanceMigrationState) {
	m.SourceNode, m.TargetNode = state.SourceNode, state.TargetNode
	progress := state.Progress
	if state.StartTimestamp != nil {
		started := state.StartTimestamp.Time
		m.Started = &started
	}
	m.Iteration = max(m.Iteration, progress.Iteration)
	if progress.UpdatedTimestamp != nil {
		at := progress.UpdatedTimestamp.UnixMilli()
		if n := len(m.Points); n == 0 || at > m.Points[n-1].At {
			point := Point{At: at, Transferred: progress.TransferredBytes, Remaining: progress.RemainingBytes, DirtyRate: progress.DirtyRateBytesPerSecond, Iteration: progress.Iteration}
			if n > 0 {
				last := m.Points[n-1]
				if seconds := float64(at-last.At) / 1000; seconds > 0 && point.Transferred >= last.Transferred {
					point.Throughput = float64(point.Transferred-last.Transferred) / seconds
				}
			}
			m.Points = append(m.Points, point)
			if len(m.Points) > maxPoints {
				m.Points = m.Points[len(m.Points)-maxPoints:]
			}
		}
	}
	m.State = migrationStateRunning
	switch {
	case state.Failed:
		m.State = "Failed"
	case state.Completed:
		m.State = "Succeeded"
		if progress.DowntimeMs > 0 {
			downtime := progress.DowntimeMs
			m.DowntimeMs = &downtime
		}
	}
	if m.State != migrationStateRunning && state.EndTimestamp != nil {
		ended := state.EndTimestamp.Time
		m.Ended = &ended
		if m.Started != nil {
			m.DurationMs = ended.Sub(*m.Started).Milliseconds()
		}
	}
}

// forgetOldest keeps the most recent ended migrations.
func (h *history) forgetOldest() {
	var ended []*MigrationView
	for _, m := range h.migrations {
		if m.State != migrationStateRunning {
			ended = append(ended, m)
		}
	}
	if len(ended) <= maxEndedMigrations {
		return
	}
	slices.SortFunc(ended, func(a, b *MigrationView) int { return timeOf(a.Ended).Compare(timeOf(b.Ended)) })
	for _, m := range ended[:len(ended)-maxEndedMigrations] {
		delete(h.migrations, m.Key)
	}
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// views are the migrations, running first, then the most recent.
func (h *history) views() []MigrationView {
	views := make([]MigrationView, 0, len(h.migrations))
	for _, m := range h.migrations {
		views = append(views, *m)
	}
	slices.SortFunc(views, func(a, b MigrationView) int {
		if running := cmp.Compare(boolRank(b.State == migrationStateRunning), boolRank(a.State == migrationStateRunning)); running != 0 {
			return running
		}
		return cmp.Or(timeOf(b.Started).Compare(timeOf(a.Started)), cmp.Compare(a.Key, b.Key))
	})
	return views
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// planViews are the toolkit's Plans of a cluster with each VM's step.
func planViews(cluster string, plans []forkliftv1beta1.Plan) []PlanView {
	views := []PlanView{}
	for _, plan := range plans {
		view := PlanView{Cluster: cluster, Namespace: plan.Namespace, Name: plan.Name, State: toolkit.PlanStatus(&plan), VMs: []PlanVMView{}}
		if c := forkliftv1beta1.FindCondition(plan.Status.Conditions, forkliftv1beta1.ConditionReady); c != nil {
			view.Ready = c.Status == forkliftv1beta1.ConditionTrue
		}
		for _, vm := range plan.Spec.VMs {
			view.VMs = append(view.VMs, planVMView(vm, plan.Status.Migration.VMs))
		}
		views = append(views, view)
	}
	slices.SortFunc(views, func(a, b PlanView) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return views
}

// vmStep is what a VM of a Plan does: Pending before it starts, then its
// current task (cclm's finer step, or Forklift's step), and its phase
// (Completed) once it ended.
func vmStep(status forkliftv1beta1.VMStatus) string {
	if toolkit.IsFinal(status) {
		return cmp.Or(status.Phase, toolkit.VMPhaseCompleted)
	}
	return cmp.Or(toolkit.CurrentTaskName(status), "Pending")
}

func planVMView(vm forkliftv1beta1.PlanVM, statuses []forkliftv1beta1.VMStatus) PlanVMView {
	view := PlanVMView{Namespace: vm.Namespace, Name: vm.Name, Step: "Pending"}
	for _, status := range statuses {
		if status.ID != vm.ID && (status.Name != vm.Name || status.Namespace != vm.Namespace) {
			continue
		}
		view.Step = vmStep(status)
		view.Result = toolkit.VMOutcome(status)
		if migrate := toolkit.FindVMTask(status, toolkit.TaskMigrate); migrate != nil {
			view.Transferred = migrate.Progress.Completed
			if ms, err := strconv.ParseInt(migrate.Annotations[toolkit.AnnotationDowntime], 10, 64); err == nil {
				view.DowntimeMs = &ms
			}
		}
		if status.Started != nil && status.Completed != nil {
			view.DurationMs = status.Completed.Sub(status.Started.Time).Milliseconds()
		}
	}
	return view
}
