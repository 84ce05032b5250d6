package migrationcontroller

import (
	"cmp"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/kube"
)

// Options configure the migration controller. The zero value works.
type Options struct {
	// Namespace is the virt namespace, where the KubeVirt CR is; empty
	// reads the KubeVirt CR of any namespace.
	Namespace string
	// Timeouts of the controller's own waits; zero fields take the
	// defaults (kubevirtv1.DefaultMigration*Timeout). Tests shorten them.
	Timeouts Timeouts
	// CacheCatchUp bounds the wait, after each write, for the cache to
	// show it (default 5 s) before the next decision goes on without it; see
	// reconciler.expectCache.
	CacheCatchUp time.Duration
}

// PolicyRules are the cluster-wide rights the migration controller needs
// on top of the virt controller's (install.VirtController), each with what
// for. Nodes, PVs and PVCs are read for choosing the target (a receiver's
// PVCs patched with the chosen node); MigrationPolicies and Namespaces for
// a migration's configuration; VMI status is updated for migrationState
// (and a failed receiver's phase); events are recorded on VMIMs.
var PolicyRules = []rbacv1.PolicyRule{
	// VMIMs: watched; updated for the finalizer and the progress
	// watermark annotation; their status written.
	{APIGroups: []string{"kubevirt.io"}, Resources: []string{"virtualmachineinstancemigrations"}, Verbs: []string{"get", "list", "watch", "update"}},
	{APIGroups: []string{"kubevirt.io"}, Resources: []string{"virtualmachineinstancemigrations/status"}, Verbs: []string{"update"}},
	// VMIs: watched; status.migrationState written.
	{APIGroups: []string{"kubevirt.io"}, Resources: []string{"virtualmachineinstances"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"kubevirt.io"}, Resources: []string{"virtualmachineinstances/status"}, Verbs: []string{"update"}},
	// The KubeVirt CR: migration limits and timeouts.
	{APIGroups: []string{"kubevirt.io"}, Resources: []string{"kubevirts"}, Verbs: []string{"get", "list", "watch"}},
	// MigrationPolicies and the VMI's Namespace (its labels, for the
	// policies' namespaceSelector): the configuration of a migration.
	{APIGroups: []string{"migrations.kubevirt.io"}, Resources: []string{"migrationpolicies"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
	// Choosing the target node.
	{APIGroups: []string{""}, Resources: []string{"nodes", "persistentvolumes", "persistentvolumeclaims"}, Verbs: []string{"get", "list", "watch"}},
	// A receiver VMI's unbound claims: annotated with the chosen node
	// (volume.kubernetes.io/selected-node).
	{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"patch"}},
	// Events on VMIMs (controller-runtime's events.k8s.io recorder).
	{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
}

// vmiNameIndex indexes VMIMs by namespace/spec.vmiName, so that a VMI's
// change finds its migrations.
const vmiNameIndex = "cclm.io/migrationVMIName"

// New adds the migration controller to mgr, whose scheme must be cclm's
// (internal/scheme).
func New(mgr ctrl.Manager, opts Options) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &kubevirtv1.VirtualMachineInstanceMigration{}, vmiNameIndex,
		func(obj client.Object) []string {
			m := obj.(*kubevirtv1.VirtualMachineInstanceMigration)
			return []string{vmiKey(m.Namespace, m.Spec.VMIName)}
		})
	if err != nil {
		return fmt.Errorf("migration controller: index VMIMs by VMI: %w", err)
	}
	r := &reconciler{
		client:    mgr.GetClient(),
		recorder:  mgr.GetEventRecorder("migration-controller"),
		namespace: opts.Namespace,
		timeouts:  opts.Timeouts.withDefaults(),
		written:   kube.NewExpectations(cmp.Or(opts.CacheCatchUp, 5*time.Second)),
		now:       time.Now,
	}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("vmi-migration").
		Watches(&kubevirtv1.VirtualMachineInstanceMigration{}, handler.EnqueueRequestsFromMapFunc(r.migrationAndWaiting)).
		Watches(&kubevirtv1.VirtualMachineInstance{}, handler.EnqueueRequestsFromMapFunc(r.migrationsOfVMI)).
		Watches(&kubevirtv1.KubeVirt{}, handler.EnqueueRequestsFromMapFunc(r.unfinishedMigrations)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.schedulingMigrations)).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(r.receiversInNamespace)).
		// One at a time, each waiting until the cache shows its writes:
		// the next decision then counts the slots and target memory the
		// previous one took.
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("migration controller: %w", err)
	}
	return nil
}

func vmiKey(namespace, name string) string { return namespace + "/" + name }

// migrationAndWaiting maps a VMIM event to that VMIM and, since its end
// may free a slot, to the migrations waiting for one.
func (r *reconciler) migrationAndWaiting(ctx context.Context, obj client.Object) []reconcile.Request {
	var requests []reconcile.Request
	if m, ok := obj.(*kubevirtv1.VirtualMachineInstanceMigration); ok {
		requests = append(requests, requestFor(m))
	}
	return append(requests, r.migrationsWhere(ctx, func(m *kubevirtv1.VirtualMachineInstanceMigration) bool {
		return m.DeletionTimestamp == nil && m.Status.Phase == kubevirtv1.MigrationPending
	})...)
}

// migrationsOfVMI maps a VMI event (the agents' or the synchronization
// controller's writes; a receiver VMI's too, named by its receive
// migration's spec.vmiName like any other) to the migrations naming it
// that are not done, and to the one its migrationState belongs to, whose
// mirror follows the agents' last words even after it ended.
func (r *reconciler) migrationsOfVMI(ctx context.Context, obj client.Object) []reconcile.Request {
	var current types.UID
	if vmi, ok := obj.(*kubevirtv1.VirtualMachineInstance); ok && vmi.Status.MigrationState != nil {
		current = vmi.Status.MigrationState.MigrationUID
	}
	var list kubevirtv1.VirtualMachineInstanceMigrationList
	if err := r.client.List(ctx, &list, client.MatchingFields{vmiNameIndex: vmiKey(obj.GetNamespace(), obj.GetName())}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list the migrations of a VMI", "vmi", obj.GetName())
		return nil
	}
	var requests []reconcile.Request
	for i := range list.Items {
		if m := &list.Items[i]; needsAttention(m) || m.UID == current {
			requests = append(requests, requestFor(m))
		}
	}
	return requests
}

// unfinishedMigrations: a KubeVirt CR change may change limits and
// timeouts of every migration not yet ended.
func (r *reconciler) unfinishedMigrations(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.migrationsWhere(ctx, needsAttention)
}

// schedulingMigrations: a node change may give an unschedulable migration
// its target.
func (r *reconciler) schedulingMigrations(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.migrationsWhere(ctx, choosesNode)
}

// receiversInNamespace: a claim that appears (a DataVolume's, say) may be
// one an unfinished receive migration in its namespace must place on its
// chosen node.
func (r *reconciler) receiversInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.migrationsWhere(ctx, func(m *kubevirtv1.VirtualMachineInstanceMigration) bool {
		return m.Namespace == obj.GetNamespace() && m.IsDecentralizedTarget() && !m.IsFinal()
	})
}

// needsAttention: not final, or still holding the finalizer.
func needsAttention(m *kubevirtv1.VirtualMachineInstanceMigration) bool {
	return !m.IsFinal() || len(m.Finalizers) > 0 || m.DeletionTimestamp != nil
}

func (r *reconciler) migrationsWhere(ctx context.Context, match func(*kubevirtv1.VirtualMachineInstanceMigration) bool) []reconcile.Request {
	var list kubevirtv1.VirtualMachineInstanceMigrationList
	if err := r.client.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list migrations")
		return nil
	}
	var requests []reconcile.Request
	for i := range list.Items {
		if m := &list.Items[i]; match(m) {
			requests = append(requests, requestFor(m))
		}
	}
	return requests
}

func requestFor(m *kubevirtv1.VirtualMachineInstanceMigration) reconcile.Request {
	return reconcile.Request{NamespacedName: client.ObjectKeyFromObject(m)}
}
