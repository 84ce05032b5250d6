package e2e

import (
	"context"
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

// toolkitHonoursTargetLimits: four VMs of one Plan, the source cluster
// allowing four migrations at once, the target two, and one per node
// arriving. A recorder watches every VMIM of both clusters and counts, at
// every change, the migrations holding a slot on each side and arriving
// at each target node: the target's limits are never exceeded and are
// reached, and a receiving migration waited for a slot, saying why.
func (l *labEnv) toolkitHonoursTargetLimits(t *testing.T) {
	const namespace = "toolkit-limits"
	restoreSource := l.setMigrationConfig(t, sourceCluster, `{"bandwidthPerMigration":"16Mi","parallelMigrationsPerCluster":4,"parallelOutboundMigrationsPerNode":2}`)
	defer restoreSource()
	restoreTarget := l.setMigrationConfig(t, targetCluster, `{"parallelMigrationsPerCluster":2,"parallelOutboundMigrationsPerNode":1}`)
	defer restoreTarget()
	guests := l.newGuests(t, namespace, "limit-a", "limit-b", "limit-c", "limit-d")
	plan := l.applyPlan(t, "toolkit-limits", namespace, guests)

	ctx, stop := context.WithCancel(context.Background())
	source := l.recordSlots(t, ctx, sourceCluster, namespace, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) string { return s.SourceNode })
	target := l.recordSlots(t, ctx, targetCluster, namespace, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) string { return s.TargetNode })
	var toolkitSaid []string // a VM's Migrate reasons while its migrations waited for a slot
	m := l.awaitMigration(t, l.startToolkitMigration(t, plan, "toolkit-limits-1"), 6*time.Minute, func(m *forkliftv1beta1.Migration) {
		for _, vm := range m.Status.VMs {
			if task := toolkit.FindVMTask(vm, toolkit.TaskMigrate); task != nil && strings.HasPrefix(task.Reason, "waiting for a slot in the target cluster") {
				toolkitSaid = append(toolkitSaid, vm.Name+": "+task.Reason)
			}
		}
	})
	stop()
	assertPipelineCompleted(t, m)
	for _, g := range guests {
		l.assertArrivedOnce(t, m, namespace, g)
	}

	t.Logf("ocp7: at most %d migrations at once, per node %v; ocp1: at most %d, arriving per node %v; ocp1 waited: %v",
		source.peak(), source.nodePeaks(), target.peak(), target.nodePeaks(), target.waits())
	if target.peak() != 2 {
		t.Errorf("ocp1 (parallelMigrationsPerCluster 2) held %d migrations at once at most: want exactly 2, the limit reached and never passed", target.peak())
	}
	for node, n := range target.nodePeaks() {
		if n > 1 {
			t.Errorf("node %s of ocp1 received %d migrations at once; the per-node limit is 1", node, n)
		}
	}
	if source.peak() > 4 {
		t.Errorf("ocp7 (parallelMigrationsPerCluster 4) held %d migrations at once", source.peak())
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

// slotRecord is what recordSlots saw of one cluster.
type slotRecord struct {
	mu      sync.Mutex
	vmims   map[string]*kubevirtv1.VirtualMachineInstanceMigration
	max     int
	maxNode map[string]int
	reasons map[string]string // wait reason -> one message
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
func (l *labEnv) recordSlots(t *testing.T, ctx context.Context, cluster, namespace string,
	nodeOf func(*kubevirtv1.VirtualMachineInstanceMigrationState) string) *slotRecord {
	t.Helper()
	c, err := client.NewWithWatch(l.restConfig(t, cluster), client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, &kubevirtv1.VirtualMachineInstanceMigrationList{}, client.InNamespace(namespace))
	if err != nil {
		t.Fatal(err)
	}
	r := &slotRecord{vmims: map[string]*kubevirtv1.VirtualMachineInstanceMigration{}, maxNode: map[string]int{}, reasons: map[string]string{}}
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
