package hco

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	hcov1beta1 "github.com/cclm-io/cclm/api/hco/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheme"
)

// The reconciler makes the KubeVirt CR follow the HyperConverged CR, and
// reverts a hand edit of a field the HyperConverged CR sets.
func TestReconcileRevertsAnEditOfAManagedField(t *testing.T) {
	ctx := context.Background()
	hco := &hcov1beta1.HyperConverged{ObjectMeta: metav1.ObjectMeta{Name: hcov1beta1.HyperConvergedName, Namespace: "openshift-cnv", Generation: 1}, Spec: seedSpec()}
	kv := &kubevirtv1.KubeVirt{ObjectMeta: metav1.ObjectMeta{Name: "kubevirt", Namespace: "openshift-cnv"}}
	kube := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(hco, kv).
		WithStatusSubresource(&hcov1beta1.HyperConverged{}, &kubevirtv1.KubeVirt{}).Build()
	r := &reconciler{client: kube, namespace: "openshift-cnv"}
	request := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "openshift-cnv", Name: hcov1beta1.HyperConvergedName}}
	reconcileAndRead := func() *kubevirtv1.KubeVirt {
		t.Helper()
		if _, err := r.Reconcile(ctx, request); err != nil {
			t.Fatal(err)
		}
		got := &kubevirtv1.KubeVirt{}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(kv), got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	got := reconcileAndRead()
	if !got.IsFeatureGateEnabled(kubevirtv1.DecentralizedLiveMigrationGate) || got.Spec.Configuration.MigrationConfiguration.Network != "livemigration-network" {
		t.Fatalf("KubeVirt CR did not follow: %+v", got.Spec.Configuration)
	}
	status := &hcov1beta1.HyperConverged{}
	if err := kube.Get(ctx, request.NamespacedName, status); err != nil {
		t.Fatal(err)
	}
	if !meta.IsStatusConditionTrue(status.Status.Conditions, hcov1beta1.ConditionAvailable) || status.Status.ObservedGeneration != 1 {
		t.Fatalf("HyperConverged status: %+v", status.Status)
	}

	got.Spec.Configuration.MigrationConfiguration.Network = "edited"
	got.Spec.Configuration.MigrationConfiguration.ProgressTimeout = ptr(int64(15))
	if err := kube.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	got = reconcileAndRead()
	if m := got.Spec.Configuration.MigrationConfiguration; m.Network != "livemigration-network" || m.ProgressTimeout == nil || *m.ProgressTimeout != 15 {
		t.Fatalf("want the network reverted and the unmanaged progressTimeout kept: %+v", m)
	}
}

// Without a KubeVirt CR the reconciler creates one, as the operator does.
func TestReconcileCreatesTheKubeVirtCR(t *testing.T) {
	ctx := context.Background()
	hco := &hcov1beta1.HyperConverged{ObjectMeta: metav1.ObjectMeta{Name: hcov1beta1.HyperConvergedName, Namespace: "openshift-cnv"}, Spec: seedSpec()}
	kube := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(hco).WithStatusSubresource(&hcov1beta1.HyperConverged{}).Build()
	r := &reconciler{client: kube, namespace: "openshift-cnv"}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(hco)}); err != nil {
		t.Fatal(err)
	}
	kv := &kubevirtv1.KubeVirt{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: "openshift-cnv", Name: "kubevirt"}, kv); err != nil {
		t.Fatal(err)
	}
	if kv.Annotations[ManagedFieldsAnnotation] != "featureGates.DecentralizedLiveMigration,migrations.network" {
		t.Fatalf("annotation %q", kv.Annotations[ManagedFieldsAnnotation])
	}
}
