package vmiruntime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/pkg/guestagent"
)

// Finalizer is upstream's name for the finalizer virt-handler keeps on a VMI
// while its domain may still run: the VMI object never goes away before
// the guest is stopped.
const Finalizer = "kubevirt.io/virtualMachineControllerFinalize"

// statusInterval is how often a running VMI's status (guest agent, IPs) is
// refreshed.
const statusInterval = 5 * time.Second

// defaultGrace is upstream's terminationGracePeriodSeconds default.
const defaultGrace = 30 * time.Second

// runtimeEnv is what the VMI runner needs from its node: where QEMU goes,
// how taps are made, how processes start inside the node's network.
type runtimeEnv interface {
	// CreateTap makes a tap on the node's VM bridge.
	CreateTap(name string) error
	// DeleteTap removes it.
	DeleteTap(name string) error
	// Launch starts QEMU inside the node's network namespace.
	Launch(ctx context.Context, dom qemu.Domain, opts qemu.Options) (*qemu.Instance, error)
}

// Runtime runs the VMIs scheduled to this node: one QEMU each.
type Runtime struct {
	client client.Client
	// reader reads Secrets and ConfigMaps by name from the API (they are
	// not cached: a node would hold every one of the cluster).
	reader   client.Reader
	recorder events.EventRecorder
	logger   *slog.Logger
	node     string
	runRoot  string
	env      runtimeEnv
	storage  Volumes
	migrator *migrator
	// accel is what every QEMU of this node runs under, and why.
	accel qemu.AccelProbe
	// bootTimeout is how long a guest this agent boots may take until its
	// agent answers (see bootOverdue).
	bootTimeout time.Duration
	inputs      func() domainInputs
	// exits delivers a VMI to reconcile when its QEMU ends.
	exits chan event.GenericEvent
	// detached is closed by Detach: nothing is watched any more.
	detached   chan struct{}
	detachOnce sync.Once

	mu        sync.Mutex
	instances map[types.UID]*runningVMI
	// adopting serializes adoptions: QEMU's QMP socket takes one client,
	// so a second concurrent qemu.Adopt of the same QEMU (the VMI and
	// migration reconcilers after a restart) would time out and take a
	// running QEMU for a dead one.
	adopting sync.Mutex
}

// runningVMI is a QEMU this agent launched or adopted.
type runningVMI struct {
	instance *qemu.Instance
	agent    *guestagent.Client
	vmi      types.NamespacedName
	// guestShutdown is closed when QEMU reports that the guest itself
	// powered off, which makes the VMI Succeeded rather than Failed.
	guestShutdown chan struct{}
	// bootDeadline is when a guest this agent booted must have answered
	// through its agent; zero for a guest that arrived by migration or
	// was adopted, which booted elsewhere or earlier.
	bootDeadline time.Time
	// agentAnswered is set once the guest's agent has answered.
	agentAnswered atomic.Bool
	// vcpus are its vCPU threads, for the metrics.
	vcpus vcpuThreads
}

// bootOverdue says, once the boot deadline has passed without an answer
// from the guest's agent, that the guest did not boot, with the last lines
// of its serial console; "" otherwise.
func (running *runningVMI) bootOverdue(now time.Time, timeout time.Duration) string {
	if running.bootDeadline.IsZero() || running.agentAnswered.Load() || now.Before(running.bootDeadline) {
		return ""
	}
	return notBootedMessage(timeout, running.instance.ConsoleSummary(consoleTailLines, consoleTailBytes))
}

// consoleTailLines and consoleTailBytes are how much of a guest's serial
// console a boot failure shows: enough for a panic's cause, and within an
// event's note (1 KiB) with the message around it.
const (
	consoleTailLines = 8
	consoleTailBytes = 700
)

// notBootedMessage is pure: what a VMI's condition, its event and `cclm
// guest` say about a guest whose agent never answered.
func notBootedMessage(timeout time.Duration, console string) string {
	message := fmt.Sprintf("the guest did not boot: its agent has not answered within %v of QEMU's start", timeout)
	console = strings.TrimSpace(console)
	if console == "" {
		return message + "; its serial console stayed empty (see `cclm console`)"
	}
	return message + "; last lines of its serial console:\n" + console
}

// watchShutdown notes a SHUTDOWN event that the guest caused.
func (running *runningVMI) watchShutdown() {
	events, cancel := running.instance.Events()
	defer cancel()
	for {
		select {
		case <-running.instance.Exited():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			if e.Name == "SHUTDOWN" && e.Data["guest"] == true {
				close(running.guestShutdown)
				return
			}
		}
	}
}

func (running *runningVMI) shutDownByGuest() bool {
	select {
	case <-running.guestShutdown:
		return true
	default:
		return false
	}
}

func (r *Runtime) runDir(uid types.UID) string {
	return filepath.Join(r.runRoot, runDirName(uid))
}

// runDirName is a VMI's directory name in the run root: the UID's first 13
// characters, since unix socket paths in it are limited to 107 bytes.
func runDirName(uid types.UID) string {
	id := string(uid)
	if len(id) > 13 {
		id = id[:13]
	}
	return id
}

func (r *Runtime) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var vmi kubevirtv1.VirtualMachineInstance
	if err := r.client.Get(ctx, req.NamespacedName, &vmi); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.migrator != nil && vmi.DeletionTimestamp == nil {
		r.migrator.reconcile(ctx, &vmi)
	}
	if vmi.Status.NodeName != r.node {
		return ctrl.Result{}, nil
	}
	if vmi.DeletionTimestamp != nil {
		return r.stop(ctx, &vmi)
	}
	switch vmi.Status.Phase {
	case kubevirtv1.Scheduled:
		return r.start(ctx, &vmi)
	case kubevirtv1.Running:
		return r.observe(ctx, &vmi)
	case kubevirtv1.WaitingForSync:
		// A receiver this node took over by a decentralized migration
		// whose phase did not reach Running (yet): its guest runs here.
		if r.adopt(ctx, &vmi) != nil {
			return r.observe(ctx, &vmi)
		}
	case kubevirtv1.Succeeded, kubevirtv1.Failed:
		return ctrl.Result{}, r.cleanUp(ctx, &vmi)
	}
	return ctrl.Result{}, nil
}

// start launches QEMU for a VMI the scheduler put on this node.
func (r *Runtime) start(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (ctrl.Result, error) {
	if r.instance(vmi.UID) != nil {
		return r.observe(ctx, vmi) // launched, status not written yet
	}
	if !controllerutil.ContainsFinalizer(vmi, Finalizer) {
		controllerutil.AddFinalizer(vmi, Finalizer)
		if err := r.client.Update(ctx, vmi); err != nil {
			return ctrl.Result{}, err
		}
	}
	inputs, waiting, err := r.domainInputs(ctx, vmi)
	if waiting != "" {
		return ctrl.Result{RequeueAfter: time.Second}, r.setCondition(ctx, vmi, kubevirtv1.VirtualMachineInstanceProvisioning, corev1.ConditionTrue, "WaitingForVolumes", waiting)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	dom, err := buildDomain(vmi, inputs)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, vmi, "InvalidSpec", err)
	}
	for _, nic := range dom.NICs {
		if err := r.env.CreateTap(nic.Tap); err != nil {
			return ctrl.Result{}, r.fail(ctx, vmi, "NetworkSetupFailed", err)
		}
	}
	instance, err := r.env.Launch(ctx, dom, qemu.Options{})
	if err != nil {
		r.deleteTaps(dom)
		return ctrl.Result{}, r.fail(ctx, vmi, "QEMUStartFailed", err)
	}
	r.track(vmi, instance, time.Now().Add(r.bootTimeout))
	r.recorder.Eventf(vmi, nil, corev1.EventTypeNormal, "Started", "Start", "QEMU pid %d started on node %s (%s)", instance.Pid(), r.node, r.accel)
	return r.observe(ctx, vmi)
}

// domainInputs resolves the node facts of a VMI's Domain; waiting says what
// is not ready yet (a volume not provisioned or bound).
func (r *Runtime) domainInputs(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (domainInputs, string, error) {
	inputs := r.inputs()
	inputs.RunDir = r.runDir(vmi.UID)
	inputs.DiskPaths = map[string]string{}
	for _, volume := range vmi.Spec.Volumes {
		claim := volume.ClaimName()
		if claim == "" {
			continue
		}
		path, err := r.storage.DiskPath(ctx, vmi.Namespace, claim)
		if apierrors.IsNotFound(err) {
			return inputs, fmt.Sprintf("volume %s: PVC %s does not exist yet", volume.Name, claim), nil
		}
		if err != nil {
			return inputs, fmt.Sprintf("volume %s: %v", volume.Name, err), nil
		}
		inputs.DiskPaths[volume.Name] = path
	}
	waiting, err := r.makeConfigDisks(ctx, vmi, inputs.RunDir, inputs.DiskPaths)
	return inputs, waiting, err
}

func (r *Runtime) instance(uid types.UID) *runningVMI {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.instances[uid]
}

// track remembers a QEMU and asks for a reconcile of its VMI when it ends;
// a non-zero bootDeadline watches the guest's boot.
func (r *Runtime) track(vmi *kubevirtv1.VirtualMachineInstance, instance *qemu.Instance, bootDeadline time.Time) *runningVMI {
	running := &runningVMI{instance: instance, vmi: client.ObjectKeyFromObject(vmi), guestShutdown: make(chan struct{}), bootDeadline: bootDeadline}
	go running.watchShutdown()
	r.mu.Lock()
	r.instances[vmi.UID] = running
	r.mu.Unlock()
	go func() {
		select {
		case <-instance.Exited():
		case <-r.detached:
			return
		}
		select {
		case r.exits <- event.GenericEvent{Object: &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Namespace: vmi.Namespace, Name: vmi.Name}}}:
		case <-r.detached:
		}
	}()
	return running
}

// Detach lets go of every QEMU without stopping it, when the agent shuts
// down: QMP and guest agent connections are closed and the goroutines
// watching them end. A restarted agent adopts the QEMUs again. Call it
// once the VMI controller has stopped.
func (r *Runtime) Detach() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.detachOnce.Do(func() { close(r.detached) })
	for uid, running := range r.instances {
		if running.agent != nil {
			running.agent.Close()
		}
		running.instance.Close()
		delete(r.instances, uid)
	}
}

func (r *Runtime) forget(uid types.UID) *runningVMI {
	r.mu.Lock()
	defer r.mu.Unlock()
	running := r.instances[uid]
	delete(r.instances, uid)
	if running != nil && running.agent != nil {
		running.agent.Close()
	}
	return running
}

// adopt finds the QEMU of a VMI after this agent restarted.
func (r *Runtime) adopt(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) *runningVMI {
	if running := r.instance(vmi.UID); running != nil {
		return running
	}
	r.adopting.Lock()
	defer r.adopting.Unlock()
	if running := r.instance(vmi.UID); running != nil {
		return running
	}
	instance, err := qemu.Adopt(ctx, r.runDir(vmi.UID))
	if err != nil {
		return nil
	}
	r.recorder.Eventf(vmi, nil, corev1.EventTypeNormal, "Adopted", "Adopt", "node agent restarted: re-attached to QEMU pid %d", instance.Pid())
	return r.track(vmi, instance, time.Time{})
}

// observe refreshes a running VMI's status, or ends it if QEMU is gone.
func (r *Runtime) observe(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (ctrl.Result, error) {
	running := r.adopt(ctx, vmi)
	if running == nil || !running.instance.Alive() {
		return ctrl.Result{}, r.ended(ctx, vmi, running)
	}
	info, agentErr := r.guestInfo(ctx, running)
	qemuStatus, err := running.instance.Status(ctx)
	if err != nil {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	now := time.Now()
	notBooted := running.bootOverdue(now, r.bootTimeout)
	desired := runningStatus(vmi, r.node, running.instance.Domain(), qemuStatus, agentReading{info, agentErr, notBooted}, now)
	reported := conditionHasReason(vmi.Status.Conditions, kubevirtv1.VirtualMachineInstanceAgentConnected, ReasonGuestNotBooted)
	if err := r.patchStatus(ctx, vmi, desired); err != nil {
		return ctrl.Result{}, err
	}
	if notBooted != "" && !reported { // once, as the condition turns
		r.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, ReasonGuestNotBooted, "Boot", "%s", notBooted)
	}
	return ctrl.Result{RequeueAfter: statusInterval}, nil
}

// conditionHasReason says whether the VMI's condition of that type has
// that reason.
func conditionHasReason(conditions []kubevirtv1.VirtualMachineInstanceCondition, kind kubevirtv1.VirtualMachineInstanceConditionType, reason string) bool {
	for _, c := range conditions {
		if c.Type == kind {
			return c.Reason == reason
		}
	}
	return false
}

func (r *Runtime) guestInfo(ctx context.Context, running *runningVMI) (*guestagent.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return r.guestInfoWithin(ctx, running)
}

// guestInfoWithin asks the guest's agent for its info until ctx ends, and
// notes that the agent answered.
func (r *Runtime) guestInfoWithin(ctx context.Context, running *runningVMI) (*guestagent.Info, error) {
	agent, err := r.agentOf(ctx, running)
	if err != nil {
		return nil, err
	}
	info, err := agent.Info(ctx)
	if err == nil {
		running.agentAnswered.Store(true)
	}
	return info, err
}

// agentOf is the guest agent client of a running VMI, dialled once.
func (r *Runtime) agentOf(ctx context.Context, running *runningVMI) (*guestagent.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if running.agent == nil {
		agent, err := guestagent.Dial(ctx, running.instance.Paths().Agent)
		if err != nil {
			return nil, err
		}
		running.agent = agent
	}
	return running.agent, nil
}

// agentPingTimeout bounds the check that a guest's agent answers before a
// request is handed to it: an agent answers info in milliseconds, and a
// caller must not wait out a long request's timeout on a guest that is
// not there.
const agentPingTimeout = 3 * time.Second

// answeringAgent is the guest's agent once it has answered a ping, else an
// error that says why it does not answer: still booting, never booted
// (with the console's last lines), or stopped answering.
func (r *Runtime) answeringAgent(ctx context.Context, running *runningVMI) (*guestagent.Client, error) {
	pingCtx, cancel := context.WithTimeout(ctx, agentPingTimeout)
	defer cancel()
	_, err := r.guestInfoWithin(pingCtx, running)
	if err == nil {
		return r.agentOf(ctx, running)
	}
	if notBooted := running.bootOverdue(time.Now(), r.bootTimeout); notBooted != "" {
		return nil, errors.New(notBooted)
	}
	if running.agentAnswered.Load() {
		return nil, fmt.Errorf("the guest's agent answered before but not within %v now (%v): the guest may be hung or busy; see `cclm console`", agentPingTimeout, err)
	}
	return nil, fmt.Errorf("the guest's agent has not answered yet (%v): the guest is still booting, for up to %v after QEMU's start; see `cclm console`", err, r.bootTimeout)
}

// errNotHere says that a VMI does not run on this node.
func errNotHere(namespace, name string) error {
	return fmt.Errorf("VMI %s/%s does not run on this node", namespace, name)
}

// byName finds a VMI's QEMU on this node by namespace and name.
func (r *Runtime) byName(namespace, name string) *runningVMI {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, running := range r.instances {
		if running.vmi.Namespace == namespace && running.vmi.Name == name {
			return running
		}
	}
	return nil
}

// ended records how a VMI's QEMU ended (see endOf) and frees what it held
// on this node.
func (r *Runtime) ended(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, running *runningVMI) error {
	phase, reason := endOf(vmi, running != nil && running.shutDownByGuest())
	r.forget(vmi.UID)
	patch := client.MergeFrom(vmi.DeepCopy())
	enterPhase(&vmi.Status, phase, metav1.Now())
	vmi.Status.Reason = reason
	setCondition(&vmi.Status, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionFalse, string(phase), reason)
	if err := r.client.Status().Patch(ctx, vmi, patch); err != nil {
		return err
	}
	eventType := corev1.EventTypeNormal
	if phase == kubevirtv1.Failed {
		eventType = corev1.EventTypeWarning
	}
	r.recorder.Eventf(vmi, nil, eventType, string(phase), "Run", "%s", reason)
	return r.cleanUp(ctx, vmi)
}

// endOf is pure: the phase and reason of a VMI whose QEMU is gone. The
// guest left for another cluster when the VMI is the source of a
// decentralized migration that succeeded (the source QEMU quits only
// then); a guest that powered off is Succeeded; a QEMU that died otherwise
// is Failed.
func endOf(vmi *kubevirtv1.VirtualMachineInstance, shutDownByGuest bool) (kubevirtv1.VirtualMachineInstancePhase, string) {
	if state := vmi.Status.MigrationState; state.IsDecentralizedSource() && state.Succeeded() {
		return kubevirtv1.Succeeded, fmt.Sprintf("migrated to node %s of the target cluster", state.TargetNode)
	}
	if shutDownByGuest {
		return kubevirtv1.Succeeded, "the guest shut down"
	}
	return kubevirtv1.Failed, "QEMU process is gone (killed, crashed, or ended while the node agent was down)"
}

// stop shuts the guest down for a VMI being deleted, then lets it go.
func (r *Runtime) stop(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (ctrl.Result, error) {
	if running := r.adopt(ctx, vmi); running != nil && running.instance.Alive() {
		grace := defaultGrace
		if vmi.Spec.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*vmi.Spec.TerminationGracePeriodSeconds) * time.Second
		}
		r.shutdownGuest(ctx, vmi, running, grace)
		r.recorder.Eventf(vmi, nil, corev1.EventTypeNormal, "Stopped", "Stop", "guest stopped")
	}
	return ctrl.Result{}, r.cleanUp(ctx, vmi)
}

// shutdownGuest stops a guest gracefully: through its agent first (as
// virt-launcher uses the QEMU guest agent), then ACPI, then a kill once
// the grace period is over.
func (r *Runtime) shutdownGuest(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, running *runningVMI, grace time.Duration) {
	deadline := time.Now().Add(grace)
	if agent, err := r.agentOf(ctx, running); err == nil {
		askCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = agent.Shutdown(askCtx)
		cancel()
		if err == nil {
			waitCtx, cancel := context.WithDeadline(ctx, deadline)
			_ = running.instance.Wait(waitCtx)
			cancel()
		}
	}
	if !running.instance.Alive() {
		return
	}
	if err := running.instance.Powerdown(ctx, time.Until(deadline)); err != nil {
		r.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, "StopFailed", "Stop", "graceful stop: %v; killing QEMU", err)
		_ = running.instance.Kill()
	}
}

// cleanUp removes what a VMI held on this node once its QEMU is gone, and
// then the finalizer.
func (r *Runtime) cleanUp(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	if running := r.forget(vmi.UID); running != nil {
		if running.instance.Alive() {
			_ = running.instance.Kill()
		}
		r.deleteTaps(running.instance.Domain())
		_ = running.instance.Close()
	} else {
		for _, iface := range vmi.Spec.Domain.Devices.Interfaces {
			_ = r.env.DeleteTap(TapName(vmi.UID, iface.Name))
		}
	}
	if err := os.RemoveAll(r.runDir(vmi.UID)); err != nil {
		return err
	}
	if controllerutil.RemoveFinalizer(vmi, Finalizer) {
		if err := r.client.Update(ctx, vmi); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func (r *Runtime) deleteTaps(dom qemu.Domain) {
	for _, nic := range dom.NICs {
		_ = r.env.DeleteTap(nic.Tap)
	}
}

// fail marks a VMI Failed with a reason that says what to fix; nothing of
// it is left running on the node.
func (r *Runtime) fail(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, reason string, cause error) error {
	patch := client.MergeFrom(vmi.DeepCopy())
	vmi.Status.Phase = kubevirtv1.Failed
	vmi.Status.Reason = cause.Error()
	setCondition(&vmi.Status, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionFalse, reason, cause.Error())
	r.recorder.Eventf(vmi, nil, corev1.EventTypeWarning, reason, "Start", "%s", cause.Error())
	if err := r.client.Status().Patch(ctx, vmi, patch); err != nil {
		return errors.Join(cause, err)
	}
	return r.cleanUp(ctx, vmi)
}

func (r *Runtime) setCondition(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, kind kubevirtv1.VirtualMachineInstanceConditionType, status corev1.ConditionStatus, reason, message string) error {
	patch := client.MergeFrom(vmi.DeepCopy())
	if !setCondition(&vmi.Status, kind, status, reason, message) {
		return nil
	}
	return r.client.Status().Patch(ctx, vmi, patch)
}

func (r *Runtime) patchStatus(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, desired kubevirtv1.VirtualMachineInstanceStatus) error {
	patch := client.MergeFrom(vmi.DeepCopy())
	vmi.Status = desired
	return r.client.Status().Patch(ctx, vmi, patch)
}
