package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/ipam"
	"github.com/cclm-io/cclm/internal/migrationnet"
	"github.com/cclm-io/cclm/internal/scheme"
)

// migration0Keeper keeps the node's migration0, as Multus and whereabouts
// keep virt-handler's: it makes the interface as soon as everything it
// needs is there (the KubeVirt CR's migrations.network, the NAD it names,
// and the NAD's bridge, which a NodeNetworkConfigurationPolicy may create
// later), and keeps it afterwards (a bridge made anew loses its macvlan).
// Each time the address changes it is published in the Node annotation
// cclm.io/migration-address. While the network is missing it retries with
// a backoff and logs each different reason once; a policy applied, a
// KubeVirt CR or NAD changed make it try at once.
type migration0Keeper struct {
	kube      client.Client // uncached: Setup runs before and beside the manager
	clientset kubernetes.Interface
	env       *labNode
	opts      Options
	logger    *slog.Logger
	kicks     chan struct{}
	address   string
	lastErr   string
}

// Retry intervals: from the first to the longest while the network is
// missing, and the check interval once it is up.
const (
	migrationNetworkFirstRetry = time.Second
	migrationNetworkMaxRetry   = 10 * time.Second
	migrationNetworkRecheck    = 15 * time.Second
)

func newMigration0Keeper(restConfig *rest.Config, clientset kubernetes.Interface, env *labNode, opts Options, logger *slog.Logger) (*migration0Keeper, error) {
	direct, err := client.New(restConfig, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return nil, err
	}
	return &migration0Keeper{kube: direct, clientset: clientset, env: env, opts: opts, logger: logger, kicks: make(chan struct{}, 1)}, nil
}

// kick makes the loop try now.
func (m *migration0Keeper) kick() {
	select {
	case m.kicks <- struct{}{}:
	default:
	}
}

// run keeps migration0 until ctx ends.
func (m *migration0Keeper) run(ctx context.Context) {
	retry := migrationNetworkFirstRetry
	for {
		wait := migrationNetworkRecheck
		if m.ensure(ctx) {
			retry = migrationNetworkFirstRetry
		} else {
			wait, retry = retry, min(2*retry, migrationNetworkMaxRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-m.kicks:
			retry = migrationNetworkFirstRetry
		case <-time.After(wait):
		}
	}
}

// ensure sets up migration0 once and reports whether it is up.
func (m *migration0Keeper) ensure(ctx context.Context) bool {
	iface, err := migrationnet.Setup(ctx, m.kube, m.env.node, m.opts.NodeName, m.opts.VirtNamespace, ipam.DefaultPoolNamespace)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		if message := err.Error(); message != m.lastErr {
			m.lastErr = message
			if errors.Is(err, migrationnet.ErrNoMigrationNetwork) {
				m.logger.Warn("no migration network yet: this node can neither send nor receive live migrations until there is one", "err", err)
			} else {
				m.logger.Warn("migration network not ready; retrying", "err", err)
			}
		}
		return false
	}
	m.lastErr = ""
	address := iface.Address.String()
	if address == m.address {
		return true
	}
	if err := m.annotate(ctx, address); err != nil {
		m.logger.Warn("publish the migration address on the Node", "err", err)
		return false
	}
	m.address = address
	m.logger.Info("migration network ready", "interface", iface.Name, "address", iface.Address, "nad", iface.NAD)
	return true
}

// annotate publishes the address on the Node (registerNode keeps other
// writers' annotations, so it stays).
func (m *migration0Keeper) annotate(ctx context.Context, address string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{migrationnet.AnnotationKey: address}}})
	if err != nil {
		return err
	}
	_, err = m.clientset.CoreV1().Nodes().Patch(ctx, m.opts.NodeName, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// setupMigrationNetworkWatch kicks the loop when a KubeVirt CR of the virt
// namespace or a NAD changes.
func setupMigrationNetworkWatch(mgr ctrl.Manager, m *migration0Keeper) error {
	kick := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		if obj.GetNamespace() == m.opts.VirtNamespace {
			m.kick()
		}
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).Named("migration-network").
		WatchesRawSource(sourceKind(mgr, &kubevirtv1.KubeVirt{}, kick)).
		WatchesRawSource(sourceKind(mgr, &cniv1.NetworkAttachmentDefinition{}, kick)).
		Complete(reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, nil }))
}

func sourceKind(mgr ctrl.Manager, obj client.Object, h handler.EventHandler) source.Source {
	return source.Kind(mgr.GetCache(), obj, h)
}
