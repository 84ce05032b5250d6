// Package nodeagent is cclm's node agent (`cclm node`), one per node: what
// KubeVirt's virt-handler and virt-launcher do together. It registers its
// Node with capacity and CPU labels in KubeVirt's naming, keeps the node's
// Lease, provisions local volumes, runs one QEMU per VMI scheduled to it
// and reports the VMI's status. QEMU outlives the agent: a restarted agent
// re-adopts the QEMUs still running, so restarting it never restarts a VM.
package nodeagent

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/metrics"
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
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	qemuVersion, err := qemu.CheckVersion(ctx, "")
	if err != nil {
		return err
	}
	accel, err := qemu.SelectAccel(ctx, opts.Accel, "", guestImage(opts.GuestDir).boot())
	if err != nil {
		return fmt.Errorf("--accel %s: %w", opts.Accel, err)
	}
	logger.Info("QEMU", "version", qemuVersion, "package", qemuVersion.Package, "accel", accel.Accel, "reason", accel.Reason)
	env, err := newRuntimeEnv(opts, accel.Accel)
	if err != nil {
		return err
	}
	host, err := probeHostCPU(ctx, accel.Accel)
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	// migration0 comes up once the migration network is there (it may
	// wait for a NodeNetworkConfigurationPolicy's bridge); it publishes
	// its own address on the Node.
	migration0, err := newMigration0Keeper(restConfig, clientset, env, opts, logger)
	if err != nil {
		return err
	}
	apiServer, err := newAPIServer(opts, restConfig)
	if err != nil {
		return err
	}
	facts := nodeFacts{
		Name: opts.NodeName, CPU: host, Accel: accel, QEMUVersion: qemuVersion, Capacity: capacity(opts.CPUs, opts.Memory, opts.Storage),
		Address: apiServer.address(), APIPort: apiServer.port(), APICertSHA256: apiServer.certSHA256, Extra: opts.ExtraLabels,
	}
	if err := registerNode(ctx, clientset, facts); err != nil {
		return err
	}
	logger.Info("node registered", "node", opts.NodeName, "hostModel", host.HostModel, "models", len(host.Models))
	go keepLease(ctx, clientset, facts, func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) })
	go migration0.run(ctx)

	mgr, err := newManager(restConfig, opts.MetricsAddress, logger)
	if err != nil {
		return err
	}
	recorder := mgr.GetEventRecorder("cclm-node/" + opts.NodeName)
	store := &storage{client: mgr.GetClient(), recorder: recorder, node: opts.NodeName, dir: opts.StorageDir, budget: opts.Storage}
	runner := &vmiRunner{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(), recorder: recorder, node: opts.NodeName, runRoot: opts.RunDir,
		env: env, accel: accel, bootTimeout: cmp.Or(opts.BootTimeout, DefaultBootTimeout),
		storage: store, exits: make(chan event.GenericEvent, 16),
		instances: map[types.UID]*runningVMI{},
		inputs: func() domainInputs {
			return domainInputs{
				Guest:     guestImage(opts.GuestDir),
				VMNetwork: opts.VMNetwork,
			}
		},
	}
	runner.migrator = &migrator{runner: runner, logger: logger, apiReader: mgr.GetAPIReader(), network: env, virtNamespace: opts.VirtNamespace, active: map[types.UID]*activeMigration{}}
	if opts.MetricsAddress != "" && opts.MetricsAddress != metrics.Off {
		for _, c := range []prometheus.Collector{
			metrics.TransferCollector{Node: opts.NodeName, Transfers: runner.migrator.transfers},
			metrics.VMICollector{Node: opts.NodeName, VMIs: runner.figures},
		} {
			if err := ctrlmetrics.Registry.Register(c); err != nil {
				return fmt.Errorf("node agent: metrics: %w", err)
			}
		}
	}
	apiServer.runner = runner
	if err := setupControllers(mgr, store, runner); err != nil {
		return err
	}
	if err := notifyVMIChanges(ctx, mgr, &runner.migrator.changes); err != nil {
		return err
	}
	nncp := &nncpReconciler{client: mgr.GetClient(), reader: mgr.GetAPIReader(), node: opts.NodeName,
		host: netlinkHost{node: env.node}, logger: logger, applied: migration0.kick}
	if err := setupNNCP(mgr, nncp); err != nil {
		return err
	}
	if err := setupMigrationNetworkWatch(mgr, migration0); err != nil {
		return err
	}
	if err := mgr.Add(&runDirSweeper{reader: mgr.GetClient(), runner: runner, logger: logger}); err != nil {
		return err
	}
	go apiServer.serve(ctx, logger)
	return mgr.Start(ctx)
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

// notifyVMIChanges wakes the waits on a VMI (changes) as soon as the cache
// holds its new version, straight from the informer: the VMI controller's
// reconcile of it may wait behind others'.
func notifyVMIChanges(ctx context.Context, mgr ctrl.Manager, changes *changeNotifier) error {
	informer, err := mgr.GetCache().GetInformer(ctx, &kubevirtv1.VirtualMachineInstance{})
	if err != nil {
		return err
	}
	_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			if vmi, ok := obj.(*kubevirtv1.VirtualMachineInstance); ok {
				changes.notify(client.ObjectKeyFromObject(vmi))
			}
		},
	})
	return err
}

func setupControllers(mgr ctrl.Manager, store *storage, runner *vmiRunner) error {
	pvcWanted := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		pvc, ok := obj.(*corev1.PersistentVolumeClaim)
		return ok && store.wantsUs(pvc)
	})
	err := ctrl.NewControllerManagedBy(mgr).Named("provisioner").
		For(&corev1.PersistentVolumeClaim{}, builder.WithPredicates(pvcWanted)).
		Complete(reconcilerFunc(store.reconcilePVC))
	if err != nil {
		return err
	}
	err = ctrl.NewControllerManagedBy(mgr).Named("deleter").
		For(&corev1.PersistentVolume{}).
		Complete(reconcilerFunc(store.reconcilePV))
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("vmi").
		For(&kubevirtv1.VirtualMachineInstance{}).
		WatchesRawSource(source.Channel(runner.exits, &handler.EnqueueRequestForObject{})).
		Complete(reconcilerFunc(runner.reconcile))
}

type reconcilerFunc func(context.Context, ctrl.Request) (ctrl.Result, error)

func (f reconcilerFunc) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return f(ctx, req)
}

// guestImage prefers the uncompressed kernel that make guest also builds:
// under TCG, unpacking vmlinuz costs the guest about four seconds of boot.
func guestImage(dir string) guestFiles {
	kernel := filepath.Join(dir, "vmlinux")
	if _, err := os.Stat(kernel); err != nil {
		kernel = filepath.Join(dir, "vmlinuz")
	}
	return guestFiles{Kernel: kernel, Initrd: filepath.Join(dir, "initramfs.img")}
}

// boot is the image as QEMU boots it directly.
func (g guestFiles) boot() qemu.Boot { return qemu.Boot{Kernel: g.Kernel, Initrd: g.Initrd} }
