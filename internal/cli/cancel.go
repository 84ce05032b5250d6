package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

func newCancelCommand() *cobra.Command {
	var flags toolkitClusterFlags
	cmd := &cobra.Command{
		Use:   "cancel PLAN [VM...] --context TARGET [-n NAMESPACE]",
		Short: "Cancel a Plan's running migration, or only some of its VMs",
		Long: "cancel adds the VMs to the spec.cancel of the Plan's running Migration, as Forklift's console and\n" +
			"kubectl-mtv do: the toolkit stops their migrations and each VM goes on running in the source\n" +
			"cluster, untouched. Name VMs as NAME or NAMESPACE/NAME; without VMs, every VM of the Plan that\n" +
			"has not ended is canceled, and the others run to their end. The Plan is on the target cluster,\n" +
			"in -n's namespace, else the context's, else openshift-mtv.",
		Example: "  cclm cancel ocp7-mover-x7k2p --context ocp1\n  cclm cancel ocp7-web-9f3k1 web-2 web-3 --context ocp1",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cluster, err := flags.connect()
			if err != nil {
				return err
			}
			return runCancel(cmd.Context(), cluster, args[0], args[1:], cmd.OutOrStdout())
		},
	}
	flags.add(cmd, false)
	return cmd
}

func runCancel(ctx context.Context, cluster *toolkitCluster, planName string, vmNames []string, out io.Writer) error {
	plan := &forkliftv1beta1.Plan{}
	key := cluster.key(planName)
	if err := cluster.client.Get(ctx, key, plan); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no Plan %s on %s: check the name and -n (`cclm get plans -A --context %s` lists them)", key, cluster.name, cluster.name)
		}
		return fmt.Errorf("read Plan %s on %s: %w", key, cluster.name, err)
	}
	migrations, err := planMigrations(ctx, cluster.client, plan)
	if err != nil {
		return err
	}
	running := runningMigration(migrations)
	if running == nil {
		return fmt.Errorf("the Plan %s has no running Migration: nothing to cancel%s", key, lastMigrationNote(migrations))
	}
	refs, notes, err := vmsToCancel(plan.Spec.VMs, running.Status.VMs, vmNames)
	for _, note := range notes {
		fmt.Fprintln(out, note)
	}
	if err != nil {
		return err
	}
	migrationKey := client.ObjectKeyFromObject(running)
	if err := requestCancel(ctx, cluster.client, migrationKey, refs); err != nil {
		return err
	}
	fmt.Fprintf(out, "Migration %s: cancel requested for %s; the toolkit stops their migrations and they keep running in the source cluster.\n",
		migrationKey, refNames(refs))
	fmt.Fprintf(out, "Follow it: cclm get migration %s -n %s --context %s -w (or cclm describe plan %s)\n",
		migrationKey.Name, migrationKey.Namespace, cluster.name, plan.Name)
	return nil
}

// runningMigration is the newest Migration that has not ended, or nil.
func runningMigration(migrations []forkliftv1beta1.Migration) *forkliftv1beta1.Migration {
	for i := len(migrations) - 1; i >= 0; i-- {
		if migrationOutcome(&migrations[i]) == "" {
			return &migrations[i]
		}
	}
	return nil
}

func lastMigrationNote(migrations []forkliftv1beta1.Migration) string {
	if len(migrations) == 0 {
		return " (it never ran)"
	}
	last := migrations[len(migrations)-1]
	return fmt.Sprintf(" (its last, %s, ended %s)", last.Name, migrationOutcome(&last))
}

// vmsToCancel resolves the VMs named (all of the plan's when none) to the
// refs to cancel, leaving out those that have ended already (notes say
// which). An error names a VM that is not in the plan, or says that
// nothing is left to cancel.
func vmsToCancel(planVMs []forkliftv1beta1.PlanVM, statuses []forkliftv1beta1.VMStatus, names []string) ([]forkliftv1beta1.Ref, []string, error) {
	chosen := planVMs
	if len(names) > 0 {
		chosen = nil
		for _, name := range names {
			vm, ok := findPlanVM(planVMs, name)
			if !ok {
				return nil, nil, fmt.Errorf("VM %s is not in the Plan; its VMs are %s", name, planVMNames(planVMs))
			}
			chosen = append(chosen, vm)
		}
	}
	var refs []forkliftv1beta1.Ref
	var notes []string
	for _, vm := range chosen {
		if status := findVMStatus(statuses, vm.Ref); status != nil && vmEnded(status) {
			notes = append(notes, fmt.Sprintf("%s/%s has ended already (%s): left as it is", vm.Namespace, vm.Name, vmResultOf(status)))
			continue
		}
		refs = append(refs, vm.Ref)
	}
	if len(refs) == 0 {
		return nil, notes, fmt.Errorf("every VM named has ended already: nothing to cancel")
	}
	return refs, notes, nil
}

// findPlanVM finds NAME or NAMESPACE/NAME among the plan's VMs.
func findPlanVM(vms []forkliftv1beta1.PlanVM, name string) (forkliftv1beta1.PlanVM, bool) {
	namespace, vmName, qualified := strings.Cut(name, "/")
	for _, vm := range vms {
		if qualified && vm.Namespace == namespace && vm.Name == vmName || !qualified && vm.Name == name {
			return vm, true
		}
	}
	return forkliftv1beta1.PlanVM{}, false
}

func planVMNames(vms []forkliftv1beta1.PlanVM) string {
	names := make([]string, len(vms))
	for i, vm := range vms {
		names[i] = vm.Namespace + "/" + vm.Name
	}
	return strings.Join(names, ", ")
}

func refNames(refs []forkliftv1beta1.Ref) string {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Namespace + "/" + r.Name
	}
	return strings.Join(names, ", ")
}

// requestCancel adds refs to the Migration's spec.cancel (Forklift's way
// to cancel VMs), keeping those already there.
func requestCancel(ctx context.Context, c client.Client, key client.ObjectKey, refs []forkliftv1beta1.Ref) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var migration forkliftv1beta1.Migration
		if err := c.Get(ctx, key, &migration); err != nil {
			return err
		}
		changed := false
		for _, ref := range refs {
			if !migration.Spec.Canceled(ref) {
				migration.Spec.Cancel = append(migration.Spec.Cancel, ref)
				changed = true
			}
		}
		if !changed {
			return nil
		}
		return c.Update(ctx, &migration)
	})
	if err != nil {
		return fmt.Errorf("cancel: update Migration %s: %w", key, err)
	}
	return nil
}
