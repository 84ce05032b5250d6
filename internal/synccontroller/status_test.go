package synccontroller

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Statuses as the two sides' agents write them, and what each side's
// controller makes of the other's push.

var readyAt = metav1.NewTime(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))

// sourceVMIStatus is a running source VMI whose agents filled sourceState.
func sourceVMIStatus() *kubevirtv1.VirtualMachineInstanceStatus {
	return &kubevirtv1.VirtualMachineInstanceStatus{
		Phase: kubevirtv1.Running, NodeName: "ocp7-worker-0",
		MigrationState: &kubevirtv1.VirtualMachineInstanceMigrationState{
			SourceNode: "ocp7-worker-0",
			SourceState: &kubevirtv1.VirtualMachineInstanceMigrationSourceState{
				VirtualMachineInstanceCommonMigrationState: kubevirtv1.VirtualMachineInstanceCommonMigrationState{
					Node: "ocp7-worker-0", MigrationUID: "uid-vmim-ocp7",
					SyncAddress:               ptrTo("192.168.201.1:9185"),
					VirtualMachineInstanceUID: ptrTo(types.UID("uid-vmi-ocp7")),
					DomainName:                ptrTo("vm1"), DomainNamespace: ptrTo("default"),
				},
				NodeSelectors: map[string]string{"cpu-model-migration.node.kubevirt.io/Haswell": "true"},
			},
		},
	}
}

// targetVMIStatusFlat is a receiver VMI whose node agent wrote only the
// flat fields, as it does for an in-cluster migration.
func targetVMIStatusFlat() *kubevirtv1.VirtualMachineInstanceStatus {
	return &kubevirtv1.VirtualMachineInstanceStatus{
		Phase: kubevirtv1.WaitingForSync, NodeName: "ocp1-worker-0",
		MigrationState: &kubevirtv1.VirtualMachineInstanceMigrationState{
			TargetNode:                     "ocp1-worker-0",
			TargetNodeAddress:              "192.168.201.129",
			TargetDirectMigrationNodePorts: map[string]int{"49152": 0, "49153": 1},
			TargetNodeDomainDetected:       true,
			TargetNodeDomainReadyTimestamp: &readyAt,
		},
	}
}

func TestTargetCopiesTheSourceHalf(t *testing.T) {
	local := &kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.WaitingForSync, NodeName: "ocp1-worker-0"}
	applyPeerStatus(local, sourceVMIStatus(), roleSource)

	want := sourceVMIStatus().MigrationState.SourceState
	requireEqual(t, "sourceState on the target", want, local.MigrationState.SourceState)
	if local.MigrationState.SourceNode != "" || local.MigrationState.TargetNode != "" {
		t.Errorf("the target's flat fields changed: %+v; they describe nodes of its own cluster", local.MigrationState)
	}
	if local.NodeName != "ocp1-worker-0" || local.Phase != kubevirtv1.WaitingForSync {
		t.Errorf("the target's own fields changed: node %q, phase %q", local.NodeName, local.Phase)
	}
}

func TestSourceHalfFallsBackToTheFlatFields(t *testing.T) {
	peer := &kubevirtv1.VirtualMachineInstanceStatus{NodeName: "ocp7-worker-1",
		MigrationState: &kubevirtv1.VirtualMachineInstanceMigrationState{SourcePod: "virt-launcher-vm1"}}
	local := &kubevirtv1.VirtualMachineInstanceStatus{}
	applyPeerStatus(local, peer, roleSource)
	got := local.MigrationState.SourceState
	if got.Node != "ocp7-worker-1" || got.Pod != "virt-launcher-vm1" {
		t.Errorf("sourceState = %+v, want node ocp7-worker-1 (status.nodeName) and pod virt-launcher-vm1", got)
	}
}

// The receiver's QEMU must expect the stream the source sends, which the
// source's configuration decides: it travels with the source's half.
func TestTheSourceHalfCarriesTheSourcesConfiguration(t *testing.T) {
	threads := uint32(4)
	peer := sourceVMIStatus()
	peer.MigrationState.MigrationConfiguration = &kubevirtv1.MigrationConfiguration{ParallelMigrationThreads: &threads}
	local := &kubevirtv1.VirtualMachineInstanceStatus{MigrationState: &kubevirtv1.VirtualMachineInstanceMigrationState{
		MigrationConfiguration: &kubevirtv1.MigrationConfiguration{}}}
	applyPeerStatus(local, peer, roleSource)
	got := local.MigrationState.SourceState.MigrationConfiguration
	if got == nil || got.ParallelMigrationThreads == nil || *got.ParallelMigrationThreads != 4 {
		t.Fatalf("sourceState.migrationConfiguration %+v: want the source's", got)
	}
	if local.MigrationState.MigrationConfiguration.ParallelMigrationThreads != nil {
		t.Error("the receiver's own migrationConfiguration changed")
	}
}

func TestSourceCopiesTheTargetHalfAndTheFlatFields(t *testing.T) {
	local := sourceVMIStatus()
	peer := targetVMIStatusFlat()
	withOwnHalf(peer, ownSide{role: roleTarget, syncAddress: "192.168.201.128:9185", migrationUID: "uid-vmim-ocp1", vmiUID: "uid-vmi-ocp1", vmiName: "vm1", vmiNamespace: "default"})
	applyPeerStatus(local, peer, roleTarget)

	state := local.MigrationState
	wantTarget := &kubevirtv1.VirtualMachineInstanceMigrationTargetState{
		VirtualMachineInstanceCommonMigrationState: kubevirtv1.VirtualMachineInstanceCommonMigrationState{
			Node: "ocp1-worker-0", MigrationUID: "uid-vmim-ocp1",
			SyncAddress:               ptrTo("192.168.201.128:9185"),
			VirtualMachineInstanceUID: ptrTo(types.UID("uid-vmi-ocp1")),
			DomainName:                ptrTo("vm1"), DomainNamespace: ptrTo("default"),
		},
		NodeAddress:              ptrTo("192.168.201.129"),
		DirectMigrationNodePorts: map[string]int{"49152": 0, "49153": 1},
		DomainDetected:           true,
		DomainReadyTimestamp:     &readyAt,
	}
	requireEqual(t, "targetState on the source", wantTarget, state.TargetState)
	wantFlat := kubevirtv1.VirtualMachineInstanceMigrationState{
		TargetNode: "ocp1-worker-0", TargetNodeAddress: "192.168.201.129",
		TargetDirectMigrationNodePorts: map[string]int{"49152": 0, "49153": 1},
		TargetNodeDomainDetected:       true, TargetNodeDomainReadyTimestamp: &readyAt,
	}
	gotFlat := kubevirtv1.VirtualMachineInstanceMigrationState{
		TargetNode: state.TargetNode, TargetNodeAddress: state.TargetNodeAddress,
		TargetDirectMigrationNodePorts: state.TargetDirectMigrationNodePorts,
		TargetNodeDomainDetected:       state.TargetNodeDomainDetected, TargetNodeDomainReadyTimestamp: state.TargetNodeDomainReadyTimestamp,
	}
	requireEqual(t, "flat target fields on the source", wantFlat, gotFlat)
	requireEqual(t, "the source's own half changed", sourceVMIStatus().MigrationState.SourceState, state.SourceState)
	if state.Completed || state.Failed {
		t.Errorf("completed %v, failed %v before the target said so", state.Completed, state.Failed)
	}
}

func TestTargetHalfNotYetReportedKeepsLocalValues(t *testing.T) {
	local := sourceVMIStatus()
	local.MigrationState.TargetNodeAddress = "192.168.201.129"
	applyPeerStatus(local, &kubevirtv1.VirtualMachineInstanceStatus{}, roleTarget)
	if local.MigrationState.TargetNodeAddress != "192.168.201.129" {
		t.Errorf("targetNodeAddress = %q; an empty report must not clear it", local.MigrationState.TargetNodeAddress)
	}
}

func TestSourceLearnsCompletionFromTheTarget(t *testing.T) {
	ended := metav1.NewTime(readyAt.Add(time.Minute))
	peer := targetVMIStatusFlat()
	peer.MigrationState.Completed, peer.MigrationState.EndTimestamp = true, &ended
	local := sourceVMIStatus()
	applyPeerStatus(local, peer, roleTarget)
	if !local.MigrationState.Completed || !local.MigrationState.EndTimestamp.Equal(&ended) {
		t.Errorf("completed %v at %v, want true at %v", local.MigrationState.Completed, local.MigrationState.EndTimestamp, ended)
	}

	// The target does not learn completion from the source: it is where
	// the migration completes.
	target := targetVMIStatusFlat()
	source := sourceVMIStatus()
	source.MigrationState.Completed = true
	applyPeerStatus(target, source, roleSource)
	if target.MigrationState.Completed {
		t.Error("the target took completed from the source")
	}
}

func TestTargetShowsTheSourcesProgress(t *testing.T) {
	sampled := metav1.NewTime(readyAt.Add(30 * time.Second))
	progress := &kubevirtv1.MigrationProgress{
		TransferredBytes: 600 << 20, RemainingBytes: 200 << 20, TotalBytes: 1 << 30,
		DirtyRateBytesPerSecond: 4 << 20, Iteration: 2, ExpectedDowntimeMs: 40, UpdatedTimestamp: &sampled,
	}
	source := sourceVMIStatus()
	source.MigrationState.Progress = progress.DeepCopy()
	target := targetVMIStatusFlat()
	applyPeerStatus(target, source, roleSource)
	requireEqual(t, "progress on the target", progress, target.MigrationState.Progress)
	source.MigrationState.Progress.TransferredBytes = 1
	if target.MigrationState.Progress.TransferredBytes != 600<<20 {
		t.Error("the target's progress shares memory with the pushed status")
	}
	if target.MigrationState.TargetNodeAddress != "192.168.201.129" || target.NodeName != "ocp1-worker-0" {
		t.Errorf("the target's own fields changed: %+v", target.MigrationState)
	}

	// A push without figures (the source has not sampled any, or an older
	// peer) keeps the last ones.
	applyPeerStatus(target, sourceVMIStatus(), roleSource)
	requireEqual(t, "progress after a push without figures", progress, target.MigrationState.Progress)

	// The source keeps its own figures: the target's copy does not flow back.
	own := sourceVMIStatus()
	applyPeerStatus(own, target, roleTarget)
	if own.MigrationState.Progress != nil {
		t.Errorf("the source took progress from the target: %+v", own.MigrationState.Progress)
	}
}

func TestFailurePropagatesBothWaysWithoutLooping(t *testing.T) {
	for _, sender := range []role{roleSource, roleTarget} {
		t.Run("from the "+sender.String(), func(t *testing.T) {
			peer := sourceVMIStatus()
			if sender == roleTarget {
				peer = targetVMIStatusFlat()
			}
			peer.MigrationState.Failed, peer.MigrationState.FailureReason = true, "QEMU exited"
			local := &kubevirtv1.VirtualMachineInstanceStatus{}
			applyPeerStatus(local, peer, sender)
			want := "the " + sender.String() + " cluster's side of the migration failed: QEMU exited"
			if !local.MigrationState.Failed || local.MigrationState.FailureReason != want {
				t.Fatalf("failed %v, reason %q; want true, %q", local.MigrationState.Failed, local.MigrationState.FailureReason, want)
			}
			// The peer hears back the propagated failure: its own reason stays.
			applyPeerStatus(peer, local, sender.peer())
			if peer.MigrationState.FailureReason != "QEMU exited" {
				t.Errorf("the first side's reason became %q", peer.MigrationState.FailureReason)
			}
		})
	}
}

func TestOwnHalfTakesTheControllersAddressAndUIDs(t *testing.T) {
	status := sourceVMIStatus()
	status.MigrationState.SourceState.SyncAddress = ptrTo("192.168.201.9:9185") // stale, from a former leader
	status.MigrationState.SourceState.DomainName = nil
	status.MigrationState.MigrationUID = "uid-new" // the state the migration controller claimed for this migration
	withOwnHalf(status, ownSide{role: roleSource, syncAddress: "[fd00::1]:9185", migrationUID: "uid-new", vmiUID: "uid-other", vmiName: "vm1", vmiNamespace: "default"})
	half := status.MigrationState.SourceState
	if *half.SyncAddress != "[fd00::1]:9185" || half.MigrationUID != "uid-new" {
		t.Errorf("syncAddress %q, migrationUID %q; the controller's own values must win", *half.SyncAddress, half.MigrationUID)
	}
	if *half.VirtualMachineInstanceUID != "uid-vmi-ocp7" || *half.DomainName != "vm1" {
		t.Errorf("vmi UID %q, domain %q; the agents' values stay, gaps are filled", *half.VirtualMachineInstanceUID, *half.DomainName)
	}
	if half.NodeSelectors == nil {
		t.Error("node selectors lost")
	}
}

// Before the source's migration controller claims the VMI for a new
// migration, the VMI may still show the migration that brought it here:
// none of that goes to the new migration's target, least of all its
// configuration, which tells the target that the source has started, or
// its completion.
func TestPushIgnoresAnEarlierMigrationsState(t *testing.T) {
	vmi := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: "vm1", Namespace: "default", UID: "uid-vmi"}, Status: *sourceVMIStatus()}
	vmi.Status.NodeName = "ocp1-worker-1"
	vmi.Status.MigrationState.MigrationUID = "uid-earlier"
	vmi.Status.MigrationState.Completed = true
	vmi.Status.MigrationState.MigrationConfiguration = &kubevirtv1.MigrationConfiguration{ParallelMigrationThreads: ptrTo(uint32(2))}
	m := &kubevirtv1.VirtualMachineInstanceMigration{ObjectMeta: metav1.ObjectMeta{UID: "uid-new"},
		Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: "vm1", SendTo: &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: "x", ConnectURL: "192.168.201.130:9185"}}}
	status := pushedStatus(m, vmi, "192.168.201.70:9185")
	half := status.MigrationState.SourceState
	if half.MigrationConfiguration != nil || half.NodeSelectors != nil || half.Node != "ocp1-worker-1" || half.MigrationUID != "uid-new" || status.MigrationState.Completed {
		t.Errorf("the new migration's push carries the earlier one's: configuration %v, node selectors %v, node %q, migration %q, completed %v",
			half.MigrationConfiguration, half.NodeSelectors, half.Node, half.MigrationUID, status.MigrationState.Completed)
	}
	// A sender that did push the earlier state: the target still takes
	// no configuration from it.
	vmi.Status.MigrationState.SourceState.MigrationUID = "uid-new"
	received := &kubevirtv1.VirtualMachineInstanceStatus{}
	applyPeerStatus(received, &vmi.Status, roleSource)
	if got := received.MigrationState.SourceState; got.MigrationConfiguration != nil {
		t.Errorf("the target took the earlier migration's configuration %v for migration %q's", got.MigrationConfiguration, got.MigrationUID)
	}
}

func TestCancelAbortsUnlessCompleted(t *testing.T) {
	status := sourceVMIStatus()
	if !applyCancel(status) || !status.MigrationState.AbortRequested || status.MigrationState.FailureReason != CancelledByPeerReason {
		t.Errorf("after a cancel: %+v", status.MigrationState)
	}
	failed := sourceVMIStatus()
	failed.MigrationState.Failed, failed.MigrationState.FailureReason = true, "QEMU exited"
	if !applyCancel(failed) || failed.MigrationState.FailureReason != "QEMU exited" {
		t.Errorf("a cancel replaced the reason of a failed migration: %q", failed.MigrationState.FailureReason)
	}
	done := sourceVMIStatus()
	done.MigrationState.Completed = true
	if applyCancel(done) || done.MigrationState.AbortRequested {
		t.Error("a completed migration was aborted")
	}
	empty := &kubevirtv1.VirtualMachineInstanceStatus{}
	if !applyCancel(empty) || !empty.MigrationState.AbortRequested {
		t.Error("a VMI without migration state was not marked aborted")
	}
}

func TestPeerAddressOf(t *testing.T) {
	source := &kubevirtv1.VirtualMachineInstanceMigration{Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{
		SendTo: &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: "m", ConnectURL: "192.168.201.128:9185"}}}
	target := &kubevirtv1.VirtualMachineInstanceMigration{Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{
		Receive: &kubevirtv1.VirtualMachineInstanceMigrationTarget{MigrationID: "m"}}}
	if got := peerAddressOf(source, &kubevirtv1.VirtualMachineInstanceStatus{}); got != "192.168.201.128:9185" {
		t.Errorf("source pushes to %q, want its connectURL", got)
	}
	if got := peerAddressOf(target, &kubevirtv1.VirtualMachineInstanceStatus{}); got != "" {
		t.Errorf("target pushes to %q before the source called", got)
	}
	learned := &kubevirtv1.VirtualMachineInstanceStatus{}
	applyPeerStatus(learned, sourceVMIStatus(), roleSource)
	if got := peerAddressOf(target, learned); got != "192.168.201.1:9185" {
		t.Errorf("target pushes to %q, want the source's syncAddress", got)
	}
}

func TestParseVMIStatus(t *testing.T) {
	valid, _ := json.Marshal(sourceVMIStatus())
	got, err := parseVMIStatus(valid)
	if err != nil {
		t.Fatal(err)
	}
	requireEqual(t, "round trip", sourceVMIStatus(), got)
	newer := `{"phase":"Running","someFutureField":{"x":1},"migrationState":{"sourceState":{"node":"n1","futureHalfField":true}}}`
	if got, err := parseVMIStatus([]byte(newer)); err != nil || got.MigrationState.SourceState.Node != "n1" {
		t.Errorf("a newer KubeVirt's status: %v, %+v", err, got)
	}
	for input, wantError := range map[string]string{
		"":                       "empty",
		"  ":                     "empty",
		"null":                   "not a JSON object",
		`["phase"]`:              "not a JSON object",
		`{"phase":`:              "not a VMI status",
		`{"phase":1}`:            "not a VMI status",
		`{"Phase":"Running"}x`:   "not a VMI status",
		strings.Repeat(" ", 2e6): "empty",
	} {
		if _, err := parseVMIStatus([]byte(input)); err == nil || !strings.Contains(err.Error(), wantError) {
			t.Errorf("parse %.20q: %v, want an error saying %q", input, err, wantError)
		}
	}
	big := `{"reason":"` + strings.Repeat("x", maxStatusJSON) + `"}`
	if _, err := parseVMIStatus([]byte(big)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a status of %d bytes: %v", len(big), err)
	}
	// Field names match case-sensitively, as the API server matches them.
	if got, err := parseVMIStatus([]byte(`{"Phase":"Running"}`)); err != nil || got.Phase != "" {
		t.Errorf(`{"Phase":...}: %v, phase %q; want it ignored`, err, got.Phase)
	}
}

// requireEqual compares semantically (quantities, times) and shows both
// sides as JSON when they differ.
func requireEqual(t *testing.T, what string, want, got any) {
	t.Helper()
	if equality.Semantic.DeepEqual(want, got) {
		return
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got)
	t.Errorf("%s:\n got: %s\nwant: %s", what, gotJSON, wantJSON)
}

// A peer's message about a migration touches the VMI only while the VMI is
// that migration's: the VM's next instance, or its next migration, never
// takes an old outcome (found by the fault suite: the source QEMU killed
// mid-transfer, the VM started again, and its next migration failed at once
// with the old reason).
func TestPeerMessagesOnlyReachTheirMigrationsVMI(t *testing.T) {
	sending := func(phase kubevirtv1.VirtualMachineInstanceMigrationPhase, vmiUID types.UID) *kubevirtv1.VirtualMachineInstanceMigration {
		m := &kubevirtv1.VirtualMachineInstanceMigration{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "send", UID: "uid-vmim-ocp7"},
			Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: "vm1",
				SendTo: &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: "m1", ConnectURL: "192.168.201.128:9185"}},
		}
		m.Status.Phase = phase
		if vmiUID != "" {
			m.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{SourceState: &kubevirtv1.VirtualMachineInstanceMigrationSourceState{
				VirtualMachineInstanceCommonMigrationState: kubevirtv1.VirtualMachineInstanceCommonMigrationState{VirtualMachineInstanceUID: ptrTo(vmiUID)},
			}}
		}
		return m
	}
	vmi := func(uid, migrationUID types.UID) *kubevirtv1.VirtualMachineInstance {
		v := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm1", UID: uid}}
		if migrationUID != "" {
			v.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{MigrationUID: migrationUID}
		}
		return v
	}
	for _, tc := range []struct {
		name    string
		m       *kubevirtv1.VirtualMachineInstanceMigration
		vmi     *kubevirtv1.VirtualMachineInstance
		refused string // part of the reason; "" when accepted
	}{
		{"unclaimed VMI, migration just made", sending(kubevirtv1.MigrationPending, ""), vmi("uid-vmi-ocp7", ""), ""},
		{"the migration's own VMI", sending(kubevirtv1.MigrationRunning, "uid-vmi-ocp7"), vmi("uid-vmi-ocp7", "uid-vmim-ocp7"), ""},
		{"migration over", sending(kubevirtv1.MigrationFailed, "uid-vmi-ocp7"), vmi("uid-vmi-ocp7", "uid-vmim-ocp7"), "is over"},
		{"VMI carries the next migration", sending(kubevirtv1.MigrationRunning, "uid-vmi-ocp7"), vmi("uid-vmi-ocp7", "uid-next"), "now carries migration uid-next"},
		{"VMI started again after a crash", sending(kubevirtv1.MigrationRunning, "uid-vmi-ocp7"), vmi("uid-vmi-again", ""), "is a new instance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			why := notForThisVMI(tc.m, tc.vmi)
			if tc.refused == "" && why != "" || tc.refused != "" && !strings.Contains(why, tc.refused) {
				t.Errorf("notForThisVMI = %q, want %q", why, tc.refused)
			}
		})
	}
}

// A migration that ended tells its peer how, also when its VMI is no longer
// its own (found by the fault suite: the source QEMU killed before the
// transfer, the VM started again, and the target waited for ever for a
// source that would never report the dead migration).
func TestEndedMigrationTellsItsOutcome(t *testing.T) {
	failed := failedSendingMigration()
	failed.Status.Phase = kubevirtv1.MigrationFailed
	failed.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{
		MigrationUID: "uid-vmim-ocp7", Failed: true, FailureReason: "VMI default/vm1 is Failed, not Running",
		SourceState: &kubevirtv1.VirtualMachineInstanceMigrationSourceState{
			VirtualMachineInstanceCommonMigrationState: kubevirtv1.VirtualMachineInstanceCommonMigrationState{VirtualMachineInstanceUID: ptrTo(types.UID("uid-vmi-ocp7"))},
		},
	}
	restarted := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm1", UID: "uid-vmi-again"}}
	restarted.Status.Phase = kubevirtv1.Running

	status := restarted.Status.DeepCopy()
	endedStatus(failed, restarted, status)
	state := status.MigrationState
	if state == nil || !state.Failed || state.FailureReason != "VMI default/vm1 is Failed, not Running" {
		t.Fatalf("pushed state %+v: want the migration's failure and reason", state)
	}
	if status.Phase == kubevirtv1.Running || *state.SourceState.VirtualMachineInstanceUID != "uid-vmi-ocp7" {
		t.Fatalf("pushed status %+v: want the migration's own, not the restarted VMI's", status)
	}

	// A migration that succeeded pushes its VMI's status as it is.
	succeeded := failed.DeepCopy()
	succeeded.Status.Phase = kubevirtv1.MigrationSucceeded
	own := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm1", UID: "uid-vmi-ocp7"}}
	own.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{MigrationUID: "uid-vmim-ocp7", Completed: true}
	status = own.Status.DeepCopy()
	endedStatus(succeeded, own, status)
	if !equality.Semantic.DeepEqual(status, &own.Status) {
		t.Fatalf("a succeeded migration's status changed: %+v", status.MigrationState)
	}
}

// A migration that failed before it claimed its VMI's state (the VMI had
// failed already) and whose VMI is gone still tells its peer, with the
// reason of its migrationFailed condition.
func TestMigrationEndedWithoutItsVMITellsItsPeer(t *testing.T) {
	m := failedSendingMigration()
	m.Status.Phase = kubevirtv1.MigrationFailed
	m.Status.Conditions = []kubevirtv1.VirtualMachineInstanceMigrationCondition{{
		Type: kubevirtv1.MigrationFailedCondition, Status: "True", Message: "VMI default/vm1 is Failed, not Running",
	}}
	vmi := endedMigrationsVMI(m)
	status := vmi.Status.DeepCopy()
	endedStatus(m, vmi, status)
	if state := status.MigrationState; !state.Failed || state.FailureReason != "VMI default/vm1 is Failed, not Running" || state.MigrationUID != m.UID {
		t.Fatalf("pushed state %+v", state)
	}
}

// A leader that did not follow a migration still pushes its outcome when
// it ended lately: it may have ended while no leader ran.
func TestEndedWithin(t *testing.T) {
	now := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	ended := func(phase kubevirtv1.VirtualMachineInstanceMigrationPhase, ago time.Duration) *kubevirtv1.VirtualMachineInstanceMigration {
		m := &kubevirtv1.VirtualMachineInstanceMigration{}
		m.Status.Phase = phase
		m.Status.PhaseTransitionTimestamps = []kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp{
			{Phase: kubevirtv1.MigrationRunning, PhaseTransitionTimestamp: metav1.NewTime(now.Add(-time.Hour))},
			{Phase: phase, PhaseTransitionTimestamp: metav1.NewTime(now.Add(-ago))},
		}
		return m
	}
	for _, tc := range []struct {
		name string
		m    *kubevirtv1.VirtualMachineInstanceMigration
		want bool
	}{
		{"succeeded a moment ago", ended(kubevirtv1.MigrationSucceeded, 20*time.Second), true},
		{"failed a moment ago", ended(kubevirtv1.MigrationFailed, time.Minute), true},
		{"ended long ago", ended(kubevirtv1.MigrationSucceeded, time.Hour), false},
		{"no timestamp of its final phase", &kubevirtv1.VirtualMachineInstanceMigration{Status: kubevirtv1.VirtualMachineInstanceMigrationStatus{Phase: kubevirtv1.MigrationFailed}}, false},
	} {
		if got := endedWithin(tc.m, now, endedPushWindow); got != tc.want {
			t.Errorf("%s: endedWithin = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A target that completed (the guest runs there) is not failed by a source
// that gave up waiting for the word of it.
func TestCompletedMigrationIsNotFailedByThePeer(t *testing.T) {
	local := &kubevirtv1.VirtualMachineInstanceStatus{MigrationState: &kubevirtv1.VirtualMachineInstanceMigrationState{Completed: true}}
	peer := sourceVMIStatus()
	peer.MigrationState.Failed, peer.MigrationState.FailureReason = true, "the target cluster did not report the migration completed"
	applyPeerStatus(local, peer, roleSource)
	if local.MigrationState.Failed || !local.MigrationState.Completed {
		t.Fatalf("completed state after the peer's failure: %+v", local.MigrationState)
	}
}

// failedSendingMigration is ocp7's sending half of migration m1, Failed.
func failedSendingMigration() *kubevirtv1.VirtualMachineInstanceMigration {
	m := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "send", UID: "uid-vmim-ocp7"},
		Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: "vm1",
			SendTo: &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: "m1", ConnectURL: "192.168.201.128:9185"}},
	}
	m.Status.Phase = kubevirtv1.MigrationFailed
	return m
}
