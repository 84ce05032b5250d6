package toolkit

import (
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

// Names shared with upstream Forklift and the rest of cclm.
const (
	// ServiceAccountName is the account the toolkit runs as in its
	// namespace (upstream's name).
	ServiceAccountName = "forklift-controller"
	// LeaderElectionID is the Lease replicas elect their leader with.
	LeaderElectionID = "forklift-controller"
	// DefaultNamespace is the toolkit's namespace: the ForkliftController,
	// the Providers and their Secrets.
	DefaultNamespace = "openshift-mtv"
	// DefaultVirtNamespace holds the KubeVirt CR on both clusters.
	DefaultVirtNamespace = "openshift-cnv"
	// ForkliftControllerName is the ForkliftController the lab and the
	// OpenShift guide create (examples/openshift/forkliftcontroller.yaml).
	ForkliftControllerName = "forklift-controller"
	// DefaultMaxVMInFlight is upstream's controller_max_vm_inflight.
	DefaultMaxVMInFlight = 20
	// eventSource names the toolkit in the events it records.
	eventSource = "forklift-controller"
)

// Labels on everything the toolkit creates, on both clusters.
const (
	LabelPlan      = "forklift.konveyor.io/plan"
	LabelMigration = "forklift.konveyor.io/migration"
	LabelVMID      = "forklift.konveyor.io/vm-id"
)

// The VM pipeline of a live migration has Forklift's steps (Step.Name), in
// order, and one of cclm's: Cleanup, which Forklift does unrecorded in its
// Completed phase.
const (
	StepInitialize      = "Initialize"
	StepPrepareTarget   = "PrepareTarget"
	StepSynchronization = "Synchronization"
	StepCleanup         = "Cleanup"
)

// The itinerary phases of Forklift's ocp-live migrator (VMStatus.Phase),
// without PreHook and PostHook (a Plan with hooks is refused) and
// CreateServiceExports (Submariner only).
const (
	PhaseStarted                                = "Started"
	PhaseSynchronizeCertificates                = "SynchronizeCertificates"
	PhaseCreateSecrets                          = "CreateSecrets"
	PhaseCreateConfigMaps                       = "CreateConfigMaps"
	PhaseEnsurePreference                       = "EnsurePreference"
	PhaseEnsureInstanceType                     = "EnsureInstanceType"
	PhaseEnsureDataVolumes                      = "EnsureDataVolumes"
	PhaseCreateTarget                           = "CreateTarget"
	PhaseCreateVirtualMachineInstanceMigrations = "CreateVirtualMachineInstanceMigrations"
	PhaseWaitForStateTransfer                   = "WaitForStateTransfer"
)

// cclm's finer steps (Task.Name), in order: the tasks of the pipeline's
// steps. Each has its own deadline and reason.
const (
	TaskInitialize              = "Initialize"
	TaskSynchronizeCertificates = "SynchronizeCertificates"
	TaskCreateSecrets           = "CreateSecrets"
	TaskCreateConfigMaps        = "CreateConfigMaps"
	TaskEnsurePreference        = "EnsurePreference"
	TaskEnsureInstanceType      = "EnsureInstanceType"
	TaskCreateVolumes           = "CreateVolumes"
	TaskCreateReceiver          = "CreateReceiver"
	TaskWaitForReceiver         = "WaitForReceiver"
	TaskCreateTargetMigration   = "CreateTargetMigration"
	TaskCreateSourceMigration   = "CreateSourceMigration"
	TaskMigrate                 = "Migrate"
	TaskCleanup                 = "Cleanup"
)

// taskDef places a task in the pipeline: its step and the itinerary
// phase the VM is in while it runs.
type taskDef struct {
	name, step, phase, description string
}

// taskDefs are the tasks in order.
var taskDefs = []taskDef{
	{TaskInitialize, StepInitialize, PhaseStarted, "Find the VM on the source and record what the migration needs of it."},
	{TaskSynchronizeCertificates, StepInitialize, PhaseSynchronizeCertificates, "Make each cluster trust the other's migration CA: its kubevirt-ca bundle into the other's kubevirt-external-ca."},
	{TaskCreateSecrets, StepPrepareTarget, PhaseCreateSecrets, "Create the target namespace and copy the Secrets the VM references into it."},
	{TaskCreateConfigMaps, StepPrepareTarget, PhaseCreateConfigMaps, "Copy the ConfigMaps the VM references to the target namespace."},
	{TaskEnsurePreference, StepPrepareTarget, PhaseEnsurePreference, "Copy the VM's namespaced preference to the target; check a cluster-wide one is there alike."},
	{TaskEnsureInstanceType, StepPrepareTarget, PhaseEnsureInstanceType, "Copy the VM's namespaced instancetype to the target; check a cluster-wide one is there alike."},
	{TaskCreateVolumes, StepPrepareTarget, PhaseEnsureDataVolumes, "Create blank DataVolumes (or PVCs) of the VM's disks on the target."},
	{TaskCreateReceiver, StepPrepareTarget, PhaseCreateTarget, "Create the receiving VM on the target (runStrategy WaitAsReceiver)."},
	{TaskWaitForReceiver, StepPrepareTarget, PhaseCreateTarget, "Wait for the receiving VMI to wait for the synchronization (WaitingForSync)."},
	{TaskCreateTargetMigration, StepSynchronization, PhaseCreateVirtualMachineInstanceMigrations, "Create the receiving migration on the target and wait for its synchronization address."},
	{TaskCreateSourceMigration, StepSynchronization, PhaseCreateVirtualMachineInstanceMigrations, "Create the sending migration on the source."},
	{TaskMigrate, StepSynchronization, PhaseWaitForStateTransfer, "Live-migrate the VM: watch both migrations until they end."},
	{TaskCleanup, StepCleanup, VMPhaseCompleted, "Remove the migrations; after a failure or cancel, what was created on the target."},
}

// Tasks are the tasks' names in order.
var Tasks = func() []string {
	names := make([]string, len(taskDefs))
	for i, def := range taskDefs {
		names[i] = def.name
	}
	return names
}()

// Steps are the pipeline's steps in order.
var Steps = []string{StepInitialize, StepPrepareTarget, StepSynchronization, StepCleanup}

// stepDescriptions are Forklift's, and one for cclm's Cleanup.
var stepDescriptions = map[string]string{
	StepInitialize:      "Initialize migration.",
	StepPrepareTarget:   "Prepare target namespace.",
	StepSynchronization: "Synchronize source and target VMs.",
	StepCleanup:         "Remove what the migration no longer needs.",
}

// Task phases (Task.Phase).
const (
	PhasePending   = "Pending"
	PhaseRunning   = "Running"
	PhaseCompleted = "Completed"
	PhaseFailed    = "Failed"
)

// VMPhaseCompleted is a VM's phase once the guest moved or the migration
// gave up, as Forklift's: Cleanup runs in it, and then the VM ends
// (status.completed set) with its outcome as a condition (VMOutcome).
const VMPhaseCompleted = "Completed"

// VM outcomes: the condition (type, status True) a VM ends with, as
// Forklift's; Cleanup's outcome annotation holds them while it runs.
const (
	VMSucceeded = forkliftv1beta1.ConditionSucceeded
	VMFailed    = forkliftv1beta1.ConditionFailed
	VMCanceled  = forkliftv1beta1.ConditionCanceled
)

// Annotations of pipeline tasks: what Initialize recorded, and the
// transfer figures Migrate mirrors.
const (
	AnnotationSourceNode    = "cclm.io/source-node"
	AnnotationSourceVMI     = "cclm.io/source-vmi-uid"
	AnnotationRunStrategy   = "cclm.io/run-strategy"
	AnnotationMACs          = "cclm.io/macs"
	AnnotationMemoryBytes   = "cclm.io/memory-bytes"
	AnnotationDiskBytes     = "cclm.io/disk-bytes"
	AnnotationConnectURL    = "cclm.io/connect-url"
	AnnotationOutcome       = "cclm.io/outcome"
	AnnotationRemaining     = "cclm.io/remaining-bytes"
	AnnotationDirtyRate     = "cclm.io/dirty-rate-bytes-per-second"
	AnnotationIteration     = "cclm.io/iteration"
	AnnotationDowntime      = "cclm.io/downtime-ms"
	AnnotationSourcePhase   = "cclm.io/source-phase"
	AnnotationTargetPhase   = "cclm.io/target-phase"
	AnnotationKeptTargetVM  = "cclm.io/kept-target-vm"
	AnnotationCleanupReason = "cclm.io/cleanup-reason"
	// AnnotationSlotWaitSince is when Migrate's current wait for a slot
	// began (RFC 3339), and AnnotationSlotWaitedMs the waits before it:
	// they extend Migrate's deadline.
	AnnotationSlotWaitSince = "cclm.io/slot-wait-since"
	AnnotationSlotWaitedMs  = "cclm.io/slot-waited-ms"
)

// MigrationID is the ID both halves of a VM's cross-cluster migration
// share: "<vmID>-<Migration UID>".
func MigrationID(vmID string, migrationUID types.UID) string {
	return vmID + "-" + string(migrationUID)
}

// VMIMName is the name of both VMIMs of a VM's migration: "<vm name>-<first
// 8 characters of the Migration UID>".
func VMIMName(vmName string, migrationUID types.UID) string {
	uid := string(migrationUID)
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return fmt.Sprintf("%s-%s", vmName, uid)
}

// Labels are the labels of everything made for one VM of one migration.
func Labels(planUID, migrationUID types.UID, vmID string) map[string]string {
	return map[string]string{
		LabelPlan:      string(planUID),
		LabelMigration: string(migrationUID),
		LabelVMID:      vmID,
	}
}

// owned reports whether obj was made by the toolkit for this VM of this
// migration: it carries both labels.
func owned(obj client.Object, migrationUID types.UID, vmID string) bool {
	if isNil(obj) || vmID == "" {
		return false
	}
	labels := obj.GetLabels()
	return labels[LabelMigration] == string(migrationUID) && labels[LabelVMID] == vmID
}

// isNil reports whether obj is nil, typed or not.
func isNil(obj client.Object) bool {
	if obj == nil {
		return true
	}
	v := reflect.ValueOf(obj)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
