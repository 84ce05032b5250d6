// Package cli is cclm's command line: one cobra command per user action and
// per component. Commands parse and check flags, call the component's
// package, and print; they hold no logic of their own.
package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Execute runs the command line and returns the process's exit status.
func Execute() int {
	// controller-runtime's clients log through this; components that want
	// its logs set their own logger.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "cclm",
		Short: "Cross-cluster live migration of KubeVirt virtual machines",
		Long: "cclm live-migrates running VMs between Kubernetes clusters, as the OpenShift guide's\n" +
			"ocp7 -> ocp1 setup does, and runs that whole system as a lab on one machine.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	logs := &logOptions{}
	logs.add(root.PersistentFlags())
	root.AddCommand(newLabCommand(), newNodeCommand(logs), newGuestCommand(), newConsoleCommand(), newControllerCommand(logs), newSyncCommand(logs),
		newConnectCommand(), newPreflightCommand(), newMigrateCommand(), newGetCommand(), newDescribeCommand(), newCancelCommand(),
		newDashboardCommand(logs), newToolkitCommand(logs), newVersionCommand())
	return root
}

// metricsAddressFlag adds a component's --metrics-address.
func metricsAddressFlag(flags *pflag.FlagSet, target *string) {
	flags.StringVar(target, "metrics-address", "0", "serve /metrics, /healthz and /readyz here over HTTPS, behind the API server's authentication and authorization (host:port); 0 for none")
}

// outputFlag adds -o/--output with the formats a command supports.
func outputFlag(cmd *cobra.Command, target *string) {
	cmd.Flags().StringVarP(target, "output", "o", "", "output format: empty for text, or json")
}

func checkOutput(format string) error {
	if format != "" && format != "json" {
		return fmt.Errorf("--output %q is not supported; use -o json, or leave it out for text", format)
	}
	return nil
}

func printJSON(out io.Writer, value any) error {
	encoder := json.NewEncoder(out)
	encoder.SetIndent("", "  ")
	return encoder.Encode(value)
}

// defaultBinDir is where the kube binaries are: $CCLM_BIN_DIR, else the
// directory of this executable when it holds them (make puts cclm in bin/
// beside them), else ./bin.
func defaultBinDir() string {
	if dir := os.Getenv("CCLM_BIN_DIR"); dir != "" {
		return dir
	}
	if self, err := os.Executable(); err == nil {
		dir := filepath.Dir(self)
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err == nil {
			return dir
		}
	}
	return "bin"
}
