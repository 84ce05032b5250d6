package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/procutil"
	"github.com/cclm-io/cclm/internal/synccontroller"
)

// ClusterLabel on a lab node names its cluster.
const ClusterLabel = "cclm.io/cluster"

// runRoot holds the running VMs' sockets of every lab; it is short because
// unix socket paths are limited to 107 bytes.
const runRoot = "/run/cclm"

// ID is a short name for the lab's network namespaces and run
// directories, derived from its directory so two labs never share them.
func ID(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "l" + hex.EncodeToString(sum[:4])
}

// NodeName is the name of a lab node, as the seed names its workers.
func NodeName(cluster string, index int) string {
	return fmt.Sprintf("%s-worker-%d", cluster, index)
}

// ComponentState describes a process of the lab that runs as a cluster's
// component: a node agent or a controller.
type ComponentState struct {
	// Name is the node's name for a node agent, else the component's.
	Name    string `json:"name"`
	Kind    string `json:"kind"` // node or controller
	Cluster string `json:"cluster"`
	Pid     int    `json:"pid"`
	RunDir  string `json:"runDir,omitempty"`
	// MetricsURL is where the component serves /metrics (HTTPS, a token
	// allowed get on it).
	MetricsURL string `json:"metricsURL,omitempty"`
}

// The kinds of lab components.
const (
	KindNode       = "node"
	KindController = "controller"
)

// labNodes are the components the supervisor started and restarts: node
// agents and controllers.
type labNodes struct {
	id     string
	fabric *netlab.Fabric
	specs  []procutil.Spec

	mu        sync.Mutex
	processes []*procutil.Process
	states    []ComponentState

	stopSupervision context.CancelFunc
	supervisors     sync.WaitGroup
}

// startNodes makes the lab's fabric and, per cluster, the virt controller,
// the synchronization controller in a namespace of its own, and the node
// namespaces and node agents, each running as the cluster's account for
// it. The node agents start once the synchronization controllers have
// published their addresses: the first address of each cluster's half of
// the migration range is then always the synchronization controller's
// (192.168.201.1 and .128), not whichever of it and the node agents asked
// the pool first.
func startNodes(ctx context.Context, opts Options, clusters []*controlplane.Cluster, logger *log.Logger) (*labNodes, error) {
	id := ID(opts.Dir)
	// A crashed lab in this directory may have left namespaces and VMs.
	cleanUpNodes(id)
	fabric, err := netlab.CreateFabric(id)
	if err != nil {
		return nil, err
	}
	nodes := &labNodes{id: id, fabric: fabric}
	self, err := os.Executable()
	if err != nil {
		return nodes, err
	}
	agentKubeconfigs := make([]string, len(clusters))
	for i, cluster := range clusters {
		if err := nodes.startController(ctx, self, opts, cluster); err != nil {
			return nodes, err
		}
		if err := nodes.startSync(ctx, self, opts, cluster); err != nil {
			return nodes, err
		}
		if agentKubeconfigs[i], err = nodeAgentKubeconfig(ctx, cluster, opts.VirtNamespace); err != nil {
			return nodes, err
		}
	}
	// Without the migration network the sync controllers wait for it
	// (the seed's reader builds it later).
	if !opts.WithoutMigrationNetwork {
		if err := waitForSync(ctx, clusters, opts.VirtNamespace, nodes, logger); err != nil {
			return nodes, err
		}
	}
	for i, cluster := range clusters {
		for index := range opts.Nodes {
			if err := nodes.start(self, opts, cluster, agentKubeconfigs[i], NodeName(cluster.Name, index)); err != nil {
				return nodes, err
			}
		}
		logger.Printf("%s: %d node agents started", cluster.Name, opts.Nodes)
	}
	withToolkit := toolkitClusters(opts.ClusterNames())
	for _, cluster := range clusters {
		if !slices.Contains(withToolkit, cluster.Name) {
			continue
		}
		if err := nodes.startToolkit(ctx, self, opts, cluster); err != nil {
			return nodes, err
		}
		logger.Printf("%s: %s started", cluster.Name, ToolkitControllerName)
	}
	return nodes, nil
}

func nodeAgentKubeconfig(ctx context.Context, cluster *controlplane.Cluster, virtNamespace string) (string, error) {
	admin, err := cluster.RESTConfig()
	if err != nil {
		return "", err
	}
	return componentKubeconfig(ctx, admin, cluster, virtNamespace, nodeAgentComponent(), "node agent")
}

// componentKubeconfig installs a component's account in namespace and
// writes the kubeconfig it runs with, named after its ServiceAccount, in
// the cluster's directory.
func componentKubeconfig(ctx context.Context, admin *rest.Config, cluster *controlplane.Cluster, namespace string, component install.Component, what string) (string, error) {
	config, err := install.InstallComponent(ctx, admin, namespace, component)
	if err != nil {
		return "", fmt.Errorf("%s: %s account: %w", cluster.Name, what, err)
	}
	path := filepath.Join(cluster.Dir, component.ServiceAccount+".kubeconfig")
	return path, clientcmd.WriteToFile(*config, path)
}

func (n *labNodes) start(self string, opts Options, cluster *controlplane.Cluster, kubeconfig, name string) error {
	// The node's br-2001 comes from the seed's NodeNetworkConfigurationPolicy,
	// which its agent applies.
	if _, err := n.fabric.AddNode(name); err != nil {
		return err
	}
	nodeDir := filepath.Join(cluster.Dir, "nodes", name)
	runDir := filepath.Join(runRoot, n.id, name)
	metricsAddr, metricsURL, err := metricsAddress()
	if err != nil {
		return err
	}
	spec := procutil.Spec{
		Name: name,
		Path: self,
		Args: append([]string{"node",
			"--kubeconfig", kubeconfig,
			"--metrics-address", metricsAddr,
			"--node-name", name,
			"--lab-id", n.id,
			"--virt-namespace", opts.VirtNamespace,
			"--storage-dir", filepath.Join(nodeDir, "storage"),
			"--run-dir", runDir,
			"--guest-dir", filepath.Join(opts.BinDir, "guest"),
			"--label", ClusterLabel + "=" + cluster.Name,
		}, nodeAgentTuning(opts)...),
		LogPath: filepath.Join(nodeDir, "node.log"),
	}
	return n.add(spec, ComponentState{Name: name, Kind: KindNode, Cluster: cluster.Name, RunDir: runDir, MetricsURL: metricsURL})
}

// metricsAddress is a free loopback address for a component's metrics
// server, and the URL of its /metrics.
func metricsAddress() (addr, url string, err error) {
	port, err := procutil.FreePort("127.0.0.1")
	if err != nil {
		return "", "", fmt.Errorf("a port for metrics: %w", err)
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return addr, "https://" + addr + "/metrics", nil
}

// nodeAgentTuning passes the lab's accelerator and boot timeout on to its
// node agents, where set.
func nodeAgentTuning(opts Options) []string {
	var args []string
	if opts.Accel != "" {
		args = append(args, "--accel", opts.Accel)
	}
	if opts.BootTimeout > 0 {
		args = append(args, "--boot-timeout", opts.BootTimeout.String())
	}
	return args
}

// add starts a component and keeps it for supervision.
func (n *labNodes) add(spec procutil.Spec, state ComponentState) error {
	process, err := procutil.Start(spec)
	if err != nil {
		return err
	}
	state.Pid = process.Pid()
	n.specs = append(n.specs, spec)
	n.processes = append(n.processes, process)
	n.states = append(n.states, state)
	return nil
}

// startController installs the cluster's StorageClass and the virt
// controller's account, and runs `cclm controller` as that account.
func (n *labNodes) startController(ctx context.Context, self string, opts Options, cluster *controlplane.Cluster) error {
	admin, err := cluster.RESTConfig()
	if err != nil {
		return err
	}
	if err := install.StorageClass(ctx, admin); err != nil {
		return fmt.Errorf("%s: %w", cluster.Name, err)
	}
	config, err := install.InstallVirtController(ctx, admin, opts.VirtNamespace, virtControllerRules()...)
	if err != nil {
		return fmt.Errorf("%s: virt controller account: %w", cluster.Name, err)
	}
	kubeconfig := filepath.Join(cluster.Dir, "kubevirt-controller.kubeconfig")
	if err := clientcmd.WriteToFile(*config, kubeconfig); err != nil {
		return err
	}
	if _, err := install.InstallComponent(ctx, admin, opts.VirtNamespace, install.MetricsReader); err != nil {
		return fmt.Errorf("%s: metrics reader account: %w", cluster.Name, err)
	}
	metricsAddr, metricsURL, err := metricsAddress()
	if err != nil {
		return err
	}
	spec := procutil.Spec{
		Name:    cluster.Name + "/virt-controller",
		Path:    self,
		Args:    []string{"controller", "--kubeconfig", kubeconfig, "--namespace", opts.VirtNamespace, "--metrics-address", metricsAddr},
		LogPath: filepath.Join(cluster.Dir, "logs", "virt-controller.log"),
	}
	return n.add(spec, ComponentState{Name: "virt-controller", Kind: KindController, Cluster: cluster.Name, MetricsURL: metricsURL})
}

// SyncControllerName is the lab component of each cluster that runs the
// synchronization controller (upstream's Deployment name).
const SyncControllerName = synccontroller.LeaderElectionID

// SyncNodeName is the lab node namespace a cluster's synchronization
// controller runs in: a namespace of the lab like the workers' (so that
// cleanUpNodes removes it), plugged into the migration segment, but no
// Kubernetes node.
func SyncNodeName(cluster string) string { return cluster + "-sync" }

// startSync gives the cluster's synchronization controller a network
// namespace of its own on the migration segment, with br-2001 as on a
// worker, installs its account, and runs `cclm sync` there as that
// account. The controller makes its migration0 from the cluster's NAD.
func (n *labNodes) startSync(ctx context.Context, self string, opts Options, cluster *controlplane.Cluster) error {
	node, err := n.fabric.AddNode(SyncNodeName(cluster.Name))
	if err != nil {
		return err
	}
	if err := applyNodeBridge(node); err != nil {
		return err
	}
	admin, err := cluster.RESTConfig()
	if err != nil {
		return err
	}
	kubeconfig, err := componentKubeconfig(ctx, admin, cluster, opts.VirtNamespace, synccontroller.Component, "synchronization controller")
	if err != nil {
		return err
	}
	metricsAddr, metricsURL, err := metricsAddress()
	if err != nil {
		return err
	}
	spec := procutil.Spec{
		Name: cluster.Name + "/" + SyncControllerName,
		Path: self,
		Args: []string{"sync",
			"--kubeconfig", kubeconfig,
			"--namespace", opts.VirtNamespace,
			"--cluster-name", cluster.Name,
			"--lab-id", n.id,
			"--netns-node", node.Name,
			"--metrics-address", metricsAddr,
		},
		LogPath: filepath.Join(cluster.Dir, "logs", SyncControllerName+".log"),
	}
	return n.add(spec, ComponentState{Name: SyncControllerName, Kind: KindController, Cluster: cluster.Name, MetricsURL: metricsURL})
}

// restartDelay is how long a node agent or controller that ended stays
// down: a second, since the fault suite expects them back at once.
const restartDelay = time.Second

// supervise restarts a component that ends while the lab runs, as the
// kubelet restarts a pod: a node agent's or a controller's crash or kill
// must not end the node or the cluster. onRestart is told the new state.
func (n *labNodes) supervise(ctx context.Context, logger *log.Logger, onRestart func([]ComponentState)) {
	ctx, cancel := context.WithCancel(ctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopSupervision = cancel
	for i, spec := range n.specs {
		supervisor := procutil.Supervisor{
			Spec:      spec,
			Delay:     restartDelay,
			What:      describeComponent(n.states[i]),
			Logf:      logger.Printf,
			Restarted: func(process *procutil.Process) { onRestart(n.replace(i, process)) },
		}
		first := n.processes[i]
		n.supervisors.Go(func() { supervisor.Run(ctx, first) })
	}
}

// replace records the restarted process of component i and returns a copy
// of every component's state.
func (n *labNodes) replace(i int, process *procutil.Process) []ComponentState {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.processes[i] = process
	n.states[i].Pid = process.Pid()
	return append([]ComponentState(nil), n.states...)
}

// snapshot is a copy of every component's state.
func (n *labNodes) snapshot() []ComponentState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]ComponentState(nil), n.states...)
}

// describeComponent names a component in the supervisor's log: "node
// agent ocp7-worker-0", "ocp1's virt-synchronization-controller".
func describeComponent(state ComponentState) string {
	if state.Kind == KindNode {
		return "node agent " + state.Name
	}
	return state.Cluster + "'s " + state.Name
}

// stop ends the node agents and controllers, then the VMs the agents left
// running (a node agent leaves its QEMUs on purpose), then the namespaces.
func (n *labNodes) stop(logger *log.Logger) {
	n.mu.Lock()
	stopSupervision := n.stopSupervision
	n.mu.Unlock()
	// Supervision first, so that nothing restarts behind the stop.
	if stopSupervision != nil {
		stopSupervision()
	}
	n.supervisors.Wait()
	n.mu.Lock()
	processes := append([]*procutil.Process(nil), n.processes...)
	n.mu.Unlock()
	for _, process := range processes {
		process.Stop(stopGrace)
	}
	cleanUpNodes(n.id)
	logger.Printf("node agents, controllers, VMs and lab networks removed")
}

// stopGrace is how long a lab process gets to end after SIGTERM.
const stopGrace = 10 * time.Second

// cleanUpNodes kills the lab's QEMUs by their pidfiles and removes its run
// directories and network namespaces.
func cleanUpNodes(id string) {
	labRun := filepath.Join(runRoot, id)
	pidFiles, _ := filepath.Glob(filepath.Join(labRun, "*", "*", "qemu.pid"))
	for _, pidFile := range pidFiles {
		killQEMU(pidFile)
	}
	// A QEMU whose run directory is gone has no pidfile to find it by;
	// its command line still names the lab's run directory.
	for _, pid := range processesMentioning(labRun + "/") {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.RemoveAll(labRun)
	_ = netlab.DestroyLab(id)
}

// killQEMU kills the QEMU a pidfile names, if that process is really the
// QEMU that wrote it (its command line names the pidfile).
func killQEMU(pidFile string) {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || !procutil.Alive(pid) {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), pidFile) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// adminClientset is a clientset of cluster's administrator.
func adminClientset(cluster *controlplane.Cluster) (kubernetes.Interface, error) {
	admin, err := cluster.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(admin)
}

// nodeStartTimeout bounds the wait for node agents to register: they probe
// QEMU's CPU models first, which takes a second or two.
const nodeStartTimeout = 2 * time.Minute

// waitForNodes waits until every cluster has its nodes registered and
// Ready, failing early with a node agent's log if one exits.
func waitForNodes(ctx context.Context, clusters []*controlplane.Cluster, perCluster int, nodes *labNodes) error {
	for _, cluster := range clusters {
		clientset, err := adminClientset(cluster)
		if err != nil {
			return err
		}
		err = kube.Poll(ctx, 250*time.Millisecond, nodeStartTimeout, fmt.Sprintf("%d Ready nodes in %s", perCluster, cluster.Name),
			func(ctx context.Context) (bool, string, error) {
				if err := nodes.deadComponent(); err != nil {
					return false, "", err
				}
				list, err := clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, err.Error(), nil
				}
				ready := readyNodes(list.Items)
				return ready >= perCluster, fmt.Sprintf("%d of %d nodes Ready", ready, perCluster), nil
			})
		if err != nil {
			return err
		}
	}
	return nil
}

func readyNodes(nodes []corev1.Node) int {
	ready := 0
	for _, node := range nodes {
		for _, condition := range node.Status.Conditions {
			if condition.Type == corev1.NodeReady && condition.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready
}

// deadComponent says which component ended while the lab starts (the
// supervisor restarts none before the lab is ready), with its last log
// lines; nil while all run.
func (n *labNodes) deadComponent() error {
	for i, process := range n.processes {
		if !process.Running() {
			return fmt.Errorf("%s ended: %v; last lines of %s:\n%s", describeComponent(n.states[i]), process.ExitError(), n.specs[i].LogPath, process.LogTail(15))
		}
	}
	return nil
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}
