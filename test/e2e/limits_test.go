package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/migrationcontroller"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/toolkit"
)

// toolkitHonoursLimits: eight VMs of one Plan under every parallel limit:
// the toolkit's controller_max_vm_inflight 5; on ocp7
// parallelMigrationsPerCluster 3 and parallelOutboundMigrationsPerNode 2;
// on ocp1 parallelMigrationsPerCluster 2 and one migration arriving per
// node. Recorders watch every VMIM of both clusters and count, at every
// change, the migrations holding a slot on each side and per node; the
// Migration is read every 100 ms for the VMs in flight. No limit is ever
// exceeded, each is reached, the VMs start in Plan order, and a VM whose
// receiving migration waited for a slot said why in the Migration. Each
// sending migration runs with ocp7's whole bandwidthPerMigration. The
// last VM is canceled on the way, and the one before it fails (its
// receiving migration is deleted on ocp1): the others arrive, and those
// two stay home.
func (l *labEnv) toolkitHonoursLimits(t *testing.T) {
	const namespace = "toolkit-limits"
	const vms, inFlight, sourcePerCluster, sourcePerNode, targetPerCluster, targetPerNode = 8, 5, 3, 2, 2, 1
	restoreSource := l.SetMigrationConfig(t, sourceCluster, fmt.Sprintf(`{"bandwidthPerMigration":"16Mi","parallelMigrationsPerCluster":%d,"parallelOutboundMigrationsPerNode":%d}`,
		sourcePerCluster, sourcePerNode))
	defer restoreSource()
	restoreTarget := l.SetMigrationConfig(t, targetCluster, fmt.Sprintf(`{"parallelMigrationsPerCluster":%d,"parallelOutboundMigrationsPerNode":%d}`, targetPerCluster, targetPerNode))
	defer restoreTarget()
	l.MustKubectl(t, targetCluster, "", "patch", "forkliftcontroller", toolkit.ForkliftControllerName, "-n", mtvNamespace,
		"--type=merge", "-p", fmt.Sprintf(`{"spec":{"controller_max_vm_inflight":%d}}`, inFlight))
	defer l.MustKubectl(t, targetCluster, "", "patch", "forkliftcontroller", toolkit.ForkliftControllerName, "-n", mtvNamespace,
		"--type=json", "-p", `[{"op":"remove","path":"/spec/controller_max_vm_inflight"}]`)
	var names []string
	for i := range vms {
		names = append(names, fmt.Sprintf("limit-%d", i))
	}
	guests := l.newGuests(t, namespace, names...)
	plan := l.applyPlan(t, "toolkit-limits", namespace, guests)

	ctx, stop := context.WithCancel(context.Background())
	source := l.recordSlots(t, ctx, sourceCluster, namespace, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) string { return s.SourceNode })
	target := l.recordSlots(t, ctx, targetCluster, namespace, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) string { return s.TargetNode })
	// The last VM is canceled once it is in Migrate (queued or moving),
	// and the one before it fails there: the others go on to their end.
	canceled, failing := guests[len(guests)-1], guests[len(guests)-2]
	failed := false
	var toolkitSaid, startOrder []string
	peakInFlight := 0
	toolkitCluster := l.Client(t, targetCluster)
	m := l.followMigration(t, l.startToolkitMigration(t, plan, "toolkit-limits-1"), 10*time.Minute, func(m *forkliftv1beta1.Migration) {
		flying := 0
		for _, vm := range m.Status.VMs {
			if vm.Started != nil && !toolkit.IsFinal(vm) {
				flying++
			}
			if vm.Started != nil && !slices.Contains(startOrder, vm.Name) {
				startOrder = append(startOrder, vm.Name)
			}
			task := toolkit.FindVMTask(vm, toolkit.TaskMigrate)
			if task != nil && strings.HasPrefix(task.Reason, "waiting for a slot in the target cluster") {
				toolkitSaid = append(toolkitSaid, vm.Name+": "+task.Reason)
			}
			if vm.Name == canceled.spec.name && len(m.Spec.Cancel) == 0 && task != nil && task.Phase == toolkit.PhaseRunning {
				m.Spec.Cancel = []forkliftv1beta1.Ref{{Name: vm.Name, Namespace: vm.Namespace}}
				if err := toolkitCluster.Update(context.Background(), m); err != nil {
					t.Logf("cancel %s: %v (tried again)", vm.Name, err)
					m.Spec.Cancel = nil
					continue
				}
				t.Logf("canceled %s in Migrate: %s", vm.Name, task.Reason)
			}
			if vm.Name == failing.spec.name && !failed && task != nil && task.Phase == toolkit.PhaseRunning {
				failed = l.deleteReceivingMigration(t, m, vm.Name, vm.Namespace)
			}
		}
		peakInFlight = max(peakInFlight, flying)
	})
	stop()
	if c := forkliftv1beta1.FindCondition(m.Status.Conditions, forkliftv1beta1.ConditionFailed); c == nil || c.Status != forkliftv1beta1.ConditionTrue {
		t.Errorf("with one VM failed and one canceled the Migration ended: %s", describeToolkitMigration(m))
	}
	for _, vm := range m.Status.VMs {
		want := map[string]string{canceled.spec.name: toolkit.VMCanceled, failing.spec.name: toolkit.VMFailed}[vm.Name]
		if want == "" {
			want = toolkit.VMSucceeded
		}
		if got := toolkit.VMOutcome(vm); got != want {
			t.Errorf("VM %s ended %s, want %s", vm.Name, got, want)
		}
	}
	for _, g := range guests[:len(guests)-2] {
		l.assertArrivedOnce(t, m, namespace, g)
	}
	l.assertStayedHome(t, m, failing, namespace)
	l.assertStayedHome(t, m, canceled, namespace)

	t.Logf("toolkit: at most %d VMs in flight, started in the order %v", peakInFlight, startOrder)
	t.Logf("ocp7: at most %d migrations at once, leaving per node %v; ocp1: at most %d, arriving per node %v; ocp1's waits: %v",
		source.peak(), source.nodePeaks(), target.peak(), target.nodePeaks(), target.waits())
	assertPeak(t, "VMs in flight in the toolkit (controller_max_vm_inflight)", peakInFlight, inFlight)
	assertPeak(t, "migrations at once on ocp7 (parallelMigrationsPerCluster)", source.peak(), sourcePerCluster)
	assertPeak(t, "migrations at once on ocp1 (parallelMigrationsPerCluster)", target.peak(), targetPerCluster)
	assertNodePeaks(t, "leaving a node of ocp7 (parallelOutboundMigrationsPerNode)", source.nodePeaks(), sourcePerNode)
	assertNodePeaks(t, "arriving at a node of ocp1 (parallelOutboundMigrationsPerNode, applied to arrivals)", target.nodePeaks(), targetPerNode)
	// Each migration runs with the whole bandwidthPerMigration, however
	// many run at once: the canceled and the failed VMs' may have ended
	// before they ran.
	bandwidths := source.bandwidthsSeen()
	if len(bandwidths) < vms-2 {
		t.Errorf("only %d of the %d sending migrations were seen running with a bandwidthPerMigration: %v", len(bandwidths), vms-2, bandwidths)
	}
	for vmim, bandwidth := range bandwidths {
		if bandwidth != "16Mi" {
			t.Errorf("sending migration %s ran with bandwidthPerMigration %s, want ocp7's 16Mi", vmim, bandwidth)
		}
	}
	if !slices.Equal(startOrder, names) {
		t.Errorf("the VMs started in the order %v, not the Plan's %v", startOrder, names)
	}
	if len(toolkitSaid) == 0 {
		t.Errorf("no VM of the Migration said it waited for a slot in the target cluster")
	} else {
		t.Logf("the toolkit said: %s", toolkitSaid[0])
	}
	waited := target.waits()
	if !slices.Contains(waited, migrationcontroller.ReasonClusterLimit) && !slices.Contains(waited, migrationcontroller.ReasonInboundNodeLimit) {
		t.Errorf("no receiving migration on ocp1 waited for a slot (waits seen: %v), though ocp7 allowed more at once", waited)
	}
}

// deleteReceivingMigration deletes the receiving VMIM of a VM of
// Migration m on ocp1, which fails the VM's migration; false if it is not
// there (yet).
func (l *labEnv) deleteReceivingMigration(t testing.TB, m *forkliftv1beta1.Migration, vm, namespace string) bool {
	t.Helper()
	vmim := &kubevirtv1.VirtualMachineInstanceMigration{}
	vmim.Name, vmim.Namespace = toolkit.VMIMName(vm, m.UID), namespace
	if err := l.Client(t, targetCluster).Delete(context.Background(), vmim); err != nil {
		t.Logf("delete %s's receiving migration %s: %v (tried again)", vm, vmim.Name, err)
		return false
	}
	t.Logf("deleted %s's receiving migration %s on ocp1 in Migrate", vm, vmim.Name)
	return true
}

// assertPeak: a limit was reached and never passed.
func assertPeak(t *testing.T, what string, peak, limit int) {
	t.Helper()
	if peak != limit {
		t.Errorf("%s: at most %d at once, want exactly the limit %d (reached, never passed)", what, peak, limit)
	}
}

// assertNodePeaks: no node passed the limit, and one reached it.
func assertNodePeaks(t *testing.T, what string, peaks map[string]int, limit int) {
	t.Helper()
	reached := false
	for node, n := range peaks {
		if n > limit {
			t.Errorf("%s: node %s had %d at once; the limit is %d", what, node, n, limit)
		}
		reached = reached || n == limit
	}
	if !reached {
		t.Errorf("%s: no node reached the limit %d (%v)", what, limit, peaks)
	}
}

// slotRecord is what recordSlots saw of one cluster.
type slotRecord struct {
	mu      sync.Mutex
	vmims   map[string]*kubevirtv1.VirtualMachineInstanceMigration
	max     int
	maxNode map[string]int
	reasons map[string]string // wait reason -> one message
	// bandwidths are each VMIM's migrationState.migrationConfiguration
	// bandwidthPerMigration, as it ran.
	bandwidths map[string]string
}

func (r *slotRecord) bandwidthsSeen() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.bandwidths)
}

func (r *slotRecord) peak() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.max
}

func (r *slotRecord) nodePeaks() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.maxNode {
		out[k] = v
	}
	return out
}

func (r *slotRecord) waits() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for reason := range r.reasons {
		out = append(out, reason)
	}
	slices.Sort(out)
	return out
}

// slotHeld: the phases in which a migration counts against the limits,
// as the migration controller documents them.
func slotHeld(phase kubevirtv1.VirtualMachineInstanceMigrationPhase) bool {
	switch phase {
	case kubevirtv1.MigrationScheduling, kubevirtv1.MigrationSynchronizing, kubevirtv1.MigrationScheduled,
		kubevirtv1.MigrationPreparingTarget, kubevirtv1.MigrationTargetReady, kubevirtv1.MigrationRunning:
		return true
	}
	return false
}

// recordSlots watches the VMIMs of namespace on cluster until ctx ends
// and, after every event, counts those holding a slot, in all and per
// node (nodeOf their migrationState), keeping the peaks and every wait
// reason a VMIM gave.
func (l *labEnv) recordSlots(t testing.TB, ctx context.Context, cluster, namespace string,
	nodeOf func(*kubevirtv1.VirtualMachineInstanceMigrationState) string) *slotRecord {
	t.Helper()
	c, err := client.NewWithWatch(l.RESTConfig(t, cluster), client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, &kubevirtv1.VirtualMachineInstanceMigrationList{}, client.InNamespace(namespace))
	if err != nil {
		t.Fatal(err)
	}
	r := &slotRecord{vmims: map[string]*kubevirtv1.VirtualMachineInstanceMigration{}, maxNode: map[string]int{}, reasons: map[string]string{}, bandwidths: map[string]string{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Stop()
		for event := range w.ResultChan() {
			m, ok := event.Object.(*kubevirtv1.VirtualMachineInstanceMigration)
			if !ok {
				continue
			}
			r.see(event.Type, m, nodeOf)
		}
	}()
	t.Cleanup(func() { <-done })
	return r
}

func (r *slotRecord) see(kind watch.EventType, m *kubevirtv1.VirtualMachineInstanceMigration,
	nodeOf func(*kubevirtv1.VirtualMachineInstanceMigrationState) string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if kind == watch.Deleted {
		delete(r.vmims, m.Name)
	} else {
		r.vmims[m.Name] = m
	}
	if state := m.Status.MigrationState; m.Status.Phase == kubevirtv1.MigrationRunning && state != nil &&
		state.MigrationConfiguration != nil && state.MigrationConfiguration.BandwidthPerMigration != nil {
		r.bandwidths[m.Name] = state.MigrationConfiguration.BandwidthPerMigration.String()
	}
	for _, c := range m.Status.Conditions {
		if string(c.Type) == string(migrationcontroller.ConditionWaiting) && c.Status == "True" {
			r.reasons[c.Reason] = c.Message
		}
	}
	held, perNode := 0, map[string]int{}
	for _, vmim := range r.vmims {
		if !slotHeld(vmim.Status.Phase) {
			continue
		}
		held++
		if state := vmim.Status.MigrationState; state != nil && nodeOf(state) != "" {
			perNode[nodeOf(state)]++
		}
	}
	r.max = max(r.max, held)
	for node, n := range perNode {
		r.maxNode[node] = max(r.maxNode[node], n)
	}
}
