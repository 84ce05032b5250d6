package virtcontroller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

var testNow = time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)

func inPhase(phase kubevirtv1.VirtualMachineInstancePhase) *kubevirtv1.VirtualMachineInstance {
	return testVMI("vm", func(v *kubevirtv1.VirtualMachineInstance) { v.Status.Phase = phase })
}

func deletingVMI() *kubevirtv1.VirtualMachineInstance {
	vmi := inPhase(kubevirtv1.Running)
	vmi.DeletionTimestamp = &metav1.Time{Time: testNow}
	return vmi
}

// decentralizedVMI is a VMI in phase with the state of a decentralized
// migration: the source cluster's half if source, else the target's.
func decentralizedVMI(phase kubevirtv1.VirtualMachineInstancePhase, source, completed, failed bool) *kubevirtv1.VirtualMachineInstance {
	vmi := inPhase(phase)
	state := &kubevirtv1.VirtualMachineInstanceMigrationState{
		MigrationUID: "vmim-1", SourceNode: "s1", TargetNode: "t1", Completed: completed, Failed: failed,
		StartTimestamp: &metav1.Time{Time: testNow},
	}
	if completed || failed {
		state.EndTimestamp = &metav1.Time{Time: testNow}
	}
	if source {
		state.SourceState = &kubevirtv1.VirtualMachineInstanceMigrationSourceState{}
		state.SourceState.MigrationUID = state.MigrationUID
	} else {
		state.TargetState = &kubevirtv1.VirtualMachineInstanceMigrationTargetState{}
		state.TargetState.MigrationUID = state.MigrationUID
	}
	vmi.Status.MigrationState = state
	return vmi
}

func migratedAway() *kubevirtv1.VirtualMachineInstance {
	return decentralizedVMI(kubevirtv1.Succeeded, true, true, false)
}

func receivedVMI() *kubevirtv1.VirtualMachineInstance {
	return decentralizedVMI(kubevirtv1.Running, false, true, false)
}

func TestDecideVMI(t *testing.T) {
	const (
		always   = kubevirtv1.RunStrategyAlways
		halted   = kubevirtv1.RunStrategyHalted
		manual   = kubevirtv1.RunStrategyManual
		rerun    = kubevirtv1.RunStrategyRerunOnFailure
		once     = kubevirtv1.RunStrategyOnce
		receiver = kubevirtv1.RunStrategyWaitAsReceiver
	)
	for _, tc := range []struct {
		name string
		in   runInput
		// want is the action; wantReceiver, wantReason and wantMessage
		// (substring) are checked when set.
		want         vmiAction
		wantReceiver bool
		wantReason   string
		wantMessage  string
		wantRetry    time.Duration
		// wantStrategy is the run strategy the VM must get, "" for none.
		wantStrategy kubevirtv1.VirtualMachineRunStrategy
	}{
		{name: "Always, no VMI: create", in: runInput{Strategy: always}, want: createVMI},
		{name: "Always, running: keep", in: runInput{Strategy: always, VMI: inPhase(kubevirtv1.Running), VMIControlled: true}, want: keepVMI},
		{name: "Always, failed: delete to restart", in: runInput{Strategy: always, VMI: inPhase(kubevirtv1.Failed), VMIControlled: true}, want: deleteVMI, wantMessage: "ended (Failed)"},
		{name: "Always, succeeded: delete to restart", in: runInput{Strategy: always, VMI: inPhase(kubevirtv1.Succeeded), VMIControlled: true}, want: deleteVMI},
		{name: "Halted, no VMI: keep", in: runInput{Strategy: halted}, want: keepVMI, wantReason: reasonHalted},
		{name: "Halted, running: delete (stops the guest)", in: runInput{Strategy: halted, VMI: inPhase(kubevirtv1.Running), VMIControlled: true}, want: deleteVMI},
		{name: "Halted, ended: delete", in: runInput{Strategy: halted, VMI: inPhase(kubevirtv1.Succeeded), VMIControlled: true}, want: deleteVMI},
		{name: "Manual, no VMI: keep", in: runInput{Strategy: manual}, want: keepVMI, wantReason: reasonManual},
		{name: "Manual, running: keep", in: runInput{Strategy: manual, VMI: inPhase(kubevirtv1.Running), VMIControlled: true}, want: keepVMI},
		{name: "Manual, failed: keep", in: runInput{Strategy: manual, VMI: inPhase(kubevirtv1.Failed), VMIControlled: true}, want: keepVMI},
		{name: "RerunOnFailure, no VMI: create", in: runInput{Strategy: rerun}, want: createVMI},
		{name: "RerunOnFailure, failed: delete to restart", in: runInput{Strategy: rerun, VMI: inPhase(kubevirtv1.Failed), VMIControlled: true}, want: deleteVMI},
		{name: "RerunOnFailure, succeeded: keep", in: runInput{Strategy: rerun, VMI: inPhase(kubevirtv1.Succeeded), VMIControlled: true}, want: keepVMI, wantReason: reasonVMIEnded},
		{name: "Once, no VMI: create", in: runInput{Strategy: once}, want: createVMI},
		{name: "Once, failed: keep", in: runInput{Strategy: once, VMI: inPhase(kubevirtv1.Failed), VMIControlled: true}, want: keepVMI, wantReason: reasonVMIEnded},
		{name: "Once, succeeded: keep", in: runInput{Strategy: once, VMI: inPhase(kubevirtv1.Succeeded), VMIControlled: true}, want: keepVMI},
		{name: "WaitAsReceiver, no VMI: create a receiver", in: runInput{Strategy: receiver}, want: createVMI, wantReceiver: true},
		{name: "WaitAsReceiver, waiting: keep", in: runInput{Strategy: receiver, VMI: inPhase(kubevirtv1.WaitingForSync), VMIControlled: true}, want: keepVMI},
		{name: "WaitAsReceiver, failed: not retried", in: runInput{Strategy: receiver, VMI: inPhase(kubevirtv1.Failed), VMIControlled: true}, want: keepVMI},
		{name: "a VMI being deleted is waited for", in: runInput{Strategy: always, VMI: deletingVMI(), VMIControlled: true}, want: keepVMI, wantReason: reasonVMIDeleting},
		{name: "someone else's VMI is left alone", in: runInput{Strategy: halted, VMI: inPhase(kubevirtv1.Running)}, want: keepVMI, wantReason: reasonVMINotControlled},
		{name: "a deleted VM stops its VMI", in: runInput{Strategy: always, VMDeleting: true, VMI: inPhase(kubevirtv1.Running), VMIControlled: true}, want: deleteVMI},
		{name: "a deleted VM starts nothing", in: runInput{Strategy: always, VMDeleting: true}, want: keepVMI, wantReason: reasonVMDeleting},
		{
			name: "Always, migrated to another cluster: the VMI stays and the VM halts",
			in:   runInput{Strategy: always, VMI: migratedAway(), VMIControlled: true},
			want: keepVMI, wantReason: reasonMigratedAway, wantMessage: "node t1 of another cluster", wantStrategy: halted,
		},
		{
			name: "RerunOnFailure, migrated to another cluster: the VM halts",
			in:   runInput{Strategy: rerun, VMI: migratedAway(), VMIControlled: true},
			want: keepVMI, wantReason: reasonMigratedAway, wantStrategy: halted,
		},
		{
			name: "Halted, migrated to another cluster: the VMI stays",
			in:   runInput{Strategy: halted, VMI: migratedAway(), VMIControlled: true},
			want: keepVMI, wantReason: reasonMigratedAway,
		},
		{name: "Manual, migrated to another cluster: unchanged", in: runInput{Strategy: manual, VMI: migratedAway(), VMIControlled: true}, want: keepVMI, wantReason: reasonMigratedAway},
		{name: "Once, migrated to another cluster: unchanged", in: runInput{Strategy: once, VMI: migratedAway(), VMIControlled: true}, want: keepVMI, wantReason: reasonMigratedAway},
		{name: "a deleted VM deletes its migrated-away VMI", in: runInput{Strategy: halted, VMDeleting: true, VMI: migratedAway(), VMIControlled: true}, want: deleteVMI},
		{
			name: "Always, shut down after a failed migration to another cluster: restarted",
			in:   runInput{Strategy: always, VMI: decentralizedVMI(kubevirtv1.Succeeded, true, true, true), VMIControlled: true},
			want: deleteVMI,
		},
		{
			name: "Always, migrated in from another cluster, then shut down: restarted",
			in:   runInput{Strategy: always, VMI: decentralizedVMI(kubevirtv1.Succeeded, false, true, false), VMIControlled: true},
			want: deleteVMI,
		},
		{
			name: "WaitAsReceiver, received: the annotation's strategy",
			in:   runInput{Strategy: receiver, RestoreRunStrategy: "RerunOnFailure", VMI: receivedVMI(), VMIControlled: true},
			want: keepVMI, wantReason: reasonMigrationReceived, wantMessage: "as annotation kubevirt.io/restore-run-strategy says", wantStrategy: rerun,
		},
		{
			name: "WaitAsReceiver, received, no annotation: Always",
			in:   runInput{Strategy: receiver, VMI: receivedVMI(), VMIControlled: true},
			want: keepVMI, wantMessage: "the VM has no annotation", wantStrategy: always,
		},
		{
			name: "WaitAsReceiver, received, unknown annotation: Always",
			in:   runInput{Strategy: receiver, RestoreRunStrategy: "always", VMI: receivedVMI(), VMIControlled: true},
			want: keepVMI, wantMessage: `is "always", not one of Always, Halted`, wantStrategy: always,
		},
		{
			name: "WaitAsReceiver, received, annotation WaitAsReceiver: Always",
			in:   runInput{Strategy: receiver, RestoreRunStrategy: "WaitAsReceiver", VMI: receivedVMI(), VMIControlled: true},
			want: keepVMI, wantStrategy: always,
		},
		{
			name: "WaitAsReceiver, receiving: unchanged",
			in:   runInput{Strategy: receiver, RestoreRunStrategy: "Always", VMI: decentralizedVMI(kubevirtv1.WaitingForSync, false, false, false), VMIControlled: true},
			want: keepVMI,
		},
		{
			name: "WaitAsReceiver, running but not completed: unchanged",
			in:   runInput{Strategy: receiver, VMI: decentralizedVMI(kubevirtv1.Running, false, false, false), VMIControlled: true},
			want: keepVMI,
		},
		{
			name: "WaitAsReceiver, running but the migration failed: unchanged",
			in:   runInput{Strategy: receiver, VMI: decentralizedVMI(kubevirtv1.Running, false, true, true), VMIControlled: true},
			want: keepVMI,
		},
		{
			name: "Always, received earlier: nothing more to restore",
			in:   runInput{Strategy: always, RestoreRunStrategy: "Manual", VMI: receivedVMI(), VMIControlled: true},
			want: keepVMI,
		},
		{
			name: "a failed DataVolume blocks the start",
			in:   runInput{Strategy: always, Volumes: volumeReadiness{Failed: []string{"DataVolume d failed: source http is not supported"}, Pending: []string{"DataVolume e is Pending"}}},
			want: keepVMI, wantReason: reasonDataVolumeError, wantMessage: "source http is not supported",
		},
		{
			name: "a provisioning DataVolume delays the start",
			in:   runInput{Strategy: always, Volumes: volumeReadiness{Pending: []string{"DataVolume e is Pending"}}},
			want: keepVMI, wantReason: reasonWaitingForVolumes, wantMessage: "DataVolume e is Pending",
		},
		{
			name: "a receiver waits for its DataVolumes too",
			in:   runInput{Strategy: receiver, Volumes: volumeReadiness{Pending: []string{"DataVolume e does not exist yet"}}},
			want: keepVMI, wantReason: reasonWaitingForVolumes,
		},
		{
			name: "crash-loop backoff holds the start",
			in:   runInput{Strategy: always, RetryAt: testNow.Add(20 * time.Second), Now: testNow},
			want: keepVMI, wantReason: reasonCrashLoopBackOff, wantRetry: 20 * time.Second,
		},
		{
			name: "an expired backoff lets it start",
			in:   runInput{Strategy: rerun, RetryAt: testNow.Add(-time.Second), Now: testNow},
			want: createVMI,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decideVMI(tc.in)
			if got.Action != tc.want || got.Receiver != tc.wantReceiver || got.RetryAfter != tc.wantRetry || got.RunStrategy != tc.wantStrategy {
				t.Errorf("got %+v, want action %s receiver %v retry %s run strategy %q", got, tc.want, tc.wantReceiver, tc.wantRetry, tc.wantStrategy)
			}
			if tc.wantReason != "" && got.Reason != tc.wantReason {
				t.Errorf("reason = %q, want %q", got.Reason, tc.wantReason)
			}
			if !strings.Contains(got.Message, tc.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", got.Message, tc.wantMessage)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	policy := backoffPolicy{Base: 10 * time.Second, Max: time.Minute}
	for failures, want := range map[int]time.Duration{
		0: 0, 1: 0, 2: 10 * time.Second, 3: 20 * time.Second, 4: 40 * time.Second, 5: time.Minute, 50: time.Minute,
	} {
		if got := policy.delay(failures); got != want {
			t.Errorf("delay(%d) = %s, want %s", failures, got, want)
		}
	}
}

func TestObserveFailure(t *testing.T) {
	policy := backoffPolicy{Base: 10 * time.Second, Max: time.Minute, StableRun: time.Minute}
	failed := func(uid string, ranFor time.Duration) *kubevirtv1.VirtualMachineInstance {
		vmi := inPhase(kubevirtv1.Failed)
		vmi.UID = types.UID("uid-" + uid)
		if ranFor > 0 {
			vmi.Status.PhaseTransitionTimestamps = []kubevirtv1.VirtualMachineInstancePhaseTransitionTimestamp{
				{Phase: kubevirtv1.Running, PhaseTransitionTimestamp: metav1.NewTime(testNow.Add(-ranFor))},
				{Phase: kubevirtv1.Failed, PhaseTransitionTimestamp: metav1.NewTime(testNow)},
			}
		}
		return vmi
	}
	twice := startFailure{ConsecutiveFailCount: 2, LastFailedVMIUID: "uid-old"}
	for _, tc := range []struct {
		name        string
		prev        startFailure
		vmi         *kubevirtv1.VirtualMachineInstance
		wantChanged bool
		wantCount   int
		wantRetryIn time.Duration
	}{
		{name: "no VMI", prev: twice, wantCount: 2},
		{name: "a running VMI", prev: twice, vmi: inPhase(kubevirtv1.Running), wantCount: 2},
		{name: "a succeeded VMI is no failure", prev: twice, vmi: inPhase(kubevirtv1.Succeeded), wantCount: 2},
		{name: "the first failure restarts at once", vmi: failed("a", 0), wantChanged: true, wantCount: 1},
		{name: "a further quick failure backs off", prev: twice, vmi: failed("a", 5*time.Second), wantChanged: true, wantCount: 3, wantRetryIn: 20 * time.Second},
		{name: "a failure after a stable run starts a new count", prev: twice, vmi: failed("a", 2*time.Minute), wantChanged: true, wantCount: 1},
		{name: "the same failed VMI counts once", prev: startFailure{ConsecutiveFailCount: 2, LastFailedVMIUID: "uid-a"}, vmi: failed("a", 0), wantCount: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, changed := observeFailure(tc.prev, tc.vmi, testNow, policy)
			if changed != tc.wantChanged || next.ConsecutiveFailCount != tc.wantCount {
				t.Fatalf("got %+v changed=%v, want count %d changed=%v", next, changed, tc.wantCount, tc.wantChanged)
			}
			if changed {
				if retryIn := next.RetryAfterTimestamp.Sub(testNow); retryIn != tc.wantRetryIn {
					t.Errorf("retry in %s, want %s", retryIn, tc.wantRetryIn)
				}
				if next.LastFailedVMIUID != tc.vmi.UID {
					t.Errorf("last failed UID %s, want %s", next.LastFailedVMIUID, tc.vmi.UID)
				}
			}
		})
	}
}
