package toolkit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/trust"
	"github.com/cclm-io/cclm/internal/vmrefs"
)

// Timeouts bound the pipeline's steps; zero fields take the defaults.
type Timeouts struct {
	// Step bounds each step before Migrate: every creation (until the
	// object is seen) and every wait (the receiver VMI waiting, the sync
	// address published). Default 2 min.
	Step time.Duration
	// Cleanup bounds Cleanup: the VMIMs' deletion (the agents confirm an
	// abort within a minute) and the target's objects'. Default 3 min.
	Cleanup time.Duration
	// MigrateMargin is added to the VMIMs' own bounds (synchronization,
	// completion timeout per GiB, abort and handover) to bound Migrate.
	// Default 2 min.
	MigrateMargin time.Duration
	// PlanReady bounds a new Migration's wait for its Plan to be
	// evaluated. Default 2 min.
	PlanReady time.Duration
}

// Default timeouts.
const (
	DefaultStepTimeout      = 2 * time.Minute
	DefaultCleanupTimeout   = 3 * time.Minute
	DefaultMigrateMargin    = 2 * time.Minute
	DefaultPlanReadyTimeout = 2 * time.Minute
)

func (t Timeouts) withDefaults() Timeouts {
	or := func(d, fallback time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return fallback
	}
	return Timeouts{
		Step:          or(t.Step, DefaultStepTimeout),
		Cleanup:       or(t.Cleanup, DefaultCleanupTimeout),
		MigrateMargin: or(t.MigrateMargin, DefaultMigrateMargin),
		PlanReady:     or(t.PlanReady, DefaultPlanReadyTimeout),
	}
}

// VMObserved is everything StepVM decides on for one VM of a Migration.
// The reconciler fills it with direct reads of both clusters; tests build
// it by hand.
type VMObserved struct {
	// Now is the time of the decision.
	Now time.Time
	// Status is the VM's status as recorded in the Migration.
	Status forkliftv1beta1.VMStatus
	// Cancel: the Migration's spec.cancel names this VM.
	Cancel bool
	// MayStart: the VM may leave Initialize's Pending (the toolkit's
	// in-flight limit has room); Waiting says why not, when it may not.
	MayStart bool
	Waiting  string
	// PlanUID and MigrationUID go into labels, names and the migration ID.
	PlanUID, MigrationUID types.UID
	// TargetNamespace is where the VM goes on the target.
	TargetNamespace string
	// NetworkMap and StorageMap are the plan's maps.
	NetworkMap []forkliftv1beta1.NetworkPair
	StorageMap []forkliftv1beta1.StoragePair
	// TargetLabels and TargetNodeSelector are the plan's, for the target
	// VM's template.
	TargetLabels, TargetNodeSelector map[string]string
	// CompletionTimeoutPerGiB is the target KubeVirt CR's (seconds), for
	// Migrate's bound; 0 takes KubeVirt's default. A MigrationPolicy's, in
	// a VMIM's migrationState, raises it (effectiveCompletionTimeoutPerGiB).
	CompletionTimeoutPerGiB int64
	Timeouts                Timeouts
	// Inventory: References and the Resources maps of Source and Target
	// were read (the reconciler reads them only for the tasks that need
	// them, see NeedsInventory). A task that needs them waits without.
	Inventory bool
	// Volumes: the DataVolumes and PVCs maps were read too (NeedsVolumes:
	// only CreateVolumes and Cleanup use them, so Migrate's polls do not
	// read them).
	Volumes bool
	// References are the Secrets and ConfigMaps the VM references
	// (ReferencedResources of the source VM).
	References []ResourceRef
	Source     SourceView
	Target     TargetView
	// Trust is each cluster's migration trust, read for
	// SynchronizeCertificates only (NeedsTrust); nil otherwise.
	Trust *TrustView
	// VirtNamespace is KubeVirt's namespace on both clusters, where the
	// trust's ConfigMaps are.
	VirtNamespace string
	// LastError is the last action of this VM that failed in this
	// process, if any: said when a step gives up, and a permanent one
	// (the API server refused the object as invalid) fails the step.
	LastError *ActionError
}

// ClusterView is what one cluster holds of a VM's migration.
type ClusterView struct {
	// Err: the cluster could not be read (unreachable, token refused);
	// the objects below are then unknown, not absent.
	Err string
	// VM, its VMI and this side's VMIM (by its deterministic name); nil
	// when absent.
	VM   *kubevirtv1.VirtualMachine
	VMI  *kubevirtv1.VirtualMachineInstance
	VMIM *kubevirtv1.VirtualMachineInstanceMigration
	// DataVolumes and PVCs that exist, by name, and the referenced
	// resources that exist (with Inventory): on the source the VM's own;
	// on the target those of the VM's names (whoever made them) and the
	// volumes labelled for this VM of this migration.
	DataVolumes map[string]*cdiv1beta1.DataVolume
	PVCs        map[string]*corev1.PersistentVolumeClaim
	Resources   map[ResourceRef]client.Object
}

// TrustView is what SynchronizeCertificates reads: each cluster's
// migration CA and the CAs it trusts.
type TrustView struct {
	Source, Target ClusterTrust
}

// ClusterTrust is one cluster's ConfigMaps kubevirt-ca (CA) and
// kubevirt-external-ca (External, "" when absent) in VirtNamespace.
type ClusterTrust struct {
	// Err: they could not be read; the bundles are then unknown.
	Err          string
	CA, External string
}

// SourceView is the VM's side of the source cluster.
type SourceView struct {
	ClusterView
}

// TargetView is the VM's side of the target cluster.
type TargetView struct {
	ClusterView
	// Namespace is the target namespace, nil if absent.
	Namespace *corev1.Namespace
}

// ActionError is an action that failed.
type ActionError struct {
	// Step the action was for.
	Step    string
	Message string
	// Permanent: retrying cannot help (the object is invalid).
	Permanent bool
}

// Side is a cluster of the migration.
type Side string

// The two sides.
const (
	SideSource Side = "source"
	SideTarget Side = "target"
)

// Op is what an action does.
type Op string

// Operations.
const (
	OpCreate Op = "create"
	OpDelete Op = "delete"
	// OpImportCA adds the certificates of the Object ConfigMap's
	// ca-bundle that the cluster's kubevirt-external-ca lacks, keeping
	// those there (trust.ImportPeerCA).
	OpImportCA Op = "import into"
	// OpUpdate replaces the object (at the Object's resourceVersion).
	OpUpdate Op = "update"
)

// Action is one write the decision asks for.
type Action struct {
	Side   Side
	Op     Op
	Object client.Object
}

func (a Action) String() string {
	return fmt.Sprintf("%s %s %s on the %s", a.Op, kindOf(a.Object), objectName(a.Object), a.Side)
}

// VMDecision is what StepVM decided; the reconciler writes the status
// (conditional on the Migration's version) and then does the actions.
type VMDecision struct {
	Status       forkliftv1beta1.VMStatus
	Actions      []Action
	RequeueAfter time.Duration
	Events       []Event
}

// Event is a Kubernetes event on the Migration.
type Event struct {
	Type, Reason, Message string
}

// NeedsInventory says whether the VM's current task needs VMObserved's
// maps and References: every task from CreateSecrets to Migrate (the
// copies are kept equal to the source's until the guest has moved) and
// Cleanup.
func NeedsInventory(status forkliftv1beta1.VMStatus) bool {
	if IsFinal(status) {
		return false
	}
	at := taskOf(status)
	return at >= firstCopyIndex && at <= migrateIndex || at == cleanupIndex
}

// NeedsVolumes says whether the VM's current task needs VMObserved's
// DataVolumes and PVCs: CreateVolumes and Cleanup.
func NeedsVolumes(status forkliftv1beta1.VMStatus) bool {
	if IsFinal(status) {
		return false
	}
	at := taskOf(status)
	return at == createVolumesIndex || at == cleanupIndex
}

// NeedsTrust says whether the VM's current task needs VMObserved.Trust:
// SynchronizeCertificates.
func NeedsTrust(status forkliftv1beta1.VMStatus) bool {
	return !IsFinal(status) && taskOf(status) == taskIndex(TaskSynchronizeCertificates)
}

// Requeue intervals.
const (
	// pollSource: the source cluster is not watched; a step waiting on it
	// looks again this often (Migrate mirrors progress at this pace).
	pollSource = time.Second
	// pollTarget: target objects are watched; this is a fallback.
	pollTarget = 2 * time.Second
	// afterAction: look again this soon after acting (the watch event of
	// a created target object usually comes first; the source's objects
	// are not watched, and a step that made one waits this long).
	afterAction = 200 * time.Millisecond
	// pollSourceEnding: the guest runs on the target and only the
	// sending migration's end is awaited, which takes the source cluster
	// a few hundred milliseconds: looked for more often than pollSource.
	pollSourceEnding = 250 * time.Millisecond
)

// StepVM decides the next move of one VM's pipeline from what is observed
// now. It is pure: no I/O, no clock but obs.Now. One call makes at most
// one transition (or asks for the writes of one step); the write of its
// decision, or the objects it creates, bring the next call.
//
// What is created is derived from what exists: a step creates only
// objects that are absent, under deterministic names, and completes once
// it sees them, checked against the labels; so a controller restarted at
// any point, with the status it last wrote, carries on and never makes an
// object twice.
func StepVM(obs VMObserved) VMDecision {
	s := &vmStepper{obs: obs, t: obs.Timeouts.withDefaults(), now: metav1.NewTime(obs.Now)}
	s.d.Status = *obs.Status.DeepCopy()
	ensurePipeline(&s.d.Status)
	s.decide()
	rollUp(&s.d.Status)
	return s.d
}

type vmStepper struct {
	obs VMObserved
	t   Timeouts
	now metav1.Time
	d   VMDecision
}

// VMOutcome is how a VM's migration ended: VMSucceeded, VMFailed or
// VMCanceled, from its conditions as Forklift sets them; "" while it has
// not ended. A VM that ended without an outcome condition (a status of an
// older cclm) ends by its phase, or by its error.
func VMOutcome(status forkliftv1beta1.VMStatus) string {
	if !IsFinal(status) {
		return ""
	}
	for _, outcome := range []string{VMFailed, VMCanceled, VMSucceeded} {
		if c := forkliftv1beta1.FindCondition(status.Conditions, outcome); c != nil && c.Status == forkliftv1beta1.ConditionTrue {
			return outcome
		}
	}
	switch {
	case status.Phase == VMFailed || status.Phase == VMCanceled:
		return status.Phase
	case status.Error != nil:
		return VMFailed
	}
	return VMSucceeded
}

// IsFinal reports whether the VM's migration ended, as Forklift marks it:
// its completion time is set. (Its phase is Completed earlier, while
// Cleanup runs; an older cclm ended VMs in phase Failed or Canceled,
// also with the time set.)
func IsFinal(status forkliftv1beta1.VMStatus) bool { return status.Completed != nil }

func taskIndex(name string) int { return slices.Index(Tasks, name) }

var (
	cleanupIndex       = taskIndex(TaskCleanup)
	migrateIndex       = taskIndex(TaskMigrate)
	firstCopyIndex     = taskIndex(TaskCreateSecrets)
	lastCopyIndex      = taskIndex(TaskEnsureInstanceType)
	createVolumesIndex = taskIndex(TaskCreateVolumes)
)

// current is the index of the task the VM is in.
func (s *vmStepper) current() int { return currentTask(s.d.Status.Pipeline) }

// step is task i of the VM's pipeline.
func (s *vmStepper) step(i int) *forkliftv1beta1.Task { return taskAt(s.d.Status.Pipeline, i) }

func (s *vmStepper) decide() {
	if IsFinal(s.d.Status) {
		return
	}
	i := s.current()
	if s.obs.Cancel && s.cancelApplies(i) {
		s.cancel(i)
		return
	}
	step := s.step(i)
	if step.Phase == PhasePending {
		if i == 0 && !s.obs.MayStart {
			step.Reason = s.obs.Waiting
			s.d.RequeueAfter = pollTarget
			return
		}
		step.Reason = ""
		s.start(i)
	}
	if step.Phase == PhaseFailed && i == cleanupIndex {
		s.finish()
		return
	}
	if s.obs.LastError != nil && s.obs.LastError.Permanent && s.obs.LastError.Step == step.Name && i != cleanupIndex {
		s.fail(i, s.obs.LastError.Message)
		return
	}
	if i > lastCopyIndex && i <= migrateIndex && s.updateStaleCopies(i) {
		return
	}
	switch step.Name {
	case TaskInitialize:
		s.initialize(i)
	case TaskSynchronizeCertificates:
		s.synchronizeCertificates(i)
	case TaskCreateSecrets, TaskCreateConfigMaps, TaskEnsurePreference, TaskEnsureInstanceType:
		s.copyResources(i)
	case TaskCreateVolumes:
		s.createVolumes(i)
	case TaskCreateReceiver:
		s.createReceiver(i)
	case TaskWaitForReceiver:
		s.waitForReceiver(i)
	case TaskCreateTargetMigration:
		s.createTargetMigration(i)
	case TaskCreateSourceMigration:
		s.createSourceMigration(i)
	case TaskMigrate:
		s.migrate(i)
	case TaskCleanup:
		s.cleanup(i)
	}
}

// ---- transitions ----

func (s *vmStepper) start(i int) {
	step := s.step(i)
	step.Phase = PhaseRunning
	step.Started = s.nowPtr()
	step.Completed = nil
	if s.d.Status.Started == nil {
		s.d.Status.Started = s.nowPtr()
	}
}

// complete ends step i, records annotations and starts the next step
// (its handler runs on the next call, with fresh observations); Migrate
// leads to Cleanup of a success, Cleanup to the end.
func (s *vmStepper) complete(i int, annotations map[string]string) {
	step := s.step(i)
	step.Phase = PhaseCompleted
	step.Completed = s.nowPtr()
	step.Reason = ""
	s.annotate(i, annotations)
	switch i {
	case cleanupIndex:
		s.finish()
	case migrateIndex:
		s.beginCleanup(VMSucceeded, "the VM migrated")
	default:
		s.start(i + 1)
	}
}

func (s *vmStepper) annotate(i int, annotations map[string]string) {
	if len(annotations) == 0 {
		return
	}
	step := s.step(i)
	if step.Annotations == nil {
		step.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		step.Annotations[k] = v
	}
}

// fail ends step i as Failed with why; the VM fails, after Cleanup.
func (s *vmStepper) fail(i int, reasons ...string) {
	step := s.step(i)
	failure := &forkliftv1beta1.Error{Phase: taskDefs[i].phase, Reasons: reasons}
	step.Phase = PhaseFailed
	step.Completed = s.nowPtr()
	step.Error = failure
	if i == cleanupIndex {
		s.finish()
		return
	}
	s.d.Status.Error = failure.DeepCopy()
	s.event(corev1.EventTypeWarning, "VMFailed", fmt.Sprintf("%s failed in %s: %s", s.vmName(), step.Name, strings.Join(reasons, "; ")))
	s.beginCleanup(VMFailed, strings.Join(reasons, "; "))
}

// beginCleanup starts Cleanup for an outcome (VMSucceeded, VMFailed or
// VMCanceled), which it keeps in the step's annotations.
func (s *vmStepper) beginCleanup(outcome, why string) {
	cleanup := s.step(cleanupIndex)
	cleanup.Phase = PhaseRunning
	cleanup.Started = s.nowPtr()
	cleanup.Completed = nil
	s.annotate(cleanupIndex, map[string]string{AnnotationOutcome: outcome, AnnotationCleanupReason: why})
	s.d.RequeueAfter = afterAction
}

// finish ends the VM with Cleanup's outcome. A Cleanup that failed leaves
// a success a success (the guest moved) with a warning condition, and
// adds its reason to a failure.
func (s *vmStepper) finish() {
	cleanup := s.step(cleanupIndex)
	outcome := cleanupOutcome(cleanup)
	st := &s.d.Status
	st.Phase = VMPhaseCompleted
	st.Completed = s.nowPtr()
	if cleanup.Error != nil {
		message := "cleanup incomplete: " + strings.Join(cleanup.Error.Reasons, "; ")
		switch {
		case outcome == VMSucceeded:
			st.Conditions = append(st.Conditions, forkliftv1beta1.Condition{
				Type: "CleanupIncomplete", Status: forkliftv1beta1.ConditionTrue, Category: forkliftv1beta1.CategoryWarn,
				Reason: "DeadlineExceeded", Message: message, LastTransitionTime: s.now,
			})
		case st.Error != nil:
			st.Error.Reasons = append(st.Error.Reasons, message)
		default:
			st.Error = &forkliftv1beta1.Error{Phase: VMPhaseCompleted, Reasons: []string{message}}
		}
	}
	st.Conditions = append(st.Conditions, outcomeCondition(outcome, cleanup.Annotations[AnnotationCleanupReason], st.Error, s.now))
	s.d.RequeueAfter = 0
	switch outcome {
	case VMSucceeded:
		s.event(corev1.EventTypeNormal, "VMMigrated", fmt.Sprintf("%s migrated", s.vmName()))
	case VMCanceled:
		s.event(corev1.EventTypeNormal, "VMCanceled", fmt.Sprintf("%s: migration canceled", s.vmName()))
	}
}

// cleanupOutcome is the outcome Cleanup runs for ("Completed": written by
// an older cclm for a success; none: a failure).
func cleanupOutcome(cleanup *forkliftv1beta1.Task) string {
	switch outcome := cleanup.Annotations[AnnotationOutcome]; outcome {
	case VMSucceeded, VMCanceled:
		return outcome
	case VMPhaseCompleted:
		return VMSucceeded
	}
	return VMFailed
}

// outcomeCondition is the VM's final condition, as Forklift's: Succeeded,
// Failed (with the error's reasons) or Canceled.
func outcomeCondition(outcome, why string, failure *forkliftv1beta1.Error, now metav1.Time) forkliftv1beta1.Condition {
	c := forkliftv1beta1.Condition{Type: outcome, Status: forkliftv1beta1.ConditionTrue, LastTransitionTime: now, Message: why}
	switch outcome {
	case VMSucceeded:
		c.Category, c.Reason = forkliftv1beta1.CategoryAdvisory, "Completed"
	case VMCanceled:
		c.Category, c.Reason = forkliftv1beta1.CategoryAdvisory, "UserRequested"
	default:
		c.Category, c.Reason = forkliftv1beta1.CategoryCritical, "Failed"
		if failure != nil {
			c.Message = strings.Join(failure.Reasons, "; ")
		}
	}
	return c
}

// cancelApplies: a cancel stops the VM unless it is already in Cleanup
// (a success's, a failure's or a cancel's) or its guest already arrived.
func (s *vmStepper) cancelApplies(i int) bool {
	if i == cleanupIndex {
		return false
	}
	if i == migrateIndex && succeeded(s.obs.Target.VMIM) {
		return false
	}
	return true
}

func (s *vmStepper) cancel(i int) {
	step := s.step(i)
	if step.Phase == PhaseRunning {
		step.Phase = PhaseFailed
		step.Reason = "Canceled"
		step.Completed = s.nowPtr()
	}
	s.event(corev1.EventTypeNormal, "VMCanceling", fmt.Sprintf("%s: canceled in %s; cleaning up", s.vmName(), step.Name))
	s.beginCleanup(VMCanceled, "canceled by the user in "+step.Name)
}

// ---- waiting and acting, with the step's deadline ----

// deadline is step i's bound.
func (s *vmStepper) deadline(i int) time.Duration {
	switch i {
	case migrateIndex:
		return s.migrateBudget() + s.slotWaited(i)
	case cleanupIndex:
		return s.t.Cleanup
	}
	return s.t.Step
}

// expired fails step i if its deadline passed, saying what it waited for,
// and reports whether it did.
func (s *vmStepper) expired(i int, waitingFor string) bool {
	step := s.step(i)
	if step.Started == nil {
		return false
	}
	limit := s.deadline(i)
	if s.now.Sub(step.Started.Time) < limit {
		return false
	}
	reason := fmt.Sprintf("%s did not finish within %s: %s", step.Name, limit, waitingFor)
	if e := s.obs.LastError; e != nil && e.Step == step.Name {
		reason += "; last error: " + e.Message
	}
	s.fail(i, reason)
	return true
}

// wait keeps step i running, saying why, and looks again after poll or
// at the deadline, whichever comes first.
func (s *vmStepper) wait(i int, waitingFor string, poll time.Duration) {
	if s.expired(i, waitingFor) {
		return
	}
	step := s.step(i)
	step.Reason = waitingFor
	if e := s.obs.LastError; e != nil && e.Step == step.Name {
		step.Reason += " (retrying: " + e.Message + ")"
	}
	remaining := s.deadline(i) - s.now.Sub(step.Started.Time)
	s.requeueIn(min(poll, max(remaining, time.Second)))
}

// act asks for actions for step i, unless its deadline passed.
func (s *vmStepper) act(i int, what string, actions ...Action) {
	if s.expired(i, what) {
		return
	}
	s.step(i).Reason = what
	s.d.Actions = append(s.d.Actions, actions...)
	s.requeueIn(afterAction)
}

func (s *vmStepper) requeueIn(d time.Duration) {
	if d <= 0 {
		d = afterAction
	}
	if s.d.RequeueAfter == 0 || d < s.d.RequeueAfter {
		s.d.RequeueAfter = d
	}
}

func (s *vmStepper) event(eventType, reason, message string) {
	s.d.Events = append(s.d.Events, Event{Type: eventType, Reason: reason, Message: message})
}

// ---- the steps ----

func (s *vmStepper) initialize(i int) {
	src := s.obs.Source
	if s.sourceUnreadable(i) {
		return
	}
	vm := src.VM
	st := &s.d.Status
	switch {
	case vm == nil:
		s.fail(i, fmt.Sprintf("VM %s does not exist on the source cluster: remove it from the plan, or fix its name", s.vmName()))
		return
	case st.ID != "" && string(vm.UID) != st.ID:
		s.fail(i, fmt.Sprintf("VM %s/%s has UID %s, not %s as the plan says: it was replaced; update the plan's VM id", vm.Namespace, vm.Name, vm.UID, st.ID))
		return
	case vm.DeletionTimestamp != nil:
		s.fail(i, fmt.Sprintf("VM %s/%s is being deleted on the source", vm.Namespace, vm.Name))
		return
	case vm.Spec.Template == nil:
		s.fail(i, fmt.Sprintf("VM %s/%s has no template", vm.Namespace, vm.Name))
		return
	}
	vmi := src.VMI
	if vmi == nil || vmi.Status.Phase != kubevirtv1.Running || vmi.Status.NodeName == "" {
		state := "it has no VMI"
		if vmi != nil {
			state = fmt.Sprintf("its VMI is %s", vmi.Status.Phase)
			if vmi.Status.Phase == kubevirtv1.Running {
				state += " on no node"
			}
		}
		s.fail(i, fmt.Sprintf("VM %s/%s is not running (%s): only a running VM can be live-migrated; start it, or remove it from the plan", vm.Namespace, vm.Name, state))
		return
	}
	probe := vm.Spec.Template.Spec.DeepCopy()
	if err := rewriteNetworks(probe, vm.Namespace, s.obs.NetworkMap); err != nil {
		s.fail(i, fmt.Sprintf("VM %s/%s: %v", vm.Namespace, vm.Name, err))
		return
	}
	st.ID, st.Name, st.Namespace = string(vm.UID), vm.Name, vm.Namespace
	s.complete(i, map[string]string{
		AnnotationSourceNode:  vmi.Status.NodeName,
		AnnotationSourceVMI:   string(vmi.UID),
		AnnotationRunStrategy: string(vm.EffectiveRunStrategy()),
		AnnotationMACs:        interfaceMACs(vm, vmi),
		AnnotationMemoryBytes: strconv.FormatInt(vm.Spec.Template.Spec.GuestMemoryBytes(), 10),
	})
}

// synchronizeCertificates makes each cluster trust the other's migration
// CA, as Forklift's SynchronizeCertificates does on every migration: the
// synchronization controllers authenticate each other with it, and the
// node agents the migration stream. Only what a side lacks is imported;
// the CAs already there stay. The source side is written with the
// Provider's token (the guide's ClusterRole allows it).
func (s *vmStepper) synchronizeCertificates(i int) {
	view := s.obs.Trust
	if view == nil {
		s.requeueIn(afterAction)
		return
	}
	for _, side := range []struct {
		name  Side
		trust ClusterTrust
		poll  time.Duration
	}{{SideSource, view.Source, pollSource}, {SideTarget, view.Target, pollTarget}} {
		if s.unreadable(i, string(side.name), side.trust.Err, side.poll) {
			return
		}
		if side.trust.CA == "" {
			s.fail(i, fmt.Sprintf("the %s cluster has no migration CA (ConfigMap %s/%s, key %s): is KubeVirt installed there in namespace %s?",
				side.name, s.obs.VirtNamespace, trust.CABundleConfigMap, trust.BundleKey, s.obs.VirtNamespace))
			return
		}
	}
	var imports []Action
	var said []string
	for _, d := range []struct {
		from, to     ClusterTrust
		toSide       Side
		fromSideName string
	}{{view.Source, view.Target, SideTarget, "source"}, {view.Target, view.Source, SideSource, "target"}} {
		missing, err := trust.Missing(d.to.CA, d.to.External, d.from.CA)
		if err != nil {
			s.fail(i, fmt.Sprintf("the %s cluster's CA bundles (ConfigMaps %s and %s in %s) cannot be read as PEM certificates: %v; repair them",
				d.toSide, trust.CABundleConfigMap, trust.ExternalCAConfigMap, s.obs.VirtNamespace, err))
			return
		}
		if missing == 0 {
			continue
		}
		peer := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.obs.VirtNamespace, Name: trust.ExternalCAConfigMap},
			Data:       map[string]string{trust.BundleKey: d.from.CA},
		}
		imports = append(imports, Action{Side: d.toSide, Op: OpImportCA, Object: peer})
		said = append(said, fmt.Sprintf("the %s cluster's CA into the %s's %s", d.fromSideName, d.toSide, trust.ExternalCAConfigMap))
	}
	if len(imports) > 0 {
		s.act(i, "importing "+strings.Join(said, " and "), imports...)
		return
	}
	s.complete(i, nil)
}

// copiedKinds are the kinds of referenced resources each copying task
// copies (or, cluster-wide, checks), as Forklift's phases of the names.
var copiedKinds = map[string][]string{
	TaskCreateSecrets:      {vmrefs.KindSecret},
	TaskCreateConfigMaps:   {vmrefs.KindConfigMap},
	TaskEnsurePreference:   {vmrefs.KindPreference, vmrefs.KindClusterPreference},
	TaskEnsureInstanceType: {vmrefs.KindInstancetype, vmrefs.KindClusterInstancetype},
}

// copyResources is a copying task: it makes the target namespace, then
// copies the task's kinds of what the VM references.
func (s *vmStepper) copyResources(i int) {
	if !s.ready(i) {
		return
	}
	target, src := s.obs.Target, s.obs.Source
	namespace := s.obs.TargetNamespace
	if target.Namespace == nil {
		s.act(i, "creating namespace "+namespace, Action{Side: SideTarget, Op: OpCreate, Object: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}})
		return
	}
	kinds := copiedKinds[s.step(i).Name]
	var creates []Action
	for _, ref := range s.obs.References {
		if !slices.Contains(kinds, ref.Kind) {
			continue
		}
		there := target.Resources[ref]
		if there != nil && (ref.Kind == vmrefs.KindSecret || ref.Kind == vmrefs.KindConfigMap) {
			continue // copied, or there already: kept as it is (Forklift's CreateSecrets)
		}
		if s.sourceUnreadable(i) {
			return
		}
		original := src.Resources[ref]
		if original == nil && ref.Optional {
			continue
		}
		if original == nil {
			s.fail(i, fmt.Sprintf("VM %s references %s, which does not exist %s on the source", s.vmName(), ref, s.where(ref, s.d.Status.Namespace)))
			return
		}
		if problem := targetCopyProblem(ref, original, there, s.where(ref, namespace)); problem != "" {
			s.fail(i, problem)
			return
		}
		if there == nil {
			creates = append(creates, Action{Side: SideTarget, Op: OpCreate, Object: copyOf(original, namespace, s.labels())})
		}
	}
	if len(creates) > 0 {
		s.act(i, fmt.Sprintf("copying %d referenced %s", len(creates), strings.Join(kinds, " or ")), creates...)
		return
	}
	s.complete(i, nil)
}

// updateStaleCopies keeps the Secrets and ConfigMaps CopyResources made
// equal to the source's until the guest has moved (the end of Migrate):
// a copy whose source changed is updated; true when it asked for that.
// Only with the inventory, and only the toolkit's own copies.
func (s *vmStepper) updateStaleCopies(i int) bool {
	if !s.obs.Inventory || s.obs.Source.Err != "" || s.obs.Target.Err != "" {
		return false
	}
	var updates []Action
	for _, ref := range s.obs.References {
		original, copied := s.obs.Source.Resources[ref], s.obs.Target.Resources[ref]
		if original == nil || copied == nil || !s.owns(copied) || vmrefs.Same(original, copied) {
			continue
		}
		updated := copyOf(original, copied.GetNamespace(), copied.GetLabels())
		updated.SetResourceVersion(copied.GetResourceVersion())
		updates = append(updates, Action{Side: SideTarget, Op: OpUpdate, Object: updated})
	}
	if len(updates) == 0 {
		return false
	}
	s.act(i, fmt.Sprintf("updating %d copies whose source changed", len(updates)), updates...)
	return true
}

// where says where a referenced resource lives, for messages.
func (s *vmStepper) where(ref ResourceRef, namespace string) string {
	if !ref.Namespaced() {
		return "cluster-wide"
	}
	return "in namespace " + namespace
}

// targetCopyProblem is why the target's resource cannot serve the VM:
// a cluster-wide instancetype or preference the target lacks (the toolkit
// does not make cluster-wide objects), or one of either scope whose spec
// differs from the source's (the receiving VMI would then differ from
// the running one). "" when there is none.
func targetCopyProblem(ref ResourceRef, original, there client.Object, where string) string {
	switch {
	case there == nil && !ref.Namespaced():
		return fmt.Sprintf("%s does not exist on the target: create it there as on the source (kubectl get %s %s -o yaml), so that the VM gets the same size and defaults", ref, strings.ToLower(ref.Kind), ref.Name)
	case there == nil:
		return ""
	case !vmrefs.Same(original, there):
		return fmt.Sprintf("%s exists %s on the target with another spec than on the source: make them equal (or delete the target's, when namespaced, for the toolkit to copy it), so that the receiving VM gets the guest's size and defaults", ref, where)
	}
	return ""
}

func (s *vmStepper) createVolumes(i int) {
	if !s.readyWithVolumes(i) {
		return
	}
	src, target := s.obs.Source, s.obs.Target
	if s.sourceUnreadable(i) {
		return
	}
	if src.VM == nil {
		s.fail(i, fmt.Sprintf("VM %s disappeared from the source", s.vmName()))
		return
	}
	planned, err := planVolumes(src.VM, src.DataVolumes, src.PVCs, s.obs.StorageMap)
	if err != nil {
		s.fail(i, err.Error())
		return
	}
	namespace := s.obs.TargetNamespace
	var creates []Action
	for _, p := range planned {
		var existing client.Object
		if p.Kind == VolumeDataVolume {
			if dv := target.DataVolumes[p.Name]; dv != nil {
				existing = dv
			} else if pvc := target.PVCs[p.Name]; pvc != nil {
				s.fail(i, fmt.Sprintf("PVC %s/%s already exists on the target and was not made by this migration: delete it, or migrate to another namespace", namespace, p.Name))
				return
			}
		} else if pvc := target.PVCs[p.Name]; pvc != nil {
			existing = pvc
		}
		if existing != nil {
			if !s.owns(existing) {
				s.fail(i, fmt.Sprintf("%s %s/%s already exists on the target and was not made by this migration: delete it, or migrate to another namespace", p.Kind, namespace, p.Name))
				return
			}
			continue
		}
		creates = append(creates, Action{Side: SideTarget, Op: OpCreate, Object: volumeObject(p, namespace, s.labels())})
	}
	if len(creates) > 0 {
		s.act(i, fmt.Sprintf("creating %d volumes", len(creates)), creates...)
		return
	}
	s.complete(i, map[string]string{AnnotationDiskBytes: strconv.FormatInt(totalBytes(planned), 10)})
}

func (s *vmStepper) createReceiver(i int) {
	src, target := s.obs.Source, s.obs.Target
	if s.targetUnreadable(i) {
		return
	}
	if vm := target.VM; vm != nil {
		if !s.owns(vm) {
			s.fail(i, fmt.Sprintf("VM %s/%s already exists on the target and was not made by this migration: delete it, or migrate to another namespace", vm.Namespace, vm.Name))
			return
		}
		s.complete(i, nil)
		return
	}
	if s.sourceUnreadable(i) {
		return
	}
	if src.VM == nil {
		s.fail(i, fmt.Sprintf("VM %s disappeared from the source", s.vmName()))
		return
	}
	initialized := s.step(0).Annotations
	vm, err := receiverVM(receiverInput{
		Source: src.VM, TargetNamespace: s.obs.TargetNamespace,
		MACs:        parseMACs(initialized[AnnotationMACs]),
		RunStrategy: kubevirtv1.VirtualMachineRunStrategy(initialized[AnnotationRunStrategy]),
		NetworkMap:  s.obs.NetworkMap, StorageMap: s.obs.StorageMap, Labels: s.labels(),
		TargetLabels: s.obs.TargetLabels, TargetNodeSelector: s.obs.TargetNodeSelector,
	})
	if err != nil {
		s.fail(i, err.Error())
		return
	}
	s.act(i, "creating the receiving VM", Action{Side: SideTarget, Op: OpCreate, Object: vm})
}

func (s *vmStepper) waitForReceiver(i int) {
	target := s.obs.Target
	if s.targetUnreadable(i) {
		return
	}
	vm, vmi := target.VM, target.VMI
	switch {
	case vm == nil:
		s.fail(i, fmt.Sprintf("the receiving VM %s/%s was deleted", s.obs.TargetNamespace, s.d.Status.Name))
	case vmi == nil:
		s.wait(i, "waiting for the receiving VMI to be created"+vmSays(vm), pollTarget)
	case vmi.Status.Phase == kubevirtv1.WaitingForSync:
		s.complete(i, nil)
	case vmi.Status.Phase == kubevirtv1.Failed:
		s.fail(i, fmt.Sprintf("the receiving VMI %s/%s failed: %s", vmi.Namespace, vmi.Name, vmi.Status.Reason))
	default:
		s.wait(i, fmt.Sprintf("waiting for the receiving VMI to reach WaitingForSync (phase %q)%s", vmi.Status.Phase, vmSays(vm)), pollTarget)
	}
}

// vmSays is the VM's printable status and failure, for wait messages.
func vmSays(vm *kubevirtv1.VirtualMachine) string {
	said := ""
	if vm.Status.PrintableStatus != "" {
		said = fmt.Sprintf("; VM status %s", vm.Status.PrintableStatus)
	}
	for _, c := range vm.Status.Conditions {
		if c.Type == kubevirtv1.VirtualMachineFailure && c.Status == corev1.ConditionTrue {
			said += ": " + c.Message
		}
	}
	return said
}

func (s *vmStepper) createTargetMigration(i int) {
	target := s.obs.Target
	if s.targetUnreadable(i) {
		return
	}
	m := target.VMIM
	if m == nil {
		st := s.d.Status
		s.act(i, "creating the receiving migration", Action{Side: SideTarget, Op: OpCreate,
			Object: targetVMIM(s.vmimName(), s.obs.TargetNamespace, st.Name, s.migrationID(), s.labels())})
		return
	}
	switch {
	case !s.owns(m):
		s.fail(i, fmt.Sprintf("VMIM %s/%s already exists on the target and was not made by this migration", m.Namespace, m.Name))
	case m.Status.Phase == kubevirtv1.MigrationFailed:
		s.fail(i, fmt.Sprintf("the receiving migration %s/%s failed: %s", m.Namespace, m.Name, vmimFailure(m)))
	case len(m.Status.SynchronizationAddresses) > 0:
		s.complete(i, map[string]string{AnnotationConnectURL: m.Status.SynchronizationAddresses[0]})
	default:
		s.wait(i, fmt.Sprintf("waiting for the receiving migration %s/%s to publish its synchronization address (phase %q)", m.Namespace, m.Name, m.Status.Phase), pollTarget)
	}
}

func (s *vmStepper) createSourceMigration(i int) {
	src, target := s.obs.Source, s.obs.Target
	if s.sourceUnreadable(i) {
		return
	}
	if m := src.VMIM; m != nil {
		if !s.owns(m) {
			s.fail(i, fmt.Sprintf("VMIM %s/%s already exists on the source and was not made by this migration", m.Namespace, m.Name))
			return
		}
		s.complete(i, nil)
		return
	}
	// Send only to a receiver that still waits.
	if s.targetUnreadable(i) {
		return
	}
	switch tm := target.VMIM; {
	case tm == nil:
		s.fail(i, fmt.Sprintf("the receiving migration %s/%s was deleted", s.obs.TargetNamespace, s.vmimName()))
		return
	case tm.Status.Phase == kubevirtv1.MigrationFailed:
		s.fail(i, fmt.Sprintf("the receiving migration %s/%s failed: %s", tm.Namespace, tm.Name, vmimFailure(tm)))
		return
	}
	connectURL := s.step(taskIndex(TaskCreateTargetMigration)).Annotations[AnnotationConnectURL]
	if connectURL == "" && len(target.VMIM.Status.SynchronizationAddresses) > 0 {
		connectURL = target.VMIM.Status.SynchronizationAddresses[0]
	}
	if connectURL == "" {
		s.fail(i, "no synchronization address of the receiving migration is known")
		return
	}
	st := s.d.Status
	s.act(i, "creating the sending migration", Action{Side: SideSource, Op: OpCreate,
		Object: sourceVMIM(s.vmimName(), st.Namespace, st.Name, s.migrationID(), connectURL, s.labels())})
}

func (s *vmStepper) migrate(i int) {
	src, target := s.obs.Source, s.obs.Target
	tm, sm := target.VMIM, src.VMIM
	s.mirrorProgress(i, sm, tm, src.Err == "")
	if s.targetUnreadable(i) {
		return
	}
	if succeeded(tm) {
		// The receiving migration succeeds only once the guest runs on the
		// target: the VM migrated. With the source readable, Migrate waits
		// for the sending migration to end too (the source's handover);
		// with the source unreadable (its token revoked, unreachable), it
		// cannot know, and waiting would only turn this success into a
		// failure at Migrate's deadline while the guest runs here. Cleanup
		// then removes the sending migration once the source can be read
		// again, within its own deadline, and says so if it cannot.
		if src.Err != "" || sm == nil || sm.IsFinal() {
			s.complete(i, nil)
			return
		}
		s.wait(i, fmt.Sprintf("the guest runs on the target; waiting for the sending migration to end (phase %s)", sm.Status.Phase), pollSourceEnding)
		return
	}
	switch {
	case tm == nil:
		s.fail(i, fmt.Sprintf("the receiving migration %s/%s was deleted", s.obs.TargetNamespace, s.vmimName()))
		return
	case tm.Status.Phase == kubevirtv1.MigrationFailed:
		reason := fmt.Sprintf("the receiving migration failed: %s", vmimFailure(tm))
		if src.Err == "" && sm != nil && sm.Status.Phase == kubevirtv1.MigrationFailed {
			reason += fmt.Sprintf("; the sending migration failed: %s", vmimFailure(sm))
		}
		s.fail(i, reason)
		return
	}
	if s.sourceUnreadable(i) {
		return
	}
	switch {
	case sm == nil:
		s.fail(i, fmt.Sprintf("the sending migration %s/%s was deleted on the source", s.d.Status.Namespace, s.vmimName()))
	case sm.Status.Phase == kubevirtv1.MigrationFailed:
		s.fail(i, fmt.Sprintf("the sending migration failed: %s", vmimFailure(sm)))
	default:
		why := s.trackSlotWait(i, sm, tm)
		if why == "" {
			why = fmt.Sprintf("migrating: sending migration %s, receiving migration %s", phaseOf(sm), phaseOf(tm))
		}
		s.wait(i, why, pollSource)
	}
}

// slotWaitReasons are the migration controller's waits for a slot of its
// cluster or node.
var slotWaitReasons = []string{kubevirtv1.MigrationReasonClusterLimit, kubevirtv1.MigrationReasonNodeLimit, kubevirtv1.MigrationReasonInboundNodeLimit}

// slotWait is what a migration waiting for a slot says; "" when it does
// not wait for one.
func slotWait(m *kubevirtv1.VirtualMachineInstanceMigration) string {
	if m == nil {
		return ""
	}
	for _, c := range m.Status.Conditions {
		if c.Type == kubevirtv1.VirtualMachineInstanceMigrationWaiting && c.Status == corev1.ConditionTrue && slices.Contains(slotWaitReasons, c.Reason) {
			return c.Message
		}
	}
	return ""
}

// trackSlotWait says why the VM waits when one of its migrations waits
// for a slot ("" otherwise), and keeps the time spent so in Migrate's
// annotations: a migration queued behind others (parallelMigrationsPerCluster
// and the per-node limits, whose waits have no deadline of their own)
// gets Migrate's whole budget once it has its slot.
func (s *vmStepper) trackSlotWait(i int, sm, tm *kubevirtv1.VirtualMachineInstanceMigration) string {
	task := s.step(i)
	why := ""
	if wait := slotWait(sm); wait != "" {
		why = "waiting for a slot in the source cluster: " + wait
	} else if wait := slotWait(tm); wait != "" {
		why = "waiting for a slot in the target cluster: " + wait
	}
	since, waiting := task.Annotations[AnnotationSlotWaitSince]
	switch {
	case why != "" && !waiting:
		s.annotate(i, map[string]string{AnnotationSlotWaitSince: s.now.UTC().Format(time.RFC3339Nano)})
	case why == "" && waiting:
		began, _ := time.Parse(time.RFC3339Nano, since)
		waited := time.Duration(parseInt(task.Annotations[AnnotationSlotWaitedMs]))*time.Millisecond + s.now.Sub(began)
		delete(task.Annotations, AnnotationSlotWaitSince)
		s.annotate(i, map[string]string{AnnotationSlotWaitedMs: strconv.FormatInt(waited.Milliseconds(), 10)})
	}
	return why
}

// slotWaited is how long the VM's migrations waited for slots in Migrate,
// the current wait included.
func (s *vmStepper) slotWaited(i int) time.Duration {
	task := s.step(i)
	waited := time.Duration(parseInt(task.Annotations[AnnotationSlotWaitedMs])) * time.Millisecond
	if since, ok := task.Annotations[AnnotationSlotWaitSince]; ok {
		if began, err := time.Parse(time.RFC3339Nano, since); err == nil {
			waited += s.now.Sub(began)
		}
	}
	return max(waited, 0)
}

func phaseOf(m *kubevirtv1.VirtualMachineInstanceMigration) string {
	if m.Status.Phase == "" {
		return "not yet accepted"
	}
	return string(m.Status.Phase)
}

func succeeded(m *kubevirtv1.VirtualMachineInstanceMigration) bool {
	return m != nil && m.Status.Phase == kubevirtv1.MigrationSucceeded
}

// mirrorProgress copies the sending migration's progress into Migrate:
// bytes transferred of the total, and the annotations of the contract.
func (s *vmStepper) mirrorProgress(i int, sm, tm *kubevirtv1.VirtualMachineInstanceMigration, sourceRead bool) {
	annotations := map[string]string{}
	if tm != nil {
		annotations[AnnotationTargetPhase] = string(tm.Status.Phase)
	}
	if sourceRead && sm != nil {
		annotations[AnnotationSourcePhase] = string(sm.Status.Phase)
		if state := sm.Status.MigrationState; state != nil && state.Progress != nil {
			p := state.Progress
			s.step(i).Progress = forkliftv1beta1.Progress{Completed: p.TransferredBytes, Total: p.TotalBytes}
			annotations[AnnotationRemaining] = strconv.FormatInt(p.RemainingBytes, 10)
			annotations[AnnotationDirtyRate] = strconv.FormatInt(p.DirtyRateBytesPerSecond, 10)
			annotations[AnnotationIteration] = strconv.FormatInt(p.Iteration, 10)
			downtime := p.DowntimeMs
			if downtime == 0 && tm != nil && tm.Status.MigrationState != nil && tm.Status.MigrationState.Progress != nil {
				// The target's copy (pushed by the sync controller) may
				// have the final figure first.
				downtime = tm.Status.MigrationState.Progress.DowntimeMs
			}
			if downtime == 0 {
				downtime = p.ExpectedDowntimeMs
			}
			annotations[AnnotationDowntime] = strconv.FormatInt(downtime, 10)
		}
	}
	s.annotate(i, annotations)
}

// migrateBudget bounds Migrate by the VMIMs' own deadlines: the source's
// synchronization, KubeVirt's completion timeout per GiB of memory and
// disks (at least one GiB), the abort and handover waits, plus a margin.
func (s *vmStepper) migrateBudget() time.Duration {
	bytes := parseInt(s.step(0).Annotations[AnnotationMemoryBytes]) + parseInt(s.step(createVolumesIndex).Annotations[AnnotationDiskBytes])
	return MigrateBudget(bytes, effectiveCompletionTimeoutPerGiB(s.obs), s.t.MigrateMargin)
}

// effectiveCompletionTimeoutPerGiB is the longest completionTimeoutPerGiB
// that governs the VM's migration: the target KubeVirt CR's, or what a
// MigrationPolicy made of it in either cluster, as each VMIM's
// migrationState records once its controller claimed the migration.
func effectiveCompletionTimeoutPerGiB(obs VMObserved) int64 {
	perGiB := obs.CompletionTimeoutPerGiB
	for _, vmim := range []*kubevirtv1.VirtualMachineInstanceMigration{obs.Source.VMIM, obs.Target.VMIM} {
		if vmim == nil || vmim.Status.MigrationState == nil || vmim.Status.MigrationState.MigrationConfiguration == nil {
			continue
		}
		if policy := vmim.Status.MigrationState.MigrationConfiguration.CompletionTimeoutPerGiB; policy != nil {
			perGiB = max(perGiB, *policy)
		}
	}
	return perGiB
}

// MigrateBudget is Migrate's bound for a VM of memory and disks totalling
// bytes, with KubeVirt's completionTimeoutPerGiB (0: its default).
func MigrateBudget(bytes, completionTimeoutPerGiB int64, margin time.Duration) time.Duration {
	const gib = 1 << 30
	gibs := max((bytes+gib-1)/gib, 1)
	if completionTimeoutPerGiB <= 0 {
		completionTimeoutPerGiB = kubevirtv1.DefaultCompletionTimeoutPerGiB
	}
	completion := time.Duration(gibs*completionTimeoutPerGiB) * time.Second
	return kubevirtv1.DefaultMigrationSyncTimeout + completion + kubevirtv1.DefaultMigrationAbortTimeout + kubevirtv1.DefaultMigrationHandoverTimeout + margin
}

func parseInt(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// cleanup removes the VMIMs; after a failure or cancel, once they are
// gone, what was made on the target for this VM (never anything on the
// source but the sending VMIM, and never a target VM whose VMI runs the
// guest).
func (s *vmStepper) cleanup(i int) {
	if !s.readyWithVolumes(i) {
		return
	}
	src, target := s.obs.Source, s.obs.Target
	outcome := cleanupOutcome(s.step(i))
	var deletes []Action
	var remaining []string
	remove := func(side Side, obj client.Object) {
		if isNil(obj) || !s.owns(obj) {
			return
		}
		remaining = append(remaining, fmt.Sprintf("%s %s on the %s", kindOf(obj), objectName(obj), side))
		if obj.GetDeletionTimestamp() == nil {
			deletes = append(deletes, Action{Side: side, Op: OpDelete, Object: obj})
		}
	}
	remove(SideTarget, target.VMIM)
	if src.Err != "" {
		if len(deletes) > 0 {
			s.act(i, "deleting the migrations", deletes...)
			return
		}
		s.wait(i, fmt.Sprintf("cannot read the source cluster to delete the sending migration %s/%s: %s", s.d.Status.Namespace, s.vmimName(), src.Err), pollSource)
		return
	}
	remove(SideSource, src.VMIM)
	if len(remaining) > 0 || outcome == VMSucceeded {
		s.removeOrFinish(i, "the migrations", deletes, remaining)
		return
	}
	// A failure or cancel: the target's objects, once both VMIMs are gone.
	keep := target.VMI != nil && target.VMI.Status.Phase == kubevirtv1.Running && target.VM != nil && s.owns(target.VM)
	if keep {
		s.annotate(i, map[string]string{AnnotationKeptTargetVM: fmt.Sprintf("VM %s/%s kept with its disks: its VMI runs the guest on %s", target.VM.Namespace, target.VM.Name, target.VMI.Status.NodeName)})
	} else {
		remove(SideTarget, target.VM)
		for _, name := range sortedKeys(target.DataVolumes) {
			remove(SideTarget, target.DataVolumes[name])
		}
		for _, name := range sortedKeys(target.PVCs) {
			remove(SideTarget, target.PVCs[name])
		}
	}
	for _, ref := range s.obs.References {
		if obj := target.Resources[ref]; obj != nil && ref.Namespaced() {
			remove(SideTarget, obj)
		}
	}
	s.removeOrFinish(i, "what was made on the target", deletes, remaining)
}

func (s *vmStepper) removeOrFinish(i int, what string, deletes []Action, remaining []string) {
	switch {
	case len(deletes) > 0:
		s.act(i, "deleting "+what, deletes...)
	case len(remaining) > 0:
		s.wait(i, "waiting for the deletion of "+strings.Join(remaining, ", "), pollSource)
	default:
		s.complete(i, nil)
	}
}

// ready: the step has what it needs (the inventory), and the target could
// be read; else it waits.
func (s *vmStepper) ready(i int) bool {
	if !s.obs.Inventory {
		s.requeueIn(afterAction)
		return false
	}
	return !s.targetUnreadable(i)
}

// readyWithVolumes is ready for a task that needs the volumes too.
func (s *vmStepper) readyWithVolumes(i int) bool {
	if !s.obs.Volumes {
		s.requeueIn(afterAction)
		return false
	}
	return s.ready(i)
}

// ---- helpers ----

func (s *vmStepper) labels() map[string]string {
	return Labels(s.obs.PlanUID, s.obs.MigrationUID, s.d.Status.ID)
}

func (s *vmStepper) owns(obj client.Object) bool {
	return owned(obj, s.obs.MigrationUID, s.d.Status.ID)
}

func (s *vmStepper) migrationID() string { return MigrationID(s.d.Status.ID, s.obs.MigrationUID) }

func (s *vmStepper) vmimName() string { return VMIMName(s.d.Status.Name, s.obs.MigrationUID) }

func (s *vmStepper) nowPtr() *metav1.Time {
	t := s.now
	return &t
}

func (s *vmStepper) vmName() string { return vmRefName(s.d.Status.Ref) }

func vmRefName(ref forkliftv1beta1.Ref) string {
	switch {
	case ref.Name != "" && ref.Namespace != "":
		return ref.Namespace + "/" + ref.Name
	case ref.Name != "":
		return ref.Name
	}
	return "id " + ref.ID
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *kubevirtv1.VirtualMachine:
		return "VM"
	case *kubevirtv1.VirtualMachineInstanceMigration:
		return "VMIM"
	case *cdiv1beta1.DataVolume:
		return "DataVolume"
	case *corev1.PersistentVolumeClaim:
		return "PVC"
	case *corev1.Secret:
		return "Secret"
	case *corev1.ConfigMap:
		return "ConfigMap"
	case *corev1.Namespace:
		return "Namespace"
	case *instancetypev1beta1.VirtualMachineInstancetype:
		return string(vmrefs.KindInstancetype)
	case *instancetypev1beta1.VirtualMachinePreference:
		return string(vmrefs.KindPreference)
	}
	return fmt.Sprintf("%T", obj)
}

func objectName(obj client.Object) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// sourceUnreadable and targetUnreadable wait, and say so, while a
// cluster's objects could not be read this time: a step cannot decide
// without them.
func (s *vmStepper) sourceUnreadable(i int) bool {
	return s.unreadable(i, "source", s.obs.Source.Err, pollSource)
}

func (s *vmStepper) targetUnreadable(i int) bool {
	return s.unreadable(i, "target", s.obs.Target.Err, pollTarget)
}

func (s *vmStepper) unreadable(i int, side, err string, poll time.Duration) bool {
	if err == "" {
		return false
	}
	s.wait(i, "cannot read the "+side+" cluster: "+err, poll)
	return true
}
