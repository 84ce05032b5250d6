package virtcontroller

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

func testVM(strategy kubevirtv1.VirtualMachineRunStrategy) *kubevirtv1.VirtualMachine {
	return &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: "vm", Namespace: "ns", UID: "vm-uid", Generation: 3},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: &strategy,
			Template:    &kubevirtv1.VirtualMachineInstanceTemplateSpec{},
		},
	}
}

func withCondition(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType, status corev1.ConditionStatus, reason string) *kubevirtv1.VirtualMachineInstance {
	vmi.Status.Conditions = append(vmi.Status.Conditions, kubevirtv1.VirtualMachineInstanceCondition{Type: t, Status: status, Reason: reason})
	return vmi
}

func TestPrintableStatus(t *testing.T) {
	always, halted := kubevirtv1.RunStrategyAlways, kubevirtv1.RunStrategyHalted
	deletedVM := testVM(always)
	deletedVM.DeletionTimestamp = &metav1.Time{Time: testNow}
	migrating := inPhase(kubevirtv1.Running)
	migrating.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{StartTimestamp: &metav1.Time{Time: testNow}}
	migrated := inPhase(kubevirtv1.Running)
	migrated.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{
		StartTimestamp: &metav1.Time{Time: testNow}, EndTimestamp: &metav1.Time{Time: testNow}, Completed: true,
	}
	backingOff := startFailure{ConsecutiveFailCount: 3, RetryAfterTimestamp: metav1.NewTime(testNow.Add(time.Minute))}
	expired := startFailure{ConsecutiveFailCount: 3, RetryAfterTimestamp: metav1.NewTime(testNow.Add(-time.Minute))}
	failedDV := volumeReadiness{Referenced: true, Failed: []string{"DataVolume d failed"}}
	pendingDV := volumeReadiness{Referenced: true, Pending: []string{"DataVolume d is Pending"}}

	for _, tc := range []struct {
		name    string
		vm      *kubevirtv1.VirtualMachine
		vmi     *kubevirtv1.VirtualMachineInstance
		volumes volumeReadiness
		failure startFailure
		want    kubevirtv1.VirtualMachinePrintableStatus
	}{
		{"halted, no VMI", testVM(halted), nil, volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusStopped},
		{"VM being deleted", deletedVM, inPhase(kubevirtv1.Running), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusTerminating},
		{"VMI being deleted", testVM(halted), deletingVMI(), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusStopping},
		{"migrating", testVM(always), migrating, volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusMigrating},
		{"migrated, running", testVM(always), migrated, volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusRunning},
		{"paused", testVM(always), withCondition(inPhase(kubevirtv1.Running), kubevirtv1.VirtualMachineInstancePaused, corev1.ConditionTrue, ""), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusPaused},
		{"running", testVM(always), inPhase(kubevirtv1.Running), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusRunning},
		{"a failed DataVolume", testVM(always), nil, failedDV, startFailure{}, kubevirtv1.VirtualMachineStatusDataVolumeError},
		{"a failed DataVolume on a halted VM", testVM(halted), nil, failedDV, startFailure{}, kubevirtv1.VirtualMachineStatusDataVolumeError},
		{"unschedulable", testVM(always), withCondition(inPhase(kubevirtv1.Pending), PodScheduled, corev1.ConditionFalse, ReasonUnschedulable), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusUnschedulable},
		{"receiver, no VMI yet", testVM(kubevirtv1.RunStrategyWaitAsReceiver), nil, pendingDV, startFailure{}, kubevirtv1.VirtualMachineStatusWaitingForReceiver},
		{"receiver waiting for sync", testVM(kubevirtv1.RunStrategyWaitAsReceiver), inPhase(kubevirtv1.WaitingForSync), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusWaitingForReceiver},
		{"receiver that took over", testVM(kubevirtv1.RunStrategyWaitAsReceiver), inPhase(kubevirtv1.Running), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusRunning},
		{"receiver that failed", testVM(kubevirtv1.RunStrategyWaitAsReceiver), inPhase(kubevirtv1.Failed), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusStopped},
		{"provisioning", testVM(always), nil, pendingDV, startFailure{}, kubevirtv1.VirtualMachineStatusProvisioning},
		{"new VMI", testVM(always), inPhase(""), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusStarting},
		{"scheduled VMI", testVM(always), inPhase(kubevirtv1.Scheduled), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusStarting},
		{"crash loop, no VMI", testVM(always), nil, volumeReadiness{}, backingOff, kubevirtv1.VirtualMachineStatusCrashLoopBackOff},
		{"crash loop, failed VMI", testVM(kubevirtv1.RunStrategyRerunOnFailure), inPhase(kubevirtv1.Failed), volumeReadiness{}, backingOff, kubevirtv1.VirtualMachineStatusCrashLoopBackOff},
		{"crash loop over", testVM(always), nil, volumeReadiness{}, expired, kubevirtv1.VirtualMachineStatusStopped},
		{"no crash loop for Once", testVM(kubevirtv1.RunStrategyOnce), inPhase(kubevirtv1.Failed), volumeReadiness{}, backingOff, kubevirtv1.VirtualMachineStatusStopped},
		{"succeeded under RerunOnFailure", testVM(kubevirtv1.RunStrategyRerunOnFailure), inPhase(kubevirtv1.Succeeded), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusStopped},
		{"unknown VMI phase", testVM(always), inPhase(kubevirtv1.Unknown), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusUnknown},
		{"migrated to another cluster", testVM(halted), migratedAway(), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusStopped},
		{"migrated to another cluster, still Always", testVM(always), migratedAway(), pendingDV, backingOff, kubevirtv1.VirtualMachineStatusStopped},
		{"receiver, migration in progress", testVM(kubevirtv1.RunStrategyWaitAsReceiver), decentralizedVMI(kubevirtv1.WaitingForSync, false, false, false), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusMigrating},
		{"receiver, migration received", testVM(kubevirtv1.RunStrategyWaitAsReceiver), receivedVMI(), volumeReadiness{}, startFailure{}, kubevirtv1.VirtualMachineStatusRunning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := printableStatus(vmObservation{VM: tc.vm, VMI: tc.vmi, Volumes: tc.volumes, StartFailure: tc.failure, Now: testNow})
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestComputeVMStatus(t *testing.T) {
	earlier := metav1.NewTime(testNow.Add(-time.Hour))
	vm := testVM(kubevirtv1.RunStrategyAlways)
	vm.Status.Conditions = []kubevirtv1.VirtualMachineCondition{
		{Type: vmDataVolumesReady, Status: corev1.ConditionFalse, LastTransitionTime: earlier},
	}
	vmi := withCondition(inPhase(kubevirtv1.Running), kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionTrue, "")
	vmi = withCondition(vmi, kubevirtv1.VirtualMachineInstanceIsStorageLiveMigratable, corev1.ConditionTrue, "")
	vmi.Status.Conditions[0].LastTransitionTime = earlier

	status := computeVMStatus(vmObservation{
		VM: vm, VMI: vmi, Now: testNow,
		Volumes: volumeReadiness{Referenced: true, Pending: []string{"DataVolume d is Pending"}},
	})
	if !status.Created || !status.Ready || status.RunStrategy != kubevirtv1.RunStrategyAlways || status.ObservedGeneration != 3 {
		t.Errorf("status = %+v", status)
	}
	byType := map[kubevirtv1.VirtualMachineConditionType]kubevirtv1.VirtualMachineCondition{}
	for _, c := range status.Conditions {
		byType[c.Type] = c
	}
	if ready := byType[kubevirtv1.VirtualMachineReady]; ready.Status != corev1.ConditionTrue || !ready.LastTransitionTime.Equal(&earlier) {
		t.Errorf("Ready not mirrored from the VMI with its time: %+v", ready)
	}
	if byType["StorageLiveMigratable"].Status != corev1.ConditionTrue {
		t.Errorf("StorageLiveMigratable not mirrored: %+v", status.Conditions)
	}
	if dv := byType[vmDataVolumesReady]; dv.Status != corev1.ConditionFalse || dv.Message != "DataVolume d is Pending" || !dv.LastTransitionTime.Equal(&earlier) {
		t.Errorf("DataVolumesReady should keep its transition time while unchanged: %+v", dv)
	}
	if _, failure := byType[kubevirtv1.VirtualMachineFailure]; failure {
		t.Errorf("no Failure condition expected: %+v", status.Conditions)
	}
}

func TestReadyConditionExplainsAMissingVMI(t *testing.T) {
	for _, tc := range []struct {
		name       string
		decision   vmiDecision
		wantReason string
	}{
		{"halted", keep(reasonHalted, "runStrategy is Halted: the VM is stopped"), reasonHalted},
		{"waiting for volumes", keep(reasonWaitingForVolumes, "waiting for DataVolumes: d"), reasonWaitingForVolumes},
		{"about to start", vmiDecision{Action: createVMI, Reason: "Starting"}, "VMINotExists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready := readyCondition(vmObservation{VM: testVM(kubevirtv1.RunStrategyAlways), Decision: tc.decision})
			if ready.Status != corev1.ConditionFalse || ready.Reason != tc.wantReason || ready.Message == "" {
				t.Errorf("Ready = %+v, want False/%s with a message", ready, tc.wantReason)
			}
		})
	}
	vmi := withCondition(migratedAway(), kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionFalse, "Succeeded")
	away := readyCondition(vmObservation{VM: testVM(kubevirtv1.RunStrategyHalted), VMI: vmi, Decision: decideVMI(runInput{
		Strategy: kubevirtv1.RunStrategyHalted, VMI: vmi, VMIControlled: true,
	})})
	if away.Status != corev1.ConditionFalse || away.Reason != reasonMigratedAway || !strings.Contains(away.Message, "node t1 of another cluster") {
		t.Errorf("Ready of a VM whose guest migrated away = %+v", away)
	}
	failed := computeVMStatus(vmObservation{
		VM: testVM(kubevirtv1.RunStrategyAlways), Now: testNow,
		SyncFailure: &syncFailure{Reason: "FailedCreate", Message: "forbidden"},
	})
	if c := failed.Conditions[len(failed.Conditions)-1]; c.Type != kubevirtv1.VirtualMachineFailure || c.Reason != "FailedCreate" {
		t.Errorf("Failure condition missing: %+v", failed.Conditions)
	}
}
