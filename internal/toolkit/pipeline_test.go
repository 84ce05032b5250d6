package toolkit

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/vmrefs"
)

// expect is what a StepVM decision must hold. Zero fields are not
// checked, except actions (none expected unless listed) and failed (no
// error unless given).
type expect struct {
	task    string            // the current task
	phase   string            // VMStatus.Phase
	steps   map[string]string // task -> phase
	actions []string          // Action.String(), in order
	failed  string            // in VMStatus.Error's reasons
	reason  string            // in the current step's Reason
	outcome string            // Cleanup's outcome annotation
	// annotations the current task must carry
	annotations map[string]string
	ended       string // the VM ended (phase Completed) with this outcome condition
	requeue     time.Duration
	events      []string
}

type stepCase struct {
	name string
	obs  VMObserved
	want expect
}

func TestStepVM(t *testing.T) {
	groups := map[string][]stepCase{
		"Initialize":            initializeCases(),
		"CopyResources":         copyResourcesCases(),
		"CreateVolumes":         createVolumesCases(),
		"CreateReceiver":        createReceiverCases(),
		"WaitForReceiver":       waitForReceiverCases(),
		"CreateTargetMigration": createTargetMigrationCases(),
		"CreateSourceMigration": createSourceMigrationCases(),
		"Migrate":               migrateCases(),
		"Cleanup":               cleanupCases(),
		"Cancel":                cancelCases(),
		"Final":                 finalCases(),
	}
	for group, cases := range groups {
		for _, tc := range cases {
			t.Run(group+"/"+tc.name, func(t *testing.T) {
				d := StepVM(tc.obs)
				checkDecision(t, d, tc.want)
				checkInvariants(t, tc.obs, d)
			})
		}
	}
}

const (
	createNamespace  = "create Namespace dst on the target"
	createDataVolume = "create DataVolume dst/vm1-data on the target"
	createVM         = "create VM dst/vm1 on the target"
	createTargetVMIM = "create VMIM dst/vm1-1234abcd on the target"
	createSourceVMIM = "create VMIM src/vm1-1234abcd on the source"
	deleteTargetVMIM = "delete VMIM dst/vm1-1234abcd on the target"
	deleteSourceVMIM = "delete VMIM src/vm1-1234abcd on the source"
	deleteVM         = "delete VM dst/vm1 on the target"
	deleteDataVolume = "delete DataVolume dst/vm1-data on the target"
)

func initializeCases() []stepCase {
	pending := forkliftv1beta1.VMStatus{Ref: forkliftv1beta1.Ref{Name: vmName, Namespace: sourceNamespace}, Pipeline: NewPipeline()}
	fails := func(says string) expect {
		return expect{task: TaskCleanup, failed: says, outcome: VMFailed, steps: map[string]string{TaskInitialize: PhaseFailed, TaskCleanup: PhaseRunning}, events: []string{"VMFailed"}}
	}
	byID := pending
	byID.ID = "other-uid"
	unmapped := observe(pending, 0)
	unmapped.NetworkMap = nil
	return []stepCase{
		{"a running VM: recorded, then SynchronizeCertificates starts", observe(pending, 0),
			expect{task: TaskSynchronizeCertificates, steps: map[string]string{TaskInitialize: PhaseCompleted, TaskSynchronizeCertificates: PhaseRunning}, requeue: 0}},
		{"no slot: stays Pending, saying why", observe(pending, 0, func(o *VMObserved) { o.MayStart, o.Waiting = false, "waiting: 2 of 2 VMs in flight" }),
			expect{steps: map[string]string{TaskInitialize: PhasePending}, reason: "waiting: 2 of 2 VMs in flight", requeue: pollTarget}},
		{"source unreachable: waits", observe(pending, 0, sourceErr("connection refused")),
			expect{task: TaskInitialize, reason: "cannot read the source cluster: connection refused", requeue: pollSource}},
		{"source unreachable past the deadline: fails", observe(statusIn(TaskInitialize, 0), DefaultStepTimeout, sourceErr("connection refused")),
			fails("Initialize did not finish within 2m0s: cannot read the source cluster: connection refused")},
		{"no VM", observe(pending, 0, noSourceVM), fails("VM src/vm1 does not exist on the source cluster")},
		{"another UID than the plan's", observe(byID, 0), fails("has UID vm-uid, not other-uid")},
		{"VM stopped", observe(pending, 0, func(o *VMObserved) { o.Source.VMI = nil }), fails("is not running (it has no VMI)")},
		{"VMI not running", observe(pending, 0, withSourceVMI(kubevirtv1.Scheduled)), fails("is not running (its VMI is Scheduled)")},
		{"a network the map lacks", unmapped, fails("network default (the pod network) is not in the plan's NetworkMap")},
	}
}

// Referenced resources of the CopyResources cases.
var (
	creds        = ResourceRef{Kind: vmrefs.KindSecret, Name: "creds"}
	settings     = ResourceRef{Kind: vmrefs.KindConfigMap, Name: "settings"}
	sized        = ResourceRef{Kind: vmrefs.KindInstancetype, Name: "small"}
	clusterSized = ResourceRef{Kind: vmrefs.KindClusterInstancetype, Name: "u1.small"}
)

func copyResourcesCases() []stepCase {
	status := statusIn(TaskCreateSecrets, 0)
	withRefs := func(o *VMObserved) {
		o.References = []ResourceRef{creds, settings}
		o.Source.Resources = map[ResourceRef]client.Object{
			creds:    &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: sourceNamespace}, Data: map[string][]byte{"k": []byte("v")}},
			settings: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: sourceNamespace}},
		}
	}
	secretThere := func(o *VMObserved) {
		o.Target.Resources[creds] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: targetNamespace}}
	}
	configMapThere := func(o *VMObserved) {
		o.Target.Resources[settings] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: targetNamespace, Labels: ours()}}
	}
	small := func(guest string) instancetypev1beta1.VirtualMachineInstancetypeSpec {
		return instancetypev1beta1.VirtualMachineInstancetypeSpec{CPU: instancetypev1beta1.CPUInstancetype{Guest: 1}, Memory: instancetypev1beta1.MemoryInstancetype{Guest: resource.MustParse(guest)}}
	}
	withProfile := func(o *VMObserved) {
		o.References = []ResourceRef{sized, clusterSized}
		o.Source.Resources = map[ResourceRef]client.Object{
			sized:        &instancetypev1beta1.VirtualMachineInstancetype{ObjectMeta: metav1.ObjectMeta{Name: "small", Namespace: sourceNamespace}, Spec: small("128Mi")},
			clusterSized: &instancetypev1beta1.VirtualMachineClusterInstancetype{ObjectMeta: metav1.ObjectMeta{Name: "u1.small"}, Spec: small("2Gi")},
		}
	}
	clusterSizedThere := func(guest string) obsOption {
		return func(o *VMObserved) {
			o.Target.Resources[clusterSized] = &instancetypev1beta1.VirtualMachineClusterInstancetype{ObjectMeta: metav1.ObjectMeta{Name: "u1.small"}, Spec: small(guest)}
		}
	}
	secrets, configMaps, instancetypes := status, statusIn(TaskCreateConfigMaps, 0), statusIn(TaskEnsureInstanceType, 0)
	return []stepCase{
		{"without the inventory: looks again", observe(status, 0, withoutInventory), expect{task: TaskCreateSecrets, requeue: afterAction}},
		{"no target namespace: made", observe(status, 0, withoutNamespace), expect{task: TaskCreateSecrets, actions: []string{createNamespace}, requeue: afterAction}},
		{"no target namespace in a later copy: made", observe(configMaps, 0, withoutNamespace), expect{task: TaskCreateConfigMaps, actions: []string{createNamespace}}},
		{"nothing referenced: each copy done", observe(status, 0),
			expect{task: TaskCreateConfigMaps, phase: PhaseCreateConfigMaps, steps: map[string]string{TaskCreateSecrets: PhaseCompleted, TaskCreateConfigMaps: PhaseRunning}}},
		{"nothing referenced: the last copy done", observe(instancetypes, 0),
			expect{task: TaskCreateVolumes, phase: PhaseEnsureDataVolumes, steps: map[string]string{TaskEnsureInstanceType: PhaseCompleted, TaskCreateVolumes: PhaseRunning}}},
		{"Secrets copied if absent, in CreateSecrets", observe(secrets, 0, withRefs),
			expect{task: TaskCreateSecrets, phase: PhaseCreateSecrets, actions: []string{"create Secret dst/creds on the target"}}},
		{"ConfigMaps copied if absent, in CreateConfigMaps", observe(configMaps, 0, withRefs, secretThere),
			expect{task: TaskCreateConfigMaps, phase: PhaseCreateConfigMaps, actions: []string{"create ConfigMap dst/settings on the target"}}},
		{"a Secret there (not ours): kept", observe(secrets, 0, withRefs, secretThere), expect{task: TaskCreateConfigMaps}},
		{"both there: done", observe(configMaps, 0, withRefs, secretThere, configMapThere), expect{task: TaskEnsurePreference}},
		{"an instancetype copied; a cluster-wide one required equal", observe(instancetypes, 0, withProfile, clusterSizedThere("2Gi")),
			expect{task: TaskEnsureInstanceType, phase: PhaseEnsureInstanceType, actions: []string{"create VirtualMachineInstancetype dst/small on the target"}}},
		{"instancetypes are not the preference's", observe(statusIn(TaskEnsurePreference, 0), 0, withProfile), expect{task: TaskEnsureInstanceType}},
		{"a cluster-wide instancetype missing on the target", observe(instancetypes, 0, withProfile),
			expect{task: TaskCleanup, phase: VMPhaseCompleted, outcome: VMFailed, failed: "VirtualMachineClusterInstancetype u1.small does not exist on the target: create it there as on the source", events: []string{"VMFailed"}}},
		{"a cluster-wide instancetype that differs on the target", observe(instancetypes, 0, withProfile, clusterSizedThere("1Gi")),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "VirtualMachineClusterInstancetype u1.small exists cluster-wide on the target with another spec than on the source", events: []string{"VMFailed"}}},
		{"a namespaced instancetype that differs on the target", observe(instancetypes, 0, withProfile, clusterSizedThere("2Gi"), func(o *VMObserved) {
			o.Target.Resources[sized] = &instancetypev1beta1.VirtualMachineInstancetype{ObjectMeta: metav1.ObjectMeta{Name: "small", Namespace: targetNamespace}, Spec: small("64Mi")}
		}), expect{task: TaskCleanup, outcome: VMFailed, failed: "VirtualMachineInstancetype small exists in namespace dst on the target with another spec", events: []string{"VMFailed"}}},
		{"a reference missing on the source", observe(configMaps, 0, withRefs, func(o *VMObserved) { delete(o.Source.Resources, settings) }),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "references ConfigMap settings, which does not exist in namespace src on the source", events: []string{"VMFailed"}}},
		{"target unreachable past the deadline", observe(status, DefaultStepTimeout, func(o *VMObserved) { o.Target.Err = "timeout" }),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "CreateSecrets did not finish within 2m0s: cannot read the target cluster: timeout", events: []string{"VMFailed"}}},
	}
}

func createVolumesCases() []stepCase {
	status := statusIn(TaskCreateVolumes, 0)
	pvcDisk := func(o *VMObserved) {
		o.Source.VM.Spec.Template.Spec.Volumes[1] = kubevirtv1.Volume{Name: "datadisk", PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{ClaimName: dataVolume}}
		o.Source.DataVolumes = nil
	}
	otherClass := func(o *VMObserved) { o.Source.PVCs[dataVolume].Spec.StorageClassName = ptrTo("fast") }
	return []stepCase{
		{"without the volumes read: looks again", observe(statusIn(TaskCreateVolumes, 0), 0, withoutVolumes), expect{task: TaskCreateVolumes, requeue: afterAction}},
		{"a blank DataVolume per disk", observe(status, 0), expect{task: TaskCreateVolumes, actions: []string{createDataVolume}, requeue: afterAction}},
		{"a PVC for a PVC disk", observe(status, 0, pvcDisk), expect{task: TaskCreateVolumes, actions: []string{"create PVC dst/vm1-data on the target"}}},
		{"ours exists: done, disk bytes recorded", observe(status, 0, withTargetDV(ours())),
			expect{task: TaskCreateReceiver, steps: map[string]string{TaskCreateVolumes: PhaseCompleted, TaskCreateReceiver: PhaseRunning}}},
		{"someone else's DataVolume of that name", observe(status, 0, withTargetDV(nil)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "DataVolume dst/vm1-data already exists on the target and was not made by this migration", events: []string{"VMFailed"}}},
		{"a PVC of that name in the way", observe(status, 0, func(o *VMObserved) {
			o.Target.PVCs[dataVolume] = &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: dataVolume, Namespace: targetNamespace}}
		}), expect{task: TaskCleanup, outcome: VMFailed, failed: "PVC dst/vm1-data already exists on the target", events: []string{"VMFailed"}}},
		{"an unmapped storage class", observe(status, 0, otherClass),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "storage class fast (DataVolume src/vm1-data) is not in the plan's StorageMap", events: []string{"VMFailed"}}},
		{"the source DataVolume is gone", observe(status, 0, func(o *VMObserved) { o.Source.DataVolumes = nil }),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "DataVolume src/vm1-data does not exist on the source", events: []string{"VMFailed"}}},
		{"creation refused as invalid: fails at once", observe(status, 0, withLastError(TaskCreateVolumes, "create DataVolume dst/vm1-data: invalid", true)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "create DataVolume dst/vm1-data: invalid", events: []string{"VMFailed"}}},
		{"creation failing: retried, said", observe(status, 30*time.Second, withLastError(TaskCreateVolumes, "create DataVolume dst/vm1-data: forbidden", false)),
			expect{task: TaskCreateVolumes, actions: []string{createDataVolume}}},
		{"still absent at the deadline: fails with the last error", observe(status, DefaultStepTimeout, withLastError(TaskCreateVolumes, "forbidden", false)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "CreateVolumes did not finish within 2m0s: creating 1 volumes; last error: forbidden", events: []string{"VMFailed"}}},
	}
}

func ptrTo(s string) *string { return &s }

func createReceiverCases() []stepCase {
	status := statusIn(TaskCreateReceiver, 0)
	return []stepCase{
		{"creates the receiver", observe(status, 0), expect{task: TaskCreateReceiver, actions: []string{createVM}, requeue: afterAction}},
		{"ours exists: done", observe(status, 0, withTargetVM(ours())), expect{task: TaskWaitForReceiver, steps: map[string]string{TaskCreateReceiver: PhaseCompleted}}},
		{"someone else's VM of that name", observe(status, 0, withTargetVM(map[string]string{"app": "x"})),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "VM dst/vm1 already exists on the target and was not made by this migration", events: []string{"VMFailed"}}},
		{"another migration's VM of that name", observe(status, 0, withTargetVM(Labels(planUID, "other-migration", vmUID))),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "already exists on the target", events: []string{"VMFailed"}}},
		{"source unreachable: waits", observe(status, 0, sourceErr("EOF")), expect{task: TaskCreateReceiver, reason: "cannot read the source cluster: EOF", requeue: pollSource}},
	}
}

func waitForReceiverCases() []stepCase {
	status := statusIn(TaskWaitForReceiver, 0)
	return []stepCase{
		{"no VMI yet: waits, saying the VM's status", observe(status, 0, withTargetVM(ours()), func(o *VMObserved) {
			o.Target.VM.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusProvisioning
		}), expect{task: TaskWaitForReceiver, reason: "waiting for the receiving VMI to be created; VM status Provisioning", requeue: pollTarget}},
		{"VMI pending: waits", observe(status, 0, withTargetVM(ours()), withTargetVMI(kubevirtv1.Pending)),
			expect{task: TaskWaitForReceiver, reason: `(phase "Pending")`}},
		{"WaitingForSync: done", observe(status, 0, withTargetVM(ours()), withTargetVMI(kubevirtv1.WaitingForSync)),
			expect{task: TaskCreateTargetMigration, steps: map[string]string{TaskWaitForReceiver: PhaseCompleted, TaskCreateTargetMigration: PhaseRunning}}},
		{"VMI failed", observe(status, 0, withTargetVM(ours()), withTargetVMI(kubevirtv1.Failed)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "the receiving VMI dst/vm1 failed: it broke", events: []string{"VMFailed"}}},
		{"VM deleted", observe(status, 0), expect{task: TaskCleanup, outcome: VMFailed, failed: "the receiving VM dst/vm1 was deleted", events: []string{"VMFailed"}}},
		{"the deadline", observe(status, DefaultStepTimeout, withTargetVM(ours())),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "WaitForReceiver did not finish within 2m0s: waiting for the receiving VMI to be created", events: []string{"VMFailed"}}},
		{"one second before the deadline: waits one second", observe(status, DefaultStepTimeout-time.Second, withTargetVM(ours())),
			expect{task: TaskWaitForReceiver, requeue: time.Second}},
	}
}

func createTargetMigrationCases() []stepCase {
	status := statusIn(TaskCreateTargetMigration, 0)
	ready := []obsOption{withTargetVM(ours()), withTargetVMI(kubevirtv1.WaitingForSync)}
	with := func(options ...obsOption) VMObserved { return observe(status, 0, append(ready, options...)...) }
	return []stepCase{
		{"creates the receiving VMIM", with(), expect{task: TaskCreateTargetMigration, actions: []string{createTargetVMIM}}},
		{"no address yet: waits", with(withTargetVMIM(kubevirtv1.MigrationPending)),
			expect{task: TaskCreateTargetMigration, reason: "to publish its synchronization address", requeue: pollTarget}},
		{"an address: recorded, done", with(withTargetVMIM(kubevirtv1.MigrationWaitingForSync, addressed)),
			expect{task: TaskCreateSourceMigration, steps: map[string]string{TaskCreateTargetMigration: PhaseCompleted}}},
		{"failed", with(withTargetVMIM(kubevirtv1.MigrationFailed, failedWith("no slot"))),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "the receiving migration dst/vm1-1234abcd failed: no slot", events: []string{"VMFailed"}}},
		{"someone else's VMIM of that name", with(withTargetVMIM(kubevirtv1.MigrationPending, foreign)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "already exists on the target and was not made by this migration", events: []string{"VMFailed"}}},
		{"no address at the deadline", observe(status, DefaultStepTimeout, append(ready, withTargetVMIM(kubevirtv1.MigrationPending))...),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "CreateTargetMigration did not finish within 2m0s", events: []string{"VMFailed"}}},
	}
}

func createSourceMigrationCases() []stepCase {
	status := statusIn(TaskCreateSourceMigration, 0)
	ready := []obsOption{withTargetVM(ours()), withTargetVMI(kubevirtv1.WaitingForSync), withTargetVMIM(kubevirtv1.MigrationWaitingForSync, addressed)}
	with := func(options ...obsOption) VMObserved { return observe(status, 0, append(ready, options...)...) }
	return []stepCase{
		{"creates the sending VMIM on the source", with(), expect{task: TaskCreateSourceMigration, actions: []string{createSourceVMIM}}},
		{"exists: done, Migrate starts", with(withSourceVMIM(kubevirtv1.MigrationPending)),
			expect{task: TaskMigrate, steps: map[string]string{TaskCreateSourceMigration: PhaseCompleted, TaskMigrate: PhaseRunning}}},
		{"someone else's VMIM of that name", with(withSourceVMIM(kubevirtv1.MigrationPending, foreign)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "already exists on the source", events: []string{"VMFailed"}}},
		{"the receiver failed meanwhile: no send", with(withTargetVMIM(kubevirtv1.MigrationFailed, failedWith("sync timeout"))),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "failed: sync timeout", events: []string{"VMFailed"}}},
		{"the receiver was deleted: no send", with(func(o *VMObserved) { o.Target.VMIM = nil }),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "the receiving migration dst/vm1-1234abcd was deleted", events: []string{"VMFailed"}}},
		{"source unreachable: waits", with(sourceErr("EOF")), expect{task: TaskCreateSourceMigration, requeue: pollSource}},
	}
}

// staleCopy: the source's Secret creds now holds v2, the target's copy
// (labelled so) still v1.
func staleCopy(labels map[string]string) obsOption {
	return func(o *VMObserved) {
		o.References = []ResourceRef{creds}
		o.Source.Resources = map[ResourceRef]client.Object{creds: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: sourceNamespace}, Data: map[string][]byte{"k": []byte("v2")}}}
		o.Target.Resources[creds] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: targetNamespace, Labels: labels, ResourceVersion: "7"}, Data: map[string][]byte{"k": []byte("v1")}}
	}
}

func migrateCases() []stepCase {
	status := statusIn(TaskMigrate, 0)
	budget := MigrateBudget(134217728+268435456, 0, DefaultMigrateMargin)
	return []stepCase{
		{"transferring: waits, mirrors progress", observe(status, 10*time.Second,
			withTargetVMIM(kubevirtv1.MigrationRunning), withSourceVMIM(kubevirtv1.MigrationRunning, progress(100, 400, 300))),
			expect{task: TaskMigrate, reason: "migrating: sending migration Running, receiving migration Running", requeue: pollSource}},
		{"a copied Secret whose source changed: updated first", observe(status, 10*time.Second,
			withTargetVMIM(kubevirtv1.MigrationRunning), withSourceVMIM(kubevirtv1.MigrationRunning), staleCopy(ours())),
			expect{task: TaskMigrate, actions: []string{"update Secret dst/creds on the target"}}},
		{"a changed Secret that is not the toolkit's copy: left alone", observe(status, 10*time.Second,
			withTargetVMIM(kubevirtv1.MigrationRunning), withSourceVMIM(kubevirtv1.MigrationRunning), staleCopy(nil)),
			expect{task: TaskMigrate, reason: "migrating: sending migration Running, receiving migration Running", requeue: pollSource}},
		{"both succeeded: Cleanup of a success", observe(status, 10*time.Second,
			withTargetVMIM(kubevirtv1.MigrationSucceeded), withSourceVMIM(kubevirtv1.MigrationSucceeded, progress(400, 400, 0))),
			expect{task: TaskCleanup, outcome: VMSucceeded, steps: map[string]string{TaskMigrate: PhaseCompleted, TaskCleanup: PhaseRunning}}},
		{"the guest arrived, the source not yet done: waits", observe(status, 10*time.Second,
			withTargetVMIM(kubevirtv1.MigrationSucceeded), withSourceVMIM(kubevirtv1.MigrationRunning)),
			expect{task: TaskMigrate, reason: "the guest runs on the target; waiting for the sending migration to end"}},
		{"the receiver failed", observe(status, 10*time.Second,
			withTargetVMIM(kubevirtv1.MigrationFailed, failedWith("cancelled by the peer cluster")), withSourceVMIM(kubevirtv1.MigrationFailed, failedWith("progress timeout"))),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "the receiving migration failed: cancelled by the peer cluster; the sending migration failed: progress timeout", events: []string{"VMFailed"}}},
		{"the sender failed", observe(status, 10*time.Second, withTargetVMIM(kubevirtv1.MigrationRunning), withSourceVMIM(kubevirtv1.MigrationFailed, failedWith("boom"))),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "the sending migration failed: boom", events: []string{"VMFailed"}}},
		{"the sending VMIM deleted behind our back", observe(status, 10*time.Second, withTargetVMIM(kubevirtv1.MigrationRunning)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "the sending migration src/vm1-1234abcd was deleted on the source", events: []string{"VMFailed"}}},
		{"the receiving VMIM deleted behind our back", observe(status, 10*time.Second, withSourceVMIM(kubevirtv1.MigrationRunning)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "the receiving migration dst/vm1-1234abcd was deleted", events: []string{"VMFailed"}}},
		{"source unreachable: waits (the VMIMs have their own deadlines)", observe(status, 10*time.Second, withTargetVMIM(kubevirtv1.MigrationRunning), sourceErr("EOF")),
			expect{task: TaskMigrate, reason: "cannot read the source cluster: EOF", requeue: pollSource}},
		// The guest arrived while the source cannot be read (its token
		// revoked mid-transfer): a success, not a wait until Migrate's
		// deadline that would end Failed with the guest running here.
		{"the guest arrived, the source unreadable: Cleanup of a success", observe(status, 10*time.Second,
			withTargetVMIM(kubevirtv1.MigrationSucceeded), sourceErr("read VM src/vm1: Unauthorized")),
			expect{task: TaskCleanup, outcome: VMSucceeded, steps: map[string]string{TaskMigrate: PhaseCompleted, TaskCleanup: PhaseRunning}}},
		{"past the budget: fails", observe(status, budget, withTargetVMIM(kubevirtv1.MigrationRunning), withSourceVMIM(kubevirtv1.MigrationRunning)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "Migrate did not finish within " + budget.String(), events: []string{"VMFailed"}}},
		{"the sending migration waits for a source slot: says so", observe(status, 10*time.Second,
			withTargetVMIM(kubevirtv1.MigrationWaitingForSync), withSourceVMIM(kubevirtv1.MigrationPending, queuedFor(kubevirtv1.MigrationReasonClusterLimit, fullCluster))),
			expect{task: TaskMigrate, reason: "waiting for a slot in the source cluster: " + fullCluster, requeue: pollSource}},
		{"the receiving migration waits for a target slot: says so", observe(status, 10*time.Second,
			withTargetVMIM(kubevirtv1.MigrationWaitingForSync, queuedFor(kubevirtv1.MigrationReasonInboundNodeLimit, "node b receives")), withSourceVMIM(kubevirtv1.MigrationSynchronizing)),
			expect{task: TaskMigrate, reason: "waiting for a slot in the target cluster: node b receives"}},
		{"queued past the budget: still waits (a slot's wait has no deadline)", observe(slotWaitSince(status, time.Second), budget+time.Minute,
			withTargetVMIM(kubevirtv1.MigrationWaitingForSync), withSourceVMIM(kubevirtv1.MigrationPending, queuedFor(kubevirtv1.MigrationReasonClusterLimit, fullCluster))),
			expect{task: TaskMigrate, reason: "waiting for a slot in the source cluster"}},
		{"the slot came after a long wait: the whole budget is left", observe(slotWaitSince(status, time.Second), budget+time.Minute,
			withTargetVMIM(kubevirtv1.MigrationRunning), withSourceVMIM(kubevirtv1.MigrationRunning)),
			expect{task: TaskMigrate, reason: "migrating", annotations: map[string]string{AnnotationSlotWaitedMs: strconv.FormatInt((budget + time.Minute - time.Second).Milliseconds(), 10)}}},
		{"the budget after the wait runs out: fails", observe(slotWaited(status, 5*time.Minute), budget+5*time.Minute,
			withTargetVMIM(kubevirtv1.MigrationRunning), withSourceVMIM(kubevirtv1.MigrationRunning)),
			expect{task: TaskCleanup, outcome: VMFailed, failed: "Migrate did not finish within " + (budget + 5*time.Minute).String(), events: []string{"VMFailed"}}},
	}
}

const fullCluster = "5 migrations are in progress in the cluster and parallelMigrationsPerCluster is 5; waiting for one to end"

// slotWaitSince is status with Migrate's migrations waiting for a slot
// since began.
func slotWaitSince(status forkliftv1beta1.VMStatus, began time.Duration) forkliftv1beta1.VMStatus {
	status = *status.DeepCopy()
	taskAt(status.Pipeline, migrateIndex).Annotations = map[string]string{AnnotationSlotWaitSince: at(began).Format(time.RFC3339Nano)}
	return status
}

// slotWaited is status with Migrate's migrations having waited for slots
// so long.
func slotWaited(status forkliftv1beta1.VMStatus, waited time.Duration) forkliftv1beta1.VMStatus {
	status = *status.DeepCopy()
	taskAt(status.Pipeline, migrateIndex).Annotations = map[string]string{AnnotationSlotWaitedMs: strconv.FormatInt(waited.Milliseconds(), 10)}
	return status
}

func cleanupCases() []stepCase {
	migrations := []obsOption{withSourceVMIM(kubevirtv1.MigrationSucceeded), withTargetVMIM(kubevirtv1.MigrationSucceeded)}
	failedMigrations := []obsOption{withSourceVMIM(kubevirtv1.MigrationRunning), withTargetVMIM(kubevirtv1.MigrationRunning)}
	targetObjects := []obsOption{withTargetVM(ours()), withTargetVMI(kubevirtv1.WaitingForSync), withTargetDV(ours())}
	with := func(status forkliftv1beta1.VMStatus, d time.Duration, options ...[]obsOption) VMObserved {
		var all []obsOption
		for _, o := range options {
			all = append(all, o...)
		}
		return observe(status, d, all...)
	}
	success, failure := inCleanup(VMSucceeded, 0), inCleanup(VMFailed, 0)
	return []stepCase{
		{"success: both VMIMs deleted", with(success, 0, migrations, targetObjects),
			expect{task: TaskCleanup, actions: []string{deleteTargetVMIM, deleteSourceVMIM}}},
		{"success: deletions under way: waits", with(success, 0, []obsOption{withSourceVMIM(kubevirtv1.MigrationSucceeded, deleting)}),
			expect{task: TaskCleanup, reason: "waiting for the deletion of VMIM src/vm1-1234abcd on the source"}},
		{"success: VMIMs gone: Completed, the target's objects kept", with(success, 0, targetObjects),
			expect{ended: VMSucceeded, steps: map[string]string{TaskCleanup: PhaseCompleted}, events: []string{"VMMigrated"}}},
		{"failure: the VMIMs first", with(failure, 0, failedMigrations, targetObjects),
			expect{task: TaskCleanup, failed: "boom", actions: []string{deleteTargetVMIM, deleteSourceVMIM}}},
		{"failure: then the target's objects", with(failure, 0, targetObjects),
			expect{task: TaskCleanup, failed: "boom", actions: []string{deleteVM, deleteDataVolume}}},
		{"failure: and copies", with(failure, 0, targetObjects, []obsOption{func(o *VMObserved) {
			theirs := ResourceRef{Kind: vmrefs.KindSecret, Name: "theirs"}
			o.References = []ResourceRef{creds, theirs}
			o.Target.Resources[creds] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: targetNamespace, Labels: ours()}}
			o.Target.Resources[theirs] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: targetNamespace}}
		}}), expect{task: TaskCleanup, failed: "boom", actions: []string{deleteVM, deleteDataVolume, "delete Secret dst/creds on the target"}}},
		{"failure: all gone: Failed", with(failure, 0), expect{ended: VMFailed, failed: "boom"}},
		{"failure: a target VM running the guest is kept, with its disks", with(failure, 0, []obsOption{withTargetVM(ours()), withTargetVMI(kubevirtv1.Running), withTargetDV(ours())}),
			expect{ended: VMFailed, failed: "boom"}},
		{"someone else's objects are never deleted", with(failure, 0, []obsOption{withTargetVM(nil), withTargetDV(nil), withTargetVMIM(kubevirtv1.MigrationRunning, foreign)}),
			expect{ended: VMFailed, failed: "boom"}},
		{"source unreachable: the target VMIM deleted, then waits", with(failure, 0, failedMigrations, []obsOption{sourceErr("EOF")}),
			expect{task: TaskCleanup, failed: "boom", actions: []string{deleteTargetVMIM}}},
		{"source unreachable, nothing else to do: waits", with(failure, 0, []obsOption{sourceErr("EOF")}),
			expect{task: TaskCleanup, failed: "boom", reason: "cannot read the source cluster to delete the sending migration src/vm1-1234abcd: EOF", requeue: pollSource}},
		{"success, source unreadable: waits, naming the sending migration", with(success, 0, []obsOption{sourceErr("Unauthorized")}),
			expect{task: TaskCleanup, reason: "cannot read the source cluster to delete the sending migration src/vm1-1234abcd: Unauthorized", requeue: pollSource}},
		{"success, source unreadable past the deadline: Completed, with a warning naming what is left", with(success, DefaultCleanupTimeout, []obsOption{sourceErr("Unauthorized")}),
			expect{ended: VMSucceeded, steps: map[string]string{TaskCleanup: PhaseFailed}, events: []string{"VMMigrated"}}},
		{"without the inventory: looks again", with(failure, 0, []obsOption{withoutInventory}), expect{task: TaskCleanup, failed: "boom", requeue: afterAction}},
		{"failure: past the deadline: Failed, saying what is left", with(failure, DefaultCleanupTimeout, []obsOption{withTargetVMIM(kubevirtv1.MigrationFailed, deleting)}),
			expect{ended: VMFailed, failed: "cleanup incomplete: Cleanup did not finish within 3m0s: waiting for the deletion of VMIM dst/vm1-1234abcd on the target", steps: map[string]string{TaskCleanup: PhaseFailed}}},
		{"success: past the deadline: still Completed, with a warning", with(success, DefaultCleanupTimeout, []obsOption{withTargetVMIM(kubevirtv1.MigrationSucceeded, deleting)}),
			expect{ended: VMSucceeded, steps: map[string]string{TaskCleanup: PhaseFailed}, events: []string{"VMMigrated"}}},
	}
}

func cancelCases() []stepCase {
	var cases []stepCase
	for _, step := range Tasks[:migrateIndex+1] {
		status := statusIn(step, 0)
		cases = append(cases, stepCase{"in " + step, observe(status, time.Second, canceled, withTargetVMIM(kubevirtv1.MigrationRunning)),
			expect{task: TaskCleanup, outcome: VMCanceled, steps: map[string]string{step: PhaseFailed, TaskCleanup: PhaseRunning}, events: []string{"VMCanceling"}}})
	}
	pending := forkliftv1beta1.VMStatus{Ref: forkliftv1beta1.Ref{Name: vmName, Namespace: sourceNamespace}, Pipeline: NewPipeline()}
	return append(cases,
		stepCase{"before it started", observe(pending, 0, canceled),
			expect{task: TaskCleanup, outcome: VMCanceled, steps: map[string]string{TaskInitialize: PhasePending}, events: []string{"VMCanceling"}}},
		stepCase{"in Cleanup of a cancel: removes the target's objects", observe(inCleanup(VMCanceled, 0), time.Second, canceled, withTargetVM(ours()), withTargetDV(ours())),
			expect{task: TaskCleanup, actions: []string{deleteVM, deleteDataVolume}}},
		stepCase{"in Cleanup of a cancel: done: Canceled", observe(inCleanup(VMCanceled, 0), time.Second, canceled),
			expect{ended: VMCanceled, events: []string{"VMCanceled"}}},
		stepCase{"too late: the guest arrived", observe(statusIn(TaskMigrate, 0), time.Second, canceled,
			withTargetVMIM(kubevirtv1.MigrationSucceeded), withSourceVMIM(kubevirtv1.MigrationSucceeded)),
			expect{task: TaskCleanup, outcome: VMSucceeded}},
		stepCase{"too late: Cleanup of a failure", observe(inCleanup(VMFailed, 0), time.Second, canceled), expect{ended: VMFailed, failed: "boom"}},
	)
}

func finalCases() []stepCase {
	var cases []stepCase
	for _, outcome := range []string{VMSucceeded, VMFailed, VMCanceled} {
		status := inCleanup(outcome, 0)
		status.Phase, status.Completed = VMPhaseCompleted, mtp(0)
		status.Conditions = []forkliftv1beta1.Condition{outcomeCondition(outcome, "", status.Error, metav1.NewTime(at(0)))}
		cleanup := taskAt(status.Pipeline, cleanupIndex)
		cleanup.Phase, cleanup.Completed = PhaseCompleted, mtp(0)
		rollUp(&status)
		want := expect{ended: outcome}
		if outcome == VMFailed {
			want.failed = "boom"
		}
		cases = append(cases, stepCase{outcome + " stays " + outcome, observe(status, time.Hour, canceled, withTargetVM(ours())), want})
	}
	// An older cclm ended VMs in phase Failed or Canceled, without a
	// condition; and in Cleanup it noted a success as "Completed".
	for _, phase := range []string{VMFailed, VMCanceled} {
		status := inCleanup(phase, 0)
		status.Phase, status.Completed = phase, mtp(0)
		cleanup := taskAt(status.Pipeline, cleanupIndex)
		cleanup.Phase, cleanup.Completed = PhaseCompleted, mtp(0)
		rollUp(&status)
		want := expect{phase: phase}
		if phase == VMFailed {
			want.failed = "boom"
		}
		cases = append(cases, stepCase{"an older cclm's " + phase + " stays " + phase, observe(status, time.Hour, canceled), want})
	}
	older := inCleanup(VMPhaseCompleted, 0)
	cases = append(cases, stepCase{"an older cclm's Cleanup of a success keeps the target VM and ends Succeeded",
		observe(older, time.Second, withTargetVM(ours())), expect{ended: VMSucceeded, events: []string{"VMMigrated"}}})
	return cases
}

func checkDecision(t *testing.T, d VMDecision, want expect) {
	t.Helper()
	st := d.Status
	if want.task != "" && (IsFinal(st) || Tasks[currentTask(st.Pipeline)] != want.task) {
		t.Errorf("in task %s (final %t), want %s (reason %q, error %+v)", Tasks[currentTask(st.Pipeline)], IsFinal(st), want.task, currentReason(st), st.Error)
	}
	if want.phase != "" && st.Phase != want.phase {
		t.Errorf("phase %q, want %q (reason %q, error %+v)", st.Phase, want.phase, currentReason(st), st.Error)
	}
	if want.ended != "" && (st.Phase != VMPhaseCompleted || VMOutcome(st) != want.ended) {
		t.Errorf("phase %q, outcome %q (conditions %+v), want phase %s with condition %s", st.Phase, VMOutcome(st), st.Conditions, VMPhaseCompleted, want.ended)
	}
	for task, phase := range want.steps {
		if got := FindVMTask(st, task).Phase; got != phase {
			t.Errorf("task %s is %s, want %s", task, got, phase)
		}
	}
	var actions []string
	for _, a := range d.Actions {
		actions = append(actions, a.String())
	}
	if !slices.Equal(actions, want.actions) {
		t.Errorf("actions %q, want %q", actions, want.actions)
	}
	switch {
	case want.failed == "" && st.Error != nil:
		t.Errorf("unexpected error %+v", st.Error)
	case want.failed != "" && (st.Error == nil || !strings.Contains(strings.Join(st.Error.Reasons, " | "), want.failed)):
		t.Errorf("error %+v, want one saying %q", st.Error, want.failed)
	}
	if want.reason != "" && !strings.Contains(currentReason(st), want.reason) {
		t.Errorf("reason %q, want it to say %q", currentReason(st), want.reason)
	}
	current := taskAt(st.Pipeline, currentTask(st.Pipeline))
	for k, v := range want.annotations {
		if current.Annotations[k] != v {
			t.Errorf("%s's annotation %s = %q, want %q", current.Name, k, current.Annotations[k], v)
		}
	}
	if got := taskAt(st.Pipeline, cleanupIndex).Annotations[AnnotationOutcome]; want.outcome != "" && got != want.outcome {
		t.Errorf("cleanup outcome %q, want %q", got, want.outcome)
	}
	if want.requeue != 0 && d.RequeueAfter != want.requeue {
		t.Errorf("requeue %s, want %s", d.RequeueAfter, want.requeue)
	}
	var events []string
	for _, e := range d.Events {
		events = append(events, e.Reason)
	}
	if !slices.Equal(events, want.events) {
		t.Errorf("events %q, want %q", events, want.events)
	}
}

func currentReason(st forkliftv1beta1.VMStatus) string {
	return taskAt(st.Pipeline, currentTask(st.Pipeline)).Reason
}

// checkInvariants: whatever the decision, the pipeline stays coherent
// and nothing of the source but the sending VMIM is touched; what is made
// carries the labels.
func checkInvariants(t *testing.T, obs VMObserved, d VMDecision) {
	t.Helper()
	st := d.Status
	if !hasShape(st.Pipeline) {
		t.Fatalf("the pipeline lost its shape: %+v", st.Pipeline)
	}
	running := 0
	for i, task := range Tasks {
		step := taskAt(st.Pipeline, i)
		switch step.Phase {
		case PhaseRunning:
			running++
			if step.Started == nil || step.Completed != nil {
				t.Errorf("running task %s has timestamps %v / %v", task, step.Started, step.Completed)
			}
			if want := taskDefs[i].phase; st.Phase != want {
				t.Errorf("task %s runs but the VM's phase is %q, not %s", task, st.Phase, want)
			}
		case PhaseCompleted, PhaseFailed:
			if step.Started == nil || step.Completed == nil || step.Completed.Before(step.Started) {
				t.Errorf("ended task %s has timestamps %v / %v", task, step.Started, step.Completed)
			}
		}
	}
	if running > 1 {
		t.Errorf("%d tasks run at once", running)
	}
	checkSteps(t, st)
	if IsFinal(st) && running > 0 {
		t.Errorf("ended in phase %s with %d tasks running", st.Phase, running)
	}
	if IsFinal(st) && len(d.Actions) > 0 {
		t.Errorf("actions after the end: %v", d.Actions)
	}
	for _, a := range d.Actions {
		if _, isNamespace := a.Object.(*corev1.Namespace); isNamespace {
			continue
		}
		if a.Side == SideSource && !(a.Object.GetName() == vmimName) {
			t.Errorf("touches the source: %s", a)
		}
		if labels := a.Object.GetLabels(); labels[LabelMigration] != string(migrationUID) || labels[LabelVMID] != vmUID || labels[LabelPlan] != string(planUID) {
			t.Errorf("%s: labels %v", a, labels)
		}
	}
	if st.Phase == "" {
		t.Errorf("the VM has no phase")
	}
}

// checkSteps: each step says what its tasks do, as rollUp documents.
func checkSteps(t *testing.T, st forkliftv1beta1.VMStatus) {
	t.Helper()
	for _, step := range st.Pipeline {
		phases := map[string]int{}
		for _, task := range step.Tasks {
			phases[task.Phase]++
		}
		want := PhasePending
		switch {
		case phases[PhaseFailed] > 0:
			want = PhaseFailed
		case phases[PhaseCompleted] == len(step.Tasks):
			want = PhaseCompleted
		case phases[PhaseRunning] > 0 || phases[PhaseCompleted] > 0:
			want = PhaseRunning
		}
		if step.Phase != want || step.Progress.Completed != int64(phases[PhaseCompleted]) || step.Progress.Total != int64(len(step.Tasks)) {
			t.Errorf("step %s is %s with progress %+v, its tasks %v", step.Name, step.Phase, step.Progress, phases)
		}
		if (step.Phase == PhaseCompleted || step.Phase == PhaseFailed) != (step.Completed != nil) {
			t.Errorf("step %s is %s, completed at %v", step.Name, step.Phase, step.Completed)
		}
	}
}

// The objects the steps make, as upstream's user guide makes them by hand.
func TestObjectsMade(t *testing.T) {
	t.Run("the receiver VM", func(t *testing.T) {
		status := statusIn(TaskCreateReceiver, 0)
		taskAt(status.Pipeline, 0).Annotations[AnnotationRunStrategy] = string(kubevirtv1.RunStrategyRerunOnFailure)
		d := StepVM(observe(status, 0, func(o *VMObserved) {
			o.Source.VM.Spec.Template.Spec.Domain.Devices.Interfaces[0].MacAddress = ""
			o.Source.VM.Spec.Template.Spec.Domain.Firmware = &kubevirtv1.Firmware{UUID: "fw-uuid"}
		}))
		vm := d.Actions[0].Object.(*kubevirtv1.VirtualMachine)
		switch {
		case vm.Name != vmName || vm.Namespace != targetNamespace:
			t.Errorf("named %s/%s", vm.Namespace, vm.Name)
		case vm.EffectiveRunStrategy() != kubevirtv1.RunStrategyWaitAsReceiver:
			t.Errorf("run strategy %s", vm.EffectiveRunStrategy())
		case vm.Annotations[kubevirtv1.RestoreRunStrategyAnnotation] != "RerunOnFailure":
			t.Errorf("restore-run-strategy %q: want the source's, as Initialize recorded it", vm.Annotations[kubevirtv1.RestoreRunStrategyAnnotation])
		case vm.Spec.Template.Spec.Domain.Devices.Interfaces[0].MacAddress != mac:
			t.Errorf("MAC %q, want the guest's %s", vm.Spec.Template.Spec.Domain.Devices.Interfaces[0].MacAddress, mac)
		case vm.Spec.Template.Spec.Domain.Firmware == nil || vm.Spec.Template.Spec.Domain.Firmware.UUID != "fw-uuid":
			t.Errorf("firmware %+v", vm.Spec.Template.Spec.Domain.Firmware)
		case vm.Spec.Template.Spec.Volumes[1].DataVolume == nil || vm.Spec.Template.Spec.Volumes[1].DataVolume.Name != dataVolume:
			t.Errorf("volumes %+v", vm.Spec.Template.Spec.Volumes)
		case vm.Labels["app"] != vmName || vm.Labels[LabelVMID] != vmUID || vm.Spec.Template.ObjectMeta.Labels[LabelMigration] != string(migrationUID):
			t.Errorf("labels %v, template labels %v", vm.Labels, vm.Spec.Template.ObjectMeta.Labels)
		}
	})
	t.Run("networks through the map", func(t *testing.T) {
		spec := sourceVM().Spec.Template.Spec
		spec.Networks = append(spec.Networks, kubevirtv1.Network{Name: "blue", Multus: &kubevirtv1.MultusNetwork{NetworkName: "blue-net"}},
			kubevirtv1.Network{Name: "gone", Multus: &kubevirtv1.MultusNetwork{NetworkName: "other/drop"}})
		spec.Domain.Devices.Interfaces = append(spec.Domain.Devices.Interfaces, kubevirtv1.Interface{Name: "blue"}, kubevirtv1.Interface{Name: "gone"})
		pairs := append(slices.Clone(networkMap),
			forkliftv1beta1.NetworkPair{Source: forkliftv1beta1.Ref{Name: "blue-net"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "multus", Namespace: "net", Name: "red"}},
			forkliftv1beta1.NetworkPair{Source: forkliftv1beta1.Ref{Namespace: "other", Name: "drop"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "ignored"}})
		if err := rewriteNetworks(&spec, sourceNamespace, pairs); err != nil {
			t.Fatal(err)
		}
		if len(spec.Networks) != 2 || spec.Networks[1].Multus == nil || spec.Networks[1].Multus.NetworkName != "net/red" || len(spec.Domain.Devices.Interfaces) != 2 {
			t.Errorf("networks %+v, interfaces %+v", spec.Networks, spec.Domain.Devices.Interfaces)
		}
	})
	t.Run("the DataVolume: at least the source's size, the mapped class", func(t *testing.T) {
		status := statusIn(TaskCreateVolumes, 0)
		d := StepVM(observe(status, 0, func(o *VMObserved) {
			o.Source.PVCs[dataVolume] = sourcePVC("300Mi") // the provisioner rounded up
			o.StorageMap = []forkliftv1beta1.StoragePair{{Source: forkliftv1beta1.Ref{Name: "cclm-local"}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: "fast", AccessMode: corev1.ReadWriteMany}}}
		}))
		dv := d.Actions[0].Object.(*cdiv1beta1.DataVolume)
		size := dv.Spec.Storage.Resources.Requests[corev1.ResourceStorage]
		if dv.Spec.Source.Blank == nil || size.Cmp(resource.MustParse("300Mi")) != 0 || *dv.Spec.Storage.StorageClassName != "fast" ||
			!slices.Equal(dv.Spec.Storage.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}) {
			t.Errorf("DataVolume %+v", dv.Spec)
		}
	})
	t.Run("the VMIMs", func(t *testing.T) {
		d := StepVM(observe(statusIn(TaskCreateTargetMigration, 0), 0, withTargetVM(ours()), withTargetVMI(kubevirtv1.WaitingForSync)))
		receive := d.Actions[0].Object.(*kubevirtv1.VirtualMachineInstanceMigration)
		if receive.Spec.Receive == nil || receive.Spec.Receive.MigrationID != vmUID+"-"+string(migrationUID) || receive.Spec.SendTo != nil || receive.Spec.VMIName != vmName {
			t.Errorf("receiving VMIM %+v", receive.Spec)
		}
		d = StepVM(observe(statusIn(TaskCreateSourceMigration, 0), 0, withTargetVM(ours()), withTargetVMIM(kubevirtv1.MigrationWaitingForSync, addressed)))
		send := d.Actions[0].Object.(*kubevirtv1.VirtualMachineInstanceMigration)
		if send.Spec.SendTo == nil || send.Spec.SendTo.MigrationID != receive.Spec.Receive.MigrationID || send.Spec.SendTo.ConnectURL != connectURL || send.Namespace != sourceNamespace {
			t.Errorf("sending VMIM %s/%s %+v", send.Namespace, send.Name, send.Spec)
		}
	})
	t.Run("Initialize records", func(t *testing.T) {
		pending := forkliftv1beta1.VMStatus{Ref: forkliftv1beta1.Ref{Name: vmName, Namespace: sourceNamespace}, Pipeline: NewPipeline()}
		d := StepVM(observe(pending, 0))
		got := taskAt(d.Status.Pipeline, 0).Annotations
		if d.Status.ID != vmUID || got[AnnotationSourceNode] != "ocp7-worker-0" || got[AnnotationRunStrategy] != "Always" ||
			got[AnnotationMACs] != "default="+mac || got[AnnotationMemoryBytes] != "134217728" || got[AnnotationSourceVMI] != "vmi-uid" {
			t.Errorf("id %q, annotations %v", d.Status.ID, got)
		}
		if d.Status.Started == nil || taskAt(d.Status.Pipeline, 0).Started == nil || taskAt(d.Status.Pipeline, 0).Completed == nil {
			t.Errorf("timestamps missing: %+v", d.Status)
		}
	})
	t.Run("Migrate mirrors the progress", func(t *testing.T) {
		d := StepVM(observe(statusIn(TaskMigrate, 0), time.Second, withTargetVMIM(kubevirtv1.MigrationRunning), withSourceVMIM(kubevirtv1.MigrationRunning, progress(100, 400, 300))))
		step := taskAt(d.Status.Pipeline, migrateIndex)
		want := map[string]string{
			AnnotationRemaining: "300", AnnotationDirtyRate: "1048576", AnnotationIteration: "3", AnnotationDowntime: "25",
			AnnotationSourcePhase: "Running", AnnotationTargetPhase: "Running",
		}
		for k, v := range want {
			if step.Annotations[k] != v {
				t.Errorf("annotation %s = %q, want %q", k, step.Annotations[k], v)
			}
		}
		if step.Progress != (forkliftv1beta1.Progress{Completed: 100, Total: 400}) {
			t.Errorf("progress %+v", step.Progress)
		}
	})
}

func TestMigrateBudget(t *testing.T) {
	for _, tc := range []struct {
		bytes, perGiB int64
		want          time.Duration
	}{
		{0, 0, 5*time.Minute + 150*time.Second + 2*time.Minute + time.Minute},
		{384 << 20, 150, 5*time.Minute + 150*time.Second + 2*time.Minute + time.Minute},
		{(3 << 30) + 1, 100, 5*time.Minute + 400*time.Second + 2*time.Minute + time.Minute},
	} {
		if got := MigrateBudget(tc.bytes, tc.perGiB, time.Minute); got != tc.want {
			t.Errorf("MigrateBudget(%d, %d) = %s, want %s", tc.bytes, tc.perGiB, got, tc.want)
		}
	}
}

func TestEffectiveCompletionTimeoutPerGiB(t *testing.T) {
	withPolicy := func(perGiB int64) *kubevirtv1.VirtualMachineInstanceMigration {
		return &kubevirtv1.VirtualMachineInstanceMigration{Status: kubevirtv1.VirtualMachineInstanceMigrationStatus{
			MigrationState: &kubevirtv1.VirtualMachineInstanceMigrationState{
				MigrationConfiguration: &kubevirtv1.MigrationConfiguration{CompletionTimeoutPerGiB: ptr.To(perGiB)},
			},
		}}
	}
	for _, tc := range []struct {
		name           string
		crPerGiB       int64
		source, target *kubevirtv1.VirtualMachineInstanceMigration
		want           int64
	}{
		{"the KubeVirt CR's before any VMIM is claimed", 150, nil, nil, 150},
		{"a VMIM without a configuration yet", 150, &kubevirtv1.VirtualMachineInstanceMigration{}, nil, 150},
		{"a source cluster's policy allows longer", 150, withPolicy(900), nil, 900},
		{"the target cluster's policy allows longer", 0, nil, withPolicy(400), 400},
		{"a shorter policy does not cut the CR's", 150, withPolicy(60), withPolicy(90), 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := VMObserved{CompletionTimeoutPerGiB: tc.crPerGiB}
			obs.Source.VMIM, obs.Target.VMIM = tc.source, tc.target
			if got := effectiveCompletionTimeoutPerGiB(obs); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}
