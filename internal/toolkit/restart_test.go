package toolkit

import (
	"context"

	"errors"
	"fmt"
	"github.com/go-logr/logr"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/trust"
)

// The migration reconciler on two fake clusters, with the other
// controllers simulated between reconciles, killed at every write it
// makes: the write fails, and so does every later one of that reconcile,
// and a new reconciler (nothing in memory) takes over. Every run must end
// as a run without a kill does, with every object created exactly once.

// world is both clusters and what the other controllers do.
type world struct {
	t              *testing.T
	source, target client.WithWatch // the raw fakes, for the simulation
	now            time.Time
	// outcome the simulated migration ends with: Succeeded, or Failed.
	outcome kubevirtv1.VirtualMachineInstanceMigrationPhase
	cancel  bool

	// Kill injection, over the reconciler's writes to both clusters.
	writes, killAt int
	killed         bool
	// created counts the reconciler's successful creates by object.
	created map[string]int
	deleted map[string]bool
}

func objectKey(obj client.Object) string {
	return fmt.Sprintf("%s %s/%s", kindOf(obj), obj.GetNamespace(), obj.GetName())
}

func newWorld(t *testing.T, outcome kubevirtv1.VirtualMachineInstanceMigrationPhase) *world {
	w := &world{t: t, now: t0, outcome: outcome, created: map[string]int{}, deleted: map[string]bool{}}
	vm := sourceVM()
	dv := blankDV("256Mi", nil)
	sourceCA, targetCA := testCAs()
	w.source = fakeBuilder().
		WithObjects(vm, sourceVMI(kubevirtv1.Running), dv, sourcePVC("256Mi"), trustCAConfigMap(sourceCA)).Build()
	openshift := forkliftv1beta1.OpenShift
	objects := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DefaultNamespace}},
		trustCAConfigMap(targetCA),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ocp7-token", Namespace: DefaultNamespace}, Data: map[string][]byte{"token": []byte("t")}},
		&forkliftv1beta1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "ocp7", Namespace: DefaultNamespace}, Spec: forkliftv1beta1.ProviderSpec{
			Type: &openshift, URL: "https://127.0.0.1:6443", Secret: corev1.ObjectReference{Name: "ocp7-token"}}},
		&forkliftv1beta1.NetworkMap{ObjectMeta: metav1.ObjectMeta{Name: "net", Namespace: DefaultNamespace}, Spec: forkliftv1beta1.NetworkMapSpec{Map: networkMap}},
		&forkliftv1beta1.StorageMap{ObjectMeta: metav1.ObjectMeta{Name: "storage", Namespace: DefaultNamespace}, Spec: forkliftv1beta1.StorageMapSpec{Map: storageMap}},
		&forkliftv1beta1.Plan{
			ObjectMeta: metav1.ObjectMeta{Name: "plan", Namespace: DefaultNamespace, UID: planUID},
			Spec: forkliftv1beta1.PlanSpec{
				Type: forkliftv1beta1.MigrationLive, TargetNamespace: targetNamespace,
				Provider: forkliftv1beta1.ProviderPair{Source: corev1.ObjectReference{Name: "ocp7"}, Destination: corev1.ObjectReference{Name: "host"}},
				Map:      forkliftv1beta1.PlanMap{Network: corev1.ObjectReference{Name: "net"}, Storage: corev1.ObjectReference{Name: "storage"}},
				VMs:      []forkliftv1beta1.PlanVM{{Ref: forkliftv1beta1.Ref{Name: vmName, Namespace: sourceNamespace}}},
			},
			Status: forkliftv1beta1.PlanStatus{Conditions: []forkliftv1beta1.Condition{{
				Type: forkliftv1beta1.ConditionReady, Status: forkliftv1beta1.ConditionTrue, Reason: "Ready", Category: forkliftv1beta1.CategoryRequired,
			}}},
		},
		&forkliftv1beta1.Migration{
			ObjectMeta: metav1.ObjectMeta{Name: "migration", Namespace: DefaultNamespace, UID: migrationUID, CreationTimestamp: metav1.NewTime(t0)},
			Spec:       forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: "plan"}},
		},
	}
	w.target = fakeBuilder().WithObjects(objects...).
		WithStatusSubresource(&forkliftv1beta1.Migration{}, &forkliftv1beta1.Plan{}, &forkliftv1beta1.Provider{}).Build()
	return w
}

// fakeBuilder makes fake clusters with a plain object tracker (the
// default one manages fields, which costs a REST mapper per write).
func fakeBuilder() *fake.ClientBuilder {
	tracker := clienttesting.NewObjectTracker(scheme.Scheme, serializer.NewCodecFactory(scheme.Scheme).UniversalDecoder())
	return fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjectTracker(tracker)
}

// intercepted is c, the side cluster, with the kill injection and the
// create count.
func (w *world) intercepted(c client.WithWatch, side Side) client.WithWatch {
	write := func(obj client.Object, what string, do func() error) error {
		if w.killed {
			return errors.New("killed")
		}
		w.writes++
		if w.writes == w.killAt {
			w.killed = true
			return errors.New("killed")
		}
		err := do()
		if err == nil && what == "create" {
			key := objectKey(obj) + " on the " + string(side)
			w.created[key]++
			if w.deleted[key] {
				w.t.Errorf("%s created again after it was deleted", key)
			}
		}
		if err == nil && what == "delete" {
			w.deleted[objectKey(obj)+" on the "+string(side)] = true
		}
		return err
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return write(obj, "create", func() error { return c.Create(ctx, obj, opts...) })
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if obj.GetName() == vmName && obj.GetNamespace() == sourceNamespace {
				w.t.Errorf("the source %s was deleted", objectKey(obj))
			}
			return write(obj, "delete", func() error { return c.Delete(ctx, obj, opts...) })
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return write(obj, "update", func() error { return c.Update(ctx, obj, opts...) })
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			return write(obj, "patch", func() error { return c.Patch(ctx, obj, patch, opts...) })
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			return write(obj, "status", func() error { return c.SubResource(sub).Update(ctx, obj, opts...) })
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			return write(obj, "status", func() error { return c.SubResource(sub).Patch(ctx, obj, patch, opts...) })
		},
	})
}

// reconciler is a fresh migration reconciler, as after a restart.
func (w *world) reconciler() *migrationReconciler {
	target := w.intercepted(w.target, SideTarget)
	source := w.intercepted(w.source, SideSource)
	return &migrationReconciler{
		client: target, reader: target, recorder: &events.FakeRecorder{},
		opts: Options{}.withDefaults(), now: func() time.Time { return w.now },
		newSource:  func(*rest.Config) (client.Client, error) { return source, nil },
		sources:    map[string]client.Client{},
		lastErrors: map[string]*ActionError{},
	}
}

// simulate does, once, what the other controllers would: the receiver
// VMI waits, the receiving VMIM publishes its address, the migration
// runs for a tick and ends as w.outcome says.
func (w *world) simulate() {
	ctx := context.Background()
	must := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			w.t.Fatal(err)
		}
	}
	var vms kubevirtv1.VirtualMachineList
	must(w.target.List(ctx, &vms, client.InNamespace(targetNamespace)))
	for _, vm := range vms.Items {
		vmi := &kubevirtv1.VirtualMachineInstance{}
		if err := w.target.Get(ctx, client.ObjectKeyFromObject(&vm), vmi); apierrors.IsNotFound(err) {
			vmi = &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: vm.Name, Namespace: vm.Namespace, Labels: vm.Spec.Template.ObjectMeta.Labels}}
			vmi.Status.Phase = kubevirtv1.WaitingForSync
			must(w.target.Create(ctx, vmi))
		}
	}
	receiving := &kubevirtv1.VirtualMachineInstanceMigration{}
	if err := w.target.Get(ctx, client.ObjectKey{Namespace: targetNamespace, Name: vmimName}, receiving); err != nil {
		must(err)
		return
	}
	sending := &kubevirtv1.VirtualMachineInstanceMigration{}
	err := w.source.Get(ctx, client.ObjectKey{Namespace: sourceNamespace, Name: vmimName}, sending)
	must(err)
	haveSending := err == nil
	switch {
	case receiving.Status.Phase == "":
		receiving.Status.Phase = kubevirtv1.MigrationPending
	case receiving.Status.Phase == kubevirtv1.MigrationPending:
		receiving.Status.Phase = kubevirtv1.MigrationWaitingForSync
		receiving.Status.SynchronizationAddresses = []string{connectURL}
	case receiving.IsFinal():
	case !haveSending && receiving.Status.Phase == kubevirtv1.MigrationRunning:
		// The sending VMIM was deleted: the sync controller tells the
		// target, whose VMIM fails.
		receiving.Status.Phase = kubevirtv1.MigrationFailed
		receiving.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{Failed: true, FailureReason: "cancelled by the peer cluster"}
	case !haveSending:
	case sending.Status.Phase == "":
		sending.Status.Phase = kubevirtv1.MigrationRunning
		sending.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{Progress: &kubevirtv1.MigrationProgress{TransferredBytes: 10, TotalBytes: 100}}
		receiving.Status.Phase = kubevirtv1.MigrationRunning
	case sending.Status.Phase == kubevirtv1.MigrationRunning && !w.cancel:
		sending.Status.Phase, receiving.Status.Phase = w.outcome, w.outcome
		if w.outcome == kubevirtv1.MigrationSucceeded {
			w.setVMIPhase(w.source, sourceNamespace, kubevirtv1.Succeeded)
			w.setVMIPhase(w.target, targetNamespace, kubevirtv1.Running)
		} else {
			receiving.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{Failed: true, FailureReason: "simulated"}
			w.setVMIPhase(w.target, targetNamespace, kubevirtv1.Failed)
		}
	}
	must(w.target.Update(ctx, receiving))
	if haveSending {
		must(w.source.Update(ctx, sending))
	}
}

func (w *world) setVMIPhase(c client.Client, namespace string, phase kubevirtv1.VirtualMachineInstancePhase) {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: vmName}, vmi); err != nil {
		return
	}
	vmi.Status.Phase = phase
	if err := c.Update(context.Background(), vmi); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) migration() *forkliftv1beta1.Migration {
	m := &forkliftv1beta1.Migration{}
	if err := w.target.Get(context.Background(), client.ObjectKey{Namespace: DefaultNamespace, Name: "migration"}, m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

// quiet is a context whose logger discards.
var quiet = ctrl.LoggerInto(context.Background(), logr.Discard())

// run reconciles until the Migration ends, a new reconciler after a kill;
// it returns how many writes the run made.
func (w *world) run() *forkliftv1beta1.Migration {
	r := w.reconciler()
	request := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: DefaultNamespace, Name: "migration"}}
	for range 200 {
		if w.cancel && w.migration().Status.Started != nil {
			m := w.migration()
			if len(m.Spec.Cancel) == 0 && m.Status.VMs[0].Phase == PhaseWaitForStateTransfer {
				m.Spec.Cancel = []forkliftv1beta1.Ref{{Name: vmName, Namespace: sourceNamespace}}
				if err := w.target.Update(context.Background(), m); err != nil {
					w.t.Fatal(err)
				}
			}
		}
		_, _ = r.Reconcile(quiet, request)
		if w.killed {
			w.killed = false
			r = w.reconciler()
		}
		if m := w.migration(); MigrationEnded(m) {
			return m
		}
		w.simulate()
		w.now = w.now.Add(time.Second)
	}
	w.t.Fatalf("the migration did not end: %+v", w.migration().Status)
	return nil
}

// count is how many objects of list's kind carry the migration's label
// on c.
func count(t *testing.T, c client.Client, list client.ObjectList) int {
	t.Helper()
	if err := c.List(context.Background(), list, client.MatchingLabels{LabelMigration: string(migrationUID)}); err != nil {
		t.Fatal(err)
	}
	return len(mustItems(list))
}

func mustItems(list client.ObjectList) []any {
	var items []any
	switch l := list.(type) {
	case *kubevirtv1.VirtualMachineList:
		for i := range l.Items {
			items = append(items, &l.Items[i])
		}
	case *kubevirtv1.VirtualMachineInstanceMigrationList:
		for i := range l.Items {
			items = append(items, &l.Items[i])
		}
	case *cdiv1beta1.DataVolumeList:
		for i := range l.Items {
			items = append(items, &l.Items[i])
		}
	}
	return items
}

func TestKilledAtEveryWrite(t *testing.T) {
	for _, scenario := range []struct {
		name      string
		outcome   kubevirtv1.VirtualMachineInstanceMigrationPhase
		cancel    bool
		want      string // the Migration's final condition
		vmOutcome string // the VM's outcome condition
		// left on the target: VMs, DataVolumes (VMIMs never)
		vms, dvs int
	}{
		{"success", kubevirtv1.MigrationSucceeded, false, forkliftv1beta1.ConditionSucceeded, VMSucceeded, 1, 1},
		{"failure", kubevirtv1.MigrationFailed, false, forkliftv1beta1.ConditionFailed, VMFailed, 0, 0},
		{"cancel", kubevirtv1.MigrationSucceeded, true, forkliftv1beta1.ConditionCanceled, VMCanceled, 0, 0},
	} {
		t.Run(scenario.name, func(t *testing.T) {
			clean := newWorld(t, scenario.outcome)
			clean.cancel = scenario.cancel
			clean.run()
			total := clean.writes
			if total < 10 {
				t.Fatalf("a run without kills made only %d writes", total)
			}
			for killAt := 1; killAt <= total; killAt++ {
				w := newWorld(t, scenario.outcome)
				w.cancel, w.killAt = scenario.cancel, killAt
				m := w.run()
				where := fmt.Sprintf("killed at write %d of %d", killAt, total)
				if c := forkliftv1beta1.FindCondition(m.Status.Conditions, scenario.want); c == nil || c.Status != forkliftv1beta1.ConditionTrue {
					t.Fatalf("%s: the migration ended %+v, want %s", where, m.Status.Conditions, scenario.want)
				}
				vm := m.Status.VMs[0]
				if vm.Phase != VMPhaseCompleted || VMOutcome(vm) != scenario.vmOutcome {
					t.Fatalf("%s: VM %s, outcome %s (%+v)", where, vm.Phase, VMOutcome(vm), vm.Error)
				}
				if scenario.vmOutcome == VMSucceeded {
					for _, step := range vm.Pipeline {
						if step.Phase != PhaseCompleted || step.Started == nil || step.Completed == nil {
							t.Errorf("%s: step %s %s %v-%v", where, step.Name, step.Phase, step.Started, step.Completed)
						}
					}
				}
				w.checkTrustedBothWays(where)
				for key, n := range w.created {
					if n != 1 {
						t.Errorf("%s: %s created %d times", where, key, n)
					}
				}
				if n := count(t, w.target, &kubevirtv1.VirtualMachineInstanceMigrationList{}) + count(t, w.source, &kubevirtv1.VirtualMachineInstanceMigrationList{}); n != 0 {
					t.Errorf("%s: %d VMIMs left", where, n)
				}
				if n := count(t, w.target, &kubevirtv1.VirtualMachineList{}); n != scenario.vms {
					t.Errorf("%s: %d VMs on the target, want %d", where, n, scenario.vms)
				}
				if n := count(t, w.target, &cdiv1beta1.DataVolumeList{}); n != scenario.dvs {
					t.Errorf("%s: %d DataVolumes on the target, want %d", where, n, scenario.dvs)
				}
				source := &kubevirtv1.VirtualMachine{}
				if err := w.source.Get(context.Background(), client.ObjectKey{Namespace: sourceNamespace, Name: vmName}, source); err != nil || !ptr.Equal(source.Spec.RunStrategy, ptr.To(kubevirtv1.RunStrategyAlways)) {
					t.Errorf("%s: the source VM changed: %v %v", where, err, source.Spec.RunStrategy)
				}
				plan := &forkliftv1beta1.Plan{}
				if err := w.target.Get(context.Background(), client.ObjectKey{Namespace: DefaultNamespace, Name: "plan"}, plan); err != nil {
					t.Fatal(err)
				}
				if len(plan.Status.Migration.VMs) != 1 || plan.Status.Migration.VMs[0].Phase != scenario.vmOutcome {
					// The mirror may be one write behind after a kill at
					// the very end; the next reconcile of an ended
					// Migration writes it.
					r := w.reconciler()
					_, _ = r.Reconcile(quiet, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(m)})
					if err := w.target.Get(context.Background(), client.ObjectKey{Namespace: DefaultNamespace, Name: "plan"}, plan); err != nil {
						t.Fatal(err)
					}
					if len(plan.Status.Migration.VMs) != 1 || VMOutcome(plan.Status.Migration.VMs[0]) != scenario.vmOutcome {
						t.Errorf("%s: the plan mirrors %+v", where, plan.Status.Migration.VMs)
					}
				}
			}
			t.Logf("%s: killed at each of %d writes, every run ended %s with each object made once", scenario.name, total, scenario.want)
		})
	}
}

// checkTrustedBothWays: each cluster's kubevirt-external-ca holds the
// other's migration CA, once.
func (w *world) checkTrustedBothWays(where string) {
	w.t.Helper()
	sourceCA, targetCA := testCAs()
	for _, c := range []struct {
		name string
		c    client.Client
		peer string
	}{{"source", w.source, targetCA}, {"target", w.target, sourceCA}} {
		var external corev1.ConfigMap
		if err := c.c.Get(context.Background(), client.ObjectKey{Namespace: DefaultVirtNamespace, Name: trust.ExternalCAConfigMap}, &external); err != nil {
			w.t.Errorf("%s: the %s's %s: %v", where, c.name, trust.ExternalCAConfigMap, err)
			continue
		}
		if got := external.Data[trust.BundleKey]; got != c.peer {
			w.t.Errorf("%s: the %s's %s holds\n%s\nwant exactly the peer's CA", where, c.name, trust.ExternalCAConfigMap, got)
		}
	}
}
