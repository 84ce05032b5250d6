package toolkit

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/access"
	"github.com/cclm-io/cclm/internal/metrics"
	"github.com/cclm-io/cclm/internal/preflight"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/trust"
)

// Options configure the toolkit. The zero value works except for
// leader election, which needs Namespace (defaulted).
type Options struct {
	// Namespace is the toolkit's: its ForkliftController and Lease
	// (default openshift-mtv).
	Namespace string
	// VirtNamespace holds the KubeVirt CR on both clusters (default
	// openshift-cnv).
	VirtNamespace string
	// ClusterName names this (the target) cluster in preflight messages.
	ClusterName string
	// LeaderElection: only the elected replica acts.
	LeaderElection bool
	// DialSync connects to a sync controller's address from where the
	// other cluster's sync controller sits, for the preflight's
	// SyncReachable (preflight.Input.DialSync); nil dials directly. The
	// lab dials from the sync controllers' network namespaces.
	DialSync func(ctx context.Context, cluster, address string) (net.Conn, error)
	// Timeouts of the pipeline; zero fields take the defaults.
	Timeouts Timeouts
	// ProviderRecheck: how often a remote Provider is checked again, so
	// that a revoked token shows (default 30 s).
	ProviderRecheck time.Duration
	// PlanRecheck: how often a Plan is checked again while no Migration
	// runs (default 30 s).
	PlanRecheck time.Duration
	// MaxInFlight bounds the VMs past Initialize's Pending at once, across
	// every running Migration, unless the ForkliftController sets
	// controller_max_vm_inflight (default 20, upstream's; KubeVirt's own
	// parallel limits apply to the VMIMs on top).
	MaxInFlight int
	// MetricsAddr serves /metrics, /healthz and /readyz over HTTPS, behind
	// the API server's authentication and authorization (host:port); "" or
	// "0" serves none.
	MetricsAddr string
	// Logger; default: discard.
	Logger logr.Logger

	// preflight replaces preflight.Run in tests.
	preflight func(context.Context, preflight.Input) preflight.Report
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.VirtNamespace == "" {
		o.VirtNamespace = DefaultVirtNamespace
	}
	if o.ProviderRecheck <= 0 {
		o.ProviderRecheck = 30 * time.Second
	}
	if o.PlanRecheck <= 0 {
		o.PlanRecheck = 30 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxVMInFlight
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.preflight == nil {
		o.preflight = preflight.Run
	}
	o.Timeouts = o.Timeouts.withDefaults()
	return o
}

func rule(group string, resources []string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
}

// Component is the toolkit's ServiceAccount in the target cluster and its
// least-privilege rules, each with what for.
var Component = access.Account{
	ServiceAccount: ServiceAccountName,
	Rules: []rbacv1.PolicyRule{
		// Its API: watched; statuses written.
		rule("forklift.konveyor.io", []string{"providers", "plans", "migrations", "networkmaps", "storagemaps", "forkliftcontrollers"}, "get", "list", "watch"),
		rule("forklift.konveyor.io", []string{"providers/status", "plans/status", "migrations/status", "networkmaps/status", "storagemaps/status"}, "update", "patch"),
		// Provider Secrets (read by name, neither listed nor watched);
		// CopyResources' copies of the VM's Secrets and ConfigMaps
		// (read by name, created, updated while the source's change until
		// the guest has moved, deleted by Cleanup).
		rule("", []string{"secrets", "configmaps"}, "get", "create", "update", "delete"),
		// SynchronizeCertificates: the source cluster's CA imported into
		// this cluster's kubevirt-external-ca (created above if absent).
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{trust.ExternalCAConfigMap}, Verbs: []string{"update"}},
		// CopyResources: the VM's namespaced instancetype and preference
		// copied (deleted by Cleanup); cluster-wide ones compared.
		rule("instancetype.kubevirt.io", []string{"virtualmachineinstancetypes", "virtualmachinepreferences"}, "get", "create", "delete"),
		rule("instancetype.kubevirt.io", []string{"virtualmachineclusterinstancetypes", "virtualmachineclusterpreferences"}, "get"),
		// The target namespace, made if absent (never deleted).
		rule("", []string{"namespaces"}, "get", "create"),
		// CreateVolumes: blank DataVolumes or PVCs; Cleanup deletes them.
		rule("cdi.kubevirt.io", []string{"datavolumes"}, "get", "list", "watch", "create", "delete"),
		rule("", []string{"persistentvolumeclaims"}, "get", "list", "watch", "create", "delete"),
		// CreateReceiver and CreateTargetMigration; their watches.
		rule("kubevirt.io", []string{"virtualmachines", "virtualmachineinstancemigrations"}, "get", "list", "watch", "create", "delete"),
		rule("kubevirt.io", []string{"virtualmachineinstances", "kubevirts"}, "get", "list", "watch"),
		// The preflight's reads of the target: nodes (CPU models, room),
		// storage classes, the migration NAD, PVs (local storage in use).
		rule("", []string{"nodes", "persistentvolumes"}, "get", "list"),
		rule("storage.k8s.io", []string{"storageclasses"}, "get", "list"),
		rule("k8s.cni.cncf.io", []string{"network-attachment-definitions"}, "get", "list"),
		// Leader election and events.
		rule("coordination.k8s.io", []string{"leases"}, "get", "create", "update"),
		rule("events.k8s.io", []string{"events"}, "create", "patch"),
		// The metrics server's reviews of its callers.
		metrics.ServingRules[0], metrics.ServingRules[1],
	},
}

// Run runs the toolkit against the cluster of restConfig (the target)
// until ctx is cancelled.
func Run(ctx context.Context, restConfig *rest.Config, opts Options) error {
	opts = opts.withDefaults()
	restConfig = rest.CopyConfig(restConfig)
	if restConfig.QPS == 0 {
		restConfig.QPS, restConfig.Burst = 50, 100
	}
	mgr, err := ctrl.NewManager(restConfig, managerOptions(opts))
	if err != nil {
		return fmt.Errorf("toolkit: %w", err)
	}
	if err := New(mgr, restConfig, opts); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// ownedSelector matches the objects the toolkit made on the target: only
// those are cached and watched (a change brings their Migration's next
// step).
func ownedSelector() labels.Selector {
	requirement, err := labels.NewRequirement(LabelMigration, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*requirement)
}

func managerOptions(opts Options) ctrl.Options {
	owned := cache.ByObject{Label: ownedSelector()}
	return ctrl.Options{
		Scheme: scheme.Scheme,
		Logger: opts.Logger,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&kubevirtv1.VirtualMachine{}:                  owned,
			&kubevirtv1.VirtualMachineInstance{}:          owned,
			&kubevirtv1.VirtualMachineInstanceMigration{}: owned,
			&cdiv1beta1.DataVolume{}:                      owned,
			&forkliftv1beta1.ForkliftController{}:         {Namespaces: map[string]cache.Config{opts.Namespace: {}}},
		}},
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}}}},
		Metrics:                       metrics.ServerOptions(opts.MetricsAddr),
		HealthProbeBindAddress:        "0",
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	}
}

// New adds the toolkit's controllers (Provider, Plan, Migration) to mgr,
// whose scheme must be cclm's; target is the config the Plan controller's
// preflight reaches this cluster with.
func New(mgr ctrl.Manager, target *rest.Config, opts Options) error {
	opts = opts.withDefaults()
	providers := &providerReconciler{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(),
		recheck: opts.ProviderRecheck, probe: probeSource, now: time.Now,
	}
	err := ctrl.NewControllerManagedBy(mgr).Named("provider").
		// A spec change, or a new annotation: cclm connect annotates a
		// Provider whose Secret it changed (the toolkit does not watch
		// Secrets), so that new credentials are checked at once.
		For(&forkliftv1beta1.Provider{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(providers)
	if err != nil {
		return fmt.Errorf("toolkit: provider controller: %w", err)
	}
	for name, newMap := range map[string]func() client.Object{
		"networkmap": func() client.Object { return &forkliftv1beta1.NetworkMap{} },
		"storagemap": func() client.Object { return &forkliftv1beta1.StorageMap{} },
	} {
		maps := &mapReconciler{client: mgr.GetClient(), now: time.Now, newMap: newMap}
		err = ctrl.NewControllerManagedBy(mgr).Named(name).
			For(newMap(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
			Watches(&forkliftv1beta1.Provider{}, handler.EnqueueRequestsFromMapFunc(maps.mapsInNamespace)).
			Complete(maps)
		if err != nil {
			return fmt.Errorf("toolkit: %s controller: %w", name, err)
		}
	}
	plans := &planReconciler{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(), opts: opts, target: target,
		preflight: opts.preflight, now: time.Now, runs: map[types.UID]preflightRun{},
	}
	err = ctrl.NewControllerManagedBy(mgr).Named("plan").
		For(&forkliftv1beta1.Plan{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&forkliftv1beta1.Provider{}, handler.EnqueueRequestsFromMapFunc(plans.plansInNamespace)).
		Watches(&forkliftv1beta1.NetworkMap{}, handler.EnqueueRequestsFromMapFunc(plans.plansInNamespace)).
		Watches(&forkliftv1beta1.StorageMap{}, handler.EnqueueRequestsFromMapFunc(plans.plansInNamespace)).
		Watches(&forkliftv1beta1.Migration{}, handler.EnqueueRequestsFromMapFunc(plans.planOfMigration)).
		Watches(&forkliftv1beta1.ForkliftController{}, handler.EnqueueRequestsFromMapFunc(plans.allPlans)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(plans)
	if err != nil {
		return fmt.Errorf("toolkit: plan controller: %w", err)
	}
	migrations := newMigrationReconciler(mgr, opts)
	err = ctrl.NewControllerManagedBy(mgr).Named("migration").
		For(&forkliftv1beta1.Migration{}).
		Watches(&forkliftv1beta1.Plan{}, handler.EnqueueRequestsFromMapFunc(migrations.migrationsOfPlan)).
		Watches(&kubevirtv1.VirtualMachine{}, handler.EnqueueRequestsFromMapFunc(migrations.migrationOfObject)).
		Watches(&kubevirtv1.VirtualMachineInstance{}, handler.EnqueueRequestsFromMapFunc(migrations.migrationOfObject)).
		Watches(&kubevirtv1.VirtualMachineInstanceMigration{}, handler.EnqueueRequestsFromMapFunc(migrations.migrationOfObject)).
		Watches(&cdiv1beta1.DataVolume{}, handler.EnqueueRequestsFromMapFunc(migrations.migrationOfObject)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(migrations)
	if err != nil {
		return fmt.Errorf("toolkit: migration controller: %w", err)
	}
	if opts.MetricsAddr != "" && opts.MetricsAddr != metrics.Off {
		if err := ctrlmetrics.Registry.Register(Collector{Reader: mgr.GetClient(), Now: time.Now}); err != nil {
			return fmt.Errorf("toolkit: metrics: %w", err)
		}
	}
	return nil
}

// plansInNamespace maps a Provider or map change to the plans of its
// namespace (few; each checks whether it refers to it).
func (r *planReconciler) plansInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.plansWhere(ctx, client.InNamespace(obj.GetNamespace()))
}

func (r *planReconciler) allPlans(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.plansWhere(ctx)
}

func (r *planReconciler) plansWhere(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list forkliftv1beta1.PlanList
	if err := r.client.List(ctx, &list, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list plans")
		return nil
	}
	requests := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		requests[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return requests
}

func (r *planReconciler) planOfMigration(_ context.Context, obj client.Object) []reconcile.Request {
	m, ok := obj.(*forkliftv1beta1.Migration)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: namespaceOr(m.Spec.Plan.Namespace, m.Namespace), Name: m.Spec.Plan.Name}}}
}

// mapsInNamespace maps a Provider change to the maps of its namespace.
func (r *mapReconciler) mapsInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	var keys []client.ObjectKey
	switch r.newMap().(type) {
	case *forkliftv1beta1.NetworkMap:
		var list forkliftv1beta1.NetworkMapList
		if err := r.client.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil
		}
		for i := range list.Items {
			keys = append(keys, client.ObjectKeyFromObject(&list.Items[i]))
		}
	case *forkliftv1beta1.StorageMap:
		var list forkliftv1beta1.StorageMapList
		if err := r.client.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil
		}
		for i := range list.Items {
			keys = append(keys, client.ObjectKeyFromObject(&list.Items[i]))
		}
	}
	requests := make([]reconcile.Request, len(keys))
	for i, key := range keys {
		requests[i] = reconcile.Request{NamespacedName: key}
	}
	return requests
}
