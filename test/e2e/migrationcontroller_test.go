package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/migrationcontroller"
	"github.com/cclm-io/cclm/internal/scheduling"
	"github.com/cclm-io/cclm/internal/scheme"
)

// The migration controller on a real control plane, without node agents:
// the test plays them, writing what they would into the VMIs' status.
// Nodes mc-a and mc-b are ready; mc-c is not. The KubeVirt CR allows one
// outbound migration per node.
const (
	mcNamespace   = "mc"
	mcNodeA       = "mc-a"
	mcNodeB       = "mc-b"
	mcNodeDown    = "mc-c"
	mcTargetReady = 5 * time.Second // PreparingTarget's deadline here
	mcAbort       = 20 * time.Second
	mcSync        = 5 * time.Second // a decentralized migration's wait for its peer
)

type mcEnv struct {
	client    client.WithWatch
	clientset kubernetes.Interface
}

func TestMigrationController(t *testing.T) {
	env := startMigrationController(t)
	t.Run("UnansweredSendToFailsAtTheSyncDeadline", env.testUnansweredSendTo)
	t.Run("PhasesFollowTheNodeAgentsWithinLimits", env.testLifecycleAndLimits)
	t.Run("StuckTargetFailsAtItsDeadline", env.testStuckTarget)
}

// startMigrationController starts the shared cluster "migrationcontroller"
// with KubeVirt, the nodes, and the controller in-process as a
// ServiceAccount holding exactly migrationcontroller.PolicyRules, so that
// those rules are what is tested.
func startMigrationController(t *testing.T) *mcEnv {
	_, admin := kubeVirtCluster(t, "migrationcontroller")
	ctx := context.Background()
	kubeconfig, err := install.InstallComponent(ctx, admin, virtNamespace, install.Component{
		ServiceAccount: "kubevirt-controller", Rules: migrationcontroller.PolicyRules,
	})
	if err != nil {
		t.Fatal(err)
	}
	asController, err := clientcmd.NewDefaultClientConfig(*kubeconfig, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	env := &mcEnv{clientset: kubernetes.NewForConfigOrDie(admin)}
	if env.client, err = client.NewWithWatch(admin, client.Options{Scheme: scheme.Scheme}); err != nil {
		t.Fatal(err)
	}
	env.limitOutboundMigrations(t, 1)
	env.createNode(t, mcNodeA, true)
	env.createNode(t, mcNodeB, true)
	env.createNode(t, mcNodeDown, false)
	if err := env.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: mcNamespace}}); err != nil {
		t.Fatal(err)
	}
	env.runController(t, asController)
	return env
}

func (e *mcEnv) runController(t *testing.T, restConfig *rest.Config) {
	logger, silence := testLogger(t)
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme.Scheme, Logger: logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = migrationcontroller.New(mgr, migrationcontroller.Options{
		Namespace: virtNamespace,
		Timeouts:  migrationcontroller.Timeouts{TargetReady: mcTargetReady, Abort: mcAbort, Sync: mcSync},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(runCtx) }()
	t.Cleanup(func() {
		defer silence()
		stop()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("migration controller ended with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("migration controller did not stop within 30s of its context's cancellation")
		}
	})
}

// limitOutboundMigrations sets parallelOutboundMigrationsPerNode in the
// KubeVirt CR.
func (e *mcEnv) limitOutboundMigrations(t *testing.T, n uint32) {
	kv := &kubevirtv1.KubeVirt{}
	if err := e.client.Get(context.Background(), client.ObjectKey{Namespace: virtNamespace, Name: install.KubeVirtName}, kv); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(kv.DeepCopy())
	kv.Spec.Configuration.MigrationConfiguration = &kubevirtv1.MigrationConfiguration{ParallelOutboundMigrationsPerNode: &n}
	if err := e.client.Patch(context.Background(), kv, patch); err != nil {
		t.Fatal(err)
	}
}

// createNode registers a node as a node agent would: schedulable, 8Gi of
// memory and 20Gi of storage, Ready or not.
func (e *mcEnv) createNode(t *testing.T, name string, ready bool) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		scheduling.SchedulableLabel: "true", "kubernetes.io/hostname": name,
	}}}
	if err := e.client.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("4"),
		corev1.ResourceMemory:           resource.MustParse("8Gi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("20Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
	}
	readiness := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}
	if !ready {
		readiness = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown"}
	}
	readiness.LastHeartbeatTime, readiness.LastTransitionTime = metav1.Now(), metav1.Now()
	node.Status = corev1.NodeStatus{Capacity: resources, Allocatable: resources, Conditions: []corev1.NodeCondition{readiness}}
	if err := e.client.Status().Update(context.Background(), node); err != nil {
		t.Fatal(err)
	}
}

// runningVMI creates a VMI of 64Mi and reports it, as its node agent
// would, Running and LiveMigratable on node.
func (e *mcEnv) runningVMI(t *testing.T, name, node string) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	memory := resource.MustParse("64Mi")
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mcNamespace, Labels: map[string]string{kubevirtv1.NodeNameLabel: node}},
		Spec:       kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Memory: &kubevirtv1.Memory{Guest: &memory}}},
	}
	if err := e.client.Create(context.Background(), vmi); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	vmi.Status = kubevirtv1.VirtualMachineInstanceStatus{
		Phase: kubevirtv1.Running, NodeName: node,
		Conditions: []kubevirtv1.VirtualMachineInstanceCondition{
			{Type: kubevirtv1.VirtualMachineInstanceReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: kubevirtv1.VirtualMachineInstanceIsMigratable, Status: corev1.ConditionTrue, Reason: "Migratable", LastTransitionTime: now},
		},
	}
	if err := e.client.Status().Update(context.Background(), vmi); err != nil {
		t.Fatal(err)
	}
	return vmi
}

// agentWrites plays a node agent: it changes the VMI's status with
// optimistic concurrency, as the agents do.
func (e *mcEnv) agentWrites(t *testing.T, vmiName string, change func(*kubevirtv1.VirtualMachineInstanceStatus)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vmi := &kubevirtv1.VirtualMachineInstance{}
		if err := e.client.Get(context.Background(), client.ObjectKey{Namespace: mcNamespace, Name: vmiName}, vmi); err != nil {
			return err
		}
		change(&vmi.Status)
		return e.client.Status().Update(context.Background(), vmi)
	})
	if err != nil {
		t.Fatalf("write VMI %s's status as its node agent: %v", vmiName, err)
	}
}

func targetListens(status *kubevirtv1.VirtualMachineInstanceStatus) {
	now := metav1.Now()
	status.MigrationState.TargetNodeAddress = "192.168.201.2"
	status.MigrationState.TargetDirectMigrationNodePorts = map[string]int{"49152": 0}
	status.MigrationState.TargetNodeDomainDetected = true
	status.MigrationState.TargetNodeDomainReadyTimestamp = &now
}

func sourceSends(remaining int64) func(*kubevirtv1.VirtualMachineInstanceStatus) {
	return func(status *kubevirtv1.VirtualMachineInstanceStatus) {
		now := metav1.Now()
		status.MigrationState.Progress = &kubevirtv1.MigrationProgress{
			TransferredBytes: 32 << 20, RemainingBytes: remaining, TotalBytes: 64 << 20, Iteration: 1, UpdatedTimestamp: &now,
		}
	}
}

func (e *mcEnv) createMigration(t *testing.T, name, vmiName string, options ...func(*kubevirtv1.VirtualMachineInstanceMigration)) *kubevirtv1.VirtualMachineInstanceMigration {
	t.Helper()
	m := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mcNamespace},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: vmiName},
	}
	for _, option := range options {
		option(m)
	}
	if err := e.client.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *mcEnv) migration(t *testing.T, name string) *kubevirtv1.VirtualMachineInstanceMigration {
	t.Helper()
	m := &kubevirtv1.VirtualMachineInstanceMigration{}
	err := e.client.Get(context.Background(), client.ObjectKey{Namespace: mcNamespace, Name: name}, m)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *mcEnv) vmi(t *testing.T, name string) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := e.client.Get(context.Background(), client.ObjectKey{Namespace: mcNamespace, Name: name}, vmi); err != nil {
		t.Fatal(err)
	}
	return vmi
}

func (e *mcEnv) waitFor(t *testing.T, what string, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	err := kube.Poll(context.Background(), 50*time.Millisecond, timeout, what, func(context.Context) (bool, string, error) {
		done, state := check()
		return done, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitPhase waits for the migration to reach phase and returns it.
func (e *mcEnv) waitPhase(t *testing.T, name string, phase kubevirtv1.VirtualMachineInstanceMigrationPhase) *kubevirtv1.VirtualMachineInstanceMigration {
	t.Helper()
	var m *kubevirtv1.VirtualMachineInstanceMigration
	e.waitFor(t, fmt.Sprintf("migration %s to be %s", name, phase), 30*time.Second, func() (bool, string) {
		m = e.migration(t, name)
		if m == nil {
			return false, "gone"
		}
		return m.Status.Phase == phase, describeMigration(m)
	})
	return m
}

func describeMigration(m *kubevirtv1.VirtualMachineInstanceMigration) string {
	var conditions []string
	for _, c := range m.Status.Conditions {
		conditions = append(conditions, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return fmt.Sprintf("phase %q, finalizers %v, conditions [%s]", m.Status.Phase, m.Finalizers, strings.Join(conditions, "; "))
}

func migrationCondition(m *kubevirtv1.VirtualMachineInstanceMigration, kind kubevirtv1.VirtualMachineInstanceMigrationConditionType) *kubevirtv1.VirtualMachineInstanceMigrationCondition {
	for i := range m.Status.Conditions {
		if m.Status.Conditions[i].Type == kind {
			return &m.Status.Conditions[i]
		}
	}
	return nil
}

// eventReasons are the reasons of the events about a migration, oldest
// first.
func (e *mcEnv) eventReasons(t *testing.T, name string) []string {
	t.Helper()
	events, err := e.clientset.CoreV1().Events(mcNamespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=VirtualMachineInstanceMigration,involvedObject.name=" + name,
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(events.Items, func(a, b corev1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	var reasons []string
	for _, event := range events.Items {
		reasons = append(reasons, event.Reason)
	}
	return reasons
}

func eventTime(e corev1.Event) time.Time {
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// A VMIM with sendTo whose peer never answers (no sync controller runs
// here) goes Synchronizing, hands the VMI its source half, and fails at
// the sync deadline with a reason naming the peer, instead of hanging as
// upstream's does; the VMI runs on.
func (e *mcEnv) testUnansweredSendTo(t *testing.T) {
	const connectURL = "192.168.201.129:9185"
	e.runningVMI(t, "outgoing", mcNodeA)
	e.createMigration(t, "outgoing-source", "outgoing", func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		m.Spec.SendTo = &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: "outgoing-1", ConnectURL: connectURL}
	})
	var m *kubevirtv1.VirtualMachineInstanceMigration
	e.waitFor(t, "the unanswered migration to fail", mcSync+30*time.Second, func() (bool, string) {
		m = e.migration(t, "outgoing-source")
		return m.IsFinal(), describeMigration(m)
	})
	if !passedThrough(m, kubevirtv1.MigrationSynchronizing) || m.Status.Phase != kubevirtv1.MigrationFailed {
		t.Fatalf("want Synchronizing then Failed: %s", describeMigration(m))
	}
	state := e.vmi(t, "outgoing").Status.MigrationState
	switch {
	case !state.IsDecentralizedSource() || state.MigrationUID != m.UID:
		t.Fatalf("the VMI's migrationState is not this migration's source half: %+v", state)
	case !state.Failed || !strings.Contains(state.FailureReason, connectURL):
		t.Fatalf("the VMI's migrationState should be failed with a reason naming %s: %+v", connectURL, state)
	case state.TargetNodeAddress != "":
		t.Fatalf("no target ever answered, yet the state has a target address: %+v", state)
	}
	if took := state.EndTimestamp.Sub(state.StartTimestamp.Time); took < mcSync-time.Second || took > mcSync+5*time.Second {
		t.Errorf("failed %s after the start, want about %s", took, mcSync)
	}
	if phase := e.vmi(t, "outgoing").Status.Phase; phase != kubevirtv1.Running {
		t.Errorf("the VMI is %s after its migration failed, want Running", phase)
	}
	if err := e.client.Delete(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the migration to be deleted", 30*time.Second, func() (bool, string) {
		left := e.migration(t, "outgoing-source")
		return left == nil, describeMigrationOrNil(left)
	})
}

func passedThrough(m *kubevirtv1.VirtualMachineInstanceMigration, phase kubevirtv1.VirtualMachineInstanceMigrationPhase) bool {
	for _, stamp := range m.Status.PhaseTransitionTimestamps {
		if stamp.Phase == phase {
			return true
		}
	}
	return false
}

func describeMigrationOrNil(m *kubevirtv1.VirtualMachineInstanceMigration) string {
	if m == nil {
		return "gone"
	}
	return describeMigration(m)
}

// One migration goes through every phase as the (simulated) agents
// report; meanwhile a second one of the same VMI fails and one of another
// VMI on the same node waits for the outbound slot, then takes it, and is
// cancelled by deletion once running.
func (e *mcEnv) testLifecycleAndLimits(t *testing.T) {
	e.runningVMI(t, "web", mcNodeA)
	created := e.createMigration(t, "web-1", "web")

	first := e.waitPhase(t, "web-1", kubevirtv1.MigrationPreparingTarget)
	state := e.vmi(t, "web").Status.MigrationState
	switch {
	case state == nil:
		t.Fatal("the VMI has no migrationState after Scheduled")
	case state.MigrationUID != first.UID || state.SourceNode != mcNodeA || state.TargetNode != mcNodeB ||
		state.StartTimestamp == nil || state.Mode != kubevirtv1.MigrationPreCopy || state.Completed || state.Failed:
		t.Errorf("migrationState %+v: want this migration's, %s to %s, started, pre-copy", state, mcNodeA, mcNodeB)
	case state.MigrationConfiguration == nil || ptr.Deref(state.MigrationConfiguration.ParallelOutboundMigrationsPerNode, 0) != 1 ||
		ptr.Deref(state.MigrationConfiguration.CompletionTimeoutPerGiB, 0) != 150:
		t.Errorf("migrationConfiguration %+v: want the KubeVirt CR's, defaults filled", state.MigrationConfiguration)
	}
	if !slices.Contains(first.Finalizers, migrationcontroller.MigrationFinalizer) {
		t.Errorf("finalizers %v lack %s", first.Finalizers, migrationcontroller.MigrationFinalizer)
	}

	e.agentWrites(t, "web", targetListens)
	e.waitPhase(t, "web-1", kubevirtv1.MigrationTargetReady)
	e.agentWrites(t, "web", sourceSends(16<<20))
	running := e.waitPhase(t, "web-1", kubevirtv1.MigrationRunning)
	e.waitFor(t, "the progress to be mirrored into the migration", 10*time.Second, func() (bool, string) {
		running = e.migration(t, "web-1")
		mirror := running.Status.MigrationState
		return mirror != nil && mirror.Progress != nil && mirror.Progress.RemainingBytes == 16<<20, fmt.Sprintf("mirror %+v", mirror)
	})

	e.checkSecondMigrationFails(t, "web", "web-1")
	history := e.recordMigrations(t)
	e.runningVMI(t, "db", mcNodeA)
	e.createMigration(t, "db-1", "db")
	e.checkWaitsForSlot(t, "db-1")

	e.agentWrites(t, "web", func(status *kubevirtv1.VirtualMachineInstanceStatus) {
		now := metav1.Now()
		status.NodeName = mcNodeB
		status.MigrationState.Completed = true
		status.MigrationState.EndTimestamp = &now
	})
	done := e.waitPhase(t, "web-1", kubevirtv1.MigrationSucceeded)
	e.checkSucceeded(t, done, created)
	history.requirePendingUntilEnded(t, "db-1", "web-1")

	e.waitPhase(t, "db-1", kubevirtv1.MigrationPreparingTarget)
	e.checkCancelWhileRunning(t, "db", "db-1")
	history.requireKeptUntilAborted(t, "db-1")
}

// migrationHistory is every version of mcNamespace's migrations since it
// was started, in the API server's order (one watch): absence checks read
// it afterwards instead of sleeping and hoping that a wrong move would
// have shown by then.
type migrationHistory struct {
	e      *mcEnv
	mu     sync.Mutex
	events []watch.Event
}

func (e *mcEnv) recordMigrations(t *testing.T) *migrationHistory {
	t.Helper()
	w, err := e.client.Watch(context.Background(), &kubevirtv1.VirtualMachineInstanceMigrationList{}, client.InNamespace(mcNamespace))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	h := &migrationHistory{e: e}
	go func() {
		for event := range w.ResultChan() {
			h.mu.Lock()
			h.events = append(h.events, event)
			h.mu.Unlock()
		}
	}()
	return h
}

// versionsOf is name's versions up to the first event that until accepts
// (all of them if none does), and whether one did.
func (h *migrationHistory) versionsOf(name string, until func(watch.Event) bool) ([]watch.Event, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var versions []watch.Event
	for _, event := range h.events {
		if until(event) {
			return versions, true
		}
		if m, ok := event.Object.(*kubevirtv1.VirtualMachineInstanceMigration); ok && m.Name == name {
			versions = append(versions, event)
		}
	}
	return versions, false
}

// waitVersionsOf waits until the history holds the event until accepts.
func (h *migrationHistory) waitVersionsOf(t *testing.T, name, what string, until func(watch.Event) bool) []watch.Event {
	t.Helper()
	var versions []watch.Event
	h.e.waitFor(t, what+" in the watch", 10*time.Second, func() (bool, string) {
		var seen bool
		versions, seen = h.versionsOf(name, until)
		return seen, fmt.Sprintf("%d versions of %s so far", len(versions), name)
	})
	return versions
}

// requirePendingUntilEnded: waiting stayed Pending in every version until
// holder, which held the slot, reached Succeeded.
func (h *migrationHistory) requirePendingUntilEnded(t *testing.T, waiting, holder string) {
	t.Helper()
	holderEnded := func(event watch.Event) bool {
		m, ok := event.Object.(*kubevirtv1.VirtualMachineInstanceMigration)
		return ok && m.Name == holder && m.Status.Phase == kubevirtv1.MigrationSucceeded
	}
	versions := h.waitVersionsOf(t, waiting, holder+" succeeded", holderEnded)
	for _, event := range versions {
		m := event.Object.(*kubevirtv1.VirtualMachineInstanceMigration)
		if m.Status.Phase != "" && m.Status.Phase != kubevirtv1.MigrationPending {
			t.Errorf("%s left Pending while %s held the slot: %s", waiting, holder, describeMigration(m))
		}
	}
	t.Logf("%s stayed Pending in its %d versions while %s held the slot", waiting, len(versions), holder)
}

// requireKeptUntilAborted: the deleted migration's last version before it
// went shows the agents' answer, so the finalizer held until then.
func (h *migrationHistory) requireKeptUntilAborted(t *testing.T, name string) {
	t.Helper()
	gone := func(event watch.Event) bool {
		m, ok := event.Object.(*kubevirtv1.VirtualMachineInstanceMigration)
		return ok && m.Name == name && event.Type == watch.Deleted
	}
	versions := h.waitVersionsOf(t, name, name+" deleted", gone)
	if len(versions) == 0 {
		t.Fatalf("no version of %s seen before it went", name)
	}
	last := versions[len(versions)-1].Object.(*kubevirtv1.VirtualMachineInstanceMigration)
	if state := last.Status.MigrationState; state == nil || state.AbortStatus != kubevirtv1.MigrationAbortSucceeded {
		t.Errorf("%s went before the agents answered its abort: its last version shows %+v, %s", name, state, describeMigration(last))
	}
}

func (e *mcEnv) checkSecondMigrationFails(t *testing.T, vmiName, active string) {
	t.Helper()
	e.createMigration(t, vmiName+"-2", vmiName)
	var second *kubevirtv1.VirtualMachineInstanceMigration
	e.waitFor(t, "the second migration to fail and lose its finalizer", 30*time.Second, func() (bool, string) {
		second = e.migration(t, vmiName+"-2")
		return second.Status.Phase == kubevirtv1.MigrationFailed && len(second.Finalizers) == 0, describeMigration(second)
	})
	c := migrationCondition(second, migrationcontroller.ConditionFailed)
	if c == nil || c.Reason != migrationcontroller.ReasonInFlight || !strings.Contains(c.Message, "in-flight migration detected: migration "+active) {
		t.Fatalf("the second migration failed with %+v, want %s naming %s", c, migrationcontroller.ReasonInFlight, active)
	}
	t.Logf("second migration: %s", c.Message)
}

// checkWaitsForSlot: the node's one outbound slot is taken, so the
// migration stays Pending and says why.
func (e *mcEnv) checkWaitsForSlot(t *testing.T, name string) {
	t.Helper()
	e.waitFor(t, name+" to wait for an outbound slot", 30*time.Second, func() (bool, string) {
		m := e.migration(t, name)
		c := migrationCondition(m, migrationcontroller.ConditionWaiting)
		return m.Status.Phase == kubevirtv1.MigrationPending && c != nil && c.Reason == migrationcontroller.ReasonNodeLimit, describeMigration(m)
	})
	m := e.migration(t, name)
	t.Logf("waiting: %s", migrationCondition(m, migrationcontroller.ConditionWaiting).Message)
}

func (e *mcEnv) checkSucceeded(t *testing.T, done, created *kubevirtv1.VirtualMachineInstanceMigration) {
	t.Helper()
	e.waitFor(t, "the finalizer of the succeeded migration to go", 10*time.Second, func() (bool, string) {
		done = e.migration(t, done.Name)
		return len(done.Finalizers) == 0, describeMigration(done)
	})
	var phases []kubevirtv1.VirtualMachineInstanceMigrationPhase
	for _, stamp := range done.Status.PhaseTransitionTimestamps {
		phases = append(phases, stamp.Phase)
	}
	want := []kubevirtv1.VirtualMachineInstanceMigrationPhase{kubevirtv1.MigrationPending, kubevirtv1.MigrationScheduling, kubevirtv1.MigrationScheduled,
		kubevirtv1.MigrationPreparingTarget, kubevirtv1.MigrationTargetReady, kubevirtv1.MigrationRunning, kubevirtv1.MigrationSucceeded}
	if !slices.Equal(phases, want) {
		t.Errorf("phase transitions %v, want %v", phases, want)
	}
	if done.Status.MigrationState == nil || !done.Status.MigrationState.Completed {
		t.Errorf("the mirror does not show the completion: %+v", done.Status.MigrationState)
	}
	e.waitFor(t, "an event for every phase", 10*time.Second, func() (bool, string) {
		reasons := e.eventReasons(t, created.Name)
		for _, phase := range want {
			if !slices.Contains(reasons, string(phase)) {
				return false, fmt.Sprintf("no %s event among %v", phase, reasons)
			}
		}
		return true, ""
	})
}

// checkCancelWhileRunning deletes a running migration: the controller
// asks the agents to abort and keeps the VMIM until they say they did.
func (e *mcEnv) checkCancelWhileRunning(t *testing.T, vmiName, name string) {
	t.Helper()
	if target := e.vmi(t, vmiName).Status.MigrationState.TargetNode; target != mcNodeB {
		t.Errorf("%s targets %s, want %s (%s is the source, %s is not ready)", name, target, mcNodeB, mcNodeA, mcNodeDown)
	}
	e.agentWrites(t, vmiName, targetListens)
	e.waitPhase(t, name, kubevirtv1.MigrationTargetReady)
	e.agentWrites(t, vmiName, sourceSends(48<<20))
	e.waitPhase(t, name, kubevirtv1.MigrationRunning)

	if err := e.client.Delete(context.Background(), e.migration(t, name)); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the abort request to reach the VMI", 10*time.Second, func() (bool, string) {
		state := e.vmi(t, vmiName).Status.MigrationState
		return state.AbortRequested, fmt.Sprintf("migrationState %+v", state)
	})
	// The controller's answer to the deletion: the abort condition, the
	// finalizer kept (requireKeptUntilAborted checks that it stays until
	// the agents answer).
	e.waitFor(t, "the abort condition on the deleted migration", 10*time.Second, func() (bool, string) {
		m := e.migration(t, name)
		c := migrationCondition(m, migrationcontroller.ConditionAbortRequested)
		return c != nil && c.Reason == migrationcontroller.ReasonCancelled, describeMigrationOrNil(m)
	})
	if m := e.migration(t, name); m == nil || !slices.Contains(m.Finalizers, migrationcontroller.MigrationFinalizer) {
		t.Fatalf("the deleted migration went before the agents answered: %v", m)
	}

	e.agentWrites(t, vmiName, func(status *kubevirtv1.VirtualMachineInstanceStatus) {
		now := metav1.Now()
		status.MigrationState.Failed = true
		status.MigrationState.AbortStatus = kubevirtv1.MigrationAbortSucceeded
		status.MigrationState.FailureReason = "source node mc-a: migration cancelled"
		status.MigrationState.EndTimestamp = &now
	})
	e.waitFor(t, "the cancelled migration to be gone", 10*time.Second, func() (bool, string) {
		m := e.migration(t, name)
		return m == nil, describeMigrationOrNil(m)
	})
}

// A target that never reports ready fails the migration at the
// PreparingTarget deadline; no source can have started, so the controller
// ends the VMI's migrationState itself.
func (e *mcEnv) testStuckTarget(t *testing.T) {
	e.runningVMI(t, "stuck", mcNodeA)
	e.createMigration(t, "stuck-1", "stuck")
	e.waitPhase(t, "stuck-1", kubevirtv1.MigrationPreparingTarget)
	m := e.waitPhase(t, "stuck-1", kubevirtv1.MigrationFailed)
	state := e.vmi(t, "stuck").Status.MigrationState
	if state == nil || !state.Failed || !state.AbortRequested || state.EndTimestamp == nil || state.StartTimestamp == nil {
		t.Fatalf("migrationState %+v: want failed, abortRequested and ended", state)
	}
	if took := state.EndTimestamp.Sub(state.StartTimestamp.Time); took < mcTargetReady-time.Second || took > mcTargetReady+5*time.Second {
		t.Errorf("failed %s after the start, want about %s", took, mcTargetReady)
	}
	c := migrationCondition(m, migrationcontroller.ConditionFailed)
	if c == nil || c.Reason != migrationcontroller.ReasonTargetNotReady || !strings.Contains(c.Message, "did not get ready within 5s") {
		t.Errorf("failed condition %+v", c)
	}
	t.Logf("stuck: %s", c.Message)
}
