package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/toolkit"
)

// planFixture is a Plan of two VMs whose Migration runs: demo-vm is in
// its Migrate step, web has succeeded; an older Migration failed.
func planFixture(t *testing.T) (*toolkitCluster, *forkliftv1beta1.Plan) {
	t.Helper()
	created := metav1.NewTime(time.Now().Add(-5 * time.Minute))
	vms := []forkliftv1beta1.PlanVM{
		{Ref: forkliftv1beta1.Ref{ID: "uid-1", Name: "demo-vm", Namespace: "default"}},
		{Ref: forkliftv1beta1.Ref{ID: "uid-2", Name: "web", Namespace: "default"}},
	}
	succeeded := *migratingStatus()
	succeeded.Ref = vms[1].Ref
	succeeded.Phase, succeeded.Completed = toolkit.VMPhaseCompleted, &created
	succeeded.Conditions = []forkliftv1beta1.Condition{{Type: toolkit.VMSucceeded, Status: forkliftv1beta1.ConditionTrue, Message: "moved"}}
	statuses := []forkliftv1beta1.VMStatus{*migratingStatus(), succeeded}
	plan := &forkliftv1beta1.Plan{
		ObjectMeta: metav1.ObjectMeta{Name: "ocp7-demo", Namespace: "openshift-mtv", UID: "plan-uid", CreationTimestamp: created},
		Spec: forkliftv1beta1.PlanSpec{
			Type: forkliftv1beta1.MigrationLive, TargetNamespace: "default", VMs: vms,
			Provider: forkliftv1beta1.ProviderPair{Source: corev1.ObjectReference{Name: "ocp7"}, Destination: corev1.ObjectReference{Name: "host"}},
		},
		Status: forkliftv1beta1.PlanStatus{
			Conditions: []forkliftv1beta1.Condition{
				{Type: forkliftv1beta1.ConditionReady, Status: forkliftv1beta1.ConditionTrue, Category: forkliftv1beta1.CategoryRequired, Message: "The migration plan is ready."},
				{Type: forkliftv1beta1.ConditionExecuting, Status: forkliftv1beta1.ConditionTrue, Category: "Advisory"},
			},
			Migration: forkliftv1beta1.PlanMigrationStatus{VMs: statuses},
		},
	}
	failed := &forkliftv1beta1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: "ocp7-demo-old", Namespace: "openshift-mtv", CreationTimestamp: metav1.NewTime(created.Add(time.Minute))},
		Spec:       forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: plan.Name}},
		Status:     forkliftv1beta1.MigrationStatus{Conditions: []forkliftv1beta1.Condition{{Type: forkliftv1beta1.ConditionFailed, Status: forkliftv1beta1.ConditionTrue}}},
	}
	running := &forkliftv1beta1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: "ocp7-demo-run", Namespace: "openshift-mtv", UID: "run-uid", CreationTimestamp: metav1.NewTime(created.Add(2 * time.Minute))},
		Spec:       forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: plan.Name, Namespace: plan.Namespace}},
		Status:     forkliftv1beta1.MigrationStatus{VMs: statuses},
	}
	otherPlan := &forkliftv1beta1.Plan{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "team-b"}}
	event := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e1", Namespace: "openshift-mtv"},
		InvolvedObject: corev1.ObjectReference{Kind: "Migration", Name: running.Name, UID: running.UID},
		Type:           corev1.EventTypeNormal, Reason: "Converging", Message: "pass 2", LastTimestamp: metav1.Now(),
	}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(plan, failed, running, otherPlan, event).Build()
	return &toolkitCluster{client: c, name: "ocp1", namespace: "openshift-mtv"}, plan
}

// get runs `cclm get` with -o output.
func get(t *testing.T, cluster *toolkitCluster, kind, output string, names ...string) (string, error) {
	t.Helper()
	flags := getFlags{print: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme.Scheme)}
	flags.print.OutputFormat = &output
	printer, err := flags.printer()
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = runGet(context.Background(), cluster, listedKinds[kind], names, false, printer, &out)
	return out.String(), err
}

func TestGetPrintsKubectlFormats(t *testing.T) {
	cluster, plan := planFixture(t)
	table, err := get(t, cluster, "plans", "")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || strings.Contains(lines[0], "SOURCE") {
		t.Fatalf("table:\n%s", table)
	}
	if fields := strings.Fields(lines[1]); len(fields) != 5 || fields[0] != plan.Name || fields[1] != "True" || fields[2] != "True" || fields[3] != "2" {
		t.Errorf("row %q: want name, Ready, Executing, 2 VMs, age (Succeeded and Failed empty)", lines[1])
	}
	wide, _ := get(t, cluster, "plans", "wide")
	if !strings.Contains(wide, "1 Migrate, 1 Succeeded") || !strings.Contains(wide, "ocp7") {
		t.Errorf("wide lacks the source and the VM states:\n%s", wide)
	}
	migrations, _ := get(t, cluster, "migrations", "wide")
	list, err := get(t, cluster, "migrations", "yaml")
	if err != nil || !strings.HasPrefix(list, "apiVersion: v1\nitems:\n- apiVersion: forklift.konveyor.io/v1beta1\n  kind: Migration") {
		t.Errorf("-o yaml of a list: %v\n%s", err, list)
	}
	if !strings.Contains(migrations, "ocp7-demo-old") || !strings.Contains(migrations, "ocp7-demo-run") || !strings.Contains(migrations, "1 Migrate, 1 Succeeded") {
		t.Errorf("migrations:\n%s", migrations)
	}

	names, err := get(t, cluster, "plans", "name")
	if strings.TrimSpace(names) != "plan.forklift.konveyor.io/"+plan.Name {
		t.Errorf("-o name: %q, %v", names, err)
	}
	phases, err := get(t, cluster, "plan", "jsonpath={.items[*].status.migration.vms[*].phase}")
	if err != nil || phases != "WaitForStateTransfer Completed" {
		t.Errorf("-o jsonpath: %q, %v", phases, err)
	}
	single, _ := get(t, cluster, "plan", "json", plan.Name)
	var read forkliftv1beta1.Plan
	if err := json.Unmarshal([]byte(single), &read); err != nil || read.Kind != "Plan" || read.APIVersion != "forklift.konveyor.io/v1beta1" || read.Name != plan.Name {
		t.Errorf("-o json of one Plan: %v\n%s", err, single)
	}
	if _, err := get(t, cluster, "plan", "", "nope"); err == nil || !strings.Contains(err.Error(), "nope not found in namespace openshift-mtv") {
		t.Errorf("a missing name: %v", err)
	}

	cluster.namespace = ""
	all, _ := get(t, cluster, "plans", "")
	if !strings.HasPrefix(all, "NAMESPACE") || !strings.Contains(all, "team-b") {
		t.Errorf("-A:\n%s", all)
	}
}

func TestCancelAddsTheRunningVMsToTheRunningMigration(t *testing.T) {
	cluster, plan := planFixture(t)
	ctx := context.Background()
	cancel := func(names ...string) (string, error) {
		var out bytes.Buffer
		err := runCancel(ctx, cluster, plan.Name, names, &out)
		return out.String(), err
	}
	if _, err := cancel("nope"); err == nil || !strings.Contains(err.Error(), "default/demo-vm, default/web") {
		t.Errorf("an unknown VM: %v", err)
	}
	if out, err := cancel("web"); err == nil || !strings.Contains(out, "default/web has ended already (Succeeded)") {
		t.Errorf("canceling a VM that succeeded: %v\n%s", err, out)
	}
	out, err := cancel()
	if err != nil || !strings.Contains(out, "cancel requested for default/demo-vm;") {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	var running forkliftv1beta1.Migration
	if err := cluster.client.Get(ctx, client.ObjectKey{Namespace: "openshift-mtv", Name: "ocp7-demo-run"}, &running); err != nil {
		t.Fatal(err)
	}
	if len(running.Spec.Cancel) != 1 || running.Spec.Cancel[0].ID != "uid-1" {
		t.Errorf("spec.cancel = %+v, want demo-vm only", running.Spec.Cancel)
	}
	if _, err := cancel("default/demo-vm"); err != nil {
		t.Errorf("canceling again: %v", err)
	}
	if err := cluster.client.Get(ctx, client.ObjectKeyFromObject(&running), &running); err != nil || len(running.Spec.Cancel) != 1 {
		t.Errorf("a second cancel repeated the ref: %+v (%v)", running.Spec.Cancel, err)
	}

	running.Status.Conditions = []forkliftv1beta1.Condition{{Type: forkliftv1beta1.ConditionCanceled, Status: forkliftv1beta1.ConditionTrue}}
	if err := cluster.client.Update(ctx, &running); err != nil {
		t.Fatal(err)
	}
	if _, err := cancel(); err == nil || !strings.Contains(err.Error(), "no running Migration") || !strings.Contains(err.Error(), "ended Canceled") {
		t.Errorf("nothing running: %v", err)
	}
}

func TestDescribePlanShowsEachVMsPipeline(t *testing.T) {
	cluster, plan := planFixture(t)
	var out bytes.Buffer
	if err := describePlan(context.Background(), cluster, plan.Name, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"openshift-mtv/ocp7",
		"Ready      True", // the conditions table
		"ocp7-demo-old", "Failed", "ocp7-demo-run", "Running",
		"default/demo-vm: Migrate", "default/web: Succeeded",
		"Migrate", "96.0/128.0 MiB, remaining 32.0 MiB, dirty 1.0 MiB/s, pass 2",
		"condition Succeeded=True: moved",
		"Converging", "migration/ocp7-demo-run",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("describe lacks %q:\n%s", want, text)
		}
	}
	if err := describePlan(context.Background(), cluster, "nope", &out); err == nil || !strings.Contains(err.Error(), "cclm get plans -A") {
		t.Errorf("a missing Plan: %v", err)
	}
}

func TestGetWatchPrintsEachChange(t *testing.T) {
	cluster, plan := planFixture(t)
	flags := getFlags{print: genericclioptions.NewPrintFlags("").WithTypeSetter(scheme.Scheme)}
	printer, err := flags.printer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- runGet(ctx, cluster, planKind, []string{plan.Name}, true, printer, &out) }()

	waitForRows := func(rows int) []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(out.String(), plan.Name) < rows {
			if time.Now().After(deadline) {
				t.Fatalf("not %d rows of %s in:\n%s", rows, plan.Name, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		return strings.Split(strings.TrimSpace(out.String()), "\n")
	}
	waitForRows(1)
	var changed forkliftv1beta1.Plan
	if err := cluster.client.Get(ctx, client.ObjectKeyFromObject(plan), &changed); err != nil {
		t.Fatal(err)
	}
	changed.Status.Conditions = append(changed.Status.Conditions, forkliftv1beta1.Condition{Type: forkliftv1beta1.ConditionSucceeded, Status: forkliftv1beta1.ConditionTrue})
	if err := cluster.client.Update(ctx, &changed); err != nil {
		t.Fatal(err)
	}
	lines := waitForRows(2)
	if last := strings.Fields(lines[len(lines)-1]); len(last) != 6 || last[3] != "True" {
		t.Errorf("the change's row %q: want Succeeded True", lines[len(lines)-1])
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("a watch ended by Ctrl-C: %v", err)
	}
	if headers := strings.Count(out.String(), "NAME"); headers != 1 {
		t.Errorf("the header is printed %d times:\n%s", headers, out.String())
	}
}
