package cli

import (
	"cmp"
	"fmt"
	"net/netip"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/nodeagent"
	"github.com/cclm-io/cclm/internal/qemu"
)

func newNodeCommand(logs *logOptions) *cobra.Command {
	var opts nodeagent.Options
	var kubeconfig, memory, storage, vmNetwork, accel string
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run the node agent: registers the node and runs its VMs (virt-handler + virt-launcher)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if opts.Memory, err = resource.ParseQuantity(memory); err != nil {
				return fmt.Errorf("--memory %q: %v; use a quantity such as 4Gi", memory, err)
			}
			if opts.Storage, err = resource.ParseQuantity(storage); err != nil {
				return fmt.Errorf("--storage %q: %v; use a quantity such as 8Gi", storage, err)
			}
			if opts.VMNetwork, err = netip.ParsePrefix(vmNetwork); err != nil {
				return fmt.Errorf("--vm-network %q: %v; use a prefix such as 10.201.0.0/16", vmNetwork, err)
			}
			if opts.Accel, err = qemu.ParseAccelChoice(accel); err != nil {
				return fmt.Errorf("--accel: %w", err)
			}
			restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return fmt.Errorf("--kubeconfig %q: %w", kubeconfig, err)
			}
			if opts.Logger, err = logs.logger(os.Stderr, "node", opts.NodeName); err != nil {
				return err
			}
			return nodeagent.Run(cmd.Context(), restConfig, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the node agent's ServiceAccount")
	flags.StringVar(&opts.NodeName, "node-name", "", "this node's name")
	flags.StringVar(&opts.LabID, "lab-id", "", "lab whose node namespace the guests run in")
	flags.StringVar(&opts.VirtNamespace, "virt-namespace", "openshift-cnv", "namespace of the KubeVirt CR and the migration certificates")
	flags.StringVar(&opts.StorageDir, "storage-dir", "", "directory for the node's local volumes")
	flags.StringVar(&opts.RunDir, "run-dir", "", "directory for running VMs' sockets (short path)")
	flags.StringVar(&opts.GuestDir, "guest-dir", "bin/guest", "directory with the guest image (vmlinuz, initramfs.img)")
	flags.StringVar(&opts.VMBridge, "vm-bridge", netlab.VMBridge, "the node's bridge for VM taps")
	flags.StringVar(&vmNetwork, "vm-network", "10.201.0.0/16", "prefix of guest addresses on the VM network")
	flags.IntVar(&opts.CPUs, "cpus", 2, "vCPUs the node offers")
	flags.StringVar(&memory, "memory", "4Gi", "memory the node offers VMs")
	flags.StringVar(&storage, "storage", "8Gi", "local storage the node offers volumes")
	flags.StringVar(&opts.APIAddress, "api-address", "127.0.0.1:0", "address of the node API for `cclm guest` and `cclm console`")
	metricsAddressFlag(flags, &opts.MetricsAddress)
	flags.StringToStringVar(&opts.ExtraLabels, "label", nil, "extra node labels, key=value")
	accelFlag(flags, &accel)
	flags.DurationVar(&opts.BootTimeout, "boot-timeout", nodeagent.DefaultBootTimeout,
		"how long a started guest may take until its agent answers; then its VMI's AgentConnected condition says GuestNotBooted, with its console's last lines")
	return cmd
}

// accelFlag is --accel, whose default is CCLM_ACCEL's value, else auto.
func accelFlag(flags *pflag.FlagSet, accel *string) {
	flags.StringVar(accel, "accel", cmp.Or(os.Getenv(qemu.AccelEnv), string(qemu.AccelAuto)),
		"QEMU accelerator: auto (KVM only if a Linux guest boots under it, else TCG), kvm or tcg; default from $"+qemu.AccelEnv)
}
