package vmiruntime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/qemu"
)

const testMigration types.UID = "vmim-1"

// classicState is an in-cluster migration from node s to node t.
func classicState() *kubevirtv1.VirtualMachineInstanceMigrationState {
	return &kubevirtv1.VirtualMachineInstanceMigrationState{
		MigrationUID: testMigration, SourceNode: "s", TargetNode: "t", TargetNodeAddress: "10.0.0.2",
	}
}

// sourceState is the source cluster's half of a decentralized migration
// from its node s to node t of the other cluster.
func sourceState() *kubevirtv1.VirtualMachineInstanceMigrationState {
	state := classicState()
	state.SourceState = &kubevirtv1.VirtualMachineInstanceMigrationSourceState{}
	state.SourceState.MigrationUID = testMigration
	return state
}

// targetState is the target cluster's half of a decentralized migration
// from node s of the other cluster to its node t.
func targetState() *kubevirtv1.VirtualMachineInstanceMigrationState {
	state := classicState()
	state.TargetState = &kubevirtv1.VirtualMachineInstanceMigrationTargetState{}
	state.TargetState.MigrationUID = testMigration
	return state
}

func TestMigrationRole(t *testing.T) {
	for _, tc := range []struct {
		name    string
		state   *kubevirtv1.VirtualMachineInstanceMigrationState
		vmiNode string
		node    string
		want    qemu.MigrationRole
	}{
		{"classic target", classicState(), "s", "t", qemu.RoleTarget},
		{"classic target after the takeover", classicState(), "t", "t", ""},
		{"classic source", classicState(), "s", "s", qemu.RoleSource},
		{"classic source before the target published: it prepares", &kubevirtv1.VirtualMachineInstanceMigrationState{MigrationUID: testMigration, SourceNode: "s", TargetNode: "t"}, "s", "s", qemu.RoleSource},
		{"an uninvolved node", classicState(), "s", "x", ""},
		{"decentralized source", sourceState(), "s", "s", qemu.RoleSource},
		{"decentralized source: a local node named like the remote target", sourceState(), "s", "t", ""},
		{"decentralized target: the receiver has no node", targetState(), "", "t", qemu.RoleTarget},
		{"decentralized target: a local node named like the remote source, after the takeover", targetState(), "s", "s", ""},
		{"decentralized target after the takeover", targetState(), "t", "t", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := migrationRole(tc.state, tc.vmiNode, tc.node); got != tc.want {
				t.Errorf("role = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecentralizedTakeover(t *testing.T) {
	completed := sourceState()
	completed.Completed = true
	failed := sourceState()
	failed.Completed, failed.Failed, failed.FailureReason = true, true, "the target cluster's side of the migration failed: disk full"
	other := sourceState()
	other.MigrationUID = "vmim-2"
	for _, tc := range []struct {
		name     string
		state    *kubevirtv1.VirtualMachineInstanceMigrationState
		wantDone bool
		wantErr  string
	}{
		{"in progress", sourceState(), false, ""},
		{"completed on the target", completed, true, ""},
		{"failed on the target: the paused source stays", failed, false, "disk full"},
		{"another migration's state", other, false, "no longer migration vmim-1"},
		{"no state", nil, false, "no longer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, err := decentralizedTakeover(tc.state, testMigration)
			if done != tc.wantDone {
				t.Errorf("done = %v, want %v", done, tc.wantDone)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "paused source QEMU is kept")):
				t.Errorf("error %v, want one containing %q that says the paused source is kept", err, tc.wantErr)
			}
		})
	}
}

func TestClaimStatus(t *testing.T) {
	now := metav1.NewTime(time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC))
	t.Run("in-cluster: only the node moves", func(t *testing.T) {
		status := kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Running, NodeName: "s", MigrationState: classicState()}
		claimStatus(&status, "t", now)
		if status.NodeName != "t" || !status.MigrationState.TargetNodeDomainDetected {
			t.Errorf("status %+v", status)
		}
		if status.MigrationState.Completed || len(status.PhaseTransitionTimestamps) != 0 {
			t.Errorf("the source completes an in-cluster migration, not the target: %+v", status)
		}
	})
	t.Run("decentralized: the receiver runs and the migration completes", func(t *testing.T) {
		status := kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.WaitingForSync, MigrationState: targetState()}
		claimStatus(&status, "t", now)
		state := status.MigrationState
		if status.NodeName != "t" || status.Phase != kubevirtv1.Running || !state.Completed || state.EndTimestamp == nil || !state.EndTimestamp.Equal(&now) {
			t.Errorf("status %+v, state %+v", status, state)
		}
		if n := len(status.PhaseTransitionTimestamps); n != 1 || status.PhaseTransitionTimestamps[0].Phase != kubevirtv1.Running {
			t.Errorf("phase transitions %+v", status.PhaseTransitionTimestamps)
		}
	})
	t.Run("decentralized, failed meanwhile: the guest runs here, the failure stays", func(t *testing.T) {
		state := targetState()
		state.Failed = true
		status := kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.WaitingForSync, MigrationState: state}
		claimStatus(&status, "t", now)
		if status.NodeName != "t" || status.Phase != kubevirtv1.Running || state.Completed {
			t.Errorf("status %+v, state %+v", status, state)
		}
	})
}

func TestEndOf(t *testing.T) {
	withState := func(state *kubevirtv1.VirtualMachineInstanceMigrationState) *kubevirtv1.VirtualMachineInstance {
		vmi := testVMI()
		vmi.Status.MigrationState = state
		return vmi
	}
	migratedAway := sourceState()
	migratedAway.Completed = true
	failedAway := sourceState()
	failedAway.Completed, failedAway.Failed = true, true
	migratedIn := targetState()
	migratedIn.Completed = true
	inCluster := classicState()
	inCluster.Completed = true
	for _, tc := range []struct {
		name       string
		vmi        *kubevirtv1.VirtualMachineInstance
		byGuest    bool
		want       kubevirtv1.VirtualMachineInstancePhase
		wantReason string
	}{
		{"QEMU died", testVMI(), false, kubevirtv1.Failed, "QEMU process is gone"},
		{"the guest powered off", testVMI(), true, kubevirtv1.Succeeded, "the guest shut down"},
		{"migrated to another cluster", withState(migratedAway), false, kubevirtv1.Succeeded, "migrated to node t of the target cluster"},
		{"the decentralized migration failed", withState(failedAway), false, kubevirtv1.Failed, "QEMU process is gone"},
		{"the source's migration is not completed", withState(sourceState()), false, kubevirtv1.Failed, "QEMU process is gone"},
		{"migrated in from another cluster, then died", withState(migratedIn), false, kubevirtv1.Failed, "QEMU process is gone"},
		{"migrated in-cluster, then died", withState(inCluster), false, kubevirtv1.Failed, "QEMU process is gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			phase, reason := endOf(tc.vmi, tc.byGuest)
			if phase != tc.want || !strings.Contains(reason, tc.wantReason) {
				t.Errorf("got %s %q, want %s %q", phase, reason, tc.want, tc.wantReason)
			}
		})
	}
}

func TestPrepareDisks(t *testing.T) {
	dir := t.TempDir()
	provisioned := filepath.Join(dir, "pvc-local.img")
	if err := os.WriteFile(provisioned, []byte("volume"), 0o600); err != nil {
		t.Fatal(err)
	}
	dom := qemu.Domain{Disks: []qemu.Disk{
		{Name: "local", Path: provisioned},
		{Name: "remote", Path: filepath.Join(dir, "sub", "pvc-remote.img")},
		{Name: "lost", Path: filepath.Join(dir, "pvc-lost.img")},
	}}
	volumes := map[string]targetVolume{
		"local":  {size: 1 << 20, local: true},
		"remote": {size: 1 << 20},
		"lost":   {size: 1 << 20, local: true},
	}
	active := &activeMigration{}
	if err := prepareDisks(dom, volumes, active); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(provisioned); string(data) != "volume" {
		t.Errorf("the provisioned file was replaced: %q", data)
	}
	want := []string{dom.Disks[1].Path, dom.Disks[2].Path}
	if strings.Join(active.createdFiles, ",") != strings.Join(want, ",") {
		t.Errorf("created %v, want %v (never the provisioned volume's file)", active.createdFiles, want)
	}
	for _, path := range want {
		if info, err := os.Stat(path); err != nil || info.Size() != 1<<20 {
			t.Errorf("%s: %v %v", path, info, err)
		}
	}
	again := &activeMigration{}
	if err := prepareDisks(qemu.Domain{Disks: dom.Disks[1:2]}, volumes, again); err == nil {
		t.Error("an in-cluster target must not reuse a file left over on this node")
	}
}
