package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/netlab"
)

// The seed's migration network: VLAN 2001 as bridge br-2001 on every
// worker with port enp2s0, and per cluster a NetworkAttachmentDefinition
// livemigration-network whose whereabouts range excludes the other
// clusters' blocks of 192.168.201.0/24.
const (
	MigrationBridge  = "br-2001"
	MigrationNADName = "livemigration-network"
)

// migrationRange is the whole migration network, a /24; each cluster
// allocates from a block of it (MigrationBlocks).
var migrationRange = netip.MustParsePrefix("192.168.201.0/24")

// MigrationBlocks splits the migration range into disjoint blocks, one per
// cluster in the order given, as the OpenShift guide splits it into
// halves for its two clusters: ocp7 192.168.201.0/25, ocp1
// 192.168.201.128/25. Three or four clusters get a quarter each, and so
// on: a block stays a CIDR, so that each NAD excludes whole blocks.
func MigrationBlocks(clusters []string) (map[string]netip.Prefix, error) {
	bits := blockBits(len(clusters))
	if len(clusters) < 2 || bits > maxBlockBits {
		return nil, fmt.Errorf("%d clusters: the migration range %s is split among 2 to %d clusters", len(clusters), migrationRange, 1<<maxBlockBits)
	}
	blocks := map[string]netip.Prefix{}
	for i, cluster := range clusters {
		blocks[cluster] = migrationBlock(i, bits)
	}
	return blocks, nil
}

// maxBlockBits keeps every block at least a /29: room for a
// synchronization controller and a few nodes.
const maxBlockBits = 5

// blockBits is how many bits of the last octet number n blocks.
func blockBits(n int) int {
	bits := 0
	for 1<<bits < n {
		bits++
	}
	return bits
}

// migrationBlock is block i of the range cut into 2^bits blocks.
func migrationBlock(i, bits int) netip.Prefix {
	address := migrationRange.Addr().As4()
	address[3] = byte(i << (8 - bits))
	return netip.PrefixFrom(netip.AddrFrom4(address), migrationRange.Bits()+bits)
}

// migrationExcludes are the blocks a cluster's NAD leaves to the others:
// every block of the range but its own, the unused ones included.
func migrationExcludes(clusters []string, cluster string) ([]string, error) {
	blocks, err := MigrationBlocks(clusters)
	if err != nil {
		return nil, err
	}
	own, ok := blocks[cluster]
	if !ok {
		return nil, fmt.Errorf("no migration range is planned for cluster %q (the lab's clusters are %v)", cluster, clusters)
	}
	bits := blockBits(len(clusters))
	var excludes []string
	for i := range 1 << bits {
		if block := migrationBlock(i, bits); block != own {
			excludes = append(excludes, block.String())
		}
	}
	return excludes, nil
}

// migrationNAD is the guide's ocpN.net-attach-def.yaml for a cluster of
// the lab's clusters.
func migrationNAD(clusters []string, cluster, namespace string) (*cniv1.NetworkAttachmentDefinition, error) {
	excludes, err := migrationExcludes(clusters, cluster)
	if err != nil {
		return nil, err
	}
	quoted := make([]string, len(excludes))
	for i, exclude := range excludes {
		quoted[i] = strconv.Quote(exclude)
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
       %s
    ]
  }
}
`, MigrationBridge, migrationRange, strings.Join(quoted, ",\n       "))},
	}, nil
}

func applyMigrationNAD(ctx context.Context, restConfig *rest.Config, clusters []string, cluster, namespace string) error {
	nad, err := migrationNAD(clusters, cluster, namespace)
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
