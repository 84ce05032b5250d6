package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cclm-io/cclm/internal/ipam"
	"github.com/cclm-io/cclm/internal/migrationnet"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/synccontroller"
)

// syncFlags are `cclm sync`'s flags beyond synccontroller.Options.
type syncFlags struct {
	kubeconfig    string
	listenAddress string
	labID         string
	netnsNode     string
}

// check says which flag to fix: the controller needs an address peers can
// dial, either given or taken from migration0 of a lab node namespace.
func (f syncFlags) check() error {
	switch {
	case f.labID != "" && f.netnsNode == "":
		return errors.New("--lab-id is set but --netns-node is empty: name the lab node namespace the controller runs in, e.g. ocp7-sync")
	case f.labID == "" && f.netnsNode != "":
		return errors.New("--netns-node is set but --lab-id is empty: name the lab the node namespace belongs to")
	case f.labID != "" && f.listenAddress != "":
		return errors.New("--listen-address and --lab-id exclude each other: in a lab the controller serves on the address of migration0, which the migration network's NAD allocates")
	case f.labID == "" && f.listenAddress == "":
		return errors.New("--listen-address is empty: give the IP of this host's interface on the migration network (migration0), where peers reach the controller; or run in a lab node with --lab-id and --netns-node")
	case f.labID == "":
		if address, err := netip.ParseAddr(f.listenAddress); err != nil || address.IsUnspecified() {
			return fmt.Errorf("--listen-address %q is not an IP address peers can dial; give the IP of this host's interface on the migration network", f.listenAddress)
		}
	}
	return nil
}

func newSyncCommand(logs *logOptions) *cobra.Command {
	var opts synccontroller.Options
	var flags syncFlags
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Run the synchronization controller: talks to the peer cluster of cross-cluster migrations (virt-synchronization-controller)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := flags.check(); err != nil {
				return err
			}
			restConfig, logger, controllerLogger, err := logs.componentStart(flags.kubeconfig, opts.ClusterName)
			if err != nil {
				return err
			}
			opts.Logger = controllerLogger
			opts.ListenAddress = flags.listenAddress
			if flags.labID != "" {
				if err := inLabNode(cmd.Context(), restConfig, flags, &opts, logger); err != nil {
					return err
				}
			}
			logger.Info("synchronization controller starting", "listenAddress", opts.ListenAddress,
				"virtNamespace", opts.VirtNamespace, "leaderElection", opts.LeaderElection, "peerDeadline", opts.PeerDeadline)
			return synccontroller.Run(cmd.Context(), restConfig, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&flags.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the controller's ServiceAccount ("+synccontroller.ServiceAccountName+")")
	f.StringVar(&opts.VirtNamespace, "namespace", "openshift-cnv", "the virt namespace: KubeVirt CR, CA, trust bundles, leader-election Lease")
	f.StringVar(&opts.ClusterName, "cluster-name", "", "this cluster's name, written into the certificates so that a peer that refuses them can name the cluster")
	f.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader among replicas; only it serves and pushes")
	f.DurationVar(&opts.PeerDeadline, "peer-deadline", synccontroller.DefaultPeerDeadline, "how long a peer may be silent before a migration that is not over fails")
	f.StringVar(&flags.listenAddress, "listen-address", "", "IP to serve on and publish: this host's address on the migration network (required without --lab-id)")
	f.StringVar(&flags.labID, "lab-id", "", "lab whose node namespace the controller runs in (cclm lab); it then serves on that namespace's migration0")
	f.StringVar(&flags.netnsNode, "netns-node", "", "with --lab-id: the lab node namespace to run in")
	metricsAddressFlag(f, &opts.MetricsAddr)
	return cmd
}

// inLabNode puts the controller into a lab node's network namespace: it
// gives the namespace migration0 from the KubeVirt CR's migration network,
// as Multus and whereabouts give the upstream pod its interface, and serves
// and dials from there. The address is held in the IP pool under the
// controller's Lease name, so that a restart, or another replica in the same
// namespace, gets the same address.
func inLabNode(ctx context.Context, restConfig *rest.Config, flags syncFlags, opts *synccontroller.Options, logger *slog.Logger) error {
	node, err := netlab.OpenNode(flags.labID, flags.netnsNode)
	if err != nil {
		return fmt.Errorf("--lab-id %s --netns-node %s: %w", flags.labID, flags.netnsNode, err)
	}
	direct, err := client.New(restConfig, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return err
	}
	iface, err := waitForMigrationNetwork(ctx, logger, func(ctx context.Context) (migrationnet.Interface, error) {
		return migrationnet.Setup(ctx, direct, node, synccontroller.LeaderElectionID, opts.VirtNamespace, ipam.DefaultPoolNamespace)
	})
	if err != nil {
		return fmt.Errorf("migration network of lab node %s: %w", flags.netnsNode, err)
	}
	logger.Info("migration network ready", "node", flags.netnsNode, "interface", iface.Name, "address", iface.Address, "nad", iface.NAD)
	opts.ListenAddress = iface.Address.Addr().String()
	opts.Listen = node.Listen
	opts.Dial = node.DialContext
	return nil
}

// networkRetry is how often waitForMigrationNetwork looks again (a
// variable for the tests).
var networkRetry = 2 * time.Second

// waitForMigrationNetwork runs setup until it succeeds or ctx ends. The
// controller needs migration0's address before it can issue its server
// certificate and serve; without a migration network yet (a lab started
// with --without-migration-network, whose reader builds the network by
// following the OpenShift guide), it waits as a pod waits for its network
// rather than exiting, logging each different reason once. The wait ends
// only with ctx: how long a person takes to follow the guide is theirs.
func waitForMigrationNetwork(ctx context.Context, logger *slog.Logger, setup func(context.Context) (migrationnet.Interface, error)) (migrationnet.Interface, error) {
	var iface migrationnet.Interface
	var lastErr error
	last := ""
	err := wait.PollUntilContextCancel(ctx, networkRetry, true, func(ctx context.Context) (bool, error) {
		iface, lastErr = setup(ctx)
		if lastErr == nil {
			return true, nil
		}
		if message := lastErr.Error(); message != last && ctx.Err() == nil {
			last = message
			if errors.Is(lastErr, migrationnet.ErrNoMigrationNetwork) {
				logger.Warn("waiting for a migration network to serve on (the KubeVirt CR's spec.configuration.migrations.network, or the HyperConverged CR's spec.liveMigrationConfig.network)", "err", lastErr)
			} else {
				logger.Warn("waiting for the migration network", "err", lastErr)
			}
		}
		return false, nil
	})
	if err != nil {
		return migrationnet.Interface{}, fmt.Errorf("stopped waiting for the migration network: %w (last: %v)", err, lastErr)
	}
	return iface, nil
}
