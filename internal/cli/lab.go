package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/nodeagent"
)

func newLabCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run the OpenShift guide's two clusters, ocp7 and ocp1 (or more, --clusters), on this machine",
	}
	cmd.AddCommand(newLabUpCommand(), newLabServeCommand(), newLabStatusCommand(), newLabNodesCommand(), newLabDownCommand())
	return cmd
}

func labFlags(cmd *cobra.Command, opts *lab.Options) {
	cmd.Flags().StringVar(&opts.Dir, "dir", ".cclm-lab", "directory for the lab's state, logs and kubeconfig")
	cmd.Flags().StringSliceVar(&opts.Clusters, "clusters", lab.DefaultClusters,
		"the clusters (kubeconfig contexts), 2 to 4: with the guide's two, VMs move from the first to the second, which runs the toolkit; with more, every cluster runs the toolkit and VMs move between any two")
	cmd.Flags().IntVar(&opts.Nodes, "nodes", 2, "nodes per cluster")
	cmd.Flags().StringVar(&opts.VirtNamespace, "virt-namespace", "openshift-cnv", "namespace of the KubeVirt CR, the migration NAD and the sync controller")
	cmd.Flags().StringVar(&opts.BinDir, "bin-dir", defaultBinDir(), "directory with etcd, kube-apiserver and kube-controller-manager (make kube)")
	accelFlag(cmd.Flags(), &opts.Accel)
	cmd.Flags().DurationVar(&opts.BootTimeout, "boot-timeout", nodeagent.DefaultBootTimeout, "the node agents' --boot-timeout: how long a guest may take to boot")
	cmd.Flags().BoolVar(&opts.WithoutMigrationNetwork, "without-migration-network", false,
		"leave out the OpenShift guide's migration network (NodeNetworkConfigurationPolicy, NADs, the HyperConverged and KubeVirt settings) to build it by following the guide (README: Following the OpenShift guide)")
}

func newLabUpCommand() *cobra.Command {
	var opts lab.Options
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the lab and return once it is ready (does nothing if it already runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			absolute, err := absoluteOptions(opts)
			if err != nil {
				return err
			}
			serveArgs := []string{"lab", "serve", "--dir", absolute.Dir, "--bin-dir", absolute.BinDir,
				"--clusters", strings.Join(absolute.ClusterNames(), ","),
				"--nodes", strconv.Itoa(absolute.Nodes), "--virt-namespace", absolute.VirtNamespace}
			serveArgs = append(serveArgs, "--accel", absolute.Accel, "--boot-timeout", absolute.BootTimeout.String())
			if absolute.WithoutMigrationNetwork {
				serveArgs = append(serveArgs, "--without-migration-network")
			}
			return lab.Up(cmd.Context(), absolute, serveArgs, cmd.ErrOrStderr())
		},
	}
	labFlags(cmd, &opts)
	return cmd
}

func newLabServeCommand() *cobra.Command {
	var opts lab.Options
	cmd := &cobra.Command{
		Use:    "serve",
		Short:  "Run the lab in the foreground (what `lab up` starts in the background)",
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			absolute, err := absoluteOptions(opts)
			if err != nil {
				return err
			}
			return lab.Serve(cmd.Context(), absolute, cmd.ErrOrStderr())
		},
	}
	labFlags(cmd, &opts)
	return cmd
}

// absoluteOptions makes the lab's paths absolute: the supervisor runs
// detached and must not depend on the caller's working directory.
func absoluteOptions(opts lab.Options) (lab.Options, error) {
	var err error
	if opts.Dir, err = filepath.Abs(opts.Dir); err != nil {
		return opts, err
	}
	if opts.BinDir, err = filepath.Abs(opts.BinDir); err != nil {
		return opts, err
	}
	return opts, opts.Validate()
}

func newLabDownCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop every process of the lab and remove its runtime state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return lab.Down(cmd.Context(), dir, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".cclm-lab", "the lab's directory")
	return cmd
}

func newLabStatusCommand() *cobra.Command {
	var dir, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the lab runs and the health of each cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			status, err := lab.GetStatus(cmd.Context(), dir)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), status)
			}
			printLabStatus(cmd.OutOrStdout(), status)
			if !status.Running {
				return fmt.Errorf("no lab is running in %s; start one with `cclm lab up --dir %s`", dir, dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".cclm-lab", "the lab's directory")
	outputFlag(cmd, &output)
	return cmd
}

func printLabStatus(out io.Writer, status *lab.Status) {
	if !status.Running {
		fmt.Fprintf(out, "lab in %s: not running\n", status.Dir)
		return
	}
	fmt.Fprintf(out, "lab in %s: running (supervisor pid %d), kubeconfig %s\n", status.Dir, status.Pid, status.Kubeconfig)
	table := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(table, "CLUSTER\tAPI SERVER\tREADY\tPROCESSES\tVIRT NAMESPACE\tSYNC ADDRESS\tPROBLEM")
	for _, c := range status.Clusters {
		fmt.Fprintf(table, "%s\t%s\t%t\t%d/%d\t%s\t%s\t%s\n", c.Name, c.Server, c.APIReady, c.ProcessesAlive, c.Processes, c.VirtNamespace,
			orNone(strings.Join(c.SynchronizationAddresses, ",")), c.Problem)
	}
	table.Flush()
	fmt.Fprintln(out)
	table = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(table, "CLUSTER\tKIND\tNAME\tPID\tALIVE\tQEMU\tACCEL\tMETRICS")
	for _, c := range status.Components {
		fmt.Fprintf(table, "%s\t%s\t%s\t%d\t%t\t%s\t%s\t%s\n", c.Cluster, c.Kind, c.Name, c.Pid, c.Alive, orNone(c.QEMUVersion), accelColumn(c), orNone(c.MetricsURL))
	}
	table.Flush()
}

// accelColumn shows a node agent's accelerator and why ("tcg: KVM
// unavailable: ..."); other components run no guests.
func accelColumn(c lab.ComponentStatus) string {
	switch {
	case c.Kind != lab.KindNode:
		return "<none>"
	case c.Accel == "":
		return "<unknown>"
	}
	return c.Accel + ": " + c.AccelReason
}

// orNone shows an empty cell as "<none>", as kubectl does.
func orNone(value string) string {
	if value == "" {
		return "<none>"
	}
	return value
}

func newLabNodesCommand() *cobra.Command {
	var dir, output string
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "Show every node's uplink, bridge and migration0 address, and where the sync controllers run",
		Long: `Show what the seed checks with oc debug and oc exec: per node of both clusters
its roles, its uplinks (enp*), the bridge its migration0 sits on with that
bridge's ports, and migration0's address (also published on the Node as
annotation cclm.io/migration-address); per cluster the synchronization
controller's network namespace, its migration0 and the addresses the
KubeVirt CR publishes (status.synchronizationAddresses). Node namespaces
are named for ` + "`ip netns exec NETNS ip -br a`" + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			report, err := lab.GetNodes(cmd.Context(), dir)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), report)
			}
			printLabNodes(cmd.OutOrStdout(), report)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".cclm-lab", "the lab's directory")
	outputFlag(cmd, &output)
	return cmd
}

func printLabNodes(out io.Writer, report *lab.NodesReport) {
	table := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(table, "CLUSTER\tNODE\tROLES\tREADY\tUPLINKS\tBRIDGE\tMIGRATION0\tPROBLEM")
	for _, n := range report.Nodes {
		var uplinks []string
		for _, u := range n.Uplinks {
			uplinks = append(uplinks, u.Name+"@"+orNone(u.Master))
		}
		fmt.Fprintf(table, "%s\t%s\t%s\t%t\t%s\t%s\t%s\t%s\n", n.Cluster, orNone(n.Name), orNone(strings.Join(n.Roles, ",")), n.Ready,
			orNone(strings.Join(uplinks, ",")), orNone(migrationBridge(n.Migration0, n.Bridges)), orNone(migration0Column(n.Migration0)), n.Problem)
	}
	table.Flush()
	fmt.Fprintln(out)
	table = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(table, "CLUSTER\tSYNC CONTROLLER\tNETNS\tPID\tALIVE\tMIGRATION0\tSYNC ADDRESS\tPROBLEM")
	for _, s := range report.SyncControllers {
		fmt.Fprintf(table, "%s\t%s\t%s\t%d\t%t\t%s\t%s\t%s\n", s.Cluster, s.Name, orNone(s.Netns), s.Pid, s.Alive,
			orNone(migration0Column(s.Migration0)), orNone(strings.Join(s.SynchronizationAddresses, ",")), s.Problem)
	}
	table.Flush()
}

// migrationBridge shows the bridge migration0 sits on (else the seed's
// br-2001, if the node has it) with its ports: "br-2001[enp2s0]".
func migrationBridge(migration0 *lab.InterfaceReport, bridges []lab.BridgeReport) string {
	name := lab.MigrationBridge
	if migration0 != nil && migration0.Parent != "" {
		name = migration0.Parent
	}
	for _, b := range bridges {
		if b.Name == name {
			return b.Name + "[" + strings.Join(b.Ports, ",") + "]"
		}
	}
	return ""
}

// migration0Column shows migration0 as `ip -4 -br a show dev migration0` does.
func migration0Column(i *lab.InterfaceReport) string {
	if i == nil {
		return ""
	}
	address := i.IPv4()
	if !address.IsValid() {
		return i.State
	}
	return address.String() + " " + i.State
}
