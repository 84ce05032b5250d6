package toolkit

import (
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

// The VM status the toolkit writes has Forklift's shape: pipeline steps
// Initialize, PrepareTarget and Synchronization (and cclm's Cleanup), the
// VM's phase one of the ocp-live itinerary's. cclm's finer steps, with
// their own deadlines, reasons and figures, are the steps' tasks. StepVM
// works on the tasks, by index in Tasks; the steps and the VM's phase are
// derived from them (rollUp).

// taskPosition is where task i of Tasks sits: Pipeline[step].Tasks[task].
type taskPosition struct{ step, task int }

var taskPositions = func() []taskPosition {
	positions := make([]taskPosition, len(taskDefs))
	counts := map[string]int{}
	for i, def := range taskDefs {
		positions[i] = taskPosition{step: stepIndexOf(def.step), task: counts[def.step]}
		counts[def.step]++
	}
	return positions
}()

func stepIndexOf(name string) int {
	for i, step := range Steps {
		if step == name {
			return i
		}
	}
	panic("toolkit: task in an unknown step " + name)
}

// taskAt is task i of a pipeline of NewPipeline's shape.
func taskAt(pipeline []forkliftv1beta1.Step, i int) *forkliftv1beta1.Task {
	at := taskPositions[i]
	return &pipeline[at.step].Tasks[at.task]
}

// NewPipeline is the pipeline of a VM that has not started.
func NewPipeline() []forkliftv1beta1.Step {
	pipeline := make([]forkliftv1beta1.Step, len(Steps))
	for i, name := range Steps {
		pipeline[i] = forkliftv1beta1.Step{Task: forkliftv1beta1.Task{
			Name: name, Description: stepDescriptions[name], Phase: PhasePending,
		}}
	}
	for _, def := range taskDefs {
		step := &pipeline[stepIndexOf(def.step)]
		step.Tasks = append(step.Tasks, forkliftv1beta1.Task{Name: def.name, Description: def.description, Phase: PhasePending})
		step.Progress.Total++
	}
	return pipeline
}

// hasShape reports whether pipeline is of NewPipeline's shape.
func hasShape(pipeline []forkliftv1beta1.Step) bool {
	if len(pipeline) != len(Steps) {
		return false
	}
	for i, def := range taskDefs {
		at := taskPositions[i]
		if pipeline[at.step].Name != def.step || len(pipeline[at.step].Tasks) <= at.task || pipeline[at.step].Tasks[at.task].Name != def.name {
			return false
		}
	}
	return true
}

// ensurePipeline gives a VM status the pipeline's shape. One an older
// cclm wrote (its finer steps as the pipeline's steps) keeps what each
// recorded: the new tasks of the same name take it, and its CopyResources
// stands for the four tasks that split it. So a Migration under way when
// the toolkit was upgraded carries on where it was.
func ensurePipeline(status *forkliftv1beta1.VMStatus) {
	if hasShape(status.Pipeline) {
		return
	}
	older := status.Pipeline
	status.Pipeline = NewPipeline()
	for _, was := range older {
		for i, def := range taskDefs {
			if was.Name == def.name || was.Name == "CopyResources" && i >= firstCopyIndex && i <= lastCopyIndex {
				task := taskAt(status.Pipeline, i)
				name, description := task.Name, task.Description
				*task = *was.Task.DeepCopy()
				task.Name, task.Description = name, description
			}
		}
	}
}

// rollUp derives the steps and the VM's phase from the tasks: a step is
// Failed when a task failed, Completed when all did, Running once one
// started; it counts its completed tasks, and says its current task's
// reason and error. The VM's phase is its current task's itinerary phase
// (Started before it starts, as Forklift's). A VM that ended keeps its
// phase.
func rollUp(status *forkliftv1beta1.VMStatus) {
	for i := range status.Pipeline {
		rollUpStep(&status.Pipeline[i])
	}
	if IsFinal(*status) {
		return
	}
	status.Phase = taskDefs[currentTask(status.Pipeline)].phase
}

func rollUpStep(step *forkliftv1beta1.Step) {
	var completed, started int
	var current *forkliftv1beta1.Task
	step.Started, step.Completed, step.Error, step.Reason = nil, nil, nil, ""
	for j := range step.Tasks {
		task := &step.Tasks[j]
		if task.Started != nil && step.Started == nil {
			step.Started = task.Started.DeepCopy()
		}
		switch task.Phase {
		case PhaseCompleted:
			completed++
			started++
		case PhaseRunning, PhaseFailed:
			started++
			if current == nil || current.Phase != PhaseFailed {
				current = task
			}
		case PhasePending:
			if current == nil && task.Reason != "" {
				current = task // waiting to start, and saying why
			}
		}
		if task.Completed != nil && (step.Completed == nil || step.Completed.Before(task.Completed)) {
			step.Completed = task.Completed.DeepCopy()
		}
	}
	step.Progress = forkliftv1beta1.Progress{Completed: int64(completed), Total: int64(len(step.Tasks))}
	switch {
	case current != nil && current.Phase == PhaseFailed:
		step.Phase = PhaseFailed
	case completed == len(step.Tasks):
		step.Phase = PhaseCompleted
	case started > 0:
		step.Phase = PhaseRunning
	default:
		step.Phase = PhasePending
	}
	if step.Phase == PhaseRunning || step.Phase == PhasePending {
		step.Completed = nil
	}
	if current != nil {
		step.Reason = current.Reason
		step.Error = current.Error.DeepCopy()
	}
}

// currentTask is the index of the task the VM is in: Cleanup once it
// runs, else the first task not completed.
func currentTask(pipeline []forkliftv1beta1.Step) int {
	if taskAt(pipeline, cleanupIndex).Phase != PhasePending {
		return cleanupIndex
	}
	for i := range taskDefs {
		if taskAt(pipeline, i).Phase != PhaseCompleted {
			return i
		}
	}
	return cleanupIndex
}

// taskOf is the index in Tasks of the task a VM recorded by the toolkit,
// of any cclm, is in.
func taskOf(status forkliftv1beta1.VMStatus) int {
	if !hasShape(status.Pipeline) {
		status = *status.DeepCopy()
		ensurePipeline(&status)
	}
	return currentTask(status.Pipeline)
}

// VMTasks is a VM's pipeline at its finest, in order: each step's tasks,
// or the step itself where it has none (as Forklift writes a live
// migration's). For readers of any Forklift's status.
func VMTasks(status forkliftv1beta1.VMStatus) []forkliftv1beta1.Task {
	var tasks []forkliftv1beta1.Task
	for _, step := range status.Pipeline {
		if len(step.Tasks) == 0 {
			tasks = append(tasks, step.Task)
			continue
		}
		tasks = append(tasks, step.Tasks...)
	}
	return tasks
}

// CurrentVMTask is the index in VMTasks of the task the VM is in: the
// one running or failed last, else the first not completed; -1 for a VM
// without a pipeline.
func CurrentVMTask(status forkliftv1beta1.VMStatus) int {
	if hasShape(status.Pipeline) {
		return currentTask(status.Pipeline)
	}
	tasks := VMTasks(status)
	current := -1
	for i, task := range tasks {
		switch {
		case task.Phase == PhaseRunning || task.Phase == PhaseFailed:
			current = i
		case current < 0 && task.Phase != PhaseCompleted:
			current = i
		}
	}
	if current < 0 && len(tasks) > 0 {
		current = len(tasks) - 1
	}
	return current
}

// FindVMTask is the VM's task of the name (a step without tasks counts as
// one), nil when it has none.
func FindVMTask(status forkliftv1beta1.VMStatus, name string) *forkliftv1beta1.Task {
	for i := range status.Pipeline {
		step := &status.Pipeline[i]
		if len(step.Tasks) == 0 && step.Name == name {
			return &step.Task
		}
		for j := range step.Tasks {
			if step.Tasks[j].Name == name {
				return &step.Tasks[j]
			}
		}
	}
	return nil
}

// CurrentTaskName is the name of the task a VM is in (a step's, where a
// Forklift status has no tasks); "" before it started and once it ended.
func CurrentTaskName(status forkliftv1beta1.VMStatus) string {
	current := CurrentVMTask(status)
	if status.Started == nil || IsFinal(status) || current < 0 {
		return ""
	}
	return VMTasks(status)[current].Name
}
