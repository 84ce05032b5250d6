package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

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
	for _, c := range state.Clusters {
		status.Clusters = append(status.Clusters, clusterStatus(ctx, p, c))
	}
	for _, component := range state.Components {
		status.Components = append(status.Components, ComponentStatus{ComponentState: component, Alive: procutil.Alive(component.Pid)})
	}
	return status, nil
}

func clusterStatus(ctx context.Context, p paths, c ClusterState) ClusterStatus {
	cs := ClusterStatus{Name: c.Name, Server: c.Server, VirtNamespace: c.VirtNamespace, Ports: c.Ports, Processes: len(c.Pids)}
	cs.ProcessesAlive = len(alivePids(&State{Clusters: []ClusterState{c}}))
	config, err := adminConfig(p.kubeconfig(), c.Name)
	if err == nil {
		err = readyz(ctx, config)
	}
	if err != nil {
		cs.Problem = err.Error()
		return cs
	}
	cs.APIReady = true
	if reader, err := kubeVirtReader(config); err != nil {
		cs.Problem = err.Error()
	} else if cs.SynchronizationAddresses, err = syncAddresses(ctx, reader, c.VirtNamespace); err != nil {
		cs.Problem = err.Error()
	}
	return cs
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

func readyz(ctx context.Context, config *rest.Config) error {
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	body, err := clientset.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("/readyz: %w", err)
	}
	if string(body) != "ok" {
		return fmt.Errorf("/readyz: %s", body)
	}
	return nil
}
