package vmiruntime

import (
	"context"
	"errors"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/convergence"
	"github.com/cclm-io/cclm/internal/qemu"
)

// The source agent decides early whether pre-copy can converge (package
// convergence) from QEMU's figures, and acts on what the VM's migration
// policy allows: it raises auto-converge's throttle at once, switches to
// post-copy, or ends the migration with the figures and the fix. Upstream's
// virt-launcher likewise runs its migration monitor next to QEMU.

// reasonNotConverging is the VMI event reason of those decisions.
const reasonNotConverging = "NotConverging"

// notConvergingError ends a migration that cannot converge.
type notConvergingError struct{ reason string }

func (e *notConvergingError) Error() string { return e.reason }

// convergenceWatch feeds one outgoing migration's progress to a predictor
// and carries out its verdicts.
type convergenceWatch struct {
	m         *migrator
	vmi       *kubevirtv1.VirtualMachineInstance
	source    *qemu.Instance
	active    *activeMigration
	predictor *convergence.Predictor
	// abort ends the wait for the migration, with the reason as cause.
	abort context.CancelCauseFunc
}

// watchConvergence returns the watch of a migration QEMU has just started
// with params, which abort ends when pre-copy cannot converge.
func (m *migrator) watchConvergence(vmi *kubevirtv1.VirtualMachineInstance, source *qemu.Instance, active *activeMigration, params qemu.MigrationParams, abort context.CancelCauseFunc) *convergenceWatch {
	policy := convergence.Policy{
		DowntimeLimit:     params.Downtime(),
		AllowAutoConverge: params.AutoConverge,
		AllowPostCopy:     params.PostCopy,
	}
	state := vmi.Status.MigrationState
	if config := state.MigrationConfiguration; config != nil && config.CompletionTimeoutPerGiB != nil {
		budget := convergence.CompletionBudget(*config.CompletionTimeoutPerGiB, migrationDataBytes(vmi, source.Domain()))
		// The budget runs from the migration's start; QEMU's clock (the
		// samples' Elapsed) from its own, once the target was ready.
		if state.StartTimestamp != nil {
			budget -= time.Since(state.StartTimestamp.Time)
		}
		policy.Budget = max(budget, time.Millisecond)
	}
	return &convergenceWatch{m: m, vmi: vmi, source: source, active: active, predictor: convergence.New(policy), abort: abort}
}

// migrationDataBytes is what a migration moves: the guest's memory and
// its mirrored disks.
func migrationDataBytes(vmi *kubevirtv1.VirtualMachineInstance, dom qemu.Domain) int64 {
	total := vmi.Spec.GuestMemoryBytes()
	for _, disk := range dom.Disks {
		if disk.ReadOnly {
			continue
		}
		if info, err := os.Stat(disk.Path); err == nil {
			total += info.Size()
		}
	}
	return total
}

// observe takes one poll of query-migrate, during pre-copy.
func (w *convergenceWatch) observe(ctx context.Context, p qemu.MigrationProgress) {
	if p.Status != qemu.MigrationActive || w.postcopyStarted() {
		return
	}
	verdict := w.predictor.Observe(convergence.Sample{
		Elapsed: p.TotalTime, Pass: p.Iteration,
		TransferredBytes: p.TransferredBytes, RemainingBytes: p.RemainingBytes,
		DirtyBytesPerSecond: p.DirtyBytesRate, ThrottlePercent: p.CPUThrottlePercent,
	})
	switch verdict.Action {
	case convergence.Throttle:
		w.throttle(ctx, verdict, p.CPUThrottlePercent)
	case convergence.PostCopy:
		w.switchToPostCopy(ctx, verdict)
	case convergence.Abort:
		w.m.logger.Info("migration cannot converge", "vmi", w.vmi.Namespace+"/"+w.vmi.Name, "reason", verdict.Reason)
		w.abort(&notConvergingError{reason: verdict.Reason})
	}
}

func (w *convergenceWatch) throttle(ctx context.Context, verdict convergence.Verdict, current int) {
	w.event(corev1.EventTypeNormal, verdict.Reason)
	if err := w.source.RaiseThrottle(ctx, verdict.ThrottlePercent, current); err != nil {
		w.event(corev1.EventTypeWarning, "raising the throttle: "+err.Error())
	}
}

// switchToPostCopy records the switch in migrationState before making it:
// a migration in post-copy must not be aborted (the guest runs at the
// target already), and the controller learns that from the mode.
func (w *convergenceWatch) switchToPostCopy(ctx context.Context, verdict convergence.Verdict) {
	if !w.m.claimPostcopyStart(w.active) {
		return
	}
	err := w.m.patchMigrationState(ctx, w.vmi, func(s *kubevirtv1.VirtualMachineInstanceMigrationState) {
		s.Mode = kubevirtv1.MigrationPostCopy
	})
	if err != nil {
		w.event(corev1.EventTypeWarning, verdict.Reason+"; but recording the switch failed, pre-copy goes on: "+err.Error())
		return
	}
	w.event(corev1.EventTypeNormal, verdict.Reason)
	if err := w.source.StartPostcopy(ctx); err != nil {
		w.event(corev1.EventTypeWarning, "start post-copy: "+err.Error())
	}
}

func (w *convergenceWatch) postcopyStarted() bool {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	return w.active.postcopyStarted
}

func (w *convergenceWatch) event(eventType, message string) {
	w.m.runner.recorder.Eventf(w.vmi, nil, eventType, reasonNotConverging, "Migrate", "%s", message)
}

// claimPostcopyStart marks the switch to post-copy as this caller's to
// make; false when it was made already.
func (m *migrator) claimPostcopyStart(active *activeMigration) bool {
	return m.claimOnce(&active.postcopyStarted)
}

// claimOnce sets done under the migrator's lock; false if it was set.
func (m *migrator) claimOnce(done *bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if *done {
		return false
	}
	*done = true
	return true
}

// convergenceFailure is the reason a wait ended early because pre-copy
// cannot converge, nil otherwise.
func convergenceFailure(ctx context.Context) error {
	var notConverging *notConvergingError
	if cause := context.Cause(ctx); errors.As(cause, &notConverging) {
		return notConverging
	}
	return nil
}
