package cli

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/preflight"
	"github.com/cclm-io/cclm/internal/toolkit"
)

// toolkitFlags are `cclm toolkit`'s flags beyond toolkit.Options.
type toolkitFlags struct {
	kubeconfig           string
	labID                string
	labSource, labTarget string
}

func (f toolkitFlags) check() error {
	if f.labID == "" && (f.labSource != "" || f.labTarget != "") {
		return errors.New("--lab-source-cluster and --lab-target-cluster need --lab-id: name the lab whose sync controllers' namespaces the preflight dials from")
	}
	if f.labID != "" && (f.labSource == "" || f.labTarget == "") {
		return errors.New("--lab-id needs --lab-source-cluster and --lab-target-cluster (e.g. ocp7 and ocp1): the clusters whose sync controllers' namespaces the preflight dials from")
	}
	return nil
}

func newToolkitCommand(logs *logOptions) *cobra.Command {
	var opts toolkit.Options
	var flags toolkitFlags
	cmd := &cobra.Command{
		Use:   "toolkit",
		Short: "Run the migration toolkit controller in the target cluster: Providers, Plans (preflight), Migrations (forklift-controller)",
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
			if flags.labID != "" {
				opts.DialSync = toolkitSyncDialer(flags.labID, flags.labSource, flags.labTarget)
			}
			logger.Info("toolkit starting", "namespace", opts.Namespace, "virtNamespace", opts.VirtNamespace,
				"leaderElection", opts.LeaderElection, "lab", flags.labID)
			return toolkit.Run(cmd.Context(), restConfig, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&flags.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the toolkit's ServiceAccount ("+toolkit.ServiceAccountName+") in the target cluster")
	f.StringVar(&opts.Namespace, "namespace", toolkit.DefaultNamespace, "the toolkit's namespace: ForkliftController, Providers' default, leader-election Lease")
	f.StringVar(&opts.VirtNamespace, "virt-namespace", toolkit.DefaultVirtNamespace, "KubeVirt's namespace on both clusters (the KubeVirt CR)")
	f.StringVar(&opts.ClusterName, "cluster-name", "", "this (the target) cluster's name in preflight messages, e.g. ocp1")
	f.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader among replicas; only it acts")
	metricsAddressFlag(f, &opts.MetricsAddr)
	f.StringVar(&flags.labID, "lab-id", "", "lab (cclm lab) whose sync controllers' network namespaces the preflight dials sync addresses from")
	f.StringVar(&flags.labSource, "lab-source-cluster", "", "with --lab-id: the source cluster (its sync controller's namespace is <cluster>-sync)")
	f.StringVar(&flags.labTarget, "lab-target-cluster", "", "with --lab-id: the target cluster")
	return cmd
}

// toolkitSyncDialer dials a sync address from the network namespace of the
// dialing side's sync controller (lab node <cluster>-sync), as that
// controller would: the lab's migration network is not reachable from the
// host.
func toolkitSyncDialer(labID, source, target string) func(context.Context, preflight.Side, string) (net.Conn, error) {
	return func(ctx context.Context, from preflight.Side, address string) (net.Conn, error) {
		cluster := source
		if from == preflight.Target {
			cluster = target
		}
		node, err := netlab.OpenNode(labID, lab.SyncNodeName(cluster))
		if err != nil {
			return nil, err
		}
		return node.DialContext(ctx, "tcp", address)
	}
}
