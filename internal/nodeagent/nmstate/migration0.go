package nmstate

import (
	"context"
	"errors"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	"github.com/cclm-io/cclm/internal/ipam"
	"github.com/cclm-io/cclm/internal/migrationnet"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/scheme"
)

// Migration0 keeps the node's migration0, as Multus and whereabouts keep
// virt-handler's: it makes the interface as soon as everything it needs is
// there (the KubeVirt CR's migrations.network, the NAD it names, and the
// NAD's bridge, which a NodeNetworkConfigurationPolicy may create later),
// and keeps it afterwards (a bridge made anew loses its macvlan). Each
// time the address changes it is published in the Node annotation
// cclm.io/migration-address.
//
// It is a controller with one key, the node: a KubeVirt CR or NAD of the
// virt namespace changing, or a policy's enactment on this node, makes it
// look at once; otherwise it looks again every few seconds while the
// network is missing (logging each different reason once), and now and
// then once it is up.
type Migration0 struct {
	kube          client.Client // uncached: the NAD, the address pool and the Node are read fresh
	host          *netlab.Node
	nodeName      string
	virtNamespace string
	logger        *slog.Logger
	lastErr       string
}

// How soon Migration0 looks again: while the network is missing, and once
// it is up.
const (
	migrationNetworkRetry   = 3 * time.Second
	migrationNetworkRecheck = 15 * time.Second
)

// NewMigration0 keeps migration0 in host, the network namespace of node
// nodeName, for the KubeVirt CR of virtNamespace.
func NewMigration0(restConfig *rest.Config, host *netlab.Node, nodeName, virtNamespace string, logger *slog.Logger) (*Migration0, error) {
	direct, err := client.New(restConfig, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return nil, err
	}
	return &Migration0{kube: direct, host: host, nodeName: nodeName, virtNamespace: virtNamespace, logger: logger}, nil
}

// SetupWithManager watches what migration0 depends on.
func (m *Migration0) SetupWithManager(mgr ctrl.Manager) error {
	thisNode := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: m.nodeName}}}
	})
	inVirtNamespace := builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetNamespace() == m.virtNamespace
	}))
	ownEnactments := builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetLabels()[nmstatev1.EnactmentNodeLabel] == m.nodeName
	}))
	ownNode := builder.WithPredicates(predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetName() == m.nodeName
	}), predicate.AnnotationChangedPredicate{})
	return ctrl.NewControllerManagedBy(mgr).Named("migration-network").
		For(&corev1.Node{}, ownNode).
		Watches(&kubevirtv1.KubeVirt{}, thisNode, inVirtNamespace).
		Watches(&cniv1.NetworkAttachmentDefinition{}, thisNode, inVirtNamespace).
		Watches(&nmstatev1.NodeNetworkConfigurationEnactment{}, thisNode, ownEnactments).
		Complete(m)
}

// Reconcile sets up migration0 once and publishes its address.
func (m *Migration0) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	iface, err := migrationnet.Setup(ctx, m.kube, m.host, m.nodeName, m.virtNamespace, ipam.DefaultPoolNamespace)
	if err != nil {
		if ctx.Err() != nil {
			return ctrl.Result{}, ctx.Err()
		}
		m.logOnce(err)
		return ctrl.Result{RequeueAfter: migrationNetworkRetry}, nil
	}
	m.lastErr = ""
	address := iface.Address.String()
	published, err := m.publish(ctx, address)
	if err != nil {
		return ctrl.Result{}, err
	}
	if published {
		m.logger.Info("migration network ready", "interface", iface.Name, "address", iface.Address, "nad", iface.NAD)
	}
	return ctrl.Result{RequeueAfter: migrationNetworkRecheck}, nil
}

// logOnce logs why the network is not ready, once for each reason.
func (m *Migration0) logOnce(err error) {
	message := err.Error()
	if message == m.lastErr {
		return
	}
	m.lastErr = message
	if errors.Is(err, migrationnet.ErrNoMigrationNetwork) {
		m.logger.Warn("no migration network yet: this node can neither send nor receive live migrations until there is one", "err", err)
	} else {
		m.logger.Warn("migration network not ready; retrying", "err", err)
	}
}

// publish puts the address on the Node unless it is there already, and
// says whether it wrote (registration keeps other writers' annotations, so
// it stays).
func (m *Migration0) publish(ctx context.Context, address string) (bool, error) {
	node := &corev1.Node{}
	if err := m.kube.Get(ctx, client.ObjectKey{Name: m.nodeName}, node); err != nil {
		return false, err
	}
	if node.Annotations[migrationnet.AnnotationKey] == address {
		return false, nil
	}
	patch := client.MergeFrom(node.DeepCopy())
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Annotations[migrationnet.AnnotationKey] = address
	return true, m.kube.Patch(ctx, node, patch)
}
