package lab

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/netlab"
)

// The seed's migration network: VLAN 2001 as bridge br-2001 on every
// worker with port enp2s0, and per cluster a NetworkAttachmentDefinition
// livemigration-network whose whereabouts range excludes the other
// cluster's half of 192.168.201.0/24.
const (
	MigrationBridge  = "br-2001"
	MigrationNADName = "livemigration-network"
	migrationRange   = "192.168.201.0/24"
)

// migrationExclude is the half of the range a cluster leaves to the other.
var migrationExclude = map[string]string{
	"ocp7": "192.168.201.128/25",
	"ocp1": "192.168.201.0/25",
}

// migrationNAD is the seed's ocpN.net-attach-def.yaml for a cluster.
func migrationNAD(cluster, namespace string) (*cniv1.NetworkAttachmentDefinition, error) {
	exclude, ok := migrationExclude[cluster]
	if !ok {
		return nil, fmt.Errorf("no migration range is planned for cluster %q", cluster)
	}
	return &cniv1.NetworkAttachmentDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: cniv1.GroupVersion.String(), Kind: "NetworkAttachmentDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: MigrationNADName, Namespace: namespace},
		Spec: cniv1.NetworkAttachmentDefinitionSpec{Config: fmt.Sprintf(`{
  "cniVersion": "0.3.1",
  "name": "migration-bridge",
  "type": "macvlan",
  "bridge": %q,
  "mode": "bridge",
  "ipam": {
    "type": "whereabouts",
    "range": %q,
    "exclude": [
       %q
    ]
  }
}
`, MigrationBridge, migrationRange, exclude)},
	}, nil
}

func applyMigrationNAD(ctx context.Context, restConfig *rest.Config, cluster, namespace string) error {
	nad, err := migrationNAD(cluster, namespace)
	if err != nil {
		return err
	}
	applier, err := kube.NewApplier(restConfig)
	if err != nil {
		return err
	}
	return applier.Apply(ctx, nad)
}

// applyNodeBridge does on a lab node namespace what the seed's
// NodeNetworkConfigurationPolicy does on a worker: bridge br-2001, STP
// off, with the uplink enp2s0 as its port. The workers' agents apply the
// policy itself; this is for the synchronization controllers' namespaces,
// which are no Kubernetes nodes.
func applyNodeBridge(node *netlab.Node) error {
	return node.CreateBridge(MigrationBridge, netlab.MigrationUplink)
}
