package virtcontroller

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheme"
)

// reconcileAfterMigration reconciles vm, whose VMI is vmi, twice (the
// second time as the VM's update would), and returns the VM as it is then
// and the events.
func reconcileAfterMigration(t *testing.T, vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) (*kubevirtv1.VirtualMachine, []string) {
	t.Helper()
	vmi.OwnerReferences = []metav1.OwnerReference{controllerRef(vm)}
	kube := fake.NewClientBuilder().WithScheme(scheme.Scheme).
		WithStatusSubresource(&kubevirtv1.VirtualMachine{}, &kubevirtv1.VirtualMachineInstance{}).
		WithObjects(vm, vmi).Build()
	recorder := &events.FakeRecorder{Events: make(chan string, 20)}
	r := &vmReconciler{client: kube, recorder: recorder, now: func() time.Time { return testNow }}
	ctx := context.Background()
	for range 2 {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(vm)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := kube.Get(ctx, client.ObjectKeyFromObject(vmi), &kubevirtv1.VirtualMachineInstance{}); err != nil {
		t.Errorf("the VMI must stay: %v", err)
	}
	got := &kubevirtv1.VirtualMachine{}
	if err := kube.Get(ctx, client.ObjectKeyFromObject(vm), got); err != nil {
		t.Fatal(err)
	}
	close(recorder.Events)
	var recorded []string
	for e := range recorder.Events {
		recorded = append(recorded, e)
	}
	return got, recorded
}

func TestReconcileHaltsAVMThatMigratedAway(t *testing.T) {
	vm := testVM(kubevirtv1.RunStrategyAlways)
	vm.Spec.RunStrategy, vm.Spec.Running = nil, ptr.To(true) // the deprecated form
	got, recorded := reconcileAfterMigration(t, vm, migratedAway())
	if got.Spec.RunStrategy == nil || *got.Spec.RunStrategy != kubevirtv1.RunStrategyHalted || got.Spec.Running != nil {
		t.Errorf("spec = %+v, want runStrategy Halted and no running", got.Spec)
	}
	if got.Status.PrintableStatus != kubevirtv1.VirtualMachineStatusStopped || got.Status.RunStrategy != kubevirtv1.RunStrategyHalted {
		t.Errorf("status = %+v", got.Status)
	}
	if ready := got.Status.Conditions[0]; ready.Reason != reasonMigratedAway || !strings.Contains(ready.Message, "node t1 of another cluster") {
		t.Errorf("Ready = %+v", ready)
	}
	if len(recorded) != 1 || !strings.Contains(recorded[0], "Normal MigratedAway runStrategy Always -> Halted") {
		t.Errorf("events %q, want one MigratedAway", recorded)
	}
}

func TestReconcileRestoresAReceiversRunStrategy(t *testing.T) {
	vm := testVM(kubevirtv1.RunStrategyWaitAsReceiver)
	vm.Annotations = map[string]string{kubevirtv1.RestoreRunStrategyAnnotation: "Manual"}
	got, recorded := reconcileAfterMigration(t, vm, receivedVMI())
	if got.Spec.RunStrategy == nil || *got.Spec.RunStrategy != kubevirtv1.RunStrategyManual {
		t.Errorf("spec = %+v, want runStrategy Manual", got.Spec)
	}
	if got.Status.PrintableStatus != kubevirtv1.VirtualMachineStatusRunning {
		t.Errorf("status = %+v", got.Status)
	}
	if len(recorded) != 1 || !strings.Contains(recorded[0], "Normal MigrationReceived runStrategy WaitAsReceiver -> Manual") {
		t.Errorf("events %q, want one MigrationReceived", recorded)
	}
}
