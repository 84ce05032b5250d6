package vmiruntime

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheme"
)

// receiverVMI is a decentralized migration's receiver, WaitingForSync.
func receiverVMI() *kubevirtv1.VirtualMachineInstance {
	common := kubevirtv1.VirtualMachineInstanceCommonMigrationState{MigrationUID: testMigration}
	return &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "guest", Namespace: "ns"},
		Status: kubevirtv1.VirtualMachineInstanceStatus{
			Phase: kubevirtv1.WaitingForSync,
			MigrationState: &kubevirtv1.VirtualMachineInstanceMigrationState{
				MigrationUID: testMigration, TargetNode: "t",
				TargetState: &kubevirtv1.VirtualMachineInstanceMigrationTargetState{VirtualMachineInstanceCommonMigrationState: common},
			},
		},
	}
}

// apiWithReceiver is the API server's view: the receiver VMI, then
// written once more by another writer (as the sync controller does), so
// that a copy read before that write is stale.
func apiWithReceiver(t *testing.T) (api client.WithWatch, stale *kubevirtv1.VirtualMachineInstance) {
	t.Helper()
	vmi := receiverVMI()
	api = fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(vmi).WithStatusSubresource(vmi).Build()
	ctx := context.Background()
	stale = &kubevirtv1.VirtualMachineInstance{}
	if err := api.Get(ctx, client.ObjectKeyFromObject(vmi), stale); err != nil {
		t.Fatal(err)
	}
	other := stale.DeepCopy()
	other.Status.MigrationState.TargetNodeAddress = "192.0.2.7"
	if err := api.Status().Update(ctx, other); err != nil {
		t.Fatal(err)
	}
	return api, stale
}

// staleCache answers every VMI read with stale, as an informer does
// while it re-lists after an API server restart.
func staleCache(api client.WithWatch, stale *kubevirtv1.VirtualMachineInstance) client.WithWatch {
	return interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if vmi, ok := obj.(*kubevirtv1.VirtualMachineInstance); ok {
				stale.DeepCopyInto(vmi)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
}

func testMigrator(cache client.Client, api client.Reader) (*migrator, *events.FakeRecorder) {
	recorder := events.NewFakeRecorder(10)
	return &migrator{runner: &Runtime{client: cache, recorder: recorder, node: "t"}, apiReader: api}, recorder
}

// Found by the fault suite (the target kube-apiserver killed mid-transfer):
// the cache lagged behind, every status write from it conflicted, and the
// target that already ran the guest gave up recording it.
func TestStatusWritesOutliveAStaleCache(t *testing.T) {
	api, stale := apiWithReceiver(t)
	m, _ := testMigrator(staleCache(api, stale), api)
	err := m.patchMigrationState(context.Background(), receiverVMI(), func(s *kubevirtv1.VirtualMachineInstanceMigrationState) { s.Completed = true })
	if err != nil {
		t.Fatalf("a status write failed on a stale cache: %v", err)
	}
	var got kubevirtv1.VirtualMachineInstance
	if err := api.Get(context.Background(), client.ObjectKeyFromObject(stale), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Status.MigrationState.Completed || got.Status.MigrationState.TargetNodeAddress != "192.0.2.7" {
		t.Fatalf("migrationState %+v: want completed, and the other writer's address kept", got.Status.MigrationState)
	}
}

// A target running the guest keeps recording it through an API that
// refuses for a while (an API server restarting), and says so in an event.
func TestTakeoverIsRecordedThroughAnAPIOutage(t *testing.T) {
	api, stale := apiWithReceiver(t)
	refusals := 6 // more than one status write retries
	flaky := interceptor.NewClient(staleCache(api, stale), interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if refusals > 0 {
				refusals--
				return apierrors.NewServiceUnavailable("the API server is restarting")
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	m, recorder := testMigrator(flaky, api)
	if err := m.recordTakeover(context.Background(), receiverVMI()); err != nil {
		t.Fatalf("recordTakeover: %v", err)
	}
	var got kubevirtv1.VirtualMachineInstance
	if err := api.Get(context.Background(), client.ObjectKeyFromObject(stale), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.NodeName != "t" || got.Status.Phase != kubevirtv1.Running || !got.Status.MigrationState.Completed || got.Labels[kubevirtv1.NodeNameLabel] != "t" {
		t.Fatalf("after the takeover: node %q, phase %s, migrationState %+v, labels %v", got.Status.NodeName, got.Status.Phase, got.Status.MigrationState, got.Labels)
	}
	select {
	case event := <-recorder.Events:
		if !strings.Contains(event, "TakeoverNotRecorded") || !strings.Contains(event, "retrying") {
			t.Errorf("event %q: want TakeoverNotRecorded, retrying", event)
		}
	default:
		t.Error("no event said that recording the takeover was retried")
	}
}

// A migration that is no longer the VMI's is an answer, not a refusal:
// recording stops at once.
func TestTakeoverOfAReplacedMigrationIsNotRetried(t *testing.T) {
	vmi := receiverVMI()
	vmi.Status.MigrationState.MigrationUID = "another"
	api := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(vmi).WithStatusSubresource(vmi).Build()
	m, _ := testMigrator(api, api)
	err := m.recordTakeover(context.Background(), receiverVMI())
	if err == nil || !strings.Contains(err.Error(), "no longer the VMI's") {
		t.Fatalf("err %v: want the migration named as no longer the VMI's", err)
	}
}

func TestChangeNotifierWakesEveryWaiterOnce(t *testing.T) {
	var n changeNotifier
	key := types.NamespacedName{Namespace: "ns", Name: "vm"}
	first, second := n.next(key), n.next(key)
	n.notify(types.NamespacedName{Namespace: "ns", Name: "other"})
	select {
	case <-first:
		t.Fatal("woken by another VMI's change")
	default:
	}
	n.notify(key)
	for _, ch := range []<-chan struct{}{first, second} {
		select {
		case <-ch:
		default:
			t.Fatal("a waiter was not woken")
		}
	}
	select {
	case <-n.next(key):
		t.Fatal("a new wait is woken by an old change")
	default:
	}
}
