// Package vmiruntime is the node agent's VMI runtime, what KubeVirt's
// virt-handler and virt-launcher do together for the VMIs of one node: it
// runs one QEMU per VMI scheduled to the node, reports the VMI's status,
// and takes its side in live migrations (sending or receiving, in the
// cluster or across clusters), through to the switchover. QEMU outlives
// the agent: a restarted agent re-adopts the QEMUs still running.
package vmiruntime

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/metrics"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/nodeagent/nodeapi"
	"github.com/cclm-io/cclm/internal/nodeagent/storage"
	"github.com/cclm-io/cclm/internal/qemu"
)

// Volumes are the node's local volumes as the runtime uses them (package
// storage).
type Volumes interface {
	// DiskPath is the file behind a bound claim on this node.
	DiskPath(ctx context.Context, namespace, claim string) (string, error)
	// WaitBound is a claim's volume once it is bound (a migration
	// target's claims are bound once the target is chosen).
	WaitBound(ctx context.Context, namespace, claim string) (storage.Volume, error)
	// Adopt records that this node now holds the claim's data.
	Adopt(ctx context.Context, namespace, claim string) error
}

// Config is what the runtime needs of its node.
type Config struct {
	// Node is this node's name in the cluster.
	Node string
	// RunDir holds a directory per running VMI (QMP and agent sockets).
	RunDir string
	// Host is the node's network namespace: its VM bridge VMBridge, whose
	// guests take addresses from VMNetwork, and its migration0.
	Host      *netlab.Node
	VMBridge  string
	VMNetwork netip.Prefix
	// Guest is the built-in guest's boot files.
	Guest GuestFiles
	// Accel is what every QEMU of this node runs under, and why.
	Accel qemu.AccelProbe
	// BootTimeout is how long a guest may take until its agent answers.
	BootTimeout time.Duration
	// VirtNamespace holds the migration certificates.
	VirtNamespace string
	Volumes       Volumes
	Logger        *slog.Logger
}

// New makes the runtime of the manager's node; SetupWithManager starts it.
func New(mgr ctrl.Manager, cfg Config) *Runtime {
	env := &labNode{node: cfg.Host, bridge: cfg.VMBridge, accel: cfg.Accel.Accel}
	r := &Runtime{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(), recorder: mgr.GetEventRecorder("cclm-node/" + cfg.Node), logger: cfg.Logger,
		node: cfg.Node, runRoot: cfg.RunDir, env: env, accel: cfg.Accel, bootTimeout: cfg.BootTimeout,
		storage: cfg.Volumes, exits: make(chan event.GenericEvent, 16), detached: make(chan struct{}),
		instances: map[types.UID]*runningVMI{},
		inputs: func() domainInputs {
			return domainInputs{Guest: cfg.Guest, VMNetwork: cfg.VMNetwork}
		},
	}
	r.migrator = &migrator{runner: r, logger: cfg.Logger, apiReader: mgr.GetAPIReader(), network: env,
		virtNamespace: cfg.VirtNamespace, active: map[types.UID]*activeMigration{}}
	return r
}

// SetupWithManager runs the VMI controller (which starts, watches, stops
// and migrates this node's VMIs) and the sweeper of orphaned run
// directories.
func (r *Runtime) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	err := ctrl.NewControllerManagedBy(mgr).Named("vmi").
		For(&kubevirtv1.VirtualMachineInstance{}).
		WatchesRawSource(source.Channel(r.exits, &handler.EnqueueRequestForObject{})).
		Complete(reconcile.Func(r.reconcile))
	if err != nil {
		return err
	}
	if err := notifyVMIChanges(ctx, mgr, &r.migrator.changes); err != nil {
		return err
	}
	return mgr.Add(&runDirSweeper{reader: mgr.GetClient(), runner: r, logger: r.logger})
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

// Figures are this node's VMIs' figures for the metrics.
func (r *Runtime) Figures() []metrics.VMIFigures { return r.figures() }

// Transfers are this node's outgoing migrations still under way.
func (r *Runtime) Transfers() []metrics.Transfer { return r.migrator.transfers() }

// Runs tells whether VMI namespace/name runs on this node (nodeapi.Guests).
func (r *Runtime) Runs(namespace, name string) bool { return r.byName(namespace, name) != nil }

// Agent is the guest agent of VMI namespace/name once it answers.
func (r *Runtime) Agent(ctx context.Context, namespace, name string) (nodeapi.Agent, error) {
	running := r.byName(namespace, name)
	if running == nil {
		return nil, errNotHere(namespace, name)
	}
	agent, err := r.answeringAgent(ctx, running)
	if err != nil {
		return nil, err // not agent: a nil *Client would be a non-nil Agent
	}
	return agent, nil
}

// SerialConsole is the unix socket of VMI namespace/name's serial console.
func (r *Runtime) SerialConsole(namespace, name string) (string, error) {
	running := r.byName(namespace, name)
	if running == nil {
		return "", errNotHere(namespace, name)
	}
	return running.instance.Paths().Serial, nil
}

// GuestFilesIn is the built-in guest in dir. It prefers the uncompressed
// kernel that make guest also builds: under TCG, unpacking vmlinuz costs
// the guest about four seconds of boot.
func GuestFilesIn(dir string) GuestFiles {
	kernel := filepath.Join(dir, "vmlinux")
	if _, err := os.Stat(kernel); err != nil {
		kernel = filepath.Join(dir, "vmlinuz")
	}
	return GuestFiles{Kernel: kernel, Initrd: filepath.Join(dir, "initramfs.img")}
}

// Boot is the image as QEMU boots it directly.
func (g GuestFiles) Boot() qemu.Boot { return qemu.Boot{Kernel: g.Kernel, Initrd: g.Initrd} }
