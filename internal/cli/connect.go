package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/connect"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/scheme"
)

// pairFlags name the two clusters of a migration, as kubeconfig contexts.
type pairFlags struct {
	kubeconfig, source, target string
	virtNamespace              string
	toolkitNamespace           string
}

// add registers the flags; toolkitFlag names the flag of the toolkit's
// namespace (connect: --namespace; preflight and migrate, whose -n is the
// VMs' namespace: --toolkit-namespace).
func (f *pairFlags) add(cmd *cobra.Command, toolkitFlag string) {
	flags := cmd.Flags()
	flags.StringVar(&f.source, "source", "", "kubeconfig context of the source cluster, e.g. ocp7")
	flags.StringVar(&f.target, "target", "", "kubeconfig context of the target cluster, e.g. ocp1")
	flags.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	flags.StringVar(&f.virtNamespace, "virt-namespace", connect.DefaultVirtNamespace, "KubeVirt's namespace on both clusters (KubeVirt CR, migration CA)")
	flags.StringVar(&f.toolkitNamespace, toolkitFlag, connect.DefaultNamespace, "the migration toolkit's namespace (ServiceAccount on the source; Providers, maps, plans on the target)")
}

// clusterPair is the two clusters, loaded.
type clusterPair struct {
	flags                  pairFlags
	source, target         *rest.Config
	sourceNamespace        string // the source context's namespace, if it names one
	targetClient           client.Client
	sourceClient           client.Client
	labDir                 string // the lab the kubeconfig belongs to, if any
	sourceName, targetName string // the contexts
}

func (f pairFlags) load() (*clusterPair, error) {
	switch {
	case f.source == "" || f.target == "":
		return nil, fmt.Errorf("name both clusters: --source <context> --target <context> (e.g. --source ocp7 --target ocp1)")
	case f.source == f.target:
		return nil, fmt.Errorf("--source and --target are both %q: name two different clusters", f.source)
	}
	source, sourceNamespace, err := loadContext(f.kubeconfig, f.source, "")
	if err != nil {
		return nil, err
	}
	target, _, err := loadContext(f.kubeconfig, f.target, "")
	if err != nil {
		return nil, err
	}
	for _, config := range []*rest.Config{source, target} {
		config.QPS, config.Burst = 50, 100
	}
	p := &clusterPair{flags: f, source: source, target: target, sourceNamespace: sourceNamespace, sourceName: f.source, targetName: f.target}
	if p.sourceClient, err = client.New(source, client.Options{Scheme: scheme.Scheme}); err != nil {
		return nil, err
	}
	if p.targetClient, err = client.New(target, client.Options{Scheme: scheme.Scheme}); err != nil {
		return nil, err
	}
	p.labDir = labDirOf(f.kubeconfig)
	return p, nil
}

// labDirOf is the lab directory the kubeconfig in use belongs to (the lab
// writes <dir>/kubeconfig beside <dir>/state.json), or "".
func labDirOf(explicit string) string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	paths := rules.GetLoadingPrecedence()
	if explicit != "" {
		paths = []string{explicit}
	}
	for _, path := range paths {
		if filepath.Base(path) != "kubeconfig" {
			continue
		}
		absolute, err := filepath.Abs(path)
		if err != nil {
			continue
		}
		dir := filepath.Dir(absolute)
		if data, err := os.ReadFile(filepath.Join(dir, "state.json")); err == nil && json.Valid(data) {
			return dir
		}
	}
	return ""
}

// labSyncDialer dials a sync controller's address, in the lab, from the
// network namespace of the other side's sync controller: where the
// address must be reachable from. Outside a lab the preflight dials from
// here (nil).
func labSyncDialer(labDir string) func(ctx context.Context, cluster, address string) (net.Conn, error) {
	if labDir == "" {
		return nil
	}
	return lab.SyncDialer(lab.ID(labDir))
}

func newConnectCommand() *cobra.Command {
	var flags pairFlags
	var output string
	cmd := &cobra.Command{
		Use:   "connect --source CONTEXT --target CONTEXT",
		Short: "Let the target's migration toolkit reach the source: token, Provider, CA exchange, then preflight",
		Long: "connect does the OpenShift guide's manual steps, each once, and may be run again at any time:\n" +
			"on the source the ClusterRole live-migration-role, the namespace, ServiceAccount cclm,\n" +
			"ClusterRoleBinding cclm and its token Secret; on the target the Secret <source>-token\n" +
			"(token and the source API server's CA), the Provider <source> and the Provider host;\n" +
			"each cluster's migration CA (ConfigMap kubevirt-ca) into the other's kubevirt-external-ca.\n" +
			"It then runs the cluster-level preflight checks and prints them.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			pair, err := flags.load()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			steps := out
			if output == "json" {
				steps = cmd.ErrOrStderr()
			}
			result, err := connect.Run(cmd.Context(), connect.Options{
				Source:        connect.Cluster{Name: flags.source, Config: pair.source},
				Target:        connect.Cluster{Name: flags.target, Config: pair.target},
				Namespace:     flags.toolkitNamespace,
				VirtNamespace: flags.virtNamespace,
				Report:        func(s connect.Step) { printStep(steps, s) },
			})
			if err != nil {
				return err
			}
			verdict, err := providerVerdict(cmd.Context(), pair, result.Provider, result.Changed(), steps)
			if err != nil {
				return err
			}
			if output != "json" {
				fmt.Fprintf(out, "\npreflight (cluster-level, no VMs):\n")
			}
			report, err := runPreflight(cmd.Context(), pair, nil, "", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if output == "json" {
				if err := printJSON(out, struct {
					Steps     []connect.Step           `json:"steps"`
					Provider  *connect.ProviderVerdict `json:"provider"`
					Preflight preflightJSON            `json:"preflight"`
				}{result.Steps, verdict, toPreflightJSON(report)}); err != nil {
					return err
				}
			} else {
				printReport(out, report)
			}
			if verdict != nil && !verdict.Ready {
				return fmt.Errorf("the toolkit on %s finds Provider %s/%s not Ready (%s): %s", flags.target, result.Provider.Namespace, result.Provider.Name, verdict.Phase, verdict.Message)
			}
			if !report.OK() {
				return fmt.Errorf("connected %s to %s, but preflight found %d problem(s): fix them as the FIX column says, then run cclm connect or cclm preflight again",
					flags.source, flags.target, len(report.Failures()))
			}
			if output != "json" {
				fmt.Fprintf(out, "\n%s is connected to %s: migrate with `cclm migrate VM... --source %s --target %s -n NAMESPACE`\n",
					flags.source, flags.target, flags.source, flags.target)
			}
			return nil
		},
	}
	flags.add(cmd, "namespace")
	outputFlag(cmd, &output)
	return cmd
}

// providerWait bounds the wait for the toolkit to check the Provider.
const providerWait = time.Minute

// providerVerdict waits for the toolkit on the target to check the source's
// Provider and prints what it found; nil when there is no toolkit (no
// ForkliftController: the preflight says so) or it did not answer in time.
func providerVerdict(ctx context.Context, pair *clusterPair, provider *forkliftv1beta1.Provider, credentialsChanged bool, out io.Writer) (*connect.ProviderVerdict, error) {
	object := "Provider " + provider.Namespace + "/" + provider.Name
	var controllers forkliftv1beta1.ForkliftControllerList
	if err := pair.targetClient.List(ctx, &controllers, client.InNamespace(provider.Namespace)); err != nil {
		return nil, fmt.Errorf("list ForkliftControllers on %s: %w", pair.targetName, err)
	}
	if len(controllers.Items) == 0 {
		fmt.Fprintf(out, "%-5s %-55s not checked: no ForkliftController in %s (see the preflight)\n", pair.targetName, object, provider.Namespace)
		return nil, nil
	}
	verdict, err := connect.WaitProviderVerdict(ctx, pair.targetClient, client.ObjectKeyFromObject(provider), providerWait, credentialsChanged)
	switch {
	case err != nil:
		return nil, err
	case verdict == nil:
		fmt.Fprintf(out, "%-5s %-55s not checked by the toolkit within %s: is `cclm toolkit` running on %s?\n", pair.targetName, object, providerWait, pair.targetName)
	case verdict.Ready:
		fmt.Fprintf(out, "%-5s %-55s Ready (%s)\n", pair.targetName, object, verdict.Message)
	default:
		fmt.Fprintf(out, "%-5s %-55s %s: %s\n", pair.targetName, object, verdict.Phase, verdict.Message)
	}
	return verdict, nil
}

// printStep prints a step of connect as it is done.
func printStep(out io.Writer, s connect.Step) {
	line := fmt.Sprintf("%-5s %-55s %s", s.Cluster, s.Object, s.Outcome)
	if s.Detail != "" {
		line += " (" + s.Detail + ")"
	}
	fmt.Fprintln(out, line)
}
