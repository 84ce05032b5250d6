package cli

import (
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/cclm-io/cclm/internal/dashboard"
)

func newDashboardCommand(logs *logOptions) *cobra.Command {
	var kubeconfig, source, target, listen string
	cmd := &cobra.Command{
		Use:   "dashboard --source CONTEXT --target CONTEXT [--listen 127.0.0.1:PORT]",
		Short: "Serve one live web page of both clusters: nodes, VMs, Plans, and each migration's transfer as it happens",
		Long: "dashboard watches both clusters through your kubeconfig (it reads only what you may read) and\n" +
			"serves a page that shows them side by side: their nodes and where each VM runs, the toolkit's\n" +
			"Plans with each VM's step, and per migration a chart of transferred and remaining bytes, dirty\n" +
			"rate and throughput, its passes, and once it ended its total time and downtime. The page updates\n" +
			"within a second of a change and needs no internet. Ctrl-C stops it.",
		Example: "  cclm dashboard --source ocp7 --target ocp1\n  cclm dashboard --source ocp7 --target ocp1 --listen 0.0.0.0:8642",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source == "" || target == "" || source == target {
				return fmt.Errorf("name two clusters: --source <context> --target <context> (e.g. --source ocp7 --target ocp1)")
			}
			var clusters []dashboard.Cluster
			for _, side := range []struct{ role, context string }{{"source", source}, {"target", target}} {
				config, _, err := loadContext(kubeconfig, side.context, "")
				if err != nil {
					return err
				}
				clusters = append(clusters, dashboard.Cluster{Name: side.context, Role: side.role, Config: config})
			}
			logger, err := logs.logger(os.Stderr)
			if err != nil {
				return err
			}
			listener, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w (pick another port)", listen, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dashboard of %s -> %s: http://%s/ (Ctrl-C stops it)\n", source, target, listener.Addr())
			return dashboard.New(dashboard.Options{Clusters: clusters, Logger: logger}).Run(cmd.Context(), listener)
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "kubeconfig context of the source cluster, e.g. ocp7")
	cmd.Flags().StringVar(&target, "target", "", "kubeconfig context of the target cluster, e.g. ocp1")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8642", "address to serve the page on")
	return cmd
}
