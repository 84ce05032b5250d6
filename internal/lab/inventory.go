package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cclm-io/cclm/internal/migrationnet"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/procutil"
)

// NodesReport is what `cclm lab nodes` shows: the facts the seed checks
// with `oc debug node/... ip -br l`, `oc exec virt-handler... ip a show dev
// migration0` and `oc get pods -l kubevirt.io=virt-synchronization-controller`.
type NodesReport struct {
	Dir             string                 `json:"dir"`
	Nodes           []NodeReport           `json:"nodes"`
	SyncControllers []SyncControllerReport `json:"syncControllers"`
}

// NodeReport is one node of a cluster: its Node object and, from inside
// its network namespace, its uplinks, bridges and migration0.
type NodeReport struct {
	Cluster string   `json:"cluster"`
	Name    string   `json:"name"`
	Roles   []string `json:"roles,omitempty"`
	Ready   bool     `json:"ready"`
	// Netns is the node's network namespace (`ip netns exec NETNS ...`).
	Netns string `json:"netns"`
	// MigrationAddress is what the node agent published on the Node
	// (annotation cclm.io/migration-address).
	MigrationAddress string `json:"migrationAddress,omitempty"`
	// Migration0 is the interface as the node has it.
	Migration0 *InterfaceReport  `json:"migration0,omitempty"`
	Uplinks    []InterfaceReport `json:"uplinks,omitempty"`
	Bridges    []BridgeReport    `json:"bridges,omitempty"`
	Problem    string            `json:"problem,omitempty"`
}

// InterfaceReport is a link as `ip -br a` shows it.
type InterfaceReport struct {
	Name      string   `json:"name"`
	State     string   `json:"state"` // the operational state: UP, DOWN, LOWERLAYERDOWN, ...
	Addresses []string `json:"addresses,omitempty"`
	// Master is the bridge the link is a port of.
	Master string `json:"master,omitempty"`
	// Parent is a macvlan's lower link (migration0's bridge).
	Parent string `json:"parent,omitempty"`
}

// BridgeReport is a bridge and its ports.
type BridgeReport struct {
	Name  string   `json:"name"`
	State string   `json:"state"`
	Ports []string `json:"ports,omitempty"`
}

// SyncControllerReport is where a cluster's synchronization controller
// runs and serves.
type SyncControllerReport struct {
	Cluster string `json:"cluster"`
	Name    string `json:"name"`
	// Netns is the lab namespace it runs in (no Kubernetes node).
	Netns string `json:"netns"`
	Pid   int    `json:"pid"`
	Alive bool   `json:"alive"`
	// Migration0 is its interface on the migration network.
	Migration0 *InterfaceReport `json:"migration0,omitempty"`
	// SynchronizationAddresses are what the KubeVirt CR's status
	// publishes (host:port).
	SynchronizationAddresses []string `json:"synchronizationAddresses,omitempty"`
	Problem                  string   `json:"problem,omitempty"`
}

// GetNodes reports the nodes and synchronization controllers of the lab
// in dir. Reading the namespaces needs the rights the lab has (root).
func GetNodes(ctx context.Context, dir string) (*NodesReport, error) {
	// The lab's ID comes from its absolute directory (`lab up` makes it so).
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	p := paths{dir: dir}
	if !running(p) {
		return nil, fmt.Errorf("no lab is running in %s; start one with `cclm lab up --dir %s`", dir, dir)
	}
	state, err := readState(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the lab in %s is still starting; wait for `cclm lab up` to return", dir)
	}
	if err != nil {
		return nil, err
	}
	id := ID(dir)
	report := &NodesReport{Dir: dir, Nodes: []NodeReport{}, SyncControllers: []SyncControllerReport{}}
	for _, c := range state.Clusters {
		nodes, err := clusterNodes(ctx, p, c.Name)
		if err != nil {
			report.Nodes = append(report.Nodes, NodeReport{Cluster: c.Name, Problem: err.Error()})
		}
		for _, node := range nodes {
			report.Nodes = append(report.Nodes, nodeReport(id, c.Name, node))
		}
		report.SyncControllers = append(report.SyncControllers, syncControllerReport(ctx, p, id, c, state.Components))
	}
	return report, nil
}

func clusterNodes(ctx context.Context, p paths, cluster string) ([]corev1.Node, error) {
	config, err := adminConfig(p.kubeconfig(), cluster)
	if err != nil {
		return nil, err
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	list, err := clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: list nodes: %w", cluster, err)
	}
	slices.SortFunc(list.Items, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	return list.Items, nil
}

func nodeReport(labID, cluster string, node corev1.Node) NodeReport {
	r := NodeReport{Cluster: cluster, Name: node.Name, MigrationAddress: node.Annotations[migrationnet.AnnotationKey]}
	for key := range node.Labels {
		if role, ok := strings.CutPrefix(key, "node-role.kubernetes.io/"); ok {
			r.Roles = append(r.Roles, role)
		}
	}
	slices.Sort(r.Roles)
	for _, condition := range node.Status.Conditions {
		if condition.Type == corev1.NodeReady {
			r.Ready = condition.Status == corev1.ConditionTrue
		}
	}
	netns, err := netlab.OpenNode(labID, node.Name)
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	r.Netns = netns.NetnsName()
	links, err := netns.Links()
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	r.Migration0, r.Uplinks, r.Bridges = describeLinks(links)
	switch {
	case r.Migration0 == nil && r.MigrationAddress == "":
	case r.Migration0 == nil:
		r.Problem = "the Node names a migration address but the node has no " + migrationnet.InterfaceName
	case !slices.Contains(r.Migration0.Addresses, r.MigrationAddress):
		r.Problem = fmt.Sprintf("the Node names migration address %q, %s has %v", r.MigrationAddress, migrationnet.InterfaceName, r.Migration0.Addresses)
	}
	return r
}

// describeLinks picks migration0, the uplinks (the seed's enp* NICs) and
// the bridges with their ports.
func describeLinks(links []netlab.Link) (migration0 *InterfaceReport, uplinks []InterfaceReport, bridges []BridgeReport) {
	for _, link := range links {
		switch {
		case link.Name == migrationnet.InterfaceName:
			i := interfaceReport(link)
			migration0 = &i
		case strings.HasPrefix(link.Name, "enp"):
			uplinks = append(uplinks, interfaceReport(link))
		case link.Type == "bridge":
			bridge := BridgeReport{Name: link.Name, State: strings.ToUpper(link.OperState)}
			for _, port := range links {
				if port.Master == link.Name {
					bridge.Ports = append(bridge.Ports, port.Name)
				}
			}
			bridges = append(bridges, bridge)
		}
	}
	return migration0, uplinks, bridges
}

func interfaceReport(link netlab.Link) InterfaceReport {
	i := InterfaceReport{Name: link.Name, State: strings.ToUpper(link.OperState), Master: link.Master, Parent: link.Parent}
	for _, address := range link.Addresses {
		if address.Addr().Is4() || !address.Addr().IsLinkLocalUnicast() {
			i.Addresses = append(i.Addresses, address.String())
		}
	}
	return i
}

func syncControllerReport(ctx context.Context, p paths, labID string, c ClusterState, components []ComponentState) SyncControllerReport {
	r := SyncControllerReport{Cluster: c.Name, Name: SyncControllerName}
	for _, component := range components {
		if component.Cluster == c.Name && component.Name == SyncControllerName {
			r.Pid, r.Alive = component.Pid, procutil.Alive(component.Pid)
		}
	}
	var problems []string
	if netns, err := netlab.OpenNode(labID, SyncNodeName(c.Name)); err != nil {
		problems = append(problems, err.Error())
	} else {
		r.Netns = netns.NetnsName()
		if links, err := netns.Links(); err != nil {
			problems = append(problems, err.Error())
		} else {
			r.Migration0, _, _ = describeLinks(links)
		}
	}
	config, err := adminConfig(p.kubeconfig(), c.Name)
	if err == nil {
		if kv, err := kubeVirtReader(config); err != nil {
			problems = append(problems, err.Error())
		} else if r.SynchronizationAddresses, err = syncAddresses(ctx, kv, c.VirtNamespace); err != nil {
			problems = append(problems, err.Error())
		}
	} else {
		problems = append(problems, err.Error())
	}
	r.Problem = strings.Join(problems, "; ")
	return r
}

// IPv4 is the interface's first IPv4 address with its prefix length, or
// the zero Prefix.
func (i *InterfaceReport) IPv4() netip.Prefix {
	if i == nil {
		return netip.Prefix{}
	}
	for _, address := range i.Addresses {
		if prefix, err := netip.ParsePrefix(address); err == nil && prefix.Addr().Is4() {
			return prefix
		}
	}
	return netip.Prefix{}
}
