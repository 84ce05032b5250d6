package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cclm-io/cclm/internal/nodemeta"
	"github.com/cclm-io/cclm/internal/procutil"
)

// Status is what `cclm lab status` reports.
type Status struct {
	Dir        string          `json:"dir"`
	Running    bool            `json:"running"`
	Ready      bool            `json:"ready"`
	Pid        int             `json:"pid,omitempty"`
	Kubeconfig string          `json:"kubeconfig,omitempty"`
	Clusters   []ClusterStatus `json:"clusters,omitempty"`
	// Components are the node agents and controllers, with whether each
	// process is alive.
	Components []ComponentStatus `json:"components,omitempty"`
}

// ComponentStatus is one lab process of a cluster.
type ComponentStatus struct {
	ComponentState
	Alive bool `json:"alive"`
	// Accel and AccelReason are, for a node agent, the accelerator its
	// QEMUs run under and why, as it published them on its Node.
	Accel       string `json:"accel,omitempty"`
	AccelReason string `json:"accelReason,omitempty"`
	// QEMUVersion is, for a node agent, the QEMU its guests run in.
	QEMUVersion string `json:"qemuVersion,omitempty"`
}

// ClusterStatus is one cluster's health as seen from its API.
type ClusterStatus struct {
	Name          string `json:"name"`
	Server        string `json:"server"`
	VirtNamespace string `json:"virtNamespace"`
	// Ports are the TCP ports the control plane listens on.
	Ports []int `json:"ports"`
	// APIReady is true when /readyz answers ok.
	APIReady bool   `json:"apiReady"`
	Problem  string `json:"problem,omitempty"`
	// Processes counts the control-plane processes alive of those started.
	ProcessesAlive int `json:"processesAlive"`
	Processes      int `json:"processes"`
	// SynchronizationAddresses are where the cluster's synchronization
	// controller serves (host:port), from the KubeVirt CR's status: what a
	// source VMIM's spec.sendTo.connectURL names.
	SynchronizationAddresses []string `json:"synchronizationAddresses,omitempty"`
}

// GetStatus reads the lab's state and asks each cluster's API server.
func GetStatus(ctx context.Context, dir string) (*Status, error) {
	p := paths{dir: dir}
	status := &Status{Dir: dir, Running: running(p)}
	state, err := readState(p)
	if errors.Is(err, fs.ErrNotExist) || !status.Running {
		return status, nil
	}
	if err != nil {
		return nil, err
	}
	status.Pid, status.Ready, status.Kubeconfig = state.Pid, state.Ready, p.kubeconfig()
	accels := map[string]nodeAccel{}
	for _, c := range state.Clusters {
		cs, nodes := clusterStatus(ctx, p, c)
		status.Clusters = append(status.Clusters, cs)
		maps.Copy(accels, nodes)
	}
	for _, component := range state.Components {
		cs := ComponentStatus{ComponentState: component, Alive: procutil.Alive(component.Pid)}
		if component.Kind == KindNode {
			accel := accels[component.Name]
			cs.Accel, cs.AccelReason, cs.QEMUVersion = accel.Accel, accel.Reason, accel.QEMUVersion
		}
		status.Components = append(status.Components, cs)
	}
	return status, nil
}

// nodeAccel is a node's QEMU, accelerator and why, from its Node's
// annotations.
type nodeAccel struct{ Accel, Reason, QEMUVersion string }

// clusterStatus asks a cluster's API for its health and its nodes' QEMUs
// (by node name; none when the cluster does not answer).
func clusterStatus(ctx context.Context, p paths, c ClusterState) (ClusterStatus, map[string]nodeAccel) {
	cs := ClusterStatus{Name: c.Name, Server: c.Server, VirtNamespace: c.VirtNamespace, Ports: c.Ports, Processes: len(c.Pids)}
	cs.ProcessesAlive = len(alivePids(&State{Clusters: []ClusterState{c}}))
	config, err := adminConfig(p.kubeconfig(), c.Name)
	var clientset *kubernetes.Clientset
	if err == nil {
		clientset, err = kubernetes.NewForConfig(config)
	}
	if err == nil {
		err = readyz(ctx, clientset)
	}
	if err != nil {
		cs.Problem = err.Error()
		return cs, nil
	}
	cs.APIReady = true
	if reader, err := kubeVirtReader(config); err != nil {
		cs.Problem = err.Error()
	} else if cs.SynchronizationAddresses, err = syncAddresses(ctx, reader, c.VirtNamespace); err != nil {
		cs.Problem = err.Error()
	}
	return cs, nodeAccelerators(ctx, clientset)
}

// nodeAccelerators reads each node agent's QEMU and accelerator off its
// Node; a list that fails leaves them blank.
func nodeAccelerators(ctx context.Context, clientset kubernetes.Interface) map[string]nodeAccel {
	nodes, err := clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	accels := map[string]nodeAccel{}
	for _, node := range nodes.Items {
		accels[node.Name] = nodeAccel{node.Annotations[nodemeta.AccelAnnotation], node.Annotations[nodemeta.AccelReasonAnnotation], node.Annotations[nodemeta.QEMUVersionAnnotation]}
	}
	return accels
}

// adminConfig is the lab kubeconfig's context for a cluster, with a short
// timeout: status must answer even when a cluster does not.
func adminConfig(kubeconfig, contextName string) (*rest.Config, error) {
	config, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: contextName},
	).ClientConfig()
	if err != nil {
		return nil, err
	}
	config.Timeout = 5 * time.Second
	return config, nil
}

func readyz(ctx context.Context, clientset kubernetes.Interface) error {
	body, err := clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("/readyz: %w", err)
	}
	if string(body) != "ok" {
		return fmt.Errorf("/readyz: %s", body)
	}
	return nil
}
