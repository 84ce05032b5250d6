package ipam

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	whereaboutsv1alpha1 "github.com/cclm-io/cclm/api/whereabouts/v1alpha1"
	"github.com/cclm-io/cclm/internal/scheme"
)

// The allocator against the fake client: the logic of the read-modify-write
// loop. The real API server's concurrency is tested in test/e2e.

func newTestAllocator(t *testing.T, funcs interceptor.Funcs) *poolAllocator {
	t.Helper()
	kube := interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme.Scheme).Build(), funcs)
	ipam := mustIPAM(t, `"range":"192.168.201.0/24","exclude":["192.168.201.128/25"]`)
	allocator, err := NewAllocator(kube, ipam, "", "migration0")
	if err != nil {
		t.Fatal(err)
	}
	return allocator.(*poolAllocator)
}

func TestAllocatorStoresThePoolAsWhereaboutsDoes(t *testing.T) {
	ctx := context.Background()
	allocator := newTestAllocator(t, interceptor.Funcs{})
	first, err := allocator.Allocate(ctx, "ocp7-worker-0", "openshift-cnv/virt-handler-ocp7-worker-0")
	if err != nil || first != netip.MustParsePrefix("192.168.201.1/24") {
		t.Fatalf("first allocation: %v, %v", first, err)
	}
	if again, err := allocator.Allocate(ctx, "ocp7-worker-0", "openshift-cnv/virt-handler-ocp7-worker-0"); err != nil || again != first {
		t.Errorf("allocating again gave %v, %v; want %v", again, err, first)
	}
	if second, err := allocator.Allocate(ctx, "ocp7-worker-1", "openshift-cnv/virt-handler-ocp7-worker-1"); err != nil || second != netip.MustParsePrefix("192.168.201.2/24") {
		t.Errorf("second holder: %v, %v", second, err)
	}

	var pool whereaboutsv1alpha1.IPPool
	if err := allocator.kube.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "192.168.201.0-24"}, &pool); err != nil {
		t.Fatal(err)
	}
	want := whereaboutsv1alpha1.IPPoolSpec{Range: "192.168.201.0/24", Allocations: Allocations{
		"1": {ContainerID: "ocp7-worker-0", PodRef: "openshift-cnv/virt-handler-ocp7-worker-0", IfName: "migration0"},
		"2": {ContainerID: "ocp7-worker-1", PodRef: "openshift-cnv/virt-handler-ocp7-worker-1", IfName: "migration0"},
	}}
	if !reflect.DeepEqual(pool.Spec, want) {
		t.Errorf("pool spec %+v, want %+v", pool.Spec, want)
	}

	if err := allocator.Release(ctx, "ocp7-worker-0"); err != nil {
		t.Fatal(err)
	}
	if err := allocator.Release(ctx, "ocp7-worker-0"); err != nil {
		t.Errorf("releasing twice: %v", err)
	}
	if reused, _ := allocator.Allocate(ctx, "ocp7-worker-2", "x/y"); reused != first {
		t.Errorf("after release the next holder got %v, want the freed %v", reused, first)
	}
}

func TestAllocatorRetriesLostRaces(t *testing.T) {
	conflicts := 0
	allocator := newTestAllocator(t, interceptor.Funcs{
		Update: func(ctx context.Context, kube client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if conflicts < 3 {
				conflicts++
				return apierrors.NewConflict(schema.GroupResource{Group: "whereabouts.cni.cncf.io", Resource: "ippools"}, obj.GetName(), nil)
			}
			return kube.Update(ctx, obj, opts...)
		},
	})
	ctx := context.Background()
	if _, err := allocator.Allocate(ctx, "a", "ns/a"); err != nil { // creates the pool
		t.Fatal(err)
	}
	got, err := allocator.Allocate(ctx, "b", "ns/b")
	if err != nil || conflicts != 3 || got != netip.MustParsePrefix("192.168.201.2/24") {
		t.Errorf("got %v, %v after %d conflicts", got, err, conflicts)
	}

	allocator.attempts = 2
	conflicts = 0
	_, err = allocator.Allocate(ctx, "c", "ns/c")
	if err == nil || !strings.Contains(err.Error(), "allocate an address for c from IPPool kube-system/192.168.201.0-24: other allocators changed the pool first 2 times in a row") {
		t.Errorf("giving up: %v", err)
	}
}

func TestAllocatorExhaustedNamesThePool(t *testing.T) {
	kube := fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()
	allocator, _ := NewAllocator(kube, mustIPAM(t, `"range":"10.0.0.0/30"`), "pools", "migration0")
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := allocator.Allocate(ctx, id, "ns/"+id); err != nil {
			t.Fatal(err)
		}
	}
	_, err := allocator.Allocate(ctx, "c", "ns/c")
	want := "allocate an address for c from IPPool pools/10.0.0.0-30: address pool exhausted: every address of ipam.range 10.0.0.0/30 (assignable: 10.0.0.1-10.0.0.2) is allocated"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v\nwant %q", err, want)
	}
}

func TestStaticAndMissingIPAM(t *testing.T) {
	static := mustConfig(t, `{"type":"macvlan","ipam":{"type":"static","addresses":[{"address":"10.0.0.5/24"}]}}`)
	allocator, err := NewAllocator(nil, static.IPAM, "", "migration0")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := allocator.Allocate(context.Background(), "a", "ns/a"); err != nil || got != netip.MustParsePrefix("10.0.0.5/24") {
		t.Errorf("static: %v, %v", got, err)
	}
	if _, err := NewAllocator(nil, IPAM{}, "", "migration0"); err == nil || !strings.Contains(err.Error(), "the NAD has no ipam section") {
		t.Errorf("no ipam: %v", err)
	}
}
