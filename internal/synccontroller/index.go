package synccontroller

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Indexes of decentralized VMIMs in the manager's cache.
const (
	// indexMigrationID: a peer's call names the migration by its ID.
	indexMigrationID = "cclm.io/sync-migrationID"
	// indexVMIName: a VMI's change concerns the migrations of that VMI.
	indexVMIName = "cclm.io/sync-vmiName"
	// indexUID: a peer's cancel names the migration by its VMIM's UID.
	indexUID = "cclm.io/sync-uid"
)

func addIndexes(ctx context.Context, mgr ctrl.Manager) error {
	indexes := map[string]func(*kubevirtv1.VirtualMachineInstanceMigration) string{
		indexMigrationID: migrationIDOf,
		indexVMIName:     func(m *kubevirtv1.VirtualMachineInstanceMigration) string { return m.Spec.VMIName },
		indexUID:         func(m *kubevirtv1.VirtualMachineInstanceMigration) string { return string(m.UID) },
	}
	for name, value := range indexes {
		err := mgr.GetFieldIndexer().IndexField(ctx, &kubevirtv1.VirtualMachineInstanceMigration{}, name, func(obj client.Object) []string {
			m := obj.(*kubevirtv1.VirtualMachineInstanceMigration)
			if roleOf(m) == 0 {
				return nil // in-cluster migrations are not this controller's
			}
			return []string{value(m)}
		})
		if err != nil {
			return err
		}
	}
	return nil
}
