// Package migrationnet gives a node agent its migration interface, as
// Multus and whereabouts give virt-handler one in the OpenShift guide: the
// KubeVirt CR's spec.configuration.migrations.network names a NAD; the node
// gets migration0, a macvlan on the NAD's parent (the guide's br-2001), with
// an address whereabouts-style IPAM allocates cluster-wide, keyed by the
// node's name. Migration traffic and the sync controller use that address.
package migrationnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/ipam"
	"github.com/cclm-io/cclm/internal/netlab"
)

// InterfaceName is the migration interface, named as KubeVirt names it.
const InterfaceName = "migration0"

// AnnotationKey is the Node annotation a node agent may publish its
// migration address under, as a prefix such as "192.168.201.1/24" (the
// Node status has no field for it). cclm's own key: KubeVirt keeps the
// address in the virt-handler pod's network-status annotation instead.
const AnnotationKey = "cclm.io/migration-address"

// ErrNoMigrationNetwork means the KubeVirt CR names no migration network:
// migrations use the node's default address, as in KubeVirt.
var ErrNoMigrationNetwork = errors.New("no migration network configured")

// Interface is a node's migration interface.
type Interface struct {
	// Name is the link's name, InterfaceName.
	Name string
	// Address is the allocated address with the range's prefix length,
	// e.g. 192.168.201.1/24.
	Address netip.Prefix
	// NAD is the NetworkAttachmentDefinition it comes from, namespace/name.
	NAD string
}

// NodeNetwork is what Setup needs of a node's network namespace;
// *netlab.Namespace and *netlab.Node have it.
type NodeNetwork interface {
	Links() ([]netlab.Link, error)
	CreateMacvlan(name, master, mode string, mac net.HardwareAddr) error
	AddAddress(link string, address netip.Prefix) error
	LinkUp(name string) error
	DeleteLink(name string) error
}

// resolvedNetwork is a migration network found: the NAD and its
// configuration.
type resolvedNetwork struct {
	nad    string // namespace/name
	config ipam.Config
}

// Setup gives the node its migration interface: it reads the KubeVirt CR in
// virtNamespace, the NAD it names, allocates the node an address from the
// NAD's IPAM (pools in poolNamespace, "" = whereabouts' kube-system), and
// makes migration0 on the NAD's parent link with that address, up. It is
// idempotent: run again (say, after the agent restarted) it keeps the
// address and the link. Without a migration network it returns
// ErrNoMigrationNetwork (wrapped).
//
// kube needs to list kubevirts in virtNamespace, get the NAD, and get,
// create and update ippools (whereabouts.cni.cncf.io) in poolNamespace.
func Setup(ctx context.Context, kube client.Client, node NodeNetwork, nodeName, virtNamespace, poolNamespace string) (Interface, error) {
	network, err := resolve(ctx, kube, virtNamespace)
	if err != nil {
		return Interface{}, err
	}
	// The parent is checked first so that a node that cannot use an
	// address does not take one from the pool.
	if err := checkParent(node, network, nodeName); err != nil {
		return Interface{}, err
	}
	address, err := allocate(ctx, kube, network, nodeName, virtNamespace, poolNamespace)
	if err != nil {
		return Interface{}, err
	}
	if err := ensureLink(node, network.config, address); err != nil {
		return Interface{}, fmt.Errorf("set up %s from NAD %s on node %s: %w", InterfaceName, network.nad, nodeName, err)
	}
	return Interface{Name: InterfaceName, Address: address, NAD: network.nad}, nil
}

// Teardown undoes Setup when the node leaves: it deletes migration0 and
// releases the node's address. Without a migration network it only
// deletes the link (a leftover, if any).
func Teardown(ctx context.Context, kube client.Client, node NodeNetwork, nodeName, virtNamespace, poolNamespace string) error {
	if err := node.DeleteLink(InterfaceName); err != nil {
		return err
	}
	network, err := resolve(ctx, kube, virtNamespace)
	if errors.Is(err, ErrNoMigrationNetwork) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release the migration address of node %s: %w", nodeName, err)
	}
	allocator, err := allocatorFor(kube, network, poolNamespace)
	if err != nil {
		return err
	}
	return allocator.Release(ctx, nodeName)
}

// PodRef is the holder recorded with a node's allocation: the pod that
// holds it in KubeVirt, virt-handler on that node.
func PodRef(virtNamespace, nodeName string) string {
	return virtNamespace + "/virt-handler-" + nodeName
}

// resolve finds the migration network: the KubeVirt CR, the NAD it names,
// and the NAD's parsed configuration.
func resolve(ctx context.Context, kube client.Client, virtNamespace string) (resolvedNetwork, error) {
	kubeVirt, err := firstKubeVirt(ctx, kube, virtNamespace)
	if err != nil {
		return resolvedNetwork{}, err
	}
	ref := migrationNetworkOf(kubeVirt)
	if ref == "" {
		return resolvedNetwork{}, fmt.Errorf("%w: KubeVirt %s/%s sets no spec.configuration.migrations.network, so migrations use the node's default address",
			ErrNoMigrationNetwork, kubeVirt.Namespace, kubeVirt.Name)
	}
	key := nadKey(ref, virtNamespace)
	var nad cniv1.NetworkAttachmentDefinition
	if err := kube.Get(ctx, key, &nad); err != nil {
		return resolvedNetwork{}, nadError(err, kubeVirt, key)
	}
	config, err := ipam.ParseNADConfig([]byte(nad.Spec.Config))
	if err != nil {
		return resolvedNetwork{}, fmt.Errorf("NetworkAttachmentDefinition %s, spec.config: %w", key, err)
	}
	return resolvedNetwork{nad: key.String(), config: config}, nil
}

// firstKubeVirt reads the KubeVirt CR of the namespace; with several
// (KubeVirt itself allows one) it takes the first by name, so that every
// node agent picks the same.
func firstKubeVirt(ctx context.Context, kube client.Client, virtNamespace string) (*kubevirtv1.KubeVirt, error) {
	var list kubevirtv1.KubeVirtList
	if err := kube.List(ctx, &list, client.InNamespace(virtNamespace)); err != nil {
		return nil, fmt.Errorf("list KubeVirt in %s: %w", virtNamespace, err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no KubeVirt CR in namespace %s: install KubeVirt there, or point the node agent at the virt namespace that has it", virtNamespace)
	}
	first := slices.MinFunc(list.Items, func(a, b kubevirtv1.KubeVirt) int { return strings.Compare(a.Name, b.Name) })
	return &first, nil
}

func migrationNetworkOf(kubeVirt *kubevirtv1.KubeVirt) string {
	if migrations := kubeVirt.Spec.Configuration.MigrationConfiguration; migrations != nil {
		return migrations.Network
	}
	return ""
}

// nadKey reads a network reference: "namespace/name", or a name in the
// virt namespace (KubeVirt's form).
func nadKey(ref, virtNamespace string) client.ObjectKey {
	if namespace, name, found := strings.Cut(ref, "/"); found {
		return client.ObjectKey{Namespace: namespace, Name: name}
	}
	return client.ObjectKey{Namespace: virtNamespace, Name: ref}
}

func nadError(err error, kubeVirt *kubevirtv1.KubeVirt, key client.ObjectKey) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("KubeVirt %s/%s names migration network %q, but there is no NetworkAttachmentDefinition %s: create it (the OpenShift guide's livemigration-network) or fix spec.configuration.migrations.network",
			kubeVirt.Namespace, kubeVirt.Name, kubeVirt.Spec.Configuration.MigrationConfiguration.Network, key)
	}
	return fmt.Errorf("read NetworkAttachmentDefinition %s: %w", key, err)
}

// allocate takes the node's address from the NAD's IPAM.
func allocate(ctx context.Context, kube client.Client, network resolvedNetwork, nodeName, virtNamespace, poolNamespace string) (netip.Prefix, error) {
	allocator, err := allocatorFor(kube, network, poolNamespace)
	if err != nil {
		return netip.Prefix{}, err
	}
	return allocator.Allocate(ctx, nodeName, PodRef(virtNamespace, nodeName))
}

func allocatorFor(kube client.Client, network resolvedNetwork, poolNamespace string) (ipam.Allocator, error) {
	allocator, err := ipam.NewAllocator(kube, network.config.IPAM, poolNamespace, InterfaceName)
	if err != nil {
		return nil, fmt.Errorf("NAD %s: %w", network.nad, err)
	}
	return allocator, nil
}
