package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

func newDescribeCommand() *cobra.Command {
	var flags toolkitClusterFlags
	cmd := &cobra.Command{
		Use:   "describe plan|migration NAME --context TARGET [-n NAMESPACE]",
		Short: "Show a Plan (or Migration) whole: its checks, its Migrations, each VM's pipeline step by step, its events",
		Long: "describe shows what the toolkit knows of a Plan: its preflight conditions, its Migrations and,\n" +
			"for the current or last one, each VM's pipeline with every step's phase, start, duration,\n" +
			"progress and error, then the events. The Plan is on the target cluster, in -n's namespace,\n" +
			"else the context's, else openshift-mtv.",
		Example:   "  cclm describe plan ocp7-mover-x7k2p --context ocp1",
		ValidArgs: []string{"plan", "migration"},
		Args:      cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cluster, err := flags.connect()
			if err != nil {
				return err
			}
			switch strings.ToLower(args[0]) {
			case "plan", "plans":
				return describePlan(cmd.Context(), cluster, args[1], cmd.OutOrStdout())
			case "migration", "migrations":
				return describeMigration(cmd.Context(), cluster, args[1], cmd.OutOrStdout())
			}
			return fmt.Errorf("cclm describe shows a plan or a migration, not %q", args[0])
		},
	}
	flags.add(cmd, false)
	return cmd
}

func describePlan(ctx context.Context, cluster *toolkitCluster, name string, out io.Writer) error {
	plan := &forkliftv1beta1.Plan{}
	if err := getNamed(ctx, cluster, "Plan", name, plan); err != nil {
		return err
	}
	migrations, err := planMigrations(ctx, cluster.client, plan)
	if err != nil {
		return err
	}
	now := time.Now()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	field(w, "Name", plan.Name)
	field(w, "Namespace", plan.Namespace)
	field(w, "Created", createdAt(plan.CreationTimestamp.Time, now))
	field(w, "Type", string(plan.Spec.Type))
	if plan.Spec.Description != "" {
		field(w, "Description", plan.Spec.Description)
	}
	field(w, "Source provider", refString(plan.Spec.Provider.Source, plan.Namespace))
	field(w, "Target provider", refString(plan.Spec.Provider.Destination, plan.Namespace))
	field(w, "Target namespace", dashIfEmpty(plan.Spec.TargetNamespace))
	field(w, "Network map", refString(plan.Spec.Map.Network, plan.Namespace))
	field(w, "Storage map", refString(plan.Spec.Map.Storage, plan.Namespace))
	field(w, "VMs", planVMNames(plan.Spec.VMs))
	w.Flush()
	printConditions(out, "Conditions", plan.Status.Conditions, now)
	printMigrations(out, migrations, now)

	statuses := plan.Status.Migration.VMs
	if len(migrations) > 0 && len(statuses) == 0 {
		statuses = migrations[len(migrations)-1].Status.VMs
	}
	printVMPipelines(out, plan.Spec.VMs, statuses, now)

	involved := []types.UID{plan.UID}
	for _, m := range migrations {
		involved = append(involved, m.UID)
	}
	return printEvents(ctx, cluster.client, plan.Namespace, involved, out, now)
}

func describeMigration(ctx context.Context, cluster *toolkitCluster, name string, out io.Writer) error {
	m := &forkliftv1beta1.Migration{}
	if err := getNamed(ctx, cluster, "Migration", name, m); err != nil {
		return err
	}
	now := time.Now()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	field(w, "Name", m.Name)
	field(w, "Namespace", m.Namespace)
	field(w, "Created", createdAt(m.CreationTimestamp.Time, now))
	field(w, "Plan", refString(m.Spec.Plan, m.Namespace))
	field(w, "Result", cmp.Or(migrationOutcome(m), "-"))
	field(w, "Duration", timedDuration(m.Status.Timed, now))
	if len(m.Spec.Cancel) > 0 {
		field(w, "Cancel requested", refNames(m.Spec.Cancel))
	}
	w.Flush()
	printConditions(out, "Conditions", m.Status.Conditions, now)
	printVMPipelines(out, nil, m.Status.VMs, now)
	return printEvents(ctx, cluster.client, m.Namespace, []types.UID{m.UID}, out, now)
}

// getNamed reads NAME or NAMESPACE/NAME, saying how to find it if absent.
func getNamed(ctx context.Context, cluster *toolkitCluster, kind, name string, obj client.Object) error {
	key := cluster.key(name)
	if err := cluster.client.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s %s is not on %s: check the name and -n (`cclm get %ss -A --context %s` lists them)",
				kind, key, cluster.name, strings.ToLower(kind), cluster.name)
		}
		return fmt.Errorf("read %s %s on %s: %w", kind, key, cluster.name, err)
	}
	return nil
}

func field(w io.Writer, name, value string) {
	fmt.Fprintf(w, "%s:\t%s\n", name, value)
}

func createdAt(t time.Time, now time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), duration.HumanDuration(now.Sub(t)))
}

func refString(ref corev1.ObjectReference, namespace string) string {
	if ref.Name == "" {
		return "-"
	}
	return cmp.Or(ref.Namespace, namespace) + "/" + ref.Name
}

func printConditions(out io.Writer, title string, conditions []forkliftv1beta1.Condition, now time.Time) {
	fmt.Fprintf(out, "%s:\n", title)
	if len(conditions) == 0 {
		fmt.Fprintln(out, "  none yet (is the toolkit running on this cluster?)")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  TYPE\tSTATUS\tCATEGORY\tREASON\tAGE\tMESSAGE")
	for _, c := range conditions {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Category, dashIfEmpty(c.Reason),
			age(c.LastTransitionTime, now), dashIfEmpty(oneLine(c.Message)))
	}
	w.Flush()
}

func printMigrations(out io.Writer, migrations []forkliftv1beta1.Migration, now time.Time) {
	fmt.Fprintln(out, "Migrations:")
	if len(migrations) == 0 {
		fmt.Fprintln(out, "  none: the Plan has not run (create a Migration of it, or use cclm migrate)")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  NAME\tSTARTED\tDURATION\tRESULT\tVMS")
	for _, m := range migrations {
		started := "-"
		if m.Status.Started != nil {
			started = m.Status.Started.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", m.Name, started, timedDuration(m.Status.Timed, now),
			cmp.Or(migrationOutcome(&m), "Running"), vmStates(nil, m.Status.VMs))
	}
	w.Flush()
}

// printVMPipelines shows each VM's pipeline, step by step; VMs of the
// plan without a status yet are listed as pending.
func printVMPipelines(out io.Writer, planVMs []forkliftv1beta1.PlanVM, statuses []forkliftv1beta1.VMStatus, now time.Time) {
	fmt.Fprintln(out, "VMs:")
	for _, vm := range planVMs {
		if findVMStatus(statuses, vm.Ref) == nil {
			fmt.Fprintf(out, "  %s/%s: Pending (not started)\n", vm.Namespace, vm.Name)
		}
	}
	for _, status := range statuses {
		printVMPipeline(out, &status, now)
	}
}

func printVMPipeline(out io.Writer, status *forkliftv1beta1.VMStatus, now time.Time) {
	view := viewOf(status.Namespace+"/"+status.Name, status)
	summary := []string{view.stateLabel(), "phase " + dashIfEmpty(status.Phase), timedDuration(status.Timed, now)}
	if view.DowntimeMs >= 0 {
		summary = append(summary, fmt.Sprintf("downtime %d ms", view.DowntimeMs))
	}
	if view.Transferred > 0 {
		summary = append(summary, formatBytes(view.Transferred)+" transferred")
	}
	fmt.Fprintf(out, "  %s: %s\n", view.Name, strings.Join(summary, ", "))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "    STEP\tPHASE\tSTARTED\tDURATION\tPROGRESS\tERROR")
	row := func(indent string, task forkliftv1beta1.Task) {
		started := "-"
		if task.Started != nil {
			started = task.Started.Local().Format("15:04:05.000")
		}
		fmt.Fprintf(w, "    %s%s\t%s\t%s\t%s\t%s\t%s\n", indent, task.Name, dashIfEmpty(task.Phase), started,
			timedDuration(task.Timed, now), stepProgress(task, view), dashIfEmpty(oneLine(errorText(task.Error))))
	}
	for _, step := range status.Pipeline {
		row("", step.Task)
		for _, task := range step.Tasks {
			row("  ", task)
		}
	}
	w.Flush()
	if text := errorText(status.Error); text != "" {
		fmt.Fprintf(out, "    error: %s\n", oneLine(text))
	}
	for _, c := range status.Conditions {
		fmt.Fprintf(out, "    condition %s=%s: %s\n", c.Type, c.Status, dashIfEmpty(oneLine(c.Message)))
	}
}

// stepProgress is a step's or task's progress: bytes and transfer figures
// for Migrate, else its completed/total units when it counts any.
func stepProgress(step forkliftv1beta1.Task, view vmView) string {
	if step.Name == migrateStep {
		if step.Progress.Total == 0 {
			return "-"
		}
		parts := []string{formatBytesOf(step.Progress.Completed, step.Progress.Total)}
		if view.Remaining >= 0 && !view.Ended {
			parts = append(parts, "remaining "+formatBytes(view.Remaining))
		}
		if view.DirtyRate > 0 {
			parts = append(parts, "dirty "+formatBytes(view.DirtyRate)+"/s")
		}
		if view.Iteration != "" {
			parts = append(parts, "pass "+view.Iteration)
		}
		return strings.Join(parts, ", ")
	}
	if step.Progress.Total > 0 {
		return fmt.Sprintf("%d/%d", step.Progress.Completed, step.Progress.Total)
	}
	return dashIfEmpty(step.Reason)
}

// printEvents lists the events about the objects, oldest first.
func printEvents(ctx context.Context, c client.Reader, namespace string, involved []types.UID, out io.Writer, now time.Time) error {
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(namespace)); err != nil {
		fmt.Fprintf(out, "Events: cannot list them (%v)\n", err)
		return nil
	}
	var about []corev1.Event
	for _, e := range events.Items {
		if slices.Contains(involved, e.InvolvedObject.UID) {
			about = append(about, e)
		}
	}
	if len(about) == 0 {
		fmt.Fprintln(out, "Events: <none>")
		return nil
	}
	slices.SortStableFunc(about, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	fmt.Fprintln(out, "Events:")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  AGE\tTYPE\tREASON\tOBJECT\tMESSAGE")
	for _, e := range about {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s/%s\t%s\n", duration.HumanDuration(now.Sub(eventTime(e))), e.Type, e.Reason,
			strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name, oneLine(e.Message))
	}
	return w.Flush()
}

// eventTime is when the event last happened, whichever API wrote it.
func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
