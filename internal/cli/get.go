package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/scheme"
)

// listedKind is a kind `cclm get` lists: how to list it and its table.
type listedKind struct {
	newList func() client.ObjectList
	columns []metav1.TableColumnDefinition
	// cells are a row's values, one per column, for an item of the list.
	cells func(obj runtime.Object, now time.Time) []any
}

// Forklift's printer columns (its CRDs'), then cclm's: how many VMs and
// where they are; wide adds where they go and when.
var (
	planKind = listedKind{
		newList: func() client.ObjectList { return &forkliftv1beta1.PlanList{} },
		columns: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string"}, {Name: "Ready", Type: "string"}, {Name: "Executing", Type: "string"},
			{Name: "Succeeded", Type: "string"}, {Name: "Failed", Type: "string"}, {Name: "VMs", Type: "integer"},
			{Name: "Age", Type: "string"},
			{Name: "Source", Type: "string", Priority: 1}, {Name: "Target Namespace", Type: "string", Priority: 1},
			{Name: "VM States", Type: "string", Priority: 1},
		},
		cells: func(obj runtime.Object, now time.Time) []any {
			plan := obj.(*forkliftv1beta1.Plan)
			conditions := plan.Status.Conditions
			return []any{plan.Name, conditionStatus(conditions, forkliftv1beta1.ConditionReady), conditionStatus(conditions, forkliftv1beta1.ConditionExecuting),
				conditionStatus(conditions, forkliftv1beta1.ConditionSucceeded), conditionStatus(conditions, forkliftv1beta1.ConditionFailed),
				int64(len(plan.Spec.VMs)), age(plan.CreationTimestamp, now),
				plan.Spec.Provider.Source.Name, dashIfEmpty(plan.Spec.TargetNamespace), vmStates(plan.Spec.VMs, plan.Status.Migration.VMs)}
		},
	}
	migrationKind = listedKind{
		newList: func() client.ObjectList { return &forkliftv1beta1.MigrationList{} },
		columns: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string"}, {Name: "Plan", Type: "string"}, {Name: "Ready", Type: "string"},
			{Name: "Running", Type: "string"}, {Name: "Succeeded", Type: "string"}, {Name: "Failed", Type: "string"},
			{Name: "VMs", Type: "integer"}, {Name: "Age", Type: "string"},
			{Name: "Duration", Type: "string", Priority: 1}, {Name: "VM States", Type: "string", Priority: 1},
		},
		cells: func(obj runtime.Object, now time.Time) []any {
			m := obj.(*forkliftv1beta1.Migration)
			conditions := m.Status.Conditions
			return []any{m.Name, m.Spec.Plan.Name, conditionStatus(conditions, forkliftv1beta1.ConditionReady),
				conditionStatus(conditions, forkliftv1beta1.ConditionRunning), conditionStatus(conditions, forkliftv1beta1.ConditionSucceeded),
				conditionStatus(conditions, forkliftv1beta1.ConditionFailed), int64(len(m.Status.VMs)), age(m.CreationTimestamp, now),
				timedDuration(m.Status.Timed, now), vmStates(nil, m.Status.VMs)}
		},
	}
	// listedKinds are the names `cclm get` takes, as kubectl's.
	listedKinds = map[string]listedKind{
		"plans": planKind, "plan": planKind,
		"migrations": migrationKind, "migration": migrationKind,
	}
)

type getFlags struct {
	cluster toolkitClusterFlags
	print   *genericclioptions.PrintFlags
	watch   bool
}

func newGetCommand() *cobra.Command {
	flags := getFlags{print: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme.Scheme)}
	cmd := &cobra.Command{
		Use:   "get plans|migrations [NAME...] --context TARGET [-n NAMESPACE | -A] [-w] [-o wide|json|yaml|name|jsonpath=...]",
		Short: "List the migration toolkit's Plans or Migrations, with their VMs' states",
		Long: "get lists Plans or Migrations as kubectl does, with Forklift's columns plus each one's VMs;\n" +
			"-o wide adds the source, the target namespace and where each VM is. They are on the target\n" +
			"cluster, in -n's namespace, else the context's, else openshift-mtv.",
		Example:   "  cclm get plans --context ocp1\n  cclm get migrations -A --context ocp1 -w\n  cclm get plan my-plan --context ocp1 -o jsonpath='{.status.migration.vms[*].phase}'",
		ValidArgs: []string{"plans", "migrations"},
		Args:      cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := listedKinds[strings.ToLower(args[0])]
			if !ok {
				return fmt.Errorf("cclm get lists plans or migrations, not %q (kubectl lists the rest)", args[0])
			}
			cluster, err := flags.cluster.connect()
			if err != nil {
				return err
			}
			printer, err := flags.printer()
			if err != nil {
				return err
			}
			return runGet(cmd.Context(), cluster, kind, args[1:], flags.watch, printer, cmd.OutOrStdout())
		},
	}
	flags.cluster.add(cmd, true)
	flags.print.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: empty for a table, or wide, json, yaml, name, jsonpath=..., go-template=... (as kubectl's)"
	cmd.Flags().BoolVarP(&flags.watch, "watch", "w", false, "after listing, watch for changes and print each")
	return cmd
}

// objectPrinter prints what `cclm get` found: a table (plain or wide) or
// one of cli-runtime's printers.
type objectPrinter struct {
	table   bool
	wide    bool
	printer printers.ResourcePrinter
}

func (f getFlags) printer() (*objectPrinter, error) {
	switch format := *f.print.OutputFormat; format {
	case "", "wide":
		return &objectPrinter{table: true, wide: format == "wide"}, nil
	default:
		printer, err := f.print.ToPrinter()
		if err != nil {
			return nil, fmt.Errorf("--output %s: %w", format, err)
		}
		return &objectPrinter{printer: printer}, nil
	}
}

func runGet(ctx context.Context, cluster *toolkitCluster, kind listedKind, names []string, watchToo bool, p *objectPrinter, out io.Writer) error {
	list := kind.newList()
	if err := cluster.client.List(ctx, list, client.InNamespace(cluster.namespace)); err != nil {
		return fmt.Errorf("list on %s: %w", cluster.name, err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	items, err = chooseNamed(items, names, cluster.namespace)
	if err != nil {
		return err
	}
	table := p.tablePrinter(cluster.namespace == "")
	if err := p.printItems(kind, items, len(names) == 1, table, out); err != nil {
		return err
	}
	if !watchToo {
		return nil
	}
	return watchAndPrint(ctx, cluster, kind, list.GetResourceVersion(), names, p, table, out)
}

// chooseNamed keeps the items named, in the order named; an error names
// the first one missing.
func chooseNamed(items []runtime.Object, names []string, namespace string) ([]runtime.Object, error) {
	if len(names) == 0 {
		return items, nil
	}
	chosen := make([]runtime.Object, 0, len(names))
	for _, name := range names {
		found := false
		for _, item := range items {
			if item.(metav1.Object).GetName() == name {
				chosen = append(chosen, item)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%s not found in namespace %s (-A lists every namespace)", name, namespaceOrAny(namespace))
		}
	}
	return chosen, nil
}

func namespaceOrAny(namespace string) string {
	if namespace == "" {
		return "any namespace"
	}
	return namespace
}

func (p *objectPrinter) tablePrinter(allNamespaces bool) printers.ResourcePrinter {
	return printers.NewTablePrinter(printers.PrintOptions{Wide: p.wide, WithNamespace: allNamespaces})
}

// printItems prints the items: as a table, as one object when one was
// named (as kubectl does), else as a list.
func (p *objectPrinter) printItems(kind listedKind, items []runtime.Object, single bool, table printers.ResourcePrinter, out io.Writer) error {
	if p.table {
		if len(items) == 0 {
			_, err := fmt.Fprintln(out, "No resources found")
			return err
		}
		return table.PrintObj(tableOf(kind, items, time.Now()), out)
	}
	for _, item := range items {
		if err := setKind(item); err != nil {
			return err
		}
	}
	if single {
		return p.printer.PrintObj(items[0], out)
	}
	list, err := asKubectlList(items)
	if err != nil {
		return err
	}
	return p.printer.PrintObj(list, out)
}

// asKubectlList is the items as kubectl prints several objects: a v1
// List, whose items carry their apiVersion and kind.
func asKubectlList(items []runtime.Object) (*unstructured.UnstructuredList, error) {
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List"}}
	list.SetResourceVersion("")
	for _, item := range items {
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(item)
		if err != nil {
			return nil, err
		}
		list.Items = append(list.Items, unstructured.Unstructured{Object: content})
	}
	return list, nil
}

// setKind fills apiVersion and kind, which typed reads leave empty.
func setKind(obj runtime.Object) error {
	gvk, err := apiutil.GVKForObject(obj, scheme.Scheme)
	if err != nil {
		return err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return nil
}

// watchAndPrint prints each change to the kind's objects (those named, if
// any) from resourceVersion on, until ctx ends (Ctrl-C).
func watchAndPrint(ctx context.Context, cluster *toolkitCluster, kind listedKind, resourceVersion string, names []string, p *objectPrinter, table printers.ResourcePrinter, out io.Writer) error {
	watcher, err := cluster.client.Watch(ctx, kind.newList(), client.InNamespace(cluster.namespace),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: resourceVersion}})
	if err != nil {
		return fmt.Errorf("watch on %s: %w", cluster.name, err)
	}
	defer watcher.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case event, open := <-watcher.ResultChan():
			if !open {
				return fmt.Errorf("the watch on %s ended; run the command again", cluster.name)
			}
			if event.Type == watch.Error {
				return fmt.Errorf("watch on %s: %v", cluster.name, event.Object)
			}
			if len(names) > 0 && !containsName(names, event.Object) {
				continue
			}
			if err := p.printItems(kind, []runtime.Object{event.Object}, true, table, out); err != nil {
				return err
			}
		}
	}
}

func containsName(names []string, obj runtime.Object) bool {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	for _, name := range names {
		if name == accessor.GetName() {
			return true
		}
	}
	return false
}

// tableOf is the items as a metav1.Table, kubectl's row format.
func tableOf(kind listedKind, items []runtime.Object, now time.Time) *metav1.Table {
	table := &metav1.Table{ColumnDefinitions: kind.columns}
	for _, item := range items {
		table.Rows = append(table.Rows, metav1.TableRow{Cells: kind.cells(item, now), Object: runtime.RawExtension{Object: item}})
	}
	return table
}

func conditionStatus(conditions []forkliftv1beta1.Condition, conditionType string) string {
	if c := forkliftv1beta1.FindCondition(conditions, conditionType); c != nil {
		return c.Status
	}
	return ""
}

func age(created metav1.Time, now time.Time) string {
	if created.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(created.Time))
}

// timedDuration is how long it ran (so far, when not completed).
func timedDuration(timed forkliftv1beta1.Timed, now time.Time) string {
	if timed.Started == nil {
		return "-"
	}
	end := now
	if timed.Completed != nil {
		end = timed.Completed.Time
	}
	return formatDuration(end.Sub(timed.Started.Time))
}

// vmStates counts the VMs by result once ended, else by current step:
// "1 Succeeded, 2 Migrate". VMs of the plan without a status are Pending.
func vmStates(planVMs []forkliftv1beta1.PlanVM, statuses []forkliftv1beta1.VMStatus) string {
	var order []string
	counts := map[string]int{}
	count := func(state string) {
		if counts[state] == 0 {
			order = append(order, state)
		}
		counts[state]++
	}
	for _, status := range statuses {
		count(viewOf("", &status).stateLabel())
	}
	for _, vm := range planVMs {
		if findVMStatus(statuses, vm.Ref) == nil {
			count("Pending")
		}
	}
	parts := make([]string, len(order))
	for i, state := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[state], state)
	}
	return dashIfEmpty(strings.Join(parts, ", "))
}

// stateLabel is the VM's result once ended, else its current step.
func (v vmView) stateLabel() string {
	if v.Ended {
		return v.Result
	}
	return v.Step
}
