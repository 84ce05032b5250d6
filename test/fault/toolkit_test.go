package fault

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/connect"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/toolkit"
	"github.com/cclm-io/cclm/test/labtest"
)

// The toolkit's faults (issue 7): the same guest, moved from ocp7 to ocp1
// by the migration toolkit (a Plan and a Migration on ocp1, as `cclm
// migrate` makes them), with the toolkit controller SIGKILLed at a point
// of the pipeline, or the Provider's token revoked mid-transfer.

// toolkitFault is what strikes during a toolkit migration.
type toolkitFault string

const (
	// noToolkitFault is the retry after the faults.
	noToolkitFault toolkitFault = "none (retry)"
	// killBeforeTransfer: the toolkit killed while it creates or waits
	// for the receiver (CreateReceiver, WaitForReceiver).
	killBeforeTransfer toolkitFault = "toolkit killed before transfer"
	// killMidTransfer: killed in Migrate, with at least 16 MiB sent.
	killMidTransfer toolkitFault = "toolkit killed mid-transfer"
	// killAfterSwitchover: killed at the first poll that sees the source's
	// migration completed (or the VM in Cleanup).
	killAfterSwitchover toolkitFault = "toolkit killed just after switchover"
	// tokenRevoked: the source's token Secret (cclm connect's, on ocp7)
	// deleted in Migrate with at least 16 MiB sent, so that ocp7's API
	// server refuses the Provider's token.
	tokenRevoked toolkitFault = "provider token revoked mid-transfer"
)

// ciToolkitFaults are what CI runs; soak (CCLM_FAULT_SOAK=1) runs every
// fault.
var ciToolkitFaults = []toolkitFault{killMidTransfer, tokenRevoked}

var soakToolkitFaults = []toolkitFault{killBeforeTransfer, killMidTransfer, killAfterSwitchover, tokenRevoked}

const (
	// toolkitOutcomeTimeout bounds a toolkit migration from its Migration
	// to its outcome: the slowed transfer takes about a minute; the rest
	// is room for the restarts and the toolkit's own Cleanup deadline (3
	// min). A Migration still running after it is a hang.
	toolkitOutcomeTimeout = 8 * time.Minute
	// sourceTokenSecret is the token Secret cclm connect makes on the
	// source (ServiceAccount cclm's legacy token).
	sourceTokenSecret = connect.ServiceAccount
	// transferred is how much the sending migration has sent at the
	// mid-transfer point.
	transferred = 16 << 20
)

// TestFaultsDuringToolkitMigration moves the guest (writing its disk all
// along) from ocp7 to ocp1 with the toolkit once per fault; after each,
// the checks of the by-hand suite (one copy, no acknowledged write lost)
// plus the toolkit's own: an outcome within a bound, with a reason in the
// Migration, the Plan and the VM's pipeline, and nothing of the migration
// left. A guest that moved is brought back by hand, so that every attempt
// starts from ocp7; the last attempt, with no fault, must succeed.
func TestFaultsDuringToolkitMigration(t *testing.T) {
	l := sharedLab(t)
	faults := ciToolkitFaults
	if os.Getenv("CCLM_FAULT_SOAK") == "1" {
		faults = soakToolkitFaults
	}
	l.ExchangeCAs(t, home, away)
	if err := l.cclmConnect(t); err != nil {
		t.Fatal(err)
	}
	l.waitProviderReady(t)
	vm := newGuest(t, l)
	var rows []row
	t.Cleanup(func() { t.Logf("outcomes:\n%s", table(rows)) })
	for _, undo := range []func(){l.SetMigrationConfig(t, home, slowLink), l.SetMigrationConfig(t, away, slowLink)} {
		t.Cleanup(undo)
	}
	tk := &toolkitAttempts{vm: vm}
	for _, f := range append(faults, noToolkitFault) {
		ok := t.Run(strings.ReplaceAll(string(f), " ", "_"), func(t *testing.T) {
			r := tk.migrate(t, f)
			rows = append(rows, r)
			if f == noToolkitFault && r.outcome != "Succeeded" {
				t.Errorf("the toolkit migration after the faults: %s", r.outcome)
			}
			if vm.at.cluster == away {
				// Back to ocp7 by hand: the next attempt starts there.
				back := vm.migrateWith(t, nil)
				back.fault = "back to ocp7 by hand"
				rows = append(rows, back)
			}
		})
		if !ok {
			// The invariants broke: what follows would be about a guest in
			// an unknown state.
			t.FailNow()
		}
	}
}

// cclmConnect runs `cclm connect`, the user's way to give ocp1's toolkit
// ocp7's token (and Providers).
func (l *labEnv) cclmConnect(t *testing.T) error {
	t.Helper()
	began := time.Now()
	if _, stderr, err := labtest.RunCCLM(t, 3*time.Minute, "connect", "--kubeconfig", l.Kubeconfig, "--source", home, "--target", away); err != nil {
		return fmt.Errorf("cclm connect: %v\n%s", err, stderr)
	}
	t.Logf("cclm connect in %s", time.Since(began).Round(100*time.Millisecond))
	return nil
}

func (l *labEnv) waitProviderReady(t *testing.T) {
	t.Helper()
	labtest.WaitEvery(t, "Provider "+home+" to be Ready", time.Second, 90*time.Second, func() (bool, string) {
		p := l.provider(t)
		return p.Status.Phase == toolkit.PhaseReady, fmt.Sprintf("phase %q %+v", p.Status.Phase, p.Status.Conditions)
	})
}

func (l *labEnv) provider(t *testing.T) *forkliftv1beta1.Provider {
	t.Helper()
	var p forkliftv1beta1.Provider
	if !l.Get(t, away, lab.ToolkitNamespace, home, &p) {
		t.Fatalf("no Provider %s/%s on %s: cclm connect makes it", lab.ToolkitNamespace, home, away)
	}
	return &p
}

// toolkitAttempts are the toolkit migrations of one guest.
type toolkitAttempts struct {
	vm *guestVM
	n  int
}

// migrate runs one toolkit migration of the guest (on ocp7) to a new
// namespace of ocp1, injecting f, and checks what must hold whatever the
// outcome.
func (tk *toolkitAttempts) migrate(t *testing.T, f toolkitFault) row {
	vm, l := tk.vm, tk.vm.l
	if vm.at.cluster != home {
		t.Fatalf("the guest runs on %s: a toolkit attempt starts from %s", vm.at.cluster, home)
	}
	began := time.Now()
	tk.n++
	src := vm.at
	dst := where{away, fmt.Sprintf("%s-tk%d", vm.base, tk.n)}
	tk.clearLeftovers(t)
	before := vm.writer(t)
	if !before.Running || before.Error != "" {
		t.Fatalf("the continuous writer is not running before the migration: %+v", before)
	}
	plan := tk.applyPlan(t, dst.namespace, src)
	m := &forkliftv1beta1.Migration{
		ObjectMeta: metav1.ObjectMeta{Name: plan.Name, Namespace: plan.Namespace},
		Spec:       forkliftv1beta1.MigrationSpec{Plan: corev1.ObjectReference{Name: plan.Name, Namespace: plan.Namespace}},
	}
	if err := l.Client(t, away).Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	inj := &injector{tk: tk, fault: f, src: src}
	m = tk.follow(t, m, inj)
	outcome := migrationOutcome(m)
	name := string(f)
	if inj.struck != "" {
		name += " (" + inj.struck + ")"
	}
	t.Logf("%s: %s in %s", name, outcome, time.Since(began).Round(time.Second))
	tk.assertReason(t, m, plan, f)

	// Where the guest runs is what the clusters say, whatever the toolkit
	// concluded; the two must agree.
	moved := false
	if vmi := l.VMI(t, dst.cluster, dst.namespace, vmName); vmi != nil && vmi.Status.Phase == kubevirtv1.Running {
		moved = true
	}
	tk.assertOutcomeMatches(t, m, moved)
	runs, left := src, dst
	if moved {
		runs, left = dst, src
	}
	copies := vm.assertOneCopy(t, runs, left, moved)
	vm.at = runs
	data := vm.assertNoWriteLost(t, before)
	vm.startWorkloads(t)
	if leftovers := tk.leftovers(t, m, src, dst, moved); leftovers != "" {
		outcome += "; left: " + leftovers
	}
	// The user's clean-up, as after the by-hand migrations: then nothing
	// may be left on the nodes.
	l.deleteNamespace(t, left)
	l.assertNothingLeft(t)
	if f == tokenRevoked {
		// Restore the token the user's way, for the retry. A connect that
		// fails is a product failure, said as such; the retry still runs
		// once the toolkit finds the new token good.
		if err := l.cclmConnect(t); err != nil {
			t.Errorf("restoring the token: %v", err)
		}
		l.waitProviderReady(t)
	}
	return row{fault: name, outcome: outcome, copies: copies, data: data, duration: time.Since(began)}
}

// clearLeftovers deletes, on ocp1, the guest's VMs (and VMIs) of earlier
// attempts that it left: a Halted VM keeps the guest's MAC, and the
// toolkit's preflight (MACConflict) rightly refuses a plan while one does;
// its fix is this deletion.
func (tk *toolkitAttempts) clearLeftovers(t *testing.T) {
	t.Helper()
	l := tk.vm.l
	c := l.Client(t, away)
	var namespaces corev1.NamespaceList
	if err := c.List(context.Background(), &namespaces); err != nil {
		t.Fatal(err)
	}
	var cleared []string
	for _, ns := range namespaces.Items {
		if !strings.HasPrefix(ns.Name, tk.vm.base+"-") || (tk.vm.at == where{away, ns.Name}) {
			continue
		}
		for _, obj := range []client.Object{&kubevirtv1.VirtualMachine{}, &kubevirtv1.VirtualMachineInstance{}} {
			obj.SetNamespace(ns.Name)
			obj.SetName(vmName)
			if err := c.Delete(context.Background(), obj); err == nil {
				cleared = append(cleared, ns.Name)
			} else if client.IgnoreNotFound(err) != nil {
				t.Fatal(err)
			}
		}
	}
	if len(cleared) == 0 {
		return
	}
	labtest.WaitEvery(t, "the guest's earlier VMs on "+away+" to be gone", 250*time.Millisecond, 2*time.Minute, func() (bool, string) {
		for _, ns := range cleared {
			if l.VMI(t, away, ns, vmName) != nil || l.Get(t, away, ns, vmName, &kubevirtv1.VirtualMachine{}) {
				return false, "still in " + ns
			}
		}
		return true, ""
	})
}

// applyPlan makes, as `cclm migrate` does, the default maps and a live
// Plan of the guest to namespace on ocp1, and waits for it to be Ready.
func (tk *toolkitAttempts) applyPlan(t *testing.T, namespace string, src where) *forkliftv1beta1.Plan {
	t.Helper()
	l, ctx := tk.vm.l, context.Background()
	var source kubevirtv1.VirtualMachine
	if !l.Get(t, home, src.namespace, vmName, &source) {
		t.Fatalf("no VM %s/%s on %s", src.namespace, vmName, home)
	}
	provider := l.provider(t)
	target := l.Client(t, away)
	maps, err := connect.PlanMaps(ctx, l.Client(t, home), target, provider, []kubevirtv1.VirtualMachine{source})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := maps.Save(ctx, target); err != nil {
		t.Fatal(err)
	}
	ref := func(obj client.Object) corev1.ObjectReference {
		return corev1.ObjectReference{Name: obj.GetName(), Namespace: obj.GetNamespace()}
	}
	plan := &forkliftv1beta1.Plan{
		ObjectMeta: metav1.ObjectMeta{Name: namespace, Namespace: provider.Namespace},
		Spec: forkliftv1beta1.PlanSpec{
			Type:            forkliftv1beta1.MigrationLive,
			Provider:        forkliftv1beta1.ProviderPair{Source: ref(provider), Destination: corev1.ObjectReference{Name: connect.HostProvider, Namespace: provider.Namespace}},
			Map:             forkliftv1beta1.PlanMap{Network: ref(maps.Network), Storage: ref(maps.Storage)},
			TargetNamespace: namespace,
			VMs:             []forkliftv1beta1.PlanVM{{Ref: forkliftv1beta1.Ref{ID: string(source.UID), Name: vmName, Namespace: src.namespace}}},
		},
	}
	if err := target.Create(ctx, plan); err != nil {
		t.Fatal(err)
	}
	labtest.WaitEvery(t, "Plan "+plan.Name+" to be Ready", 500*time.Millisecond, 2*time.Minute, func() (bool, string) {
		if !l.Get(t, away, plan.Namespace, plan.Name, plan) {
			t.Fatalf("Plan %s is gone", plan.Name)
		}
		ready := forkliftv1beta1.FindCondition(plan.Status.Conditions, forkliftv1beta1.ConditionReady)
		if ready != nil && ready.Reason == "NotReady" && plan.Status.ObservedGeneration == plan.Generation {
			t.Fatalf("Plan %s is not Ready: %s", plan.Name, conditionsText(plan.Status.Conditions))
		}
		return ready != nil && ready.Status == forkliftv1beta1.ConditionTrue && plan.Status.ObservedGeneration == plan.Generation,
			conditionsText(plan.Status.Conditions)
	})
	return plan
}

// follow polls the Migration, giving the injector each reading, until it
// ends; past toolkitOutcomeTimeout it is a hang.
func (tk *toolkitAttempts) follow(t *testing.T, m *forkliftv1beta1.Migration, inj *injector) *forkliftv1beta1.Migration {
	t.Helper()
	l := tk.vm.l
	var phases []string
	err := labtest.Poll(250*time.Millisecond, toolkitOutcomeTimeout, "the outcome", func() (bool, string) {
		if !l.Get(t, away, m.Namespace, m.Name, m) {
			t.Fatalf("Migration %s is gone", m.Name)
		}
		if len(m.Status.VMs) == 1 {
			if phase := m.Status.VMs[0].Phase; len(phases) == 0 || phases[len(phases)-1] != phase {
				phases = append(phases, phase)
			}
		}
		inj.see(t, m)
		return toolkit.MigrationEnded(m), describeMigration(m)
	})
	t.Logf("VM phases seen: %s", strings.Join(phases, " → "))
	if err != nil {
		t.Fatalf("Migration %s has no outcome within %s (a hang): %v", m.Name, toolkitOutcomeTimeout, err)
	}
	if inj.fault != noToolkitFault && inj.struck == "" {
		t.Fatalf("the Migration ended before the fault could strike: %s", describeMigration(m))
	}
	return m
}

// injector strikes its fault once, at the first reading of the Migration
// past the fault's point.
type injector struct {
	tk     *toolkitAttempts
	fault  toolkitFault
	src    where
	struck string // where it struck, once it did
}

func (inj *injector) see(t *testing.T, m *forkliftv1beta1.Migration) {
	t.Helper()
	if inj.fault == noToolkitFault || inj.struck != "" || len(m.Status.VMs) != 1 || toolkit.MigrationEnded(m) {
		return
	}
	l := inj.tk.vm.l
	task := toolkit.CurrentTaskName(m.Status.VMs[0])
	at := slices.Index(toolkit.Tasks, task)
	var sending *kubevirtv1.VirtualMachineInstanceMigration
	if at >= slices.Index(toolkit.Tasks, toolkit.TaskMigrate) {
		sending = l.VMIM(t, home, inj.src.namespace, toolkit.VMIMName(vmName, m.UID))
	}
	sent := int64(0)
	if sending != nil && sending.Status.MigrationState != nil && sending.Status.MigrationState.Progress != nil {
		sent = sending.Status.MigrationState.Progress.TransferredBytes
	}
	switch inj.fault {
	case killBeforeTransfer:
		if at < slices.Index(toolkit.Tasks, toolkit.TaskCreateReceiver) {
			return
		}
	case killMidTransfer, tokenRevoked:
		if task != toolkit.TaskMigrate || sent < transferred {
			return
		}
	case killAfterSwitchover:
		switched := sending != nil && (sending.Status.Phase == kubevirtv1.MigrationSucceeded ||
			sending.Status.MigrationState != nil && sending.Status.MigrationState.Completed)
		if !switched && task != toolkit.TaskCleanup {
			return
		}
	}
	inj.struck = fmt.Sprintf("in %s, %d MiB sent", task, sent>>20)
	if inj.fault == tokenRevoked {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: lab.ToolkitNamespace, Name: sourceTokenSecret}}
		if err := l.Client(t, home).Delete(context.Background(), secret); err != nil {
			t.Fatalf("revoke the token: delete Secret %s/%s on %s: %v", secret.Namespace, secret.Name, home, err)
		}
		t.Logf("deleted Secret %s/%s on %s (the Provider's token) %s", secret.Namespace, secret.Name, home, inj.struck)
		return
	}
	pid := l.ControllerPid(t, away, lab.ToolkitControllerName)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the toolkit (pid %d): %v", pid, err)
	}
	t.Logf("killed the toolkit (pid %d) %s", pid, inj.struck)
	labtest.WaitEvery(t, "the lab to restart the toolkit", 250*time.Millisecond, time.Minute, func() (bool, string) {
		now := l.ControllerPid(t, away, lab.ToolkitControllerName)
		return now != pid, fmt.Sprintf("pid still %d", now)
	})
}

// migrationOutcome is the Migration's final condition, with the VM's
// pipeline error and warnings (its conditions besides its outcome, which
// the Migration's repeats): the reason a user reads.
func migrationOutcome(m *forkliftv1beta1.Migration) string {
	outcome := "no outcome"
	for _, condType := range []string{forkliftv1beta1.ConditionSucceeded, forkliftv1beta1.ConditionFailed, forkliftv1beta1.ConditionCanceled} {
		if c := forkliftv1beta1.FindCondition(m.Status.Conditions, condType); c != nil && c.Status == forkliftv1beta1.ConditionTrue {
			outcome = condType
		}
	}
	for _, vm := range m.Status.VMs {
		if vm.Error != nil {
			outcome += fmt.Sprintf(": in %s: %s", vm.Error.Phase, strings.Join(vm.Error.Reasons, "; "))
		}
		for _, c := range vm.Conditions {
			if c.Status == forkliftv1beta1.ConditionTrue && c.Type != toolkit.VMOutcome(vm) {
				outcome += fmt.Sprintf(" (%s: %s)", c.Type, c.Message)
			}
		}
	}
	return outcome
}

// assertReason: a failed Migration says why, in its condition, the VM's
// pipeline error and the Plan's conditions; a token revoked names the
// token or the Provider.
func (tk *toolkitAttempts) assertReason(t *testing.T, m *forkliftv1beta1.Migration, plan *forkliftv1beta1.Plan, f toolkitFault) {
	t.Helper()
	l := tk.vm.l
	final := ""
	for _, condType := range []string{forkliftv1beta1.ConditionSucceeded, forkliftv1beta1.ConditionFailed, forkliftv1beta1.ConditionCanceled} {
		if c := forkliftv1beta1.FindCondition(m.Status.Conditions, condType); c != nil && c.Status == forkliftv1beta1.ConditionTrue {
			final = condType
		}
	}
	labtest.WaitEvery(t, "Plan "+plan.Name+" to mirror the outcome", 500*time.Millisecond, 30*time.Second, func() (bool, string) {
		l.Get(t, away, plan.Namespace, plan.Name, plan)
		c := forkliftv1beta1.FindCondition(plan.Status.Conditions, final)
		return c != nil && c.Status == forkliftv1beta1.ConditionTrue, conditionsText(plan.Status.Conditions)
	})
	if final != forkliftv1beta1.ConditionFailed {
		return
	}
	vm := m.Status.VMs[0]
	if vm.Error == nil || len(vm.Error.Reasons) == 0 || strings.TrimSpace(strings.Join(vm.Error.Reasons, "")) == "" {
		t.Errorf("Migration %s failed without a reason in the VM's pipeline: %s", m.Name, describeMigration(m))
		return
	}
	reason := strings.ToLower(strings.Join(vm.Error.Reasons, " "))
	if f == tokenRevoked && !strings.Contains(reason, "token") && !strings.Contains(reason, "provider") && !strings.Contains(reason, "unauthorized") {
		t.Errorf("Migration %s failed after the token was revoked, with a reason that does not say so: %s", m.Name, reason)
	}
}

// assertOutcomeMatches: the toolkit's outcome is where the guest is: a
// success moved it, a failure left it at the source unless the status
// says the target VM was kept because it runs the guest.
func (tk *toolkitAttempts) assertOutcomeMatches(t *testing.T, m *forkliftv1beta1.Migration, moved bool) {
	t.Helper()
	succeeded := forkliftv1beta1.FindCondition(m.Status.Conditions, forkliftv1beta1.ConditionSucceeded) != nil
	kept := ""
	for _, step := range toolkit.VMTasks(m.Status.VMs[0]) {
		if k := step.Annotations[toolkit.AnnotationKeptTargetVM]; k != "" {
			kept = k
		}
	}
	switch {
	case succeeded && !moved:
		t.Errorf("the toolkit says Succeeded, but the guest did not move: %s", describeMigration(m))
	case !succeeded && moved && kept == "":
		t.Errorf("the toolkit says the migration did not succeed, but the guest runs on %s and the status does not say so: %s", away, describeMigration(m))
	case !succeeded && moved:
		t.Errorf("the toolkit says the migration failed, but the guest moved (%s): a user retrying would find no guest on %s: %s", kept, home, describeMigration(m))
	}
}

// leftovers: of what the migration made (by its label), no VMIM on either
// side, and after a failure nothing on the target; what is left and not
// named in the VM's status fails the test. It returns what is left.
func (tk *toolkitAttempts) leftovers(t *testing.T, m *forkliftv1beta1.Migration, src, dst where, moved bool) string {
	t.Helper()
	l := tk.vm.l
	labels := client.MatchingLabels{toolkit.LabelMigration: string(m.UID)}
	type place struct {
		cluster, namespace, kind string
		list                     client.ObjectList
	}
	places := []place{
		{home, src.namespace, "VMIM", &kubevirtv1.VirtualMachineInstanceMigrationList{}},
		{away, dst.namespace, "VMIM", &kubevirtv1.VirtualMachineInstanceMigrationList{}},
	}
	if !moved {
		places = append(places, place{away, dst.namespace, "VM", &kubevirtv1.VirtualMachineList{}}, place{away, dst.namespace, "DataVolume", &cdiv1beta1.DataVolumeList{}})
	}
	var left, names []string
	_ = labtest.Poll(250*time.Millisecond, 30*time.Second, "nothing of the migration left", func() (bool, string) {
		left, names = nil, nil
		for _, p := range places {
			if err := l.Client(t, p.cluster).List(context.Background(), p.list, client.InNamespace(p.namespace), labels); err != nil {
				t.Fatal(err)
			}
			_ = meta.EachListItem(p.list, func(obj runtime.Object) error {
				o := obj.(client.Object)
				names = append(names, o.GetNamespace()+"/"+o.GetName())
				left = append(left, fmt.Sprintf("%s %s/%s on %s", p.kind, o.GetNamespace(), o.GetName(), p.cluster))
				return nil
			})
		}
		return len(left) == 0, strings.Join(left, ", ")
	})
	said := describeMigration(m)
	for i, name := range names {
		if !strings.Contains(said, name) {
			t.Errorf("left behind by Migration %s and not named in its status: %s (status: %s)", m.Name, left[i], said)
		}
	}
	return strings.Join(left, ", ")
}

// describeMigration is the Migration's conditions and its VM's phase,
// running or failed step, error and conditions.
func describeMigration(m *forkliftv1beta1.Migration) string {
	parts := []string{conditionsText(m.Status.Conditions)}
	for _, vm := range m.Status.VMs {
		part := "VM " + vm.Name + ": " + vm.Phase
		for _, s := range toolkit.VMTasks(vm) {
			if s.Phase == toolkit.PhaseRunning || s.Phase == toolkit.PhaseFailed || s.Annotations[toolkit.AnnotationKeptTargetVM] != "" {
				part += fmt.Sprintf(" [%s %s: %s %s]", s.Name, s.Phase, s.Reason, s.Annotations[toolkit.AnnotationKeptTargetVM])
			}
		}
		if vm.Error != nil {
			part += " error: " + strings.Join(vm.Error.Reasons, "; ")
		}
		if len(vm.Conditions) > 0 {
			part += " " + conditionsText(vm.Conditions)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " | ")
}

func conditionsText(conditions []forkliftv1beta1.Condition) string {
	var parts []string
	for _, c := range conditions {
		parts = append(parts, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}
