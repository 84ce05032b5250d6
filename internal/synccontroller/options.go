package synccontroller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/cclm-io/cclm/internal/access"
	"github.com/cclm-io/cclm/internal/metrics"
	"github.com/cclm-io/cclm/internal/trust"
)

// Names shared with upstream KubeVirt.
const (
	// LeaderElectionID is the Lease (in the virt namespace) replicas elect
	// their leader with: upstream's Deployment name.
	LeaderElectionID = "virt-synchronization-controller"
	// ServerName is the DNS name in the server certificate that clients
	// check, as the certificate of a controller that moves between
	// addresses cannot be checked against the address alone.
	ServerName = "kubevirt-synchronization"
	// ServiceAccountName is the account the controller runs as.
	ServiceAccountName = "kubevirt-synchronization-controller"
	// eventSource names this controller in the events it records.
	eventSource = "virt-synchronization-controller"
)

// Defaults of Options.
const (
	DefaultPeerDeadline = 60 * time.Second
	DefaultCallTimeout  = 30 * time.Second
)

// Options configure the synchronization controller.
type Options struct {
	// VirtNamespace holds the KubeVirt CR, the CA, the trust bundles and
	// the leader-election Lease.
	VirtNamespace string
	// ListenAddress is the IP to serve on and to publish: the address of
	// interface migration0 (upstream: else the pod IP). IPv6 is published
	// bracketed, [fd00::1]:9185.
	ListenAddress string
	// Port to serve on; 0 takes the KubeVirt CR's spec.synchronizationPort
	// (default 9185).
	Port int32
	// Listen opens the server's listener; default net.Listen. The lab
	// passes one that listens in the controller's network namespace.
	Listen func(network, address string) (net.Listener, error)
	// Dial connects to peers; default a net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// PeerDeadline is how long a peer may be silent before a migration that
	// is not over fails; default 60 s.
	PeerDeadline time.Duration
	// CallTimeout bounds one call to a peer; default 30 s.
	CallTimeout time.Duration
	// LeaderElection: only the elected replica serves and pushes.
	LeaderElection bool
	// ClusterName goes into the certificates (subject organization), so
	// that a peer that refuses them can say which cluster's CA it lacks.
	ClusterName string
	// MetricsAddr serves /metrics, /healthz and /readyz over HTTPS, behind
	// the API server's authentication and authorization; "" or "0": none.
	MetricsAddr string
	// Logger; default: discard.
	Logger logr.Logger
}

// complete checks the options and fills in the defaults.
func (o Options) complete() (Options, error) {
	if o.VirtNamespace == "" {
		return o, errors.New("sync controller: Options.VirtNamespace is empty; name the virt namespace, e.g. openshift-cnv")
	}
	if address, err := netip.ParseAddr(o.ListenAddress); err != nil || address.IsUnspecified() {
		return o, fmt.Errorf("sync controller: Options.ListenAddress %q is not an IP address peers can dial; pass the address of interface migration0", o.ListenAddress)
	}
	if o.Port < 0 || o.Port > 65535 {
		return o, fmt.Errorf("sync controller: Options.Port %d is not a TCP port; use 0 for the KubeVirt CR's spec.synchronizationPort", o.Port)
	}
	if o.PeerDeadline <= 0 {
		o.PeerDeadline = DefaultPeerDeadline
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Listen == nil {
		o.Listen = net.Listen
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	return o, nil
}

// syncAddress is host:port as peers dial it and as upstream publishes it,
// an IPv6 host in brackets.
func syncAddress(ip string, port int32) string {
	return net.JoinHostPort(ip, strconv.Itoa(int(port)))
}

// timing derives the protocol's durations from the options: a heartbeat
// three times per deadline keeps a live peer from ever looking silent.
func (o Options) timing() timing {
	return timing{deadline: o.PeerDeadline, heartbeat: o.PeerDeadline / 3, callTimeout: o.CallTimeout}
}

// Component is the controller's ServiceAccount and least-privilege rules:
// it reads the KubeVirt CR, VMIMs and VMIs and patches their status, reads
// (by name) the CA Secret and the two trust ConfigMaps, holds its Lease and
// records events. Where it makes its own migration interface (`cclm sync
// --lab-id`, migrationnet.Setup, what Multus and whereabouts do for the
// upstream pod) it also reads the migration network's NAD and takes its
// address from the whereabouts IPPool.
//
// The Secret and ConfigMap rules name their objects, but a ClusterRole
// grants them in every namespace; a Role in the virt namespace would be
// tighter (access.Account has no namespaced rules yet).
var Component = access.Account{
	ServiceAccount: ServiceAccountName,
	Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"kubevirt.io"}, Resources: []string{"kubevirts", "virtualmachineinstancemigrations", "virtualmachineinstances"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"kubevirt.io"}, Resources: []string{"kubevirts/status", "virtualmachineinstancemigrations/status", "virtualmachineinstances/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{trust.CASecretName}, Verbs: []string{"get"}},
		// list and watch with a metadata.name field selector, one informer
		// per ConfigMap, which RBAC matches against resourceNames.
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{trust.CABundleConfigMap, trust.ExternalCAConfigMap}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		// migrationnet.Setup: the NAD the KubeVirt CR names (any name, so
		// not by name), and the pool it allocates from (created by the
		// first holder, updated by later ones).
		{APIGroups: []string{"k8s.cni.cncf.io"}, Resources: []string{"network-attachment-definitions"}, Verbs: []string{"get"}},
		{APIGroups: []string{"whereabouts.cni.cncf.io"}, Resources: []string{"ippools"}, Verbs: []string{"get", "create", "update"}},
		// Guarding its metrics: who a scraper is and what it may read.
		metrics.ServingRules[0], metrics.ServingRules[1],
	},
}
