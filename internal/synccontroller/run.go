package synccontroller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/metrics"
	"github.com/cclm-io/cclm/internal/scheme"
)

// controller is the state the pusher, the publishers and the server share.
type controller struct {
	opts     Options
	timing   timing
	address  string // host:port, as published and served
	client   client.Client
	recorder recorder.EventRecorder
	logger   logr.Logger
	contacts *contacts
	peers    *peerClients
	calls    *metrics.SyncCalls
	auth     *authenticator
	now      func() time.Time
}

// Run runs the synchronization controller against the cluster of
// restConfig until ctx is cancelled. Before it takes part in the election
// it resolves the port and issues its certificates, so that a missing
// KubeVirt CR or CA ends it at once with a message that says what to fix.
func Run(ctx context.Context, restConfig *rest.Config, opts Options) error {
	opts, err := opts.complete()
	if err != nil {
		return err
	}
	direct, err := client.New(restConfig, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return fmt.Errorf("sync controller: %w", err)
	}
	port, err := resolvePort(ctx, direct, opts)
	if err != nil {
		return err
	}
	id, err := issueIdentity(ctx, direct, opts.VirtNamespace, opts.ListenAddress, opts.ClusterName)
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("sync controller: %w", err)
	}
	mgr, err := ctrl.NewManager(restConfig, managerOptions(opts))
	if err != nil {
		return fmt.Errorf("sync controller: %w", err)
	}
	c := &controller{
		opts: opts, timing: opts.timing(),
		address:  syncAddress(opts.ListenAddress, port),
		client:   mgr.GetClient(),
		recorder: mgr.GetEventRecorder(eventSource),
		logger:   opts.Logger,
		contacts: newContacts(),
		now:      time.Now,
	}
	trust := newTrustBundle(clientset, opts.VirtNamespace, opts.Logger)
	c.auth = &authenticator{identity: id, trust: trust, refusals: newRefusalReporter(opts.Logger, c.warnOnKubeVirt)}
	c.calls = metrics.NewSyncCalls()
	if opts.MetricsAddr != "" && opts.MetricsAddr != metrics.Off {
		if err := c.calls.Register(ctrlmetrics.Registry); err != nil {
			return fmt.Errorf("sync controller: metrics: %w", err)
		}
	}
	c.peers = newPeerClients(opts.Dial, c.auth.clientConfig, c.calls)
	defer c.peers.closeAll()
	if err := c.setup(ctx, mgr, trust); err != nil {
		return fmt.Errorf("sync controller: %w", err)
	}
	return mgr.Start(ctx)
}

// managerOptions: cclm's scheme, KubeVirt CRs read from the virt namespace
// only, metrics where asked, leader election as asked.
func managerOptions(opts Options) ctrl.Options {
	return ctrl.Options{
		Scheme: scheme.Scheme,
		Logger: opts.Logger,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&kubevirtv1.KubeVirt{}: {Namespaces: map[string]cache.Config{opts.VirtNamespace: {}}},
		}},
		Metrics:                       metrics.ServerOptions(opts.MetricsAddr),
		HealthProbeBindAddress:        "0",
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       opts.VirtNamespace,
		LeaderElectionReleaseOnCancel: true,
		// The lab and the tests run the controllers of several clusters
		// in one process; the controllers' names then repeat.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	}
}

// setup adds the indexes, the reconcilers, the trust bundle and the server
// to mgr.
func (c *controller) setup(ctx context.Context, mgr ctrl.Manager, trust *trustBundle) error {
	if err := addIndexes(ctx, mgr); err != nil {
		return err
	}
	if err := mgr.Add(trust); err != nil {
		return err
	}
	if err := mgr.Add(&server{controller: c}); err != nil {
		return err
	}
	if err := c.setupKubeVirtPublisher(mgr); err != nil {
		return err
	}
	return c.setupPusher(mgr)
}

// resolvePort is Options.Port, else the KubeVirt CR's
// spec.synchronizationPort.
func resolvePort(ctx context.Context, reader client.Reader, opts Options) (int32, error) {
	if opts.Port != 0 {
		return opts.Port, nil
	}
	kv, err := firstKubeVirt(ctx, reader, opts.VirtNamespace)
	if err != nil {
		return 0, fmt.Errorf("sync controller: %w", err)
	}
	return kv.EffectiveSynchronizationPort(), nil
}

// firstKubeVirt is the namespace's KubeVirt CR; with several (KubeVirt
// allows one) the first by name, as the other components choose.
func firstKubeVirt(ctx context.Context, reader client.Reader, namespace string) (*kubevirtv1.KubeVirt, error) {
	var list kubevirtv1.KubeVirtList
	if err := reader.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list KubeVirt in %s: %w", namespace, err)
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no KubeVirt CR in namespace %s: install KubeVirt there, or pass the virt namespace that has it", namespace)
	}
	first := slices.MinFunc(list.Items, func(a, b kubevirtv1.KubeVirt) int { return strings.Compare(a.Name, b.Name) })
	return &first, nil
}

// warnOnKubeVirt records a Warning event on the KubeVirt CR, where an
// administrator looks for cluster-wide trouble.
func (c *controller) warnOnKubeVirt(note string) {
	kv, err := firstKubeVirt(context.Background(), c.client, c.opts.VirtNamespace)
	if err != nil {
		c.logger.Info("no event recorded", "error", err.Error())
		return
	}
	c.recorder.Eventf(kv, nil, corev1.EventTypeWarning, "SynchronizationPeerRefused", "Authenticate", "%s", note)
}
