package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/toolkit"
)

// toolkitFlags are `cclm toolkit`'s flags beyond toolkit.Options.
type toolkitFlags struct {
	kubeconfig string
	labID      string
}

func newToolkitCommand(logs *logOptions) *cobra.Command {
	var opts toolkit.Options
	var flags toolkitFlags
	cmd := &cobra.Command{
		Use:   "toolkit",
		Short: "Run the migration toolkit controller in the target cluster: Providers, Plans (preflight), Migrations (forklift-controller)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			restConfig, logger, controllerLogger, err := logs.componentStart(flags.kubeconfig, opts.ClusterName)
			if err != nil {
				return err
			}
			opts.Logger = controllerLogger
			if flags.labID != "" {
				// The Provider names the source cluster, as cclm connect
				// names it after the source's context.
				opts.DialSync = lab.SyncDialer(flags.labID)
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
	return cmd
}
