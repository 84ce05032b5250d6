package virtcontroller

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/metrics"
	"github.com/cclm-io/cclm/internal/scheme"
)

// LeaderElectionID is the Lease (in the virt namespace) replicas elect
// their leader with, upstream's name.
const LeaderElectionID = "virt-controller"

// Options configure the virt controller. The zero value works, except that
// Namespace is needed with leader election.
type Options struct {
	// Namespace is the virt namespace, where the leader-election Lease is.
	Namespace string
	// LeaderElection: only the elected replica acts.
	LeaderElection bool
	// MetricsAddr serves /metrics, /healthz and /readyz over HTTPS, behind
	// the API server's authentication and authorization (host:port); "" or
	// "0" serves none.
	MetricsAddr string
	// HealthProbeAddr serves /healthz and /readyz; "" or "0" serves none.
	HealthProbeAddr string
	// CrashLoopBackoff is the wait before restarting a VMI after its second
	// consecutive failure (the first restarts at once); it doubles per
	// further failure up to MaxCrashLoopBackoff. Defaults 10 s and 5 min.
	CrashLoopBackoff    time.Duration
	MaxCrashLoopBackoff time.Duration
	// StableRun: a VMI that ran this long before failing does not add to
	// the crash count. Default 1 min.
	StableRun time.Duration
	// Logger for the controller; default: discard.
	Logger logr.Logger
	// AlsoRun adds more reconcilers to the same manager, under the same
	// leader election: `cclm controller` adds the migration controller.
	AlsoRun []func(ctrl.Manager) error
}

func (o Options) backoffPolicy() backoffPolicy {
	return backoffPolicy{
		Base:      cmpOr(o.CrashLoopBackoff, 10*time.Second),
		Max:       cmpOr(o.MaxCrashLoopBackoff, 5*time.Minute),
		StableRun: cmpOr(o.StableRun, time.Minute),
	}
}

func cmpOr(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

func addrOrOff(addr string) string {
	if addr == "" {
		return "0"
	}
	return addr
}

// ManagerOptions are the controller-runtime manager options Run uses:
// cclm's scheme, metrics, probes and leader election as opts say.
func ManagerOptions(opts Options) (ctrl.Options, error) {
	if opts.LeaderElection && opts.Namespace == "" {
		return ctrl.Options{}, fmt.Errorf("virt controller: leader election needs Options.Namespace (the virt namespace, e.g. openshift-cnv)")
	}
	logger := opts.Logger
	if logger.GetSink() == nil {
		logger = logr.Discard()
	}
	return ctrl.Options{
		Scheme:                        scheme.Scheme,
		Logger:                        logger,
		Metrics:                       metrics.ServerOptions(opts.MetricsAddr),
		HealthProbeBindAddress:        addrOrOff(opts.HealthProbeAddr),
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		// The lab and the tests run one controller per cluster in one
		// process; the controllers' names then repeat.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	}, nil
}

// Run runs the virt controller against the cluster of restConfig until ctx
// is cancelled. A config without client rate limits gets 50 QPS (burst
// 100) instead of client-go's 5, which would throttle a start with many
// VMs.
func Run(ctx context.Context, restConfig *rest.Config, opts Options) error {
	managerOptions, err := ManagerOptions(opts)
	if err != nil {
		return err
	}
	restConfig = rest.CopyConfig(restConfig)
	if restConfig.QPS == 0 {
		restConfig.QPS, restConfig.Burst = 50, 100
	}
	mgr, err := ctrl.NewManager(restConfig, managerOptions)
	if err != nil {
		return fmt.Errorf("virt controller: %w", err)
	}
	if err := New(mgr, opts); err != nil {
		return err
	}
	for _, add := range opts.AlsoRun {
		if err := add(mgr); err != nil {
			return err
		}
	}
	if opts.MetricsAddr != "" && opts.MetricsAddr != metrics.Off {
		if err := registerMigrationMetrics(ctx, mgr); err != nil {
			return fmt.Errorf("virt controller: metrics: %w", err)
		}
	}
	if opts.HealthProbeAddr != "" && opts.HealthProbeAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return err
		}
	}
	return mgr.Start(ctx)
}

// registerMigrationMetrics serves upstream's VMIM metrics: the phase
// counts and outcomes read at each scrape, and the phase-transition
// histogram fed by the VMIM informer's updates.
func registerMigrationMetrics(ctx context.Context, mgr ctrl.Manager) error {
	transitions := metrics.NewPhaseTransitions()
	for _, c := range []prometheus.Collector{metrics.MigrationCollector{Reader: mgr.GetClient()}, transitions.Collector()} {
		if err := ctrlmetrics.Registry.Register(c); err != nil {
			return err
		}
	}
	informer, err := mgr.GetCache().GetInformer(ctx, &kubevirtv1.VirtualMachineInstanceMigration{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, updated any) {
			oldVMIM, ok1 := old.(*kubevirtv1.VirtualMachineInstanceMigration)
			newVMIM, ok2 := updated.(*kubevirtv1.VirtualMachineInstanceMigration)
			if ok1 && ok2 {
				transitions.Observe(oldVMIM, newVMIM)
			}
		},
	})
	return err
}

// New adds the virt controller's reconcilers to mgr, whose scheme must be
// cclm's (internal/scheme).
func New(mgr ctrl.Manager, opts Options) error {
	if err := addIndexes(mgr); err != nil {
		return fmt.Errorf("virt controller: %w", err)
	}
	recorder := mgr.GetEventRecorder("virt-controller")
	vms := &vmReconciler{client: mgr.GetClient(), recorder: recorder, backoff: opts.backoffPolicy(), now: time.Now}
	if err := vms.setup(mgr); err != nil {
		return fmt.Errorf("virt controller: VM controller: %w", err)
	}
	sched := newScheduler(mgr.GetClient(), recorder)
	if err := sched.setup(mgr); err != nil {
		return fmt.Errorf("virt controller: scheduler: %w", err)
	}
	dvs := &dataVolumeReconciler{client: mgr.GetClient(), recorder: recorder, now: time.Now}
	if err := dvs.setup(mgr); err != nil {
		return fmt.Errorf("virt controller: DataVolume controller: %w", err)
	}
	return nil
}

// dataVolumeIndex indexes VMs by the DataVolumes they use, so that a
// DataVolume's change reaches its VMs even if they do not own it.
const dataVolumeIndex = "cclm.io/dataVolumeNames"

func addIndexes(mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), &kubevirtv1.VirtualMachine{}, dataVolumeIndex,
		func(obj client.Object) []string { return dataVolumeNames(obj.(*kubevirtv1.VirtualMachine)) })
}

// dataVolumeNames are the DataVolumes a VM uses: its templates' and those
// its volumes name.
func dataVolumeNames(vm *kubevirtv1.VirtualMachine) []string {
	seen := map[string]bool{}
	var names []string
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for _, template := range vm.Spec.DataVolumeTemplates {
		add(template.ObjectMeta.Name)
	}
	if vm.Spec.Template != nil {
		for _, volume := range vm.Spec.Template.Spec.Volumes {
			if volume.DataVolume != nil {
				add(volume.DataVolume.Name)
			}
		}
	}
	return names
}
