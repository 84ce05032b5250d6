package cli

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/connect"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/toolkit"
)

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {64 << 20, "64.0 MiB"}, {3 << 29, "1.5 GiB"}, {5 << 40, "5.0 TiB"}} {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	if got := formatRate(35.2 * (1 << 20)); got != "35.2 MiB/s" {
		t.Errorf("formatRate = %q", got)
	}
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{850 * time.Millisecond, "850ms"}, {12 * time.Second, "12s"}, {65 * time.Second, "1m05s"}, {62*time.Minute + 10*time.Second, "1h02m"}} {
		if got := formatDuration(tc.d); got != tc.want {
			t.Errorf("formatDuration(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := bar(0.5, 12); got != "[#####.....]" {
		t.Errorf("bar(0.5) = %q", got)
	}
	if got := bar(2, 6); got != "[####]" {
		t.Errorf("bar(2) = %q", got)
	}
	if got := bar(-1, 6); got != "[....]" {
		t.Errorf("bar(-1) = %q", got)
	}
}

func TestETA(t *testing.T) {
	if d, ok := eta(100<<20, 50<<20); !ok || d != 2*time.Second {
		t.Fatalf("eta = %s %v", d, ok)
	}
	if _, ok := eta(-1, 10); ok {
		t.Fatal("unknown remaining has no ETA")
	}
	if _, ok := eta(0, 10); ok {
		t.Fatal("nothing remaining: no ETA, the switchover is next")
	}
	if got := formatETA(300 * time.Millisecond); got != "<1s" {
		t.Fatalf("formatETA = %q", got)
	}
	if _, ok := eta(10, 0); ok {
		t.Fatal("no rate has no ETA")
	}
}

func TestRateMeter(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(1000, 0)
	if r := m.update(t0, 0); r != 0 {
		t.Fatalf("first reading: %f", r)
	}
	if r := m.update(t0.Add(100*time.Millisecond), 1<<20); r != 0 {
		t.Fatalf("a reading too soon keeps the estimate: %f", r)
	}
	if r := m.update(t0.Add(time.Second), 10<<20); r != 10<<20 {
		t.Fatalf("10 MiB in 1 s: %f", r)
	}
	if r := m.update(t0.Add(2*time.Second), 40<<20); r != 20<<20 {
		t.Fatalf("average of 10 and 30 MiB/s: %f", r)
	}
	// The same count again shortly after: the status is not rewritten
	// every poll, so this is no evidence of a stall.
	if r := m.update(t0.Add(2500*time.Millisecond), 40<<20); r != 20<<20 {
		t.Fatalf("an unchanged reading keeps the estimate: %f", r)
	}
	// Fewer bytes than before: a new transfer; start over.
	if r := m.update(t0.Add(3*time.Second), 1<<20); r != 0 {
		t.Fatalf("a reset: %f", r)
	}
}

func migratingStatus() *forkliftv1beta1.VMStatus { return statusInTask(migrateStep) }

// statusInTask is a VM's status as the toolkit writes it with every task
// before task Completed, task Running (Migrate with 96 of 128 MiB sent),
// the rest Pending.
func statusInTask(current string) *forkliftv1beta1.VMStatus {
	started := metav1.NewTime(time.Now().Add(-10 * time.Second))
	status := &forkliftv1beta1.VMStatus{
		Ref:      forkliftv1beta1.Ref{ID: "uid-1", Name: "demo-vm", Namespace: "default"},
		Timed:    forkliftv1beta1.Timed{Started: &started},
		Phase:    toolkit.PhaseWaitForStateTransfer,
		Pipeline: toolkit.NewPipeline(),
	}
	phase := "Completed"
	for i := range status.Pipeline {
		step := &status.Pipeline[i]
		for j := range step.Tasks {
			task := &step.Tasks[j]
			task.Phase = phase
			if task.Name == current {
				task.Phase, phase = "Running", "Pending"
			}
			if task.Name == migrateStep && task.Phase != "Pending" {
				task.Progress = forkliftv1beta1.Progress{Completed: 96 << 20, Total: 128 << 20}
				task.Annotations = map[string]string{annotationRemaining: "33554432", annotationIteration: "2", annotationDirtyRate: "1048576"}
			}
		}
	}
	return status
}

// migrateTask is status's Migrate task.
func migrateTask(status *forkliftv1beta1.VMStatus) *forkliftv1beta1.Task {
	return toolkit.FindVMTask(*status, migrateStep)
}

func TestViewOf(t *testing.T) {
	v := viewOf("default/demo-vm", nil)
	if v.Step != "Pending" || v.Ended {
		t.Fatalf("not started: %+v", v)
	}
	status := migratingStatus()
	v = viewOf("default/demo-vm", status)
	if v.Step != "Migrate" || v.StepIndex != slices.Index(pipelineSteps, "Migrate")+1 || v.StepCount != len(pipelineSteps) || v.Transferred != 96<<20 || v.Total != 128<<20 || v.Remaining != 32<<20 || v.Iteration != "2" || v.DowntimeMs != -1 {
		t.Fatalf("migrating: %+v", v)
	}
	if f := v.fraction(); f != 0.75 {
		t.Fatalf("fraction %f, want 0.75 from the remaining bytes", f)
	}
	v.Rate = 16 << 20
	if got := plainLine(v); got != "default/demo-vm: Migrate (12/13): 96.0 MiB of 128.0 MiB, 16.0 MiB/s, ETA 2s, pass 2 (75%)" {
		t.Fatalf("plain line: %q", got)
	}
	line := barLine(v, 120, 15)
	for _, want := range []string{"Migrate (12/13)", "[#######################.......]  75% 96.0/128.0 MiB", "16.0 MiB/s", "ETA 2s"} {
		if !strings.Contains(line, want) {
			t.Fatalf("bar line lacks %q: %q", want, line)
		}
	}
	// On 80 columns the bar shrinks and the figures stay whole.
	if line := barLine(v, 79, 15); len(line) > 79 || !strings.Contains(line, "]  75%") || !strings.HasSuffix(line, "ETA 2s") {
		t.Fatalf("80 columns: %q", line)
	}
	// Too narrow for a bar: figures only, cut at the edge.
	if line := barLine(v, 40, 15); len(line) != 40 || strings.Contains(line, "[") {
		t.Fatalf("40 columns: %q", line)
	}
	if got := formatBytesOf(512, 2048); got != "512 B/2.0 KiB" {
		t.Fatalf("formatBytesOf across units: %q", got)
	}

	queued := statusInTask(migrateStep)
	migrateTask(queued).Reason = "waiting for a slot in the source cluster: 5 migrations are in progress in the cluster"
	migrateTask(queued).Annotations[toolkit.AnnotationSlotWaitSince] = "2026-12-06T00:00:00Z"
	if got := plainLine(viewOf("default/demo-vm", queued)); !strings.HasSuffix(got, ": waiting for a slot in the source cluster: 5 migrations are in progress in the cluster") {
		t.Fatalf("queued: %q", got)
	}

	completed := metav1.NewTime(status.Started.Add(12 * time.Second))
	status.Completed, status.Phase = &completed, "Completed"
	migrateTask(status).Annotations[annotationDowntime] = "25"
	migrateTask(status).Progress.Completed = 140 << 20
	v = viewOf("default/demo-vm", status)
	if !v.Ended || v.Result != resultSucceeded || v.DowntimeMs != 25 {
		t.Fatalf("completed: %+v", v)
	}
	if got := plainLine(v); got != "default/demo-vm: Succeeded in 12s, 140.0 MiB sent, downtime 25 ms" {
		t.Fatalf("end line: %q", got)
	}

	status.Phase, status.Error = "Failed", &forkliftv1beta1.Error{Phase: "WaitForReceiver", Reasons: []string{"the receiver VMI did not reach WaitingForSync within 2m"}}
	v = viewOf("default/demo-vm", status)
	if v.Result != resultFailed || !strings.Contains(plainLine(v), "WaitForReceiver: the receiver VMI") {
		t.Fatalf("failed: %+v %q", v, plainLine(v))
	}
}

func TestPlainDueThrottles(t *testing.T) {
	now := time.Unix(1000, 0)
	v := vmView{Name: "a", Step: "Migrate", Transferred: 10}
	if !plainDue(printed{}, v, now) {
		t.Fatal("the first state is printed")
	}
	last := printed{at: now, key: "Migrate/", bytes: 10}
	if plainDue(last, v, now.Add(5*time.Second)) {
		t.Fatal("nothing new: no line")
	}
	v.Transferred = 20
	if plainDue(last, v, now.Add(time.Second)) {
		t.Fatal("new bytes within the throttle: no line")
	}
	if !plainDue(last, v, now.Add(plainThrottle)) {
		t.Fatal("new bytes after the throttle: a line")
	}
	v.Step, v.Result = "Completed", resultSucceeded
	if !plainDue(last, v, now.Add(time.Millisecond)) {
		t.Fatal("the end is printed at once")
	}
}

func TestRendererTerminalRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	r := &renderer{out: &out, terminal: true, width: func() int { return 60 }, last: map[string]printed{}}
	views := []vmView{{Name: "default/a", Step: "CreateReceiver", StepIndex: 4, StepCount: 9}, {Name: "default/b", Step: "Pending"}}
	r.update(views, time.Now())
	if strings.Contains(out.String(), "\x1b[2A") || strings.Count(out.String(), "\n") != 2 {
		t.Fatalf("first draw: %q", out.String())
	}
	out.Reset()
	r.update(views, time.Now())
	if out.Len() != 0 {
		t.Fatalf("an unchanged block is not drawn again: %q", out.String())
	}
	views[1].Step = "Initialize"
	r.update(views, time.Now())
	if !strings.HasPrefix(out.String(), "\x1b[2A") {
		t.Fatalf("a redraw goes back up over the block: %q", out.String())
	}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		visible := strings.TrimPrefix(strings.TrimPrefix(line, "\x1b[2A"), "\r\x1b[2K")
		if len(visible) > 59 {
			t.Fatalf("a line wider than the terminal: %q", visible)
		}
	}
	out.Reset()
	r.message("cancel the migration? [y/N] ")
	if out.String() != "\x1b[2A\x1b[Jcancel the migration? [y/N] " {
		t.Fatalf("a message clears the block first: %q", out.String())
	}
	out.Reset()
	r.update(views, time.Now())
	if strings.Contains(out.String(), "\x1b[2A") {
		t.Fatalf("after a message the block is drawn anew below it: %q", out.String())
	}
}

func TestOnInterrupt(t *testing.T) {
	for _, tc := range []struct {
		state       interruptState
		interactive bool
		sig         os.Signal
		next        interruptState
		action      interruptAction
	}{
		{following, true, os.Interrupt, prompting, askToCancel},
		{following, false, os.Interrupt, canceling, cancelNow},
		{prompting, true, os.Interrupt, prompting, stopWatching},
		{canceling, true, os.Interrupt, canceling, stopWatching},
		{canceling, false, os.Interrupt, canceling, stopWatching},
		// A CI job's timeout or a closed session never cancels the move.
		{following, false, syscall.SIGTERM, following, stopWatching},
		{following, true, syscall.SIGTERM, following, stopWatching},
		{following, false, syscall.SIGHUP, following, stopWatching},
	} {
		next, action := onInterrupt(tc.state, tc.interactive, tc.sig)
		if next != tc.next || action != tc.action {
			t.Errorf("onInterrupt(%d, %v, %v) = %d, %d; want %d, %d", tc.state, tc.interactive, tc.sig, next, action, tc.next, tc.action)
		}
	}
	for answer, want := range map[string]bool{"y\n": true, "YES\n": true, " y ": true, "\n": false, "n\n": false, "": false, "yep": false} {
		if isYes(answer) != want {
			t.Errorf("isYes(%q) != %v", answer, want)
		}
	}
}

func TestResults(t *testing.T) {
	vms := []forkliftv1beta1.PlanVM{{Ref: forkliftv1beta1.Ref{ID: "uid-1", Name: "demo-vm", Namespace: "default"}}, {Ref: forkliftv1beta1.Ref{ID: "uid-2", Name: "other", Namespace: "default"}}}
	done := migratingStatus()
	completed := metav1.NewTime(done.Started.Add(3 * time.Second))
	done.Phase, done.Completed = "Completed", &completed
	migrateTask(done).Annotations[annotationDowntime] = "31"
	m := &forkliftv1beta1.Migration{Status: forkliftv1beta1.MigrationStatus{VMs: []forkliftv1beta1.VMStatus{*done}}}
	if ended, _ := migrationEnded(m, vms); ended {
		t.Fatal("one VM still has no status")
	}
	results := vmResults(vms, m.Status.VMs)
	if results[0].Result != resultSucceeded || *results[0].DowntimeMs != 31 || results[0].DurationSeconds != 3 || results[0].Bytes != 96<<20 {
		t.Fatalf("first VM: %+v", results[0])
	}
	if results[1].Result != resultNotStarted || overallResult(results) != resultNotStarted {
		t.Fatalf("second VM: %+v, overall %s", results[1], overallResult(results))
	}
	other := forkliftv1beta1.VMStatus{Ref: vms[1].Ref, Phase: "Canceled", Timed: forkliftv1beta1.Timed{Completed: &completed}}
	m.Status.VMs = append(m.Status.VMs, other)
	if ended, _ := migrationEnded(m, vms); !ended {
		t.Fatal("every VM ended")
	}
	if got := overallResult(vmResults(vms, m.Status.VMs)); got != resultCanceled {
		t.Fatalf("overall %s, want Canceled", got)
	}
	m.Status.VMs[1].Phase = "Completed"
	if got := overallResult(vmResults(vms, m.Status.VMs)); got != resultSucceeded {
		t.Fatalf("overall %s, want Succeeded", got)
	}
	m.Status.VMs = nil
	m.Status.Conditions = []forkliftv1beta1.Condition{{Type: "Failed", Status: "True"}}
	if ended, kind := migrationEnded(m, vms); !ended || kind != "Failed" {
		t.Fatal("a Failed condition ends the migration")
	}
}

func TestPlanState(t *testing.T) {
	plan := &forkliftv1beta1.Plan{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	if ready, problems, waiting := planState(plan); ready || problems != nil || waiting == "" {
		t.Fatal("no status: waiting")
	}
	plan.Status.ObservedGeneration = 1
	plan.Status.Conditions = []forkliftv1beta1.Condition{{Type: "VMRunning", Status: "True", Category: "Critical", Message: "old"}}
	if _, problems, _ := planState(plan); problems != nil {
		t.Fatal("conditions of an older generation are not the answer")
	}
	plan.Status.ObservedGeneration = 2
	plan.Status.Conditions = []forkliftv1beta1.Condition{
		{Type: "Ready", Status: "False", Category: "Required"},
		{Type: "VMRunning", Status: "True", Category: "Critical", Message: "VM default/demo-vm is not running:\n  start it"},
		{Type: "SomeAdvice", Status: "True", Category: "Advisory"},
	}
	ready, problems, _ := planState(plan)
	if ready || len(problems) != 1 || problems[0].Type != "VMRunning" || problems[0].Message != "VM default/demo-vm is not running: start it" {
		t.Fatalf("problems: %+v", problems)
	}
	plan.Status.Conditions = []forkliftv1beta1.Condition{{Type: "Ready", Status: "True", Category: "Required"}}
	if ready, _, _ := planState(plan); !ready {
		t.Fatal("Ready True")
	}
}

func TestNewPlan(t *testing.T) {
	provider := &forkliftv1beta1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "ocp7", Namespace: "openshift-mtv"}}
	maps := &connect.Maps{
		Network: &forkliftv1beta1.NetworkMap{ObjectMeta: metav1.ObjectMeta{Name: "ocp7-default", Namespace: "openshift-mtv"}},
		Storage: &forkliftv1beta1.StorageMap{ObjectMeta: metav1.ObjectMeta{Name: "ocp7-default", Namespace: "openshift-mtv"}},
	}
	vms := []kubevirtv1.VirtualMachine{{ObjectMeta: metav1.ObjectMeta{Name: "demo-vm", Namespace: "default", UID: types.UID("uid-1")}}}
	plan := newPlan("ocp7", provider, maps, vms, "apps")
	if plan.Namespace != "openshift-mtv" || plan.GenerateName != "ocp7-demo-vm-" || plan.Spec.Type != forkliftv1beta1.MigrationLive || plan.Spec.TargetNamespace != "apps" {
		t.Fatalf("plan: %+v", plan)
	}
	if vm := plan.Spec.VMs[0]; vm.ID != "uid-1" || vm.Name != "demo-vm" || vm.Namespace != "default" {
		t.Fatalf("plan VM: %+v", vm)
	}
	if p := plan.Spec.Provider; p.Source.Name != "ocp7" || p.Destination.Name != "host" || plan.Spec.Map.Storage.Name != "ocp7-default" {
		t.Fatalf("plan refs: %+v %+v", p, plan.Spec.Map)
	}
}

// follow on a fake cluster: a VM goes through its steps and ends; without
// a terminal an interrupt cancels the VM through spec.cancel.
func TestFollow(t *testing.T) {
	vms := []forkliftv1beta1.PlanVM{{Ref: forkliftv1beta1.Ref{ID: "uid-1", Name: "demo-vm", Namespace: "default"}}}
	migration := &forkliftv1beta1.Migration{ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "openshift-mtv"}}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(migration).Build()
	var out syncBuffer
	interrupts := make(chan os.Signal, 1)
	f := &follower{c: c, key: client.ObjectKeyFromObject(migration), vms: vms, render: newRenderer(&out), poll: 10 * time.Millisecond, timeout: 10 * time.Second, interrupts: interrupts}

	setStatus := func(status forkliftv1beta1.VMStatus) {
		t.Helper()
		var m forkliftv1beta1.Migration
		if err := c.Get(context.Background(), f.key, &m); err != nil {
			t.Error(err)
			return
		}
		m.Status.VMs = []forkliftv1beta1.VMStatus{status}
		if err := c.Update(context.Background(), &m); err != nil {
			t.Error(err)
		}
	}
	go func() {
		setStatus(*statusInTask("CreateReceiver"))
		time.Sleep(50 * time.Millisecond)
		status := migratingStatus()
		setStatus(*status)
		time.Sleep(50 * time.Millisecond)
		interrupts <- os.Interrupt
		// The toolkit sees spec.cancel and cancels.
		for {
			var m forkliftv1beta1.Migration
			if err := c.Get(context.Background(), f.key, &m); err == nil && m.Spec.Canceled(vms[0].Ref) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		canceled := metav1.Now()
		status.Phase, status.Completed = "Canceled", &canceled
		setStatus(*status)
	}()
	statuses, err := f.follow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	results := vmResults(vms, statuses)
	if results[0].Result != resultCanceled {
		t.Fatalf("results: %+v\n%s", results, out.String())
	}
	log := out.String()
	for _, want := range []string{"default/demo-vm: CreateReceiver (8/13)", "default/demo-vm: Migrate (12/13): 96.0 MiB of 128.0 MiB", "canceling the migration of default/demo-vm", "default/demo-vm: Canceled"} {
		if !strings.Contains(log, want) {
			t.Fatalf("output lacks %q:\n%s", want, log)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the follower and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A VM of Forklift (or of cclm's toolkit) ends in phase Completed whatever
// happened; its condition says what did: a canceled VM is never reported
// as migrated.
func TestResultFromTheOutcomeCondition(t *testing.T) {
	for _, tc := range []struct {
		condition string
		want      string
	}{
		{forkliftv1beta1.ConditionSucceeded, resultSucceeded},
		{forkliftv1beta1.ConditionCanceled, resultCanceled},
		{forkliftv1beta1.ConditionFailed, resultFailed},
	} {
		status := migratingStatus()
		completed := metav1.NewTime(status.Started.Add(time.Second))
		status.Phase, status.Completed = "Completed", &completed
		status.Conditions = []forkliftv1beta1.Condition{{Type: tc.condition, Status: forkliftv1beta1.ConditionTrue}}
		v := viewOf("default/demo-vm", status)
		if !v.Ended || v.Result != tc.want {
			t.Errorf("phase Completed with condition %s: ended %v, result %q, want %q", tc.condition, v.Ended, v.Result, tc.want)
		}
	}
}
