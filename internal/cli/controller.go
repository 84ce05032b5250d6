package cli

import (
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/cclm-io/cclm/internal/hco"
	"github.com/cclm-io/cclm/internal/migrationcontroller"
	"github.com/cclm-io/cclm/internal/virtcontroller"
)

func newControllerCommand(logs *logOptions) *cobra.Command {
	var opts virtcontroller.Options
	var kubeconfig string
	var hyperConverged bool
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the virt controller: VMs to VMIs, scheduling, DataVolumes, migrations, HyperConverged settings (virt-controller + CDI + HCO)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
			}
			logger, err := logs.logger(os.Stderr)
			if err != nil {
				return err
			}
			opts.Logger = logr.FromSlogHandler(logger.Handler())
			opts.AlsoRun = append(opts.AlsoRun, func(mgr ctrl.Manager) error {
				return migrationcontroller.New(mgr, migrationcontroller.Options{Namespace: opts.Namespace})
			})
			if hyperConverged {
				// HyperConverged -> KubeVirt CR, as OpenShift's operator.
				opts.AlsoRun = append(opts.AlsoRun, func(mgr ctrl.Manager) error {
					return hco.New(mgr, hco.Options{Namespace: opts.Namespace, Logger: opts.Logger.WithName("hyperconverged")})
				})
			}
			return virtcontroller.Run(cmd.Context(), restConfig, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the controller's ServiceAccount")
	flags.StringVar(&opts.Namespace, "namespace", "openshift-cnv", "the virt namespace (leader-election Lease)")
	flags.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader among replicas; only it acts")
	metricsAddressFlag(flags, &opts.MetricsAddr)
	flags.StringVar(&opts.HealthProbeAddr, "health-address", "0", "serve /healthz and /readyz here; 0 for none")
	flags.BoolVar(&hyperConverged, "hyperconverged", true, "write the HyperConverged CR kubevirt-hyperconverged's live-migration settings into the KubeVirt CR, as OpenShift's operator (needs hco.PolicyRules)")
	return cmd
}
