package install

import (
	"context"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/metrics"
)

// VirtController is the virt controller's account (upstream's
// kubevirt-controller) with the cluster-wide rights it uses and no more;
// each rule says what for.
var VirtController = Component{
	ServiceAccount: "kubevirt-controller",
	Rules: []rbacv1.PolicyRule{
		// VMs: watched; updated to write MACs into the template; patched
		// for the crash-loop annotation; status written.
		rule("kubevirt.io", []string{"virtualmachines"}, "get", "list", "watch", "update", "patch"),
		rule("kubevirt.io", []string{"virtualmachines/status"}, "update"),
		// VMIs: created and deleted per run strategy, label patched by the
		// scheduler, status (phase, node, PodScheduled) written.
		rule("kubevirt.io", []string{"virtualmachineinstances"}, "get", "list", "watch", "create", "delete", "patch"),
		rule("kubevirt.io", []string{"virtualmachineinstances/status"}, "update"),
		// DataVolumes: created from a VM's templates; status written by
		// the DataVolume controller.
		rule("cdi.kubevirt.io", []string{"datavolumes"}, "get", "list", "watch", "create"),
		rule("cdi.kubevirt.io", []string{"datavolumes/status"}, "update"),
		// Setting blockOwnerDeletion on what a VM or DataVolume owns needs
		// update on the owner's finalizers where the
		// OwnerReferencesPermissionEnforcement admission plugin is on
		// (OpenShift).
		rule("kubevirt.io", []string{"virtualmachines/finalizers"}, "update"),
		rule("cdi.kubevirt.io", []string{"datavolumes/finalizers"}, "update"),
		// PVCs: created for DataVolumes; patched with the selected node.
		rule("", []string{"persistentvolumeclaims"}, "get", "list", "watch", "create", "patch"),
		// Scheduling reads nodes, local PVs and storage classes.
		rule("", []string{"nodes", "persistentvolumes"}, readVerbs...),
		rule("storage.k8s.io", []string{"storageclasses"}, readVerbs...),
		// Instancetypes and preferences a VM names, applied to its VMI.
		rule("instancetype.kubevirt.io", []string{"virtualmachineinstancetypes", "virtualmachineclusterinstancetypes",
			"virtualmachinepreferences", "virtualmachineclusterpreferences"}, readVerbs...),
		// Events at each decision (controller-runtime's events.k8s.io
		// recorder creates, and patches a series).
		rule("events.k8s.io", []string{"events"}, "create", "patch"),
		// The metrics server's reviews of its callers.
		metrics.ServingRules[0], metrics.ServingRules[1],
	},
}

// virtControllerLeaseName is the Lease replicas elect their leader with
// (virtcontroller.LeaderElectionID).
const virtControllerLeaseName = "virt-controller"

// virtControllerLeaderElectionRole is the Role, in the virt namespace, for
// the Lease and the events the leader election writes about it.
func virtControllerLeaderElectionRole(namespace string) []runtime.Object {
	name := "cclm:" + VirtController.ServiceAccount + ":leader-election"
	return []runtime.Object{
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Rules: []rbacv1.PolicyRule{
				// create cannot be limited by name: the name is not known
				// to RBAC before the object exists.
				rule("coordination.k8s.io", []string{"leases"}, "create"),
				{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
					ResourceNames: []string{virtControllerLeaseName}, Verbs: []string{"get", "update"}},
				rule("", []string{"events"}, "create", "patch"),
			},
		},
	}
}

// InstallVirtController installs the virt controller's ServiceAccount in
// the virt namespace, its ClusterRole and bindings and its leader-election
// Role, and returns a kubeconfig that authenticates as the ServiceAccount
// (what `cclm controller` runs with).
//
// extraRules are added to the ClusterRole: the rules of the controllers
// that run in the same process (the migration controller's).
func InstallVirtController(ctx context.Context, restConfig *rest.Config, namespace string, extraRules ...rbacv1.PolicyRule) (*clientcmdapi.Config, error) {
	applier, err := kube.NewApplier(restConfig)
	if err != nil {
		return nil, err
	}
	role := virtControllerLeaderElectionRole(namespace)
	if err := applier.Apply(ctx, role...); err != nil {
		return nil, err
	}
	component := VirtController
	component.Rules = append(slices.Clone(component.Rules), extraRules...)
	component.NamespacedRoles = append(slices.Clone(component.NamespacedRoles),
		NamespacedRole{Namespace: namespace, Role: role[0].(*rbacv1.Role).Name})
	return InstallComponent(ctx, restConfig, namespace, component)
}
