package synccontroller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// The leader publishes its address where peers and the toolkit look for
// it: the KubeVirt CR's status.synchronizationAddresses and each
// decentralized VMIM's.

// addresses is the value published: one address, host:port.
func (c *controller) addresses() []string { return []string{c.address} }

func (c *controller) setupKubeVirtPublisher(mgr ctrl.Manager) error {
	inVirtNamespace := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetNamespace() == c.opts.VirtNamespace
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("sync-address-publisher").
		For(&kubevirtv1.KubeVirt{}).
		WithEventFilter(inVirtNamespace).
		Complete(reconcile.Func(c.publishOnKubeVirt))
}

func (c *controller) publishOnKubeVirt(ctx context.Context, request reconcile.Request) (reconcile.Result, error) {
	kv := &kubevirtv1.KubeVirt{}
	if err := c.client.Get(ctx, request.NamespacedName, kv); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if slices.Equal(kv.Status.SynchronizationAddresses, c.addresses()) {
		return reconcile.Result{}, nil
	}
	if err := c.patchAddresses(ctx, "KubeVirt", kv); err != nil {
		return reconcile.Result{}, err
	}
	c.logger.Info("published the synchronization address", "address", c.address, "kubevirt", request.NamespacedName.String())
	return reconcile.Result{}, nil
}

func (c *controller) publishOnMigration(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration) error {
	if slices.Equal(m.Status.SynchronizationAddresses, c.addresses()) {
		return nil
	}
	err := c.patchAddresses(ctx, "VirtualMachineInstanceMigration", m)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// patchAddresses merge-patches status.synchronizationAddresses alone.
func (c *controller) patchAddresses(ctx context.Context, kind string, obj client.Object) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"synchronizationAddresses": c.addresses()}})
	if err != nil {
		return err
	}
	if err := c.client.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("publish the synchronization address in %s %s: %w", kind, client.ObjectKeyFromObject(obj), err)
	}
	return nil
}
