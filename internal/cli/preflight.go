package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/connect"
	"github.com/cclm-io/cclm/internal/preflight"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/toolkit"
)

func newPreflightCommand() *cobra.Command {
	var flags pairFlags
	var namespace, targetNamespace, output string
	cmd := &cobra.Command{
		Use:   "preflight --source CONTEXT --target CONTEXT [-n NAMESPACE] [VM...]",
		Short: "Check, creating nothing, that the VMs (or, with none, the clusters) can live-migrate from source to target",
		Long: "preflight runs the checks the toolkit runs on a Plan, from here: feature gate and toolkit flag,\n" +
			"the Provider's token and its permissions, the VMs (exist, run, live-migratable storage),\n" +
			"the network and storage maps `cclm migrate` would use, CPU models, versions, the sync\n" +
			"controllers' reachability over the migration network, IP ranges, MACs and target storage.\n" +
			"It exits non-zero when a check fails; each failure names its fix.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			pair, err := flags.load()
			if err != nil {
				return err
			}
			var vms []forkliftv1beta1.Ref
			for _, name := range args {
				vms = append(vms, forkliftv1beta1.Ref{Name: name, Namespace: pair.vmNamespace(namespace)})
			}
			report, err := runPreflight(cmd.Context(), pair, vms, targetNamespace, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if output == "json" {
				if err := printJSON(cmd.OutOrStdout(), toPreflightJSON(report)); err != nil {
					return err
				}
			} else {
				printReport(cmd.OutOrStdout(), report)
			}
			if !report.OK() {
				return fmt.Errorf("preflight found %d problem(s): fix them as the FIX column says and run it again", len(report.Failures()))
			}
			return nil
		},
	}
	flags.add(cmd, "toolkit-namespace")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "the VMs' namespace on the source (default: the source context's, else default)")
	cmd.Flags().StringVar(&targetNamespace, "target-namespace", "", "namespace the VMs go to on the target (default: their own)")
	outputFlag(cmd, &output)
	return cmd
}

// vmNamespace is the namespace given, else the source context's, else
// default.
func (p *clusterPair) vmNamespace(flag string) string {
	switch {
	case flag != "":
		return flag
	case p.sourceNamespace != "":
		return p.sourceNamespace
	}
	return "default"
}

// sourceAsToolkit finds the source's Provider on the target and returns
// the config its Secret gives: the source as the toolkit sees it.
func (p *clusterPair) sourceAsToolkit(ctx context.Context) (*forkliftv1beta1.Provider, *rest.Config, error) {
	provider, err := connect.FindProvider(ctx, p.targetClient, p.flags.toolkitNamespace, p.sourceName, p.source.Host)
	if err != nil {
		if errors.Is(err, connect.ErrNoProvider) {
			return nil, nil, fmt.Errorf("%s has no Provider for %s in namespace %s: run `cclm connect --source %s --target %s` first",
				p.targetName, p.sourceName, p.flags.toolkitNamespace, p.sourceName, p.targetName)
		}
		return nil, nil, err
	}
	config, err := toolkit.SourceConfig(ctx, p.targetClient, provider)
	if err != nil {
		return nil, nil, err
	}
	config.QPS, config.Burst = 50, 100
	return provider, config, nil
}

// runPreflight builds the preflight's input as `cclm migrate` would plan
// the migration (its default maps) and runs the checks. Problems that stop
// the input from being complete (maps the token cannot read) go to warn:
// the checks then say what is wrong.
func runPreflight(ctx context.Context, pair *clusterPair, vms []forkliftv1beta1.Ref, targetNamespace string, warn io.Writer) (preflight.Report, error) {
	provider, sourceConfig, err := pair.sourceAsToolkit(ctx)
	if err != nil {
		return preflight.Report{}, err
	}
	input := preflight.Input{
		Source:           sourceConfig,
		Target:           pair.target,
		VirtNamespace:    pair.flags.virtNamespace,
		ToolkitNamespace: pair.flags.toolkitNamespace,
		VMs:              vms,
		TargetNamespace:  targetNamespace,
		DialSync:         labSyncDialer(pair.labDir),
		SourceName:       pair.sourceName,
		TargetName:       pair.targetName,
		// The user's own source context may read Nodes, which the seed's
		// ClusterRole does not grant the token: with it the host-model CPU
		// of the VM's node is known and can be matched on the target.
		SourceNodes: pair.source,
	}
	asToolkit, err := client.New(sourceConfig, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return preflight.Report{}, err
	}
	maps, err := connect.PlanMaps(ctx, asToolkit, pair.targetClient, provider, sourceVMs(ctx, asToolkit, vms))
	if err != nil {
		fmt.Fprintf(warn, "warning: cannot work out the default maps (%v); checking with the pod network only and no storage map\n", err)
		input.NetworkMap = connect.DefaultNetworkPairs(nil, nil)
	} else {
		input.NetworkMap, input.StorageMap = maps.Network.Spec.Map, maps.Storage.Spec.Map
	}
	return preflight.Run(ctx, input), nil
}

// sourceVMs reads the VMs that exist; the missing ones are the checks'
// business.
func sourceVMs(ctx context.Context, source client.Reader, refs []forkliftv1beta1.Ref) []kubevirtv1.VirtualMachine {
	var vms []kubevirtv1.VirtualMachine
	for _, ref := range refs {
		var vm kubevirtv1.VirtualMachine
		if err := source.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &vm); err == nil {
			vms = append(vms, vm)
		}
	}
	return vms
}

// preflightJSON is `-o json`'s document.
type preflightJSON struct {
	OK     bool              `json:"ok"`
	Checks []preflight.Check `json:"checks"`
}

func toPreflightJSON(report preflight.Report) preflightJSON {
	checks := report.Checks
	if checks == nil {
		checks = []preflight.Check{}
	}
	return preflightJSON{OK: report.OK(), Checks: checks}
}

// passedMessageWidth caps a passed check's message in the table, so that
// the failures' messages and fixes stay readable (-o json has them whole).
const passedMessageWidth = 100

// printReport prints the checks as a table, in the report's order, and a
// summary line.
func printReport(out io.Writer, report preflight.Report) {
	table := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(table, "CHECK\tSIDE\tVM\tSTATUS\tMESSAGE\tFIX")
	counts := map[preflight.Status]int{}
	for _, c := range report.Checks {
		counts[c.Status]++
		message := oneLine(c.Message)
		if c.Status == preflight.Passed {
			message = ellipsis(message, passedMessageWidth)
		}
		fmt.Fprintf(table, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, dashIfEmpty(string(c.Side)), dashIfEmpty(c.VM), c.Status,
			message, dashIfEmpty(oneLine(c.Fix)))
	}
	table.Flush()
	fmt.Fprintf(out, "%d checks: %d passed, %d failed, %d skipped\n", len(report.Checks), counts[preflight.Passed], counts[preflight.Failed], counts[preflight.Skipped])
}

// ellipsis shortens s to at most n characters.
func ellipsis(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table cell on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
