package toolkit

import (
	"slices"
	"testing"
	"time"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

// Forklift's ocp-live itinerary (pkg/controller/plan/migrator/ocp), in
// order, without the hook phases and the Submariner-only one, and the
// steps of its pipeline: what a UI written for Forklift expects to read.
var (
	forkliftItinerary = []string{
		"Started", "SynchronizeCertificates", "CreateSecrets", "CreateConfigMaps", "EnsurePreference", "EnsureInstanceType",
		"EnsureDataVolumes", "CreateTarget", "CreateVirtualMachineInstanceMigrations", "WaitForStateTransfer", "Completed",
	}
	forkliftSteps = []string{"Initialize", "PrepareTarget", "Synchronization"}
)

// A VM walked through its tasks shows Forklift's phases in Forklift's
// order, and its pipeline Forklift's steps (then cclm's Cleanup).
func TestStatusReadsAsForklifts(t *testing.T) {
	status := forkliftv1beta1.VMStatus{Pipeline: NewPipeline()}
	rollUp(&status)
	var steps []string
	for _, step := range status.Pipeline {
		steps = append(steps, step.Name)
	}
	if !slices.Equal(steps, append(slices.Clone(forkliftSteps), StepCleanup)) {
		t.Errorf("steps %q, want Forklift's %q and Cleanup", steps, forkliftSteps)
	}
	phases := []string{status.Phase}
	for i := range Tasks {
		task := taskAt(status.Pipeline, i)
		task.Phase, task.Started = PhaseRunning, mtp(time.Duration(i)*time.Second)
		rollUp(&status)
		if status.Phase != phases[len(phases)-1] {
			phases = append(phases, status.Phase)
		}
		step := status.Pipeline[taskPositions[i].step]
		if step.Phase != PhaseRunning || step.Started == nil || step.Completed != nil {
			t.Errorf("task %s runs, its step %s is %s (%v / %v)", Tasks[i], step.Name, step.Phase, step.Started, step.Completed)
		}
		task.Phase, task.Completed = PhaseCompleted, mtp(time.Duration(i)*time.Second+time.Millisecond)
	}
	if !slices.Equal(phases, forkliftItinerary) {
		t.Errorf("phases %q,\nwant Forklift's %q", phases, forkliftItinerary)
	}
	rollUp(&status)
	for _, step := range status.Pipeline {
		if step.Phase != PhaseCompleted || step.Progress.Completed != step.Progress.Total || step.Completed == nil {
			t.Errorf("all tasks done, step %s is %s with %+v", step.Name, step.Phase, step.Progress)
		}
	}
}

// A failed task fails its step, which says why; the steps after it stay
// Pending.
func TestFailedTaskFailsItsStep(t *testing.T) {
	status := inCleanup(VMFailed, 0)
	prepare := status.Pipeline[taskPositions[taskIndex(TaskCreateReceiver)].step]
	if prepare.Phase != PhaseFailed || prepare.Error == nil || prepare.Error.Reasons[0] != "boom" || prepare.Completed == nil {
		t.Errorf("PrepareTarget with a failed task: %+v", prepare.Task)
	}
	if sync := status.Pipeline[taskPositions[migrateIndex].step]; sync.Phase != PhasePending || sync.Started != nil {
		t.Errorf("Synchronization after a failure: %+v", sync.Task)
	}
	if status.Phase != VMPhaseCompleted {
		t.Errorf("in Cleanup the VM's phase is %q, want Completed", status.Phase)
	}
}

// A status an older cclm wrote, with its finer steps as the pipeline's
// steps, carries on where it was: no task restarts, nothing recorded is
// lost.
func TestOlderPipelineCarriesOn(t *testing.T) {
	olderSteps := []string{"Initialize", "SynchronizeCertificates", "CopyResources", "CreateVolumes", "CreateReceiver", "WaitForReceiver",
		"CreateTargetMigration", "CreateSourceMigration", "Migrate", "Cleanup"}
	for at, current := range olderSteps {
		older := forkliftv1beta1.VMStatus{Phase: current}
		for i, name := range olderSteps {
			step := forkliftv1beta1.Step{Task: forkliftv1beta1.Task{Name: name, Phase: PhasePending}}
			switch {
			case i < at && name != "Cleanup":
				step.Phase, step.Started, step.Completed = PhaseCompleted, mtp(-time.Minute), mtp(-time.Minute)
			case i == at:
				step.Phase, step.Started = PhaseRunning, mtp(0)
			}
			if name == "Initialize" {
				step.Annotations = map[string]string{AnnotationSourceNode: "ocp7-worker-0"}
			}
			older.Pipeline = append(older.Pipeline, step)
		}
		status := *older.DeepCopy()
		ensurePipeline(&status)
		want := current
		if current == "CopyResources" {
			want = TaskCreateSecrets
		}
		if got := Tasks[currentTask(status.Pipeline)]; got != want || taskAt(status.Pipeline, currentTask(status.Pipeline)).Phase != PhaseRunning {
			t.Errorf("an older status in %s carries on in %s", current, got)
		}
		if taskAt(status.Pipeline, 0).Annotations[AnnotationSourceNode] != "ocp7-worker-0" {
			t.Errorf("an older status in %s lost Initialize's annotations", current)
		}
		if taskOf(older) != currentTask(status.Pipeline) || !hasShape(status.Pipeline) {
			t.Errorf("taskOf an older status in %s: %d", current, taskOf(older))
		}
	}
}

// VMTasks and CurrentVMTask read a status Forklift wrote (steps without
// tasks) as well as cclm's.
func TestVMTasksOfForkliftsStatus(t *testing.T) {
	forklift := forkliftv1beta1.VMStatus{Phase: "WaitForStateTransfer", Pipeline: []forkliftv1beta1.Step{
		{Task: forkliftv1beta1.Task{Name: "Initialize", Phase: PhaseCompleted}},
		{Task: forkliftv1beta1.Task{Name: "PrepareTarget", Phase: PhaseCompleted}},
		{Task: forkliftv1beta1.Task{Name: "Synchronization", Phase: PhaseRunning}},
	}}
	tasks := VMTasks(forklift)
	if len(tasks) != 3 || CurrentVMTask(forklift) != 2 || FindVMTask(forklift, "Synchronization") == nil {
		t.Errorf("Forklift's status: tasks %d, current %d", len(tasks), CurrentVMTask(forklift))
	}
	ours := statusIn(TaskMigrate, 0)
	if got := VMTasks(ours); len(got) != len(Tasks) || got[CurrentVMTask(ours)].Name != TaskMigrate {
		t.Errorf("cclm's status: %d tasks, current %d", len(got), CurrentVMTask(ours))
	}
}

// The volumes are read only for the tasks that use them: Migrate's
// polls, every second for the whole transfer, do not read them.
func TestVolumesReadOnlyWhereUsed(t *testing.T) {
	for i, task := range Tasks {
		status := statusIn(task, 0)
		want := task == TaskCreateVolumes || task == TaskCleanup
		if got := NeedsVolumes(status); got != want {
			t.Errorf("in %s (%d) NeedsVolumes is %t", task, i, got)
		}
		if want && !NeedsInventory(status) {
			t.Errorf("in %s the volumes are read but not the inventory", task)
		}
	}
}
