// Package controlplane runs one Kubernetes cluster's control plane from the
// real binaries that hack/kube builds: etcd, kube-apiserver and
// kube-controller-manager, on loopback with free ports. It makes the PKI,
// installs cclm's CRDs and admission policies, and hands back an admin
// kubeconfig. Tests and `cclm lab` both use it.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

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

	pki       *clusterPKI
	processes []*procutil.Process
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
	if err := c.start(procutil.Spec{
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
	if err := c.start(c.apiServerSpec(opts.BinDir, etcdURL, ports[2])); err != nil {
		return nil, err
	}
	restConfig, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, restConfig); err != nil {
		return nil, err
	}
	if err := c.start(c.controllerManagerSpec(opts.BinDir, controllerKubeconfig, ports[3])); err != nil {
		return nil, err
	}
	if err := install.CRDs(ctx, restConfig); err != nil {
		return nil, fmt.Errorf("%s: install cclm API: %w", opts.Name, err)
	}
	return c, nil
}

func validate(opts Options) error {
	if opts.Name == "" {
		return errors.New("controlplane: Options.Name is empty; name the cluster, e.g. ocp7")
	}
	if opts.Dir == "" {
		return errors.New("controlplane: Options.Dir is empty; give a directory for the cluster's state")
	}
	for _, binary := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
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

// start launches one component; its log goes to Dir/logs/<component>.log.
func (c *Cluster) start(spec procutil.Spec) error {
	if spec.LogPath == "" {
		spec.LogPath = filepath.Join(c.Dir, "logs", filepath.Base(spec.Path)+".log")
	}
	p, err := procutil.Start(spec)
	if err != nil {
		return err
	}
	c.processes = append(c.processes, p)
	return nil
}

// waitReady polls /readyz until it answers ok, a component dies, or ctx ends.
func (c *Cluster) waitReady(ctx context.Context, restConfig *rest.Config) error {
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	client := clientset.Discovery().RESTClient()
	var lastErr error
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		if dead := c.deadProcess(); dead != nil {
			return fmt.Errorf("%s; last log lines:\n%s", dead.ExitError(), dead.LogTail(15))
		}
		body, err := client.Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: kube-apiserver not ready before the deadline (last answer: %v); see %s",
				c.Name, lastErr, c.processes[len(c.processes)-1].LogPath)
		case <-ticker.C:
		}
	}
}

func (c *Cluster) deadProcess() *procutil.Process {
	for _, p := range c.processes {
		if !p.Running() {
			return p
		}
	}
	return nil
}

// Healthy reports the first component that has ended, or nil.
func (c *Cluster) Healthy() error {
	if dead := c.deadProcess(); dead != nil {
		return dead.ExitError()
	}
	return nil
}

// Pids returns the process IDs of the control plane's components.
func (c *Cluster) Pids() []int {
	pids := make([]int, 0, len(c.processes))
	for _, p := range c.processes {
		pids = append(pids, p.Pid())
	}
	return pids
}

// Stop ends the components in the reverse order of their start and waits
// until each is gone. It is safe to call more than once.
func (c *Cluster) Stop() {
	for i := len(c.processes) - 1; i >= 0; i-- {
		c.processes[i].Stop(stopGrace)
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
