package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cclm-io/cclm/internal/nodeagent/nodeapi"
	"github.com/cclm-io/cclm/pkg/guestagent"
)

// clusterFlags are kubectl's: a kubeconfig, a context in it, a namespace.
type clusterFlags struct {
	kubeconfig, context, namespace string
}

func (f *clusterFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&f.context, "context", "", "kubeconfig context, e.g. ocp7")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace (default: the context's)")
}

// restConfig loads the context, and the namespace it implies.
func (f *clusterFlags) restConfig() (*rest.Config, string, error) {
	return loadContext(f.kubeconfig, f.context, f.namespace)
}

func loadContext(kubeconfig, contextName, namespace string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: contextName})
	config, err := loader.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig context %q: %w (set --kubeconfig or KUBECONFIG; the lab writes .cclm-lab/kubeconfig)", contextName, err)
	}
	if namespace == "" {
		if namespace, _, err = loader.Namespace(); err != nil {
			return nil, "", err
		}
	}
	return config, namespace, nil
}

// guestActions maps `cclm guest VM ACTION` to the guest agent command.
var guestActions = map[string]string{
	"info":        guestagent.CmdInfo,
	"dirty":       guestagent.CmdDirty,
	"disk-write":  guestagent.CmdDiskWrite,
	"disk-verify": guestagent.CmdDiskVerify,
}

func newGuestCommand() *cobra.Command {
	var flags clusterFlags
	var output string
	var dirty guestagent.DirtyArgs
	var disk guestagent.DiskArgs
	cmd := &cobra.Command{
		Use:   "guest VM info|dirty|disk-write|disk-verify",
		Short: "Talk to a running VM's guest agent (boot ID, heartbeat, memory and disk workloads)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			vm, action := args[0], args[1]
			command, ok := guestActions[action]
			if !ok {
				return fmt.Errorf("unknown action %q; use info, dirty, disk-write or disk-verify", action)
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			config, namespace, err := flags.restConfig()
			if err != nil {
				return err
			}
			api, err := nodeapi.DialVMI(cmd.Context(), config, namespace, vm)
			if err != nil {
				return err
			}
			var request any
			switch action {
			case "dirty":
				request = dirty
			case "disk-write", "disk-verify":
				request = disk
			}
			return runGuestAction(cmd.Context(), api, command, request, output, cmd.OutOrStdout())
		},
	}
	flags.add(cmd)
	outputFlag(cmd, &output)
	cmd.Flags().Float64Var(&dirty.RateMiBps, "rate", 0, "dirty: MiB/s of memory to dirty (0 stops the workload)")
	cmd.Flags().IntVar(&dirty.WorkingSetMiB, "working-set", 32, "dirty: working set in MiB")
	cmd.Flags().Float64Var(&dirty.DurationSeconds, "duration", 0, "dirty: seconds to run (0: until stopped)")
	cmd.Flags().StringVar(&disk.Disk, "disk", "datadisk", "disk-write/verify: the disk's serial or device name (vdb)")
	cmd.Flags().IntVar(&disk.SizeMiB, "size-mib", 64, "disk-write/verify: MiB of the disk to write or verify")
	return cmd
}

func runGuestAction(ctx context.Context, api *nodeapi.APIClient, command string, request any, output string, out io.Writer) error {
	var result map[string]any
	if err := api.Guest(ctx, command, request, &result); err != nil {
		return err
	}
	if output == "json" {
		return printJSON(out, result)
	}
	for _, key := range sortedKeys(result) {
		fmt.Fprintf(out, "%s: %v\n", key, result[key])
	}
	if ok, present := result["ok"].(bool); present && !ok {
		return fmt.Errorf("%s found damage: %v", command, result["reason"])
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func newConsoleCommand() *cobra.Command {
	var flags clusterFlags
	cmd := &cobra.Command{
		Use:   "console VM",
		Short: "Attach to a running VM's serial console (Ctrl-] to leave)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			config, namespace, err := flags.restConfig()
			if err != nil {
				return err
			}
			api, err := nodeapi.DialVMI(cmd.Context(), config, namespace, args[0])
			if err != nil {
				return err
			}
			conn, err := api.Console(cmd.Context())
			if err != nil {
				return err
			}
			defer conn.Close()
			fmt.Fprintf(cmd.ErrOrStderr(), "connected to %s/%s's serial console; Ctrl-] leaves\n", namespace, args[0])
			return pipeConsole(cmd.Context(), conn, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	flags.add(cmd)
	return cmd
}

// pipeConsole joins the console with stdin and stdout until the guest side
// closes, stdin ends, Ctrl-] is typed, or ctx ends.
func pipeConsole(ctx context.Context, conn io.ReadWriteCloser, in io.Reader, out io.Writer) error {
	done := make(chan error, 2)
	go func() {
		_, err := io.Copy(out, conn)
		done <- err
	}()
	go func() {
		buffer := make([]byte, 1024)
		for {
			n, err := in.Read(buffer)
			if n > 0 {
				if i := strings.IndexByte(string(buffer[:n]), 0x1d); i >= 0 { // Ctrl-]
					_, _ = conn.Write(buffer[:i])
					done <- nil
					return
				}
				if _, werr := conn.Write(buffer[:n]); werr != nil {
					done <- werr
					return
				}
			}
			if err != nil {
				done <- nil
				return
			}
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}
