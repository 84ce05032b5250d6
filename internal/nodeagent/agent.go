// Package nodeagent is cclm's node agent (`cclm node`), one per node: what
// KubeVirt's virt-handler and virt-launcher, kubernetes-nmstate's handler
// and a local volume provisioner do on a node. It puts together the parts
// in its subpackages: registration (the Node and its Lease), vmiruntime
// (one QEMU per VMI, live migration), storage (local volumes), nmstate
// (node network policies, migration0) and nodeapi (guest agent and
// console for `cclm guest` and `cclm console`).
package nodeagent

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/cclm-io/cclm/internal/metrics"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/nodeagent/nmstate"
	"github.com/cclm-io/cclm/internal/nodeagent/nodeapi"
	"github.com/cclm-io/cclm/internal/nodeagent/registration"
	"github.com/cclm-io/cclm/internal/nodeagent/storage"
	"github.com/cclm-io/cclm/internal/nodeagent/vmiruntime"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/scheme"
)

// Options configure a node agent.
type Options struct {
	// NodeName is this node's name in the cluster.
	NodeName string
	// LabID and LabNode place the agent's guests in a lab node's network
	// namespace (internal/netlab); empty LabID means the host's network.
	LabID string
	// StorageDir holds the node's local volumes (raw files).
	StorageDir string
	// RunDir holds a directory per running VMI (QMP and agent sockets);
	// keep it short: unix socket paths are limited to 107 bytes.
	RunDir string
	// GuestDir holds the built-in guest's vmlinuz and initramfs.img.
	GuestDir string
	// VMBridge is the node's bridge that VM taps join.
	VMBridge string
	// VMNetwork is the prefix guests take addresses from.
	VMNetwork netip.Prefix
	// CPUs, Memory and Storage are what the node offers VMs.
	CPUs    int
	Memory  resource.Quantity
	Storage resource.Quantity
	// ExtraLabels are added to the Node, e.g. the lab's cluster name.
	ExtraLabels map[string]string
	// APIAddress is where the node agent's API for `cclm guest` and
	// `cclm console` listens, host:port.
	APIAddress string
	// MetricsAddress serves /metrics (the node's outgoing migrations, as
	// upstream's virt-handler reports them), /healthz and /readyz over
	// HTTPS behind the API server's authentication and authorization,
	// host:port; "" or "0": none.
	MetricsAddress string
	// VirtNamespace holds the KubeVirt CR and the migration certificates.
	VirtNamespace string
	// Accel chooses the accelerator: auto (KVM only if the guest image
	// boots under it), kvm or tcg.
	Accel qemu.AccelChoice
	// BootTimeout is how long a started guest may take until its agent
	// answers before its VMI is marked as not booting (0: DefaultBootTimeout).
	BootTimeout time.Duration
	// Logger receives the agent's log lines.
	Logger *slog.Logger
}

// DefaultBootTimeout is generous for TCG on a busy two-core host, where the
// guest's agent answers within 5-20 s of QEMU's start.
const DefaultBootTimeout = 90 * time.Second

// Validate checks the options and names the flag to fix.
func (o Options) Validate() error {
	switch {
	case o.NodeName == "":
		return fmt.Errorf("--node-name is empty; name this node as the cluster knows it")
	case o.LabID == "":
		return fmt.Errorf("--lab-id is empty: only lab nodes are supported so far (each node is a network namespace of `cclm lab`)")
	case o.StorageDir == "" || !filepath.IsAbs(o.StorageDir):
		return fmt.Errorf("--storage-dir %q must be an absolute path for the node's local volumes", o.StorageDir)
	case o.RunDir == "" || !filepath.IsAbs(o.RunDir):
		return fmt.Errorf("--run-dir %q must be an absolute path", o.RunDir)
	case len(o.RunDir) > 60:
		return fmt.Errorf("--run-dir %q is too long: QEMU's sockets live there and unix socket paths are limited to 107 bytes; use a path under 60 bytes such as /run/cclm/<node>", o.RunDir)
	case o.GuestDir == "":
		return fmt.Errorf("--guest-dir is empty; point it at the guest image (make guest puts it in bin/guest)")
	case o.Memory.Sign() <= 0 || o.Storage.Sign() <= 0 || o.CPUs <= 0:
		return fmt.Errorf("--cpus, --memory and --storage must be positive: they are what the node offers VMs")
	case o.BootTimeout < 0:
		return fmt.Errorf("--boot-timeout %v is negative; use a duration such as 2m", o.BootTimeout)
	}
	if _, err := qemu.ParseAccelChoice(string(o.Accel)); err != nil {
		return fmt.Errorf("--accel: %w", err)
	}
	return nil
}

// Run registers the node and serves until ctx ends. Running QEMUs are left
// running when it returns.
func Run(ctx context.Context, restConfig *rest.Config, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	logger := cmp.Or(opts.Logger, slog.Default())
	host, err := netlab.OpenNode(opts.LabID, opts.NodeName)
	if err != nil {
		return fmt.Errorf("open lab node %s: %w", opts.NodeName, err)
	}
	guest := vmiruntime.GuestFilesIn(opts.GuestDir)
	qemuVersion, err := qemu.CheckVersion(ctx, "")
	if err != nil {
		return err
	}
	accel, err := qemu.SelectAccel(ctx, opts.Accel, "", guest.Boot())
	if err != nil {
		return fmt.Errorf("--accel %s: %w", opts.Accel, err)
	}
	logger.Info("QEMU", "version", qemuVersion, "package", qemuVersion.Package, "accel", accel.Accel, "reason", accel.Reason)
	cpu, err := registration.ProbeHostCPU(ctx, accel.Accel)
	if err != nil {
		return err
	}
	apiServer, err := nodeapi.NewServer(opts.NodeName, opts.APIAddress, restConfig)
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	facts := registration.Facts{
		Name: opts.NodeName, CPU: cpu, Accel: accel, QEMUVersion: qemuVersion, Capacity: registration.Capacity(opts.CPUs, opts.Memory, opts.Storage),
		Address: apiServer.Address(), APIPort: apiServer.Port(), APICertSHA256: apiServer.CertSHA256(), Extra: opts.ExtraLabels,
	}
	if err := registration.Register(ctx, clientset, facts); err != nil {
		return err
	}
	logger.Info("node registered", "node", opts.NodeName, "hostModel", cpu.HostModel, "models", len(cpu.Models))

	mgr, err := newManager(restConfig, opts.MetricsAddress, logger)
	if err != nil {
		return err
	}
	volumes := storage.New(mgr.GetClient(), mgr.GetEventRecorder("cclm-node/"+opts.NodeName), opts.NodeName, opts.StorageDir, opts.Storage)
	runtime := vmiruntime.New(mgr, vmiruntime.Config{
		Node: opts.NodeName, RunDir: opts.RunDir, Host: host, VMBridge: opts.VMBridge, VMNetwork: opts.VMNetwork,
		Guest: guest, Accel: accel, BootTimeout: cmp.Or(opts.BootTimeout, DefaultBootTimeout),
		VirtNamespace: opts.VirtNamespace, Volumes: volumes, Logger: logger,
	})
	// migration0 comes up once the migration network is there (it may
	// wait for a NodeNetworkConfigurationPolicy's bridge); it publishes
	// its own address on the Node.
	migration0, err := nmstate.NewMigration0(restConfig, host, opts.NodeName, opts.VirtNamespace, logger)
	if err != nil {
		return err
	}
	if err := registerMetrics(opts, runtime); err != nil {
		return err
	}
	for _, setup := range []func() error{
		func() error { return volumes.SetupWithManager(mgr) },
		func() error { return runtime.SetupWithManager(ctx, mgr) },
		func() error { return nmstate.SetupPolicies(mgr, opts.NodeName, host, logger) },
		func() error { return migration0.SetupWithManager(mgr) },
		func() error {
			return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
				registration.KeepLease(ctx, clientset, facts, func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) })
				return nil
			}))
		},
		func() error {
			return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
				apiServer.Serve(ctx, runtime, logger)
				return nil
			}))
		},
	} {
		if err := setup(); err != nil {
			return err
		}
	}
	err = mgr.Start(ctx)
	// The controllers have stopped: let go of the guests, which run on.
	runtime.Detach()
	return err
}

// registerMetrics adds the node's outgoing migrations and its VMIs'
// figures to /metrics, as upstream's virt-handler reports them.
func registerMetrics(opts Options, runtime *vmiruntime.Runtime) error {
	if opts.MetricsAddress == "" || opts.MetricsAddress == metrics.Off {
		return nil
	}
	for _, c := range []prometheus.Collector{
		metrics.TransferCollector{Node: opts.NodeName, Transfers: runtime.Transfers},
		metrics.VMICollector{Node: opts.NodeName, VMIs: runtime.Figures},
	} {
		if err := ctrlmetrics.Registry.Register(c); err != nil {
			return fmt.Errorf("node agent: metrics: %w", err)
		}
	}
	return nil
}

// newManager makes the agent's controller-runtime manager. Its cache holds
// every VMI: a node must see the VMIs that migrate to it, which are not
// labelled with its name until they arrive.
func newManager(restConfig *rest.Config, metricsAddress string, logger *slog.Logger) (ctrl.Manager, error) {
	return ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme.Scheme,
		Logger:                 logr.FromSlogHandler(logger.Handler()),
		Metrics:                metrics.ServerOptions(metricsAddress),
		HealthProbeBindAddress: "0",
	})
}
