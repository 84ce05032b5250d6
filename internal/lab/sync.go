package lab

import (
	"context"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/scheme"
)

// syncStartTimeout bounds the wait for a cluster's synchronization
// controller to publish its address: it makes migration0, issues its
// certificates and takes its Lease (fresh in a new lab), two or three
// seconds; two minutes leave room for a slow, busy machine.
const syncStartTimeout = 2 * time.Minute

// waitForSync waits until every cluster's KubeVirt CR shows its
// synchronization controller's address (status.synchronizationAddresses),
// so that a ready lab can start a cross-cluster migration at once (peers
// find each other there, and sendTo.connectURL names it). It fails early,
// with the component's log, if a component ends.
func waitForSync(ctx context.Context, clusters []*controlplane.Cluster, virtNamespace string, nodes *labNodes, logger *log.Logger) error {
	for _, cluster := range clusters {
		admin, err := cluster.RESTConfig()
		if err != nil {
			return err
		}
		reader, err := kubeVirtReader(admin)
		if err != nil {
			return err
		}
		var addresses []string
		what := fmt.Sprintf("%s's %s to publish its address in KubeVirt %s/%s status.synchronizationAddresses", cluster.Name, SyncControllerName, virtNamespace, install.KubeVirtName)
		err = kube.Poll(ctx, 250*time.Millisecond, syncStartTimeout, what, func(ctx context.Context) (bool, string, error) {
			if err := nodes.deadComponent(); err != nil {
				return false, "", err
			}
			addresses, err = syncAddresses(ctx, reader, virtNamespace)
			if err != nil {
				return false, err.Error(), nil
			}
			return len(addresses) > 0, "no address published yet", nil
		})
		if err != nil {
			return err
		}
		logger.Printf("%s: %s serves at %s", cluster.Name, SyncControllerName, strings.Join(addresses, ", "))
	}
	return nil
}

func kubeVirtReader(config *rest.Config) (client.Reader, error) {
	return client.New(config, client.Options{Scheme: scheme.Scheme})
}

// syncAddresses are the host:port addresses the cluster's synchronization
// controller published in the lab's KubeVirt CR.
func syncAddresses(ctx context.Context, reader client.Reader, virtNamespace string) ([]string, error) {
	kv := &kubevirtv1.KubeVirt{}
	if err := reader.Get(ctx, client.ObjectKey{Namespace: virtNamespace, Name: install.KubeVirtName}, kv); err != nil {
		return nil, fmt.Errorf("read KubeVirt %s/%s: %w", virtNamespace, install.KubeVirtName, err)
	}
	return kv.Status.SynchronizationAddresses, nil
}

// SyncDialer dials from the network namespace of a lab cluster's
// synchronization controller (lab node SyncNodeName(cluster) of the lab
// with ID labID), that is from where that controller dials its peer: what
// preflight's SyncReachable needs in the lab (preflight.Input.DialSync).
// address is host:port with an IP.
func SyncDialer(labID string) func(ctx context.Context, cluster, address string) (net.Conn, error) {
	return func(ctx context.Context, cluster, address string) (net.Conn, error) {
		node, err := netlab.OpenNode(labID, SyncNodeName(cluster))
		if err != nil {
			return nil, fmt.Errorf("the lab's %s namespace (is %s one of the lab's clusters?): %w", SyncNodeName(cluster), cluster, err)
		}
		return node.DialContext(ctx, "tcp", address)
	}
}
