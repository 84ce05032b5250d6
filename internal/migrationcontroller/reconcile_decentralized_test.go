package migrationcontroller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/scheme"
)

// reconcileOnce runs the reconciler once at now over objects and returns
// the client to read the result from.
func reconcileOnce(t *testing.T, now time.Duration, m *kubevirtv1.VirtualMachineInstanceMigration, objects ...client.Object) client.Client {
	t.Helper()
	fakeClient := fake.NewClientBuilder().WithScheme(scheme.Scheme).
		WithStatusSubresource(&kubevirtv1.VirtualMachineInstance{}, &kubevirtv1.VirtualMachineInstanceMigration{}).
		WithObjects(append(objects, m)...).Build()
	r := &reconciler{
		client: fakeClient, recorder: &events.FakeRecorder{Events: make(chan string, 20)},
		timeouts: Timeouts{}.withDefaults(), written: kube.NewExpectations(100 * time.Millisecond),
		now: func() time.Time { return at(now) },
	}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(m)}); err != nil {
		t.Fatal(err)
	}
	return fakeClient
}

func get[T client.Object](t *testing.T, kube client.Client, name string, obj T) T {
	t.Helper()
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// A receive migration whose source synchronized: the VMI's state claimed,
// the unbound claim placed on the chosen node, the VMIM Scheduled.
func TestReconcileReceiverChoosesNode(t *testing.T) {
	disk, _ := claim("disk", "1Gi", "")
	nodeA, nodeB := node("a", "8Gi"), node("b", "8Gi")
	vmi := receiverVMI(withClaim("disk"), withState(unclaimed(sourcePushed)))
	kube := reconcileOnce(t, 10*time.Second, receiveMigration(waitingForSync), vmi, &disk, &nodeA, &nodeB)

	gotVMI := get(t, kube, vmiName, &kubevirtv1.VirtualMachineInstance{ObjectMeta: vmi.ObjectMeta})
	state := gotVMI.Status.MigrationState
	if state == nil || state.MigrationUID != uid || state.TargetNode != "a" || state.SourceNode != "s1" ||
		state.SourceState == nil || state.SourceState.MigrationUID != "uid-s" || !state.IsDecentralizedTarget() {
		t.Errorf("VMI migrationState %s", show(state))
	}
	if gotVMI.Status.Phase != kubevirtv1.WaitingForSync {
		t.Errorf("VMI phase %s, want WaitingForSync", gotVMI.Status.Phase)
	}
	gotPVC := get(t, kube, "disk", &corev1.PersistentVolumeClaim{ObjectMeta: disk.ObjectMeta})
	if gotPVC.Annotations[SelectedNodeAnnotation] != "a" {
		t.Errorf("PVC annotations %v, want %s=a", gotPVC.Annotations, SelectedNodeAnnotation)
	}
	gotM := get(t, kube, "m1", &kubevirtv1.VirtualMachineInstanceMigration{ObjectMeta: receiveMigration(unset).ObjectMeta})
	if gotM.Status.Phase != kubevirtv1.MigrationScheduled || gotM.Status.MigrationState == nil || gotM.Status.MigrationState.TargetNode != "a" {
		t.Errorf("VMIM phase %s, mirror %s", gotM.Status.Phase, show(gotM.Status.MigrationState))
	}
}

// A receive migration nobody synchronized in time: it fails, and so does
// its receiver VMI, with the reason.
func TestReconcileReceiverMarkedFailed(t *testing.T) {
	vmi := receiverVMI()
	kube := reconcileOnce(t, 5*time.Minute, receiveMigration(waitingForSync), vmi)

	gotVMI := get(t, kube, vmiName, &kubevirtv1.VirtualMachineInstance{ObjectMeta: vmi.ObjectMeta})
	if gotVMI.Status.Phase != kubevirtv1.Failed || !strings.Contains(gotVMI.Status.Reason, "no source cluster synchronized migrationID x") {
		t.Errorf("VMI phase %s, reason %q", gotVMI.Status.Phase, gotVMI.Status.Reason)
	}
	ok, ready := vmiConditionTrue(gotVMI, kubevirtv1.VirtualMachineInstanceReady)
	if ok || ready == nil || ready.Reason != ReasonSyncTimeout {
		t.Errorf("Ready condition %+v, want False with reason %s", ready, ReasonSyncTimeout)
	}
	stamps := gotVMI.Status.PhaseTransitionTimestamps
	if len(stamps) == 0 || stamps[len(stamps)-1].Phase != kubevirtv1.Failed || !stamps[len(stamps)-1].PhaseTransitionTimestamp.Time.Equal(at(5*time.Minute)) {
		t.Errorf("phase transitions %+v", stamps)
	}
	gotM := get(t, kube, "m1", &kubevirtv1.VirtualMachineInstanceMigration{ObjectMeta: receiveMigration(unset).ObjectMeta})
	if gotM.Status.Phase != kubevirtv1.MigrationFailed || len(gotM.Finalizers) != 0 {
		t.Errorf("VMIM phase %s, finalizers %v", gotM.Status.Phase, gotM.Finalizers)
	}
}

// A source migration starts synchronizing: the VMI's state carries the
// source half.
func TestReconcileSourceSynchronizes(t *testing.T) {
	vmi := runningVMI()
	kube := reconcileOnce(t, 10*time.Second, sourceMigration(pending), vmi)
	gotVMI := get(t, kube, vmiName, &kubevirtv1.VirtualMachineInstance{ObjectMeta: vmi.ObjectMeta})
	if state := gotVMI.Status.MigrationState; !state.IsDecentralizedSource() || state.SourceNode != "a" || state.SourceState.Node != "a" {
		t.Errorf("VMI migrationState %s", show(state))
	}
	gotM := get(t, kube, "m1", &kubevirtv1.VirtualMachineInstanceMigration{ObjectMeta: sourceMigration(unset).ObjectMeta})
	if gotM.Status.Phase != kubevirtv1.MigrationSynchronizing {
		t.Errorf("VMIM phase %s, want Synchronizing", gotM.Status.Phase)
	}
}
