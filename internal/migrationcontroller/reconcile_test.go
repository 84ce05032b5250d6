package migrationcontroller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	migrationsv1alpha1 "github.com/cclm-io/cclm/api/migrations/v1alpha1"
	"github.com/cclm-io/cclm/internal/scheme"
)

func TestSetMetadata(t *testing.T) {
	m := migration(unset)
	if !setMetadata(m, Decision{Finalizer: true}) || len(m.Finalizers) != 1 {
		t.Fatalf("finalizer not added: %v", m.Finalizers)
	}
	if setMetadata(m, Decision{Finalizer: true}) {
		t.Error("an unchanged decision changed the metadata")
	}
	w := &Watermark{RemainingBytes: 1, Since: mt(time.Second)}
	if !setMetadata(m, Decision{Finalizer: true, Watermark: w}) || m.Annotations[WatermarkAnnotation] == "" {
		t.Fatalf("watermark not written: %v", m.Annotations)
	}
	if setMetadata(m, Decision{Finalizer: true, Watermark: watermarkOf(m)}) {
		t.Error("the watermark read back differs from the one written")
	}
	if !setMetadata(m, Decision{}) || len(m.Finalizers) != 0 || len(m.Annotations) != 0 {
		t.Errorf("finalizer %v or annotations %v left", m.Finalizers, m.Annotations)
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("abcdef", 5); got != "ab..." {
		t.Errorf("%q", got)
	}
	if got := truncate("aé€", 5); got != "a..." {
		t.Errorf("a cut through a rune: %q", got)
	}
	if got := truncate("short", 10); got != "short" {
		t.Errorf("%q", got)
	}
}

// newReconciler is a reconciler on a fake client holding objs, with funcs
// intercepting its calls.
func newReconciler(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *reconciler {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objs...).Build()
	return &reconciler{client: interceptor.NewClient(c, funcs), namespace: "kubevirt", now: func() time.Time { return t0 }}
}

func TestObserveAppliesTheMatchingMigrationPolicy(t *testing.T) {
	kv := &kubevirtv1.KubeVirt{ObjectMeta: metav1.ObjectMeta{Name: "kubevirt", Namespace: "kubevirt"}}
	kv.Spec.Configuration.MigrationConfiguration = &kubevirtv1.MigrationConfiguration{
		BandwidthPerMigration: ptr.To(resource.MustParse("64Mi")), ProgressTimeout: ptr.To[int64](60),
	}
	cluster := kv.EffectiveMigrationConfiguration()
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": "storage"}}}
	gold := goldPolicy() // tier=gold on the VMI: one label
	byNamespace := &migrationsv1alpha1.MigrationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "storage-team"},
		Spec: migrationsv1alpha1.MigrationPolicySpec{
			Selectors: &migrationsv1alpha1.Selectors{
				VirtualMachineInstanceSelector: migrationsv1alpha1.LabelSelector{"tier": "gold"},
				NamespaceSelector:              migrationsv1alpha1.LabelSelector{"team": "storage"},
			},
			AllowWorkloadDisruption: ptr.To(true),
		},
	}
	other := &migrationsv1alpha1.MigrationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "silver"},
		Spec: migrationsv1alpha1.MigrationPolicySpec{
			Selectors:     &migrationsv1alpha1.Selectors{VirtualMachineInstanceSelector: migrationsv1alpha1.LabelSelector{"tier": "silver"}},
			AllowPostCopy: ptr.To(true),
		},
	}
	goldVMI := runningVMI(func(vmi *kubevirtv1.VirtualMachineInstance) { vmi.Labels = map[string]string{"tier": "gold"} })
	noMatch := &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "migrations.kubevirt.io", Kind: "MigrationPolicy"}}
	for _, tc := range []struct {
		name   string
		vmi    *kubevirtv1.VirtualMachineInstance
		objs   []client.Object
		funcs  interceptor.Funcs
		policy string
		want   func(*kubevirtv1.MigrationConfiguration)
	}{
		{"no policy: the KubeVirt CR's configuration", goldVMI, nil, interceptor.Funcs{}, "", nil},
		{"no policy matches", runningVMI(), []client.Object{gold, other}, interceptor.Funcs{}, "", nil},
		{"the VMI's labels match one", goldVMI, []client.Object{gold, other}, interceptor.Funcs{}, "gold",
			func(c *kubevirtv1.MigrationConfiguration) { goldPolicy().ApplyTo(c) }},
		{"the namespace's labels make another match better", goldVMI, []client.Object{gold, other, byNamespace, namespace}, interceptor.Funcs{}, "storage-team",
			func(c *kubevirtv1.MigrationConfiguration) { c.AllowWorkloadDisruption = ptr.To(true) }},
		{"a namespace that is not found has no labels", goldVMI, []client.Object{gold, byNamespace}, interceptor.Funcs{}, "gold",
			func(c *kubevirtv1.MigrationConfiguration) { goldPolicy().ApplyTo(c) }},
		{"no VMI: no policy", nil, []client.Object{gold, byNamespace, namespace}, interceptor.Funcs{}, "", nil},
		{"no MigrationPolicy CRD: no policy", goldVMI, []client.Object{namespace}, interceptor.Funcs{
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				if _, ok := list.(*migrationsv1alpha1.MigrationPolicyList); ok {
					return noMatch
				}
				return c.List(ctx, list, opts...)
			},
		}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := append([]client.Object{kv}, tc.objs...)
			if tc.vmi != nil {
				objs = append(objs, tc.vmi)
			}
			r := newReconciler(t, tc.funcs, objs...)
			obs, err := r.observe(context.Background(), migration(pending))
			if err != nil {
				t.Fatal(err)
			}
			want := *cluster.DeepCopy()
			if tc.want != nil {
				tc.want(&want)
			}
			if !equality.Semantic.DeepEqual(obs.Config, want) {
				t.Errorf("config %+v, want %+v", obs.Config, want)
			}
			if obs.PolicyName != tc.policy {
				t.Errorf("policy %q, want %q", obs.PolicyName, tc.policy)
			}
		})
	}
}

// Other errors reading the policies or the namespace are the reconcile's.
func TestObserveFailsWhenPoliciesCannotBeRead(t *testing.T) {
	vmi := runningVMI()
	for name, funcs := range map[string]interceptor.Funcs{
		"policies": {List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, ok := list.(*migrationsv1alpha1.MigrationPolicyList); ok {
				return apierrors.NewForbidden(schema.GroupResource{Group: "migrations.kubevirt.io", Resource: "migrationpolicies"}, "", nil)
			}
			return c.List(ctx, list, opts...)
		}},
		"namespace": {Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Namespace); ok {
				return apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, key.Name, nil)
			}
			return c.Get(ctx, key, obj, opts...)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := newReconciler(t, funcs, vmi).observe(context.Background(), migration(pending)); !apierrors.IsForbidden(err) {
				t.Errorf("error %v, want the Forbidden", err)
			}
		})
	}
}

// activeMigrations counts the migrations holding a slot, those leaving
// the VMI's node, and those arriving at each node: a receiving half once
// it has a node, an in-cluster migration by its target node.
func TestActiveMigrationsCountsArrivals(t *testing.T) {
	withState := func(m *kubevirtv1.VirtualMachineInstanceMigration, from, to string) *kubevirtv1.VirtualMachineInstanceMigration {
		m.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{SourceNode: from, TargetNode: to}
		return m
	}
	self := migration(pending)
	all := []kubevirtv1.VirtualMachineInstanceMigration{
		*self,
		*withState(migration(running, named("m2", "uid-m2", 0)), "a", "b"),
		*withState(receiveMigration(scheduled, named("m3", "uid-m3", 0)), "elsewhere", "b"),
		*receiveMigration(waitingForSync, named("m4", "uid-m4", 0)), // no slot, no node yet
		*withState(migration(succeeded, named("m5", "uid-m5", 0)), "a", "b"),
	}
	got, err := newReconciler(t, interceptor.Funcs{}).activeMigrations(context.Background(), self, runningVMI(), all)
	if err != nil {
		t.Fatal(err)
	}
	if got.InCluster != 2 || got.FromSourceNode != 1 || len(got.IntoNode) != 1 || got.IntoNode["b"] != 2 {
		t.Errorf("active %+v, want 2 in the cluster, 1 leaving a, 2 arriving at b", got)
	}
}
