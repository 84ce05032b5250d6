package storage

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/cclm-io/cclm/internal/scheduling"
	"github.com/cclm-io/cclm/internal/scheme"
)

func TestWaitBoundPV(t *testing.T) {
	pvc := func(volume string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "vm-data", Namespace: "ns"},
			Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: volume},
		}
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-1", Annotations: map[string]string{scheduling.StorageNodeAnnotation: "t"}},
		Spec:       corev1.PersistentVolumeSpec{Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
	}
	newStorage := func(objects ...client.Object) *Volumes {
		kube := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objects...).Build()
		return &Volumes{client: kube, node: "t"}
	}
	ctx := context.Background()

	t.Run("bound", func(t *testing.T) {
		got, err := newStorage(pvc("pvc-1"), pv).waitBoundPV(ctx, "ns", "vm-data", 0)
		if err != nil || got.Name != "pvc-1" {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("never bound: a reason naming the PVC and what binds it", func(t *testing.T) {
		_, err := newStorage(pvc("")).waitBoundPV(ctx, "ns", "vm-data", 0)
		if err == nil || !strings.Contains(err.Error(), "ns/vm-data is not bound") || !strings.Contains(err.Error(), scheduling.SelectedNodeAnnotation+"=t") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("bound while waiting", func(t *testing.T) {
		s := newStorage(pvc(""), pv)
		go func() {
			time.Sleep(100 * time.Millisecond)
			claim := pvc("")
			if err := s.client.Get(ctx, client.ObjectKeyFromObject(claim), claim); err != nil {
				t.Error(err)
				return
			}
			claim.Spec.VolumeName = "pvc-1"
			if err := s.client.Update(ctx, claim); err != nil {
				t.Error(err)
			}
		}()
		got, err := s.waitBoundPV(ctx, "ns", "vm-data", time.Minute)
		if err != nil || got.Name != "pvc-1" {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("aborted", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := newStorage(pvc("")).waitBoundPV(cancelled, "ns", "vm-data", time.Minute); err == nil {
			t.Fatal("an aborted migration must not keep waiting")
		}
	})
}
