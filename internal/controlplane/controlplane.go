// Package controlplane runs one Kubernetes cluster's control plane from the
// real binaries hack/kube builds (etcd, kube-apiserver,
// kube-controller-manager) on loopback with free ports: it makes the PKI,
// installs cclm's CRDs and admission policies, and hands back an admin
// kubeconfig, for tests and `cclm lab`. It restarts each component that
// ends, as the kubelet restarts a real cluster's static pods.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/procutil"
)

// loopback is where every control-plane listener binds: nothing of a lab
// cluster is reachable from outside this machine.
const loopback = "127.0.0.1"

// stopGrace is how long a component gets to end after SIGTERM.
const stopGrace = 10 * time.Second

// The components of a control plane, by the names that ProcessPids and
// Options.OnRestart use: those of their binaries.
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
)

// DefaultRestartDelay is how long a component that ended stays down before
// it is restarted. The kubelet does not restart a static pod's container at
// once either, and the fault suite relies on the gap: a kube-apiserver it
// kills must be seen down (clients failing, then retrying) before it comes
// back, not back before anyone noticed. Three seconds also keep a component
// that fails at once from spinning a core of a two-core machine.
const DefaultRestartDelay = 3 * time.Second

// Options configure one control plane.
type Options struct {
	// Name is the cluster's name, used for its kubeconfig context too.
	Name string
	// Dir holds the cluster's state: PKI, etcd data, logs, kubeconfig.
	Dir string
	// BinDir holds etcd, kube-apiserver and kube-controller-manager.
	BinDir string
	// StartTimeout bounds the whole start; zero means two minutes.
	StartTimeout time.Duration
	// RestartDelay is how long a component that ended stays down before it
	// is restarted; zero means DefaultRestartDelay.
	RestartDelay time.Duration
	// Logf, if set, is told of each component that ends and of its restart.
	Logf func(format string, args ...any)
	// OnRestart, if set, is called with a component's name (Etcd, ...) and
	// new pid each time it was restarted, e.g. to republish the pids. It
	// runs on the goroutine that supervises the component and must not
	// call Stop, which waits for that goroutine.
	OnRestart func(component string, pid int)
}

// Cluster is a running control plane.
type Cluster struct {
	Name string
	Dir  string
	// Server is the API server's URL.
	Server string
	// Ports are every TCP port the control plane listens on.
	Ports []int
	// AdminKubeconfig is the path of a kubeconfig with cluster-admin rights
	// (system:masters), for the lab and tests only.
	AdminKubeconfig string

	pki *clusterPKI

	// mu guards each component's current process, which a restart
	// replaces, and stopSupervision.
	mu              sync.Mutex
	components      []*component // in start order
	stopSupervision context.CancelFunc
	supervisors     sync.WaitGroup
}

// component is one process of the control plane and the Spec it is
// (re)started from.
type component struct {
	name    string
	spec    procutil.Spec
	process *procutil.Process // guarded by Cluster.mu
}

// ProcessPid is the current process ID of a control-plane component.
type ProcessPid struct {
	Name string // Etcd, KubeAPIServer or KubeControllerManager
	Pid  int
}

// Start brings up etcd, kube-apiserver and kube-controller-manager, waits
// until the API server is ready and installs cclm's API. On any error it
// stops what it started.
func Start(ctx context.Context, opts Options) (cluster *Cluster, err error) {
	if err := validate(opts); err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	ports, err := procutil.FreePorts(loopback, 4)
	if err != nil {
		return nil, fmt.Errorf("%s: pick ports: %w", opts.Name, err)
	}
	c := &Cluster{
		Name:   opts.Name,
		Dir:    opts.Dir,
		Server: "https://" + net.JoinHostPort(loopback, strconv.Itoa(ports[2])),
		Ports:  ports,
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.pki, err = makePKI(filepath.Join(opts.Dir, "pki")); err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Name, err)
	}
	if c.AdminKubeconfig, err = c.writeKubeconfig("admin", c.pki.admin); err != nil {
		return nil, err
	}
	controllerKubeconfig, err := c.writeKubeconfig("kube-controller-manager", c.pki.controllerManager)
	if err != nil {
		return nil, err
	}

	etcdURL := "http://" + net.JoinHostPort(loopback, strconv.Itoa(ports[0]))
	if err := c.start(Etcd, procutil.Spec{
		Name: opts.Name + "/etcd",
		Path: filepath.Join(opts.BinDir, "etcd"),
		Args: []string{
			"--name", opts.Name,
			"--data-dir", filepath.Join(opts.Dir, "etcd"),
			"--listen-client-urls", etcdURL,
			"--listen-peer-urls", "http://" + net.JoinHostPort(loopback, strconv.Itoa(ports[1])),
		},
		// A lab's etcd holds nothing that must survive a power cut; fsync
		// would make every write wait for the disk.
		Env: []string{"ETCD_UNSAFE_NO_FSYNC=true"},
	}); err != nil {
		return nil, err
	}
	if err := c.start(KubeAPIServer, c.apiServerSpec(opts.BinDir, etcdURL, ports[2])); err != nil {
		return nil, err
	}
	restConfig, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, restConfig); err != nil {
		return nil, err
	}
	if err := c.start(KubeControllerManager, c.controllerManagerSpec(opts.BinDir, controllerKubeconfig, ports[3])); err != nil {
		return nil, err
	}
	if err := install.CRDs(ctx, restConfig); err != nil {
		return nil, fmt.Errorf("%s: install cclm API: %w", opts.Name, err)
	}
	// Only now: a component that ends while the cluster starts is an
	// error of the start, reported with its log, not something to retry.
	c.supervise(opts)
	return c, nil
}

func validate(opts Options) error {
	if opts.Name == "" {
		return errors.New("controlplane: Options.Name is empty; name the cluster, e.g. ocp7")
	}
	if opts.Dir == "" {
		return errors.New("controlplane: Options.Dir is empty; give a directory for the cluster's state")
	}
	for _, binary := range []string{Etcd, KubeAPIServer, KubeControllerManager} {
		if _, err := os.Stat(filepath.Join(opts.BinDir, binary)); err != nil {
			return fmt.Errorf("controlplane: %s not found in %q; build it with `make kube`", binary, opts.BinDir)
		}
	}
	return nil
}

func (c *Cluster) apiServerSpec(binDir, etcdURL string, port int) procutil.Spec {
	pkiDir := c.pki.dir
	return procutil.Spec{
		Name: c.Name + "/kube-apiserver",
		Path: filepath.Join(binDir, "kube-apiserver"),
		Args: []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=" + loopback,
			"--advertise-address=" + loopback,
			"--secure-port=" + strconv.Itoa(port),
			"--tls-cert-file=" + filepath.Join(pkiDir, "apiserver.crt"),
			"--tls-private-key-file=" + filepath.Join(pkiDir, "apiserver.key"),
			"--client-ca-file=" + filepath.Join(pkiDir, "ca.crt"),
			"--service-account-key-file=" + filepath.Join(pkiDir, "sa.pub"),
			"--service-account-signing-key-file=" + filepath.Join(pkiDir, "sa.key"),
			"--service-account-issuer=https://kubernetes.default.svc",
			"--authorization-mode=Node,RBAC",
			"--allow-privileged=true",
			// The lab has no Service network and no kube-proxy: keep the
			// "kubernetes" Service from pointing at a loopback address.
			"--endpoint-reconciler-type=none",
			// One client per cluster: fairness queues only cost CPU here.
			"--enable-priority-and-fairness=false",
			"--profiling=false",
			"--v=1",
		},
		LogPath: filepath.Join(c.Dir, "logs", "kube-apiserver.log"),
	}
}

func (c *Cluster) controllerManagerSpec(binDir, kubeconfig string, port int) procutil.Spec {
	pkiDir := c.pki.dir
	return procutil.Spec{
		Name: c.Name + "/kube-controller-manager",
		Path: filepath.Join(binDir, "kube-controller-manager"),
		Args: []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=" + loopback,
			"--secure-port=" + strconv.Itoa(port),
			"--leader-elect=false",
			// Each controller acts as its own ServiceAccount with the
			// bootstrap roles, as in every real cluster: the manager's own
			// identity may do little more than mint those tokens.
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + filepath.Join(pkiDir, "sa.key"),
			"--root-ca-file=" + filepath.Join(pkiDir, "ca.crt"),
			// Only the controllers cclm relies on: token Secrets (the
			// seed's provider token), default ServiceAccounts, namespace
			// deletion, ownerReference cascades, kube-root-ca.crt and PV
			// binding for the node agents' local storage.
			"--controllers=" + "serviceaccount-token-controller,serviceaccount-controller," +
				"namespace-controller,garbage-collector-controller," +
				"root-ca-certificate-publisher-controller,persistentvolume-binder-controller," +
				"persistentvolume-protection-controller,persistentvolumeclaim-protection-controller",
			"--profiling=false",
			"--v=1",
		},
		LogPath: filepath.Join(c.Dir, "logs", "kube-controller-manager.log"),
	}
}

// start launches one component; its log goes to Dir/logs/<name>.log unless
// spec says otherwise.
func (c *Cluster) start(name string, spec procutil.Spec) error {
	if spec.LogPath == "" {
		spec.LogPath = filepath.Join(c.Dir, "logs", name+".log")
	}
	p, err := procutil.Start(spec)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.components = append(c.components, &component{name: name, spec: spec, process: p})
	return nil
}

// supervise restarts each component that ends, from its Spec, until Stop.
func (c *Cluster) supervise(opts Options) {
	delay := opts.RestartDelay
	if delay == 0 {
		delay = DefaultRestartDelay
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopSupervision = cancel
	for _, comp := range c.components {
		supervisor := procutil.Supervisor{
			Spec:      comp.spec,
			Delay:     delay,
			Logf:      opts.Logf,
			Restarted: func(p *procutil.Process) { c.restarted(comp, p, opts) },
		}
		first := comp.process
		c.supervisors.Go(func() { supervisor.Run(ctx, first) })
	}
}

// restarted records a component's new process, then tells the caller. The
// callbacks run without c.mu held: OnRestart may ask for ProcessPids.
func (c *Cluster) restarted(comp *component, p *procutil.Process, opts Options) {
	c.mu.Lock()
	comp.process = p
	c.mu.Unlock()
	if opts.Logf != nil {
		opts.Logf("%s restarted (pid %d)", comp.spec.Name, p.Pid())
	}
	if opts.OnRestart != nil {
		opts.OnRestart(comp.name, p.Pid())
	}
}

// current returns the components' current processes, in start order.
func (c *Cluster) current() []*procutil.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	processes := make([]*procutil.Process, 0, len(c.components))
	for _, comp := range c.components {
		processes = append(processes, comp.process)
	}
	return processes
}

// waitReady polls /readyz until it answers ok, a component dies, or ctx ends.
func (c *Cluster) waitReady(ctx context.Context, restConfig *rest.Config) error {
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	client := clientset.Discovery().RESTClient()
	var lastErr error
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if dead := c.deadProcess(); dead != nil {
			return false, fmt.Errorf("%s; last log lines:\n%s", dead.ExitError(), dead.LogTail(15))
		}
		body, err := client.Get().AbsPath("/readyz").DoRaw(ctx)
		lastErr = err
		return err == nil && string(body) == "ok", nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%s: kube-apiserver not ready before the deadline (last answer: %v); see %s",
			c.Name, lastErr, filepath.Join(c.Dir, "logs", KubeAPIServer+".log"))
	}
	return err
}

// deadProcess is the first component whose current process has ended.
func (c *Cluster) deadProcess() *procutil.Process {
	for _, p := range c.current() {
		if !p.Running() {
			return p
		}
	}
	return nil
}

// Healthy reports the first component that is down right now (it ended and
// its restart is pending, or failed), or nil once every one runs again. A
// running process is all it checks: a restarted kube-apiserver counts as
// healthy before it answers, /readyz says when it does.
func (c *Cluster) Healthy() error {
	if dead := c.deadProcess(); dead != nil {
		return dead.ExitError()
	}
	return nil
}

// Pids returns the current process IDs of the components, in start order.
func (c *Cluster) Pids() []int {
	processes := c.ProcessPids()
	pids := make([]int, 0, len(processes))
	for _, p := range processes {
		pids = append(pids, p.Pid)
	}
	return pids
}

// ProcessPids returns each component's name and current process ID, in
// start order (etcd, kube-apiserver, kube-controller-manager).
func (c *Cluster) ProcessPids() []ProcessPid {
	c.mu.Lock()
	defer c.mu.Unlock()
	pids := make([]ProcessPid, 0, len(c.components))
	for _, comp := range c.components {
		pids = append(pids, ProcessPid{Name: comp.name, Pid: comp.process.Pid()})
	}
	return pids
}

// ProcessPid is the current pid of the component named name (etcd,
// kube-apiserver, ...), and whether the cluster has one.
func (c *Cluster) ProcessPid(name string) (int, bool) {
	for _, p := range c.ProcessPids() {
		if p.Name == name {
			return p.Pid, true
		}
	}
	return 0, false
}

// Stop ends supervision first, so that no component restarts behind it,
// then the components in the reverse order of their start, and waits until
// each is gone. It is safe to call more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	stopSupervision := c.stopSupervision
	c.mu.Unlock()
	if stopSupervision != nil {
		stopSupervision()
	}
	c.supervisors.Wait()
	processes := c.current()
	for i := len(processes) - 1; i >= 0; i-- {
		processes[i].Stop(stopGrace)
	}
}

// RESTConfig is the admin's client configuration.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	config, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("%s: load admin kubeconfig: %w", c.Name, err)
	}
	// Tests and the lab make bursts of requests at start; the defaults (5
	// QPS) would make them wait on the client for no reason.
	config.QPS, config.Burst = 100, 200
	return config, nil
}
