package virtcontroller

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// vmReconciler drives a VM: MACs, DataVolumes, the VMI per run strategy,
// the status. The decisions are decideVMI, observeFailure and
// computeVMStatus; this file only reads and writes.
type vmReconciler struct {
	client   client.Client
	recorder recorder.EventRecorder
	backoff  backoffPolicy
	now      func() time.Time
}

func (r *vmReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("virtualmachine").
		For(&kubevirtv1.VirtualMachine{}).
		// The VMI of a VM has the VM's name; watching by name (not by
		// owner) also sees a leftover VMI the VM waits for.
		Watches(&kubevirtv1.VirtualMachineInstance{}, handler.EnqueueRequestsFromMapFunc(sameName)).
		// DataVolumes the VM uses but does not own (made before the VM,
		// as Forklift does) count too.
		Watches(&cdiv1beta1.DataVolume{}, handler.EnqueueRequestsFromMapFunc(r.vmsUsingDataVolume)).
		Complete(r)
}

func sameName(_ context.Context, obj client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(obj)}}
}

func (r *vmReconciler) vmsUsingDataVolume(ctx context.Context, dv client.Object) []reconcile.Request {
	var vms kubevirtv1.VirtualMachineList
	if err := r.client.List(ctx, &vms, client.InNamespace(dv.GetNamespace()), client.MatchingFields{dataVolumeIndex: dv.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list VMs using DataVolume", "dataVolume", dv.GetName())
		return nil
	}
	requests := make([]reconcile.Request, 0, len(vms.Items))
	for _, vm := range vms.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&vm)})
	}
	return requests
}

func (r *vmReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	vm := &kubevirtv1.VirtualMachine{}
	if err := r.client.Get(ctx, req.NamespacedName, vm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if vm.Spec.Template == nil {
		return ctrl.Result{}, nil // the CRD requires a template
	}
	if assigned, err := r.ensureMACs(ctx, vm); assigned || err != nil {
		return ctrl.Result{}, err // the update brings the VM back here
	}
	volumes, err := r.ensureDataVolumes(ctx, vm)
	if err != nil {
		return ctrl.Result{}, err
	}
	vmi, controlled, err := r.currentVMI(ctx, vm)
	if err != nil {
		return ctrl.Result{}, err
	}
	failure, err := r.trackStartFailure(ctx, vm, vmi, controlled)
	if err != nil {
		return ctrl.Result{}, err
	}
	decision := decideVMI(runInput{
		Strategy: vm.EffectiveRunStrategy(), VMDeleting: vm.DeletionTimestamp != nil,
		VMI: vmi, VMIControlled: controlled, Volumes: volumes,
		RetryAt: failure.RetryAfterTimestamp.Time, Now: r.now(),
		RestoreRunStrategy: vm.Annotations[kubevirtv1.RestoreRunStrategyAnnotation],
	})
	vmi, syncErr := r.act(ctx, vm, vmi, decision)
	if syncErr == nil {
		syncErr = r.setRunStrategy(ctx, vm, decision)
	}
	if !controlled && decision.Action == keepVMI {
		vmi = nil // someone else's VMI says nothing about this VM
	}
	status := computeVMStatus(vmObservation{
		VM: vm, VMI: vmi, Volumes: volumes, StartFailure: failure,
		Decision: decision, SyncFailure: syncErr, Now: r.now(),
	})
	if err := r.writeStatus(ctx, vm, status); err != nil {
		return ctrl.Result{}, err
	}
	if syncErr != nil {
		return ctrl.Result{}, fmt.Errorf("%s: %s", syncErr.Reason, syncErr.Message)
	}
	return ctrl.Result{RequeueAfter: decision.RetryAfter}, nil
}

// ensureMACs writes a stable MAC into every template interface lacking one
// (kubemacpool's job upstream), before any VMI is made from the template.
func (r *vmReconciler) ensureMACs(ctx context.Context, vm *kubevirtv1.VirtualMachine) (bool, error) {
	if vm.DeletionTimestamp != nil || !lacksMAC(vm) {
		return false, nil
	}
	var vms kubevirtv1.VirtualMachineList
	if err := r.client.List(ctx, &vms); err != nil {
		return false, err
	}
	var vmis kubevirtv1.VirtualMachineInstanceList
	if err := r.client.List(ctx, &vmis); err != nil {
		return false, err
	}
	updated := vm.DeepCopy()
	assigned := assignMACs(updated, macsInUse(vm.Namespace, vm.Name, vms.Items, vmis.Items))
	if err := r.client.Update(ctx, updated); err != nil {
		if apierrors.IsConflict(err) {
			return true, nil // the VM changed; its update event brings it back
		}
		return false, fmt.Errorf("write MACs into VM %s/%s: %w", vm.Namespace, vm.Name, err)
	}
	for _, a := range assigned {
		r.recorder.Eventf(updated, nil, corev1.EventTypeNormal, "MACAddressAssigned", "AssignMAC",
			"interface %s gets MAC %s, kept across restarts and migrations", a.Interface, a.MAC)
	}
	return true, nil
}

func lacksMAC(vm *kubevirtv1.VirtualMachine) bool {
	for _, iface := range vm.Spec.Template.Spec.Domain.Devices.Interfaces {
		if iface.MacAddress == "" {
			return true
		}
	}
	return false
}

// ensureDataVolumes creates the DataVolumes of the VM's templates that do
// not exist and reports whether all the VM uses are ready for a VMI.
func (r *vmReconciler) ensureDataVolumes(ctx context.Context, vm *kubevirtv1.VirtualMachine) (volumeReadiness, error) {
	names := dataVolumeNames(vm)
	found := map[string]*cdiv1beta1.DataVolume{}
	for _, name := range names {
		dv := &cdiv1beta1.DataVolume{}
		err := r.client.Get(ctx, types.NamespacedName{Namespace: vm.Namespace, Name: name}, dv)
		switch {
		case apierrors.IsNotFound(err):
			found[name] = nil
		case err != nil:
			return volumeReadiness{}, err
		default:
			found[name] = dv
		}
	}
	if vm.DeletionTimestamp == nil {
		for i := range vm.Spec.DataVolumeTemplates {
			template := &vm.Spec.DataVolumeTemplates[i]
			if found[template.ObjectMeta.Name] != nil {
				continue // existing ones are used as they are, owned or not
			}
			dv, err := r.createDataVolume(ctx, vm, template)
			if err != nil {
				return volumeReadiness{}, err
			}
			found[template.ObjectMeta.Name] = dv
		}
	}
	return dataVolumeReadiness(names, found), nil
}

func (r *vmReconciler) createDataVolume(ctx context.Context, vm *kubevirtv1.VirtualMachine, template *kubevirtv1.DataVolumeTemplateSpec) (*cdiv1beta1.DataVolume, error) {
	dv := newDataVolume(vm, template)
	err := r.client.Create(ctx, dv)
	if apierrors.IsAlreadyExists(err) {
		return dv, nil // the cache had not seen it yet
	}
	if err != nil {
		r.recorder.Eventf(vm, nil, corev1.EventTypeWarning, "FailedDataVolumeCreate", "CreateDataVolume",
			"cannot create DataVolume %s: %v", dv.Name, err)
		return nil, fmt.Errorf("create DataVolume %s/%s: %w", dv.Namespace, dv.Name, err)
	}
	r.recorder.Eventf(vm, dv, corev1.EventTypeNormal, "SuccessfulDataVolumeCreate", "CreateDataVolume",
		"created DataVolume %s", dv.Name)
	return dv, nil
}

// currentVMI is the VMI of the VM's name, and whether the VM controls it.
func (r *vmReconciler) currentVMI(ctx context.Context, vm *kubevirtv1.VirtualMachine) (*kubevirtv1.VirtualMachineInstance, bool, error) {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	err := r.client.Get(ctx, client.ObjectKeyFromObject(vm), vmi)
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return vmi, metav1.IsControlledBy(vmi, vm), nil
}

// trackStartFailure counts a newly failed VMI into the VM's crash-loop
// bookkeeping and saves it, before the VMI is deleted and the count could
// be lost.
func (r *vmReconciler) trackStartFailure(ctx context.Context, vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance, controlled bool) (startFailure, error) {
	prev := readStartFailure(vm)
	if !controlled {
		return prev, nil
	}
	next, changed := observeFailure(prev, vmi, r.now(), r.backoff)
	if !changed {
		return next, nil
	}
	encoded, err := json.Marshal(next)
	if err != nil {
		return prev, err
	}
	patch := client.MergeFrom(vm.DeepCopy())
	if vm.Annotations == nil {
		vm.Annotations = map[string]string{}
	}
	vm.Annotations[StartFailureAnnotation] = string(encoded)
	if err := r.client.Patch(ctx, vm, patch); err != nil {
		return prev, fmt.Errorf("record start failure on VM %s/%s: %w", vm.Namespace, vm.Name, err)
	}
	if wait := r.backoff.delay(next.ConsecutiveFailCount); wait > 0 && restartsAfterFailure(vm.EffectiveRunStrategy()) {
		r.recorder.Eventf(vm, vmi, corev1.EventTypeWarning, "CrashLoopBackOff", "BackOff",
			"VMI failed %d times in a row; next start in %s", next.ConsecutiveFailCount, wait)
	}
	return next, nil
}

// readStartFailure parses the bookkeeping; a mangled annotation counts as
// none rather than blocking the VM.
func readStartFailure(vm *kubevirtv1.VirtualMachine) startFailure {
	var failure startFailure
	if value := vm.Annotations[StartFailureAnnotation]; value != "" {
		if err := json.Unmarshal([]byte(value), &failure); err != nil {
			return startFailure{}
		}
	}
	return failure
}

// act carries out the decision and returns the VMI as it now is.
func (r *vmReconciler) act(ctx context.Context, vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance, decision vmiDecision) (*kubevirtv1.VirtualMachineInstance, *syncFailure) {
	switch decision.Action {
	case createVMI:
		return r.createVMI(ctx, vm, decision)
	case deleteVMI:
		return r.deleteVMI(ctx, vm, vmi, decision)
	}
	if vmi != nil && metav1.IsControlledBy(vmi, vm) && isReceiver(vmi) && vmi.Status.Phase == "" {
		// A receiver created in an earlier sync whose phase write failed.
		return vmi, r.markWaitingForSync(ctx, vmi)
	}
	return vmi, nil
}

func (r *vmReconciler) createVMI(ctx context.Context, vm *kubevirtv1.VirtualMachine, decision vmiDecision) (*kubevirtv1.VirtualMachineInstance, *syncFailure) {
	vmi := newVMI(vm, decision.Receiver)
	p, err := readProfile(ctx, r.client, vm)
	if err == nil {
		err = applyProfile(vmi, p)
	}
	if err != nil {
		r.recorder.Eventf(vm, nil, corev1.EventTypeWarning, "FailedCreate", "CreateVMI", "cannot create VMI: %v", err)
		return nil, &syncFailure{Reason: "FailedCreate", Message: err.Error()}
	}
	if err := r.client.Create(ctx, vmi); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, nil // the cache had not seen it yet; its event follows
		}
		r.recorder.Eventf(vm, nil, corev1.EventTypeWarning, "FailedCreate", "CreateVMI", "cannot create VMI: %v", err)
		return nil, &syncFailure{Reason: "FailedCreate", Message: err.Error()}
	}
	r.recorder.Eventf(vm, vmi, corev1.EventTypeNormal, "SuccessfulCreate", "CreateVMI",
		"created VMI %s: %s", vmi.Name, decision.Message)
	if decision.Receiver {
		return vmi, r.markWaitingForSync(ctx, vmi)
	}
	return vmi, nil
}

// markWaitingForSync puts a receiver VMI into WaitingForSync, where the
// cross-cluster flow picks it up; the scheduler leaves it alone.
func (r *vmReconciler) markWaitingForSync(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) *syncFailure {
	vmi.Status = withPhase(vmi.Status, kubevirtv1.WaitingForSync, metav1.NewTime(r.now()))
	if err := r.client.Status().Update(ctx, vmi); err != nil && !apierrors.IsConflict(err) {
		return &syncFailure{Reason: "FailedUpdate", Message: fmt.Sprintf("cannot set receiver VMI %s to WaitingForSync: %v", vmi.Name, err)}
	}
	return nil
}

func (r *vmReconciler) deleteVMI(ctx context.Context, vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance, decision vmiDecision) (*kubevirtv1.VirtualMachineInstance, *syncFailure) {
	// The UID precondition makes sure a VMI created meanwhile survives.
	err := r.client.Delete(ctx, vmi, client.Preconditions{UID: &vmi.UID})
	if err != nil && !apierrors.IsNotFound(err) {
		r.recorder.Eventf(vm, vmi, corev1.EventTypeWarning, "FailedDelete", "DeleteVMI", "cannot delete VMI %s: %v", vmi.Name, err)
		return vmi, &syncFailure{Reason: "FailedDelete", Message: err.Error()}
	}
	r.recorder.Eventf(vm, vmi, corev1.EventTypeNormal, "SuccessfulDelete", "DeleteVMI",
		"deleted VMI %s: %s", vmi.Name, decision.Message)
	deleting := vmi.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: r.now()}
	return deleting, nil
}

// setRunStrategy writes the decision's run strategy into the VM's spec,
// dropping the deprecated spec.running it replaces; vm becomes the VM as
// written. The optimistic lock keeps a user's concurrent change, whose
// update event brings the VM back here.
func (r *vmReconciler) setRunStrategy(ctx context.Context, vm *kubevirtv1.VirtualMachine, decision vmiDecision) *syncFailure {
	previous := vm.EffectiveRunStrategy()
	if decision.RunStrategy == "" || decision.RunStrategy == previous {
		return nil
	}
	updated := vm.DeepCopy()
	strategy := decision.RunStrategy
	updated.Spec.RunStrategy = &strategy
	updated.Spec.Running = nil
	if err := r.client.Patch(ctx, updated, client.MergeFromWithOptions(vm, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) {
			return nil
		}
		r.recorder.Eventf(vm, nil, corev1.EventTypeWarning, "FailedUpdate", "UpdateRunStrategy", "cannot set runStrategy %s: %v", strategy, err)
		return &syncFailure{Reason: "FailedUpdate", Message: fmt.Sprintf("cannot set runStrategy %s: %v", strategy, err)}
	}
	*vm = *updated
	r.recorder.Eventf(vm, nil, corev1.EventTypeNormal, decision.Reason, "UpdateRunStrategy",
		"runStrategy %s -> %s: %s", previous, strategy, decision.Message)
	return nil
}

// warningStatuses are the printable statuses worth an event when entered.
var warningStatuses = map[kubevirtv1.VirtualMachinePrintableStatus]bool{
	kubevirtv1.VirtualMachineStatusUnschedulable:    true,
	kubevirtv1.VirtualMachineStatusDataVolumeError:  true,
	kubevirtv1.VirtualMachineStatusCrashLoopBackOff: true,
}

func (r *vmReconciler) writeStatus(ctx context.Context, vm *kubevirtv1.VirtualMachine, status kubevirtv1.VirtualMachineStatus) error {
	if equality.Semantic.DeepEqual(vm.Status, status) {
		return nil
	}
	previous := vm.Status.PrintableStatus
	updated := vm.DeepCopy()
	updated.Status = status
	if err := r.client.Status().Update(ctx, updated); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // changed or gone meanwhile; its event brings it back
		}
		return fmt.Errorf("update status of VM %s/%s: %w", vm.Namespace, vm.Name, err)
	}
	if status.PrintableStatus != previous && warningStatuses[status.PrintableStatus] {
		r.recorder.Eventf(updated, nil, corev1.EventTypeWarning, string(status.PrintableStatus), "UpdateStatus",
			"%s", explainStatus(status))
	}
	return nil
}

// explainStatus is the message of the condition that explains a warning
// status.
func explainStatus(status kubevirtv1.VirtualMachineStatus) string {
	explaining := map[kubevirtv1.VirtualMachinePrintableStatus]kubevirtv1.VirtualMachineConditionType{
		kubevirtv1.VirtualMachineStatusUnschedulable:    kubevirtv1.VirtualMachineConditionType(PodScheduled),
		kubevirtv1.VirtualMachineStatusDataVolumeError:  vmDataVolumesReady,
		kubevirtv1.VirtualMachineStatusCrashLoopBackOff: kubevirtv1.VirtualMachineReady,
	}[status.PrintableStatus]
	for _, c := range status.Conditions {
		if c.Type == explaining {
			return c.Message
		}
	}
	return string(status.PrintableStatus)
}
