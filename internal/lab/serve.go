package lab

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/qemu"
)

// DefaultClusters are the OpenShift guide's clusters: ocp7 is the source,
// ocp1 the target.
var DefaultClusters = []string{"ocp7", "ocp1"}

// maxClusters: each cluster is a control plane, a synchronization
// controller, a toolkit and its nodes' agents and guests on one machine.
const maxClusters = 4

// DecentralizedLiveMigrationGate is the KubeVirt feature gate of the seed.
const DecentralizedLiveMigrationGate = "DecentralizedLiveMigration"

// Options configure a lab.
type Options struct {
	Dir string
	// Clusters are the names of the lab's clusters (and kubeconfig
	// contexts), DefaultClusters when empty. With two, VMs move from the
	// first to the second, where the toolkit runs, as in the OpenShift
	// guide; with more, every cluster runs the toolkit, so that VMs can
	// move between any two.
	Clusters      []string
	BinDir        string
	Nodes         int
	VirtNamespace string
	// WithoutMigrationNetwork leaves out the seed's migration network
	// (NodeNetworkConfigurationPolicy, NADs, HyperConverged and KubeVirt
	// settings) for a person to build by following the seed page.
	WithoutMigrationNetwork bool
	// Accel is the node agents' --accel (auto, kvm or tcg); empty leaves
	// it to their default (CCLM_ACCEL, else auto).
	Accel string
	// BootTimeout is the node agents' --boot-timeout; 0 leaves their
	// default.
	BootTimeout time.Duration
}

// Validate checks the options and names the flag to fix.
func (o Options) Validate() error {
	switch {
	case o.Dir == "":
		return fmt.Errorf("--dir is empty; give the lab a directory, e.g. --dir .cclm-lab")
	case o.Nodes < 1 || o.Nodes > 8:
		return fmt.Errorf("--nodes %d is out of range; use 1 to 8 nodes per cluster (2 cores run about 4 guests well)", o.Nodes)
	case o.VirtNamespace == "":
		return fmt.Errorf("--virt-namespace is empty; use openshift-cnv as the OpenShift guide does, or kubevirt")
	case o.BootTimeout < 0:
		return fmt.Errorf("--boot-timeout %v is negative; use a duration such as 2m", o.BootTimeout)
	}
	if _, err := qemu.ParseAccelChoice(o.Accel); err != nil {
		return fmt.Errorf("--accel: %w", err)
	}
	return validateClusters(o.ClusterNames())
}

// ClusterNames are the lab's clusters: Clusters, or DefaultClusters.
func (o Options) ClusterNames() []string {
	if len(o.Clusters) == 0 {
		return DefaultClusters
	}
	return o.Clusters
}

// validateClusters checks --clusters: 2 to maxClusters distinct names
// that serve as context, node-name and namespace prefixes.
func validateClusters(clusters []string) error {
	if len(clusters) < 2 || len(clusters) > maxClusters {
		return fmt.Errorf("--clusters %s: give 2 to %d cluster names, e.g. --clusters ocp7,ocp1,ocp5", strings.Join(clusters, ","), maxClusters)
	}
	seen := map[string]bool{}
	for _, name := range clusters {
		if problems := validation.IsDNS1123Label(name); len(problems) > 0 || len(name) > maxClusterNameLen {
			return fmt.Errorf("--clusters: %q is not a cluster name: use 1 to %d lower-case letters, digits and '-', starting and ending with a letter or digit", name, maxClusterNameLen)
		}
		if seen[name] {
			return fmt.Errorf("--clusters: %s is named twice; each cluster needs a name of its own", name)
		}
		seen[name] = true
	}
	return nil
}

// maxClusterNameLen leaves room in node names (NAME-worker-N) and the
// names of the Secrets and Providers named after a cluster.
const maxClusterNameLen = 20

// Serve is the supervisor: it starts the lab, publishes its state, and runs
// until SIGTERM or SIGINT, then stops everything it started and removes the
// lab's runtime files.
func Serve(ctx context.Context, opts Options, logOut io.Writer) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	logger := log.New(logOut, "", log.LstdFlags)
	p := paths{dir: opts.Dir}
	lock, err := tryLock(p)
	if err != nil {
		return fmt.Errorf("a lab is already running in %s: %w", opts.Dir, err)
	}
	defer lock.release()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Whatever a crashed supervisor left is stale: we hold the lock now.
	removeRuntimeFiles(p)
	publisher := &statePublisher{p: p, logger: logger}
	clusters, err := startClusters(ctx, opts, logger, publisher)
	defer func() {
		for _, c := range clusters {
			logger.Printf("%s: stopping control plane", c.Name)
			c.Stop()
		}
		removeRuntimeFiles(p)
		logger.Printf("lab stopped")
	}()
	if err != nil {
		return err
	}
	if err := writeKubeconfig(p, clusters); err != nil {
		return err
	}
	nodes, err := startNodes(ctx, opts, clusters, logger)
	if nodes != nil {
		defer nodes.stop(logger)
	}
	if err != nil {
		return err
	}
	startedAt := time.Now().UTC()
	if err := waitForNodes(ctx, clusters, opts.Nodes, nodes); err != nil {
		return err
	}
	if !opts.WithoutMigrationNetwork {
		if err := waitForMigrationNetwork(ctx, clusters, opts.Nodes, nodes, logger); err != nil {
			return err
		}
	}
	err = publisher.publish(func() *State {
		state := &State{Pid: os.Getpid(), Ready: true, StartedAt: startedAt, Components: nodes.snapshot()}
		for _, c := range clusters {
			state.Clusters = append(state.Clusters, clusterState(c, opts.VirtNamespace))
		}
		return state
	})
	if err != nil {
		return err
	}
	nodes.supervise(ctx, logger, func(states []ComponentState) {
		publisher.update(func(state *State) { state.Components = states })
	})
	logger.Printf("lab ready: kubeconfig %s (contexts %v)", p.kubeconfig(), opts.ClusterNames())
	watchHealth(ctx, clusters, logger)
	return nil
}

// startClusters starts every cluster in parallel and installs KubeVirt's API
// in each. The clusters that did start are returned even on error, so the
// caller can stop them.
func startClusters(ctx context.Context, opts Options, logger *log.Logger, publisher *statePublisher) ([]*controlplane.Cluster, error) {
	names := opts.ClusterNames()
	results := make([]*controlplane.Cluster, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			results[i], errs[i] = startCluster(ctx, opts, name, logger, publisher)
		})
	}
	wg.Wait()
	var started []*controlplane.Cluster
	for _, c := range results {
		if c != nil {
			started = append(started, c)
		}
	}
	for _, err := range errs {
		if err != nil {
			return started, err
		}
	}
	return started, nil
}

// startCluster starts a cluster whose control plane restarts its processes
// as they end; each restart republishes the lab's state with the new pid.
func startCluster(ctx context.Context, opts Options, name string, logger *log.Logger, publisher *statePublisher) (*controlplane.Cluster, error) {
	logger.Printf("%s: starting etcd, kube-apiserver, kube-controller-manager", name)
	began := time.Now()
	cluster, err := controlplane.Start(ctx, controlplane.Options{
		Name:   name,
		Dir:    filepath.Join(opts.Dir, "clusters", name),
		BinDir: opts.BinDir,
		Logf:   logger.Printf,
		OnRestart: func(component string, pid int) {
			publisher.update(func(state *State) { state.setControlPlanePid(name, component, pid) })
		},
	})
	if err != nil {
		return nil, err
	}
	logger.Printf("%s: API server %s ready in %s", name, cluster.Server, time.Since(began).Round(100*time.Millisecond))
	restConfig, err := cluster.RESTConfig()
	if err != nil {
		return cluster, err
	}
	if err := installKubeVirt(ctx, restConfig, opts, name); err != nil {
		return cluster, err
	}
	if err := install.MigrationPKI(ctx, restConfig, opts.VirtNamespace); err != nil {
		return cluster, fmt.Errorf("%s: migration certificates: %w", name, err)
	}
	logger.Printf("%s: %s", name, describeKubeVirt(opts))
	return cluster, nil
}

// watchHealth logs each change of a control plane's health until ctx
// ends: degraded when a process of it is down (its restart is pending),
// healthy again once all run.
func watchHealth(ctx context.Context, clusters []*controlplane.Cluster, logger *log.Logger) {
	problems := map[string]string{}
	ticker := time.NewTicker(2 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		for _, c := range clusters {
			if line, changed := healthChange(problems, c.Name, c.Healthy()); changed {
				logger.Print(line)
			}
		}
	}
}

// healthChange records a cluster's health in problems (its last problem,
// "" when healthy, as it starts) and says what to log if it changed.
func healthChange(problems map[string]string, cluster string, health error) (line string, changed bool) {
	problem := ""
	if health != nil {
		problem = health.Error()
	}
	if problems[cluster] == problem {
		return "", false
	}
	problems[cluster] = problem
	if problem == "" {
		return cluster + ": control plane healthy again", true
	}
	return cluster + ": control plane degraded: " + problem, true
}

func writeKubeconfig(p paths, clusters []*controlplane.Cluster) error {
	merged := clientcmdapi.NewConfig()
	for _, c := range clusters {
		config, err := c.AdminKubeconfigData()
		if err != nil {
			return err
		}
		merged.Clusters[c.Name] = config.Clusters[c.Name]
		merged.AuthInfos[c.Name] = config.AuthInfos[c.Name]
		merged.Contexts[c.Name] = config.Contexts[c.Name]
	}
	merged.CurrentContext = clusters[0].Name
	return clientcmd.WriteToFile(*merged, p.kubeconfig())
}

func removeRuntimeFiles(p paths) {
	for _, path := range []string{p.state(), p.kubeconfig(), p.clusters()} {
		_ = os.RemoveAll(path)
	}
}
