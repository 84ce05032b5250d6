package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

// migrate creates a VMIM for a VMI and returns its name.
func (l *labEnv) migrate(t testing.TB, contextName, namespace, vmi string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", vmi, time.Now().UnixNano()%1_000_000)
	vmim := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: vmi},
	}
	if err := l.Client(t, contextName).Create(context.Background(), vmim); err != nil {
		t.Fatal(err)
	}
	return name
}

// echoSession is a TCP session with a guest's echo service, held from a
// client namespace on the VM network: outside the VM and outside the nodes.
type echoSession struct {
	conn   net.Conn
	reader *bufio.Reader
	count  int
	bootID string
}

func (l *labEnv) openEcho(t *testing.T, address string) *echoSession {
	t.Helper()
	fabric, err := netlab.OpenFabric(lab.ID(l.Dir))
	if err != nil {
		t.Fatal(err)
	}
	clientNode, err := fabric.AddClient("echo-client", netip.MustParsePrefix("10.201.255.250/16"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = clientNode.Remove() })
	conn, err := clientNode.Dial("tcp", net.JoinHostPort(address, fmt.Sprint(guestagent.EchoPort)))
	if err != nil {
		t.Fatalf("TCP session to the guest's echo service at %s: %v", address, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &echoSession{conn: conn, reader: bufio.NewReader(conn)}
}

// exchange sends a line and checks the answer continues the session: the
// next counter value, and the same boot.
func (s *echoSession) exchange(t *testing.T, line string) {
	t.Helper()
	_ = s.conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintln(s.conn, line); err != nil {
		t.Fatalf("echo session broken on send: %v", err)
	}
	answer, err := s.reader.ReadString('\n')
	if err != nil {
		t.Fatalf("echo session broken on receive: %v", err)
	}
	fields := strings.SplitN(strings.TrimSpace(answer), " ", 3)
	s.count++
	if len(fields) != 3 || fields[0] != fmt.Sprint(s.count) || fields[2] != line {
		t.Fatalf("echo answer %q, want counter %d and line %q", answer, s.count, line)
	}
	if s.bootID != "" && fields[1] != s.bootID {
		t.Fatalf("echo answered from boot %s, the session began with %s", fields[1], s.bootID)
	}
	s.bootID = fields[1]
}

// A running VM with a written data disk moves to the other node of its
// cluster: same boot, a heartbeat without a gap beyond the downtime, the
// disk intact, a TCP session from outside kept, the source QEMU gone.
func TestLiveMigrationInsideACluster(t *testing.T) {
	l := sharedLab(t)
	spec := vmSpec{name: "mover", namespace: "migration", dataDisk: "256Mi"}
	l.createVM(t, "ocp7", spec)
	l.removeAtEnd(t, spec.namespace, spec.name)
	l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)
	var written guestagent.DiskWriteResult
	l.GuestCall(t, "ocp7", spec.namespace, spec.name, guestagent.CmdDiskWrite, guestagent.DiskArgs{Disk: "datadisk", SizeMiB: 64}, &written)
	var vmi *kubevirtv1.VirtualMachineInstance
	labtest.WaitFor(t, "the VMI to report the guest's IP", 30*time.Second, func() (bool, string) {
		vmi = l.VMI(t, "ocp7", spec.namespace, spec.name)
		return len(vmi.Status.Interfaces) > 0 && vmi.Status.Interfaces[0].IP != "", "no IP in status.interfaces yet"
	})
	source := vmi.Status.NodeName
	sourceQEMU := labtest.QEMUPids(spec.namespace, spec.name)

	echo := l.openEcho(t, vmi.Status.Interfaces[0].IP)
	echo.exchange(t, "before")
	before, err := l.GuestInfo(t, "ocp7", spec.namespace, spec.name)
	if err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	name := l.migrate(t, "ocp7", spec.namespace, spec.name)
	vmim := l.WaitVMIMFinal(t, "ocp7", spec.namespace, name, 3*time.Minute)
	if vmim.Status.Phase != kubevirtv1.MigrationSucceeded {
		t.Fatalf("migration %s: %+v\n%s", vmim.Status.Phase, vmim.Status.MigrationState, l.Describe(t, "ocp7", spec.namespace))
	}
	t.Logf("migration %s -> %s took %s (VMIM created to Succeeded)", source, vmim.Status.MigrationState.TargetNode, time.Since(began).Round(time.Millisecond))

	after := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 30*time.Second)
	if after.BootID != before.BootID {
		t.Fatalf("the guest rebooted: %s -> %s", before.BootID, after.BootID)
	}
	downtime := time.Duration(0)
	if progress := vmim.Status.MigrationState.Progress; progress != nil {
		downtime = time.Duration(progress.DowntimeMs) * time.Millisecond
		t.Logf("reported downtime %s, transferred %d MiB", downtime, progress.TransferredBytes>>20)
	}
	assertHeartbeatContinuous(t, before, after, downtime+time.Second)
	echo.exchange(t, "after")

	moved := l.VMI(t, "ocp7", spec.namespace, spec.name)
	if moved.Status.NodeName == source || moved.Status.NodeName != vmim.Status.MigrationState.TargetNode {
		t.Fatalf("VMI nodeName %q after migrating from %s to %s", moved.Status.NodeName, source, vmim.Status.MigrationState.TargetNode)
	}
	if now := labtest.QEMUPids(spec.namespace, spec.name); len(now) != 1 || now[0] == sourceQEMU[0] {
		t.Fatalf("want exactly one QEMU, not the source's %v; found %v", sourceQEMU, now)
	}
	var verified guestagent.DiskVerifyResult
	l.GuestCall(t, "ocp7", spec.namespace, spec.name, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk", SizeMiB: 64}, &verified)
	if !verified.OK || verified.Digest != written.Digest {
		t.Fatalf("disk on the target: %+v, written digest %s", verified, written.Digest)
	}
}

// Deleting a VMIM mid-transfer cancels the migration: the guest runs on at
// the source and the target QEMU is gone.
func TestDeletingTheMigrationCancelsIt(t *testing.T) {
	l := sharedLab(t)
	// A slow link and a light write load: the migration converges (the
	// source agent would end a hopeless one by itself) but its first pass
	// alone takes many seconds, time enough to delete it mid-transfer.
	restore := l.SetMigrationConfig(t, "ocp7", `{"bandwidthPerMigration":"2Mi","progressTimeout":300}`)
	defer restore()
	spec := vmSpec{name: "cancel", namespace: "cancel"}
	l.createVM(t, "ocp7", spec)
	l.removeAtEnd(t, spec.namespace, spec.name)
	before := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)
	source := l.VMI(t, "ocp7", spec.namespace, spec.name).Status.NodeName
	sourceQEMU := labtest.QEMUPids(spec.namespace, spec.name)
	l.GuestCall(t, "ocp7", spec.namespace, spec.name, guestagent.CmdDirty, guestagent.DirtyArgs{RateMiBps: 1, WorkingSetMiB: 8}, nil)

	name := l.migrate(t, "ocp7", spec.namespace, spec.name)
	labtest.WaitFor(t, "the migration to be transferring", 2*time.Minute, func() (bool, string) {
		vmim := l.VMIM(t, "ocp7", spec.namespace, name)
		return vmim.Status.Phase == kubevirtv1.MigrationRunning, "phase " + string(vmim.Status.Phase)
	})
	l.MustKubectl(t, "ocp7", "", "delete", "vmim", name, "-n", spec.namespace, "--wait=true", "--timeout=90s")

	labtest.WaitFor(t, "exactly the source QEMU to remain", time.Minute, func() (bool, string) {
		now := labtest.QEMUPids(spec.namespace, spec.name)
		return len(now) == 1 && now[0] == sourceQEMU[0], fmt.Sprintf("QEMU pids %v (source %v)", now, sourceQEMU)
	})
	after := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 30*time.Second)
	if after.BootID != before.BootID {
		t.Fatal("the guest rebooted")
	}
	if node := l.VMI(t, "ocp7", spec.namespace, spec.name).Status.NodeName; node != source {
		t.Fatalf("the VMI moved to %s though its migration was cancelled", node)
	}
	l.GuestCall(t, "ocp7", spec.namespace, spec.name, guestagent.CmdDirty, guestagent.DirtyArgs{}, nil)
}

// A guest dirtying memory faster than the link carries, with neither
// post-copy nor auto-converge allowed: the source agent sees within three
// passes that pre-copy cannot converge and ends the migration with the
// figures and the fix, long before its progress timeout; the VM runs on at
// the source.
func TestAMigrationThatCannotConvergeFailsEarlyWithTheFigures(t *testing.T) {
	l := sharedLab(t)
	// A 2 MiB/s link against 16 MiB/s of dirtying: far from converging
	// even when TCG makes the guest dirty slower than asked. The progress
	// timeout is far away: only the early decision can end it in time.
	restore := l.SetMigrationConfig(t, "ocp7", `{"bandwidthPerMigration":"2Mi","progressTimeout":600,"allowAutoConverge":false,"allowPostCopy":false}`)
	defer restore()
	spec := vmSpec{name: "busy", namespace: "converge"}
	before, source, vmim := l.migrateBusyVM(t, spec)
	if vmim.Status.Phase != kubevirtv1.MigrationFailed {
		t.Fatalf("a migration that cannot converge, with neither post-copy nor auto-converge allowed, ended %s", vmim.Status.Phase)
	}
	reason := vmim.Status.MigrationState.FailureReason
	for _, want := range []string{"guest dirties", "link moves", "pre-copy cannot converge under 300ms downtime", "allow post-copy or auto-converge in a MigrationPolicy"} {
		if !strings.Contains(reason, want) {
			t.Errorf("failure reason %q lacks %q", reason, want)
		}
	}
	if condition := vmimCondition(vmim, kubevirtv1.MigrationFailedCondition); condition == nil || !strings.Contains(condition.Message, "pre-copy cannot converge") {
		t.Errorf("the VMIM's %s condition does not carry the figures: %+v", kubevirtv1.MigrationFailedCondition, condition)
	}
	if events := l.eventMessages(t, "ocp7", spec.namespace, "type=Warning"); !strings.Contains(events, "pre-copy cannot converge") {
		t.Errorf("no Warning event carries the figures: %s", events)
	}
	if passes := vmim.Status.MigrationState.Progress; passes != nil && passes.Iteration > 4 {
		t.Errorf("decided at pass %d: the figures of 3 passes should have decided", passes.Iteration)
	}
	t.Logf("failed as expected after %s: %s", vmim.Status.MigrationState.EndTimestamp.Sub(vmim.Status.MigrationState.StartTimestamp.Time), reason)
	if l.VMI(t, "ocp7", spec.namespace, spec.name).Status.NodeName != source {
		t.Fatal("the VMI left its source although the migration failed")
	}
	if info := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second); info.BootID != before.BootID {
		t.Fatal("the guest rebooted")
	}

	l.GuestCall(t, "ocp7", spec.namespace, spec.name, guestagent.CmdDirty, guestagent.DirtyArgs{}, nil)
}

// migrateBusyVM starts the VM on ocp7, makes it dirty memory at least
// twice as fast as a 2 MiB/s link carries, and migrates it: it returns the
// guest before, the node it ran on, and the VMIM once final.
func (l *labEnv) migrateBusyVM(t *testing.T, spec vmSpec) (*guestagent.Info, string, *kubevirtv1.VirtualMachineInstanceMigration) {
	t.Helper()
	l.createVM(t, "ocp7", spec)
	l.removeAtEnd(t, spec.namespace, spec.name)
	before := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)
	source := l.VMI(t, "ocp7", spec.namespace, spec.name).Status.NodeName
	l.startDirtying(t, "ocp7", spec, 16, 4)
	name := l.migrate(t, "ocp7", spec.namespace, spec.name)
	return before, source, l.WaitVMIMFinal(t, "ocp7", spec.namespace, name, 3*time.Minute)
}

// startDirtying makes the guest dirty memory at askedMiBps and waits until
// it achieves at least achievedMiBps (TCG slows a guest down).
func (l *labEnv) startDirtying(t testing.TB, contextName string, spec vmSpec, askedMiBps, achievedMiBps float64) {
	t.Helper()
	l.GuestCall(t, contextName, spec.namespace, spec.name, guestagent.CmdDirty, guestagent.DirtyArgs{RateMiBps: askedMiBps, WorkingSetMiB: *benchDirtyWorkingSet}, nil)
	labtest.WaitFor(t, fmt.Sprintf("the guest to dirty memory at %.0f MiB/s or more", achievedMiBps), time.Minute, func() (bool, string) {
		info, err := l.GuestInfo(t, contextName, spec.namespace, spec.name)
		if err != nil {
			return false, err.Error()
		}
		return info.Dirty.AchievedMiBps >= achievedMiBps, fmt.Sprintf("dirtying %.1f MiB/s", info.Dirty.AchievedMiBps)
	})
}

// eventMessages are the messages of the namespace's events that match
// fieldSelector, space-separated.
func (l *labEnv) eventMessages(t testing.TB, contextName, namespace, fieldSelector string) string {
	t.Helper()
	return l.MustKubectl(t, contextName, "", "get", "events", "-n", namespace, "--field-selector", fieldSelector, "-o", "jsonpath={.items[*].message}")
}

// vmimCondition is the VMIM's condition of that type, nil without one.
func vmimCondition(m *kubevirtv1.VirtualMachineInstanceMigration, conditionType kubevirtv1.VirtualMachineInstanceMigrationConditionType) *kubevirtv1.VirtualMachineInstanceMigrationCondition {
	for i := range m.Status.Conditions {
		if m.Status.Conditions[i].Type == conditionType {
			return &m.Status.Conditions[i]
		}
	}
	return nil
}

// A MigrationPolicy that selects the VM by its labels and its namespace's
// allows post-copy (the cluster-wide configuration does not): the same
// kind of migration switches to post-copy as soon as the source agent
// sees pre-copy cannot converge, and completes without a reboot. The VMI
// shows the policy in effect.
func TestAMigrationPolicyLetsAMigrationThatCannotConvergeSwitchToPostCopy(t *testing.T) {
	l := sharedLab(t)
	restore := l.SetMigrationConfig(t, "ocp7", `{"bandwidthPerMigration":"64Mi","progressTimeout":600,"allowAutoConverge":false,"allowPostCopy":false}`)
	defer restore()
	spec := vmSpec{name: "busy", namespace: "postcopy-policy", labels: "{workload: busy}"}
	l.EnsureNamespace(t, "ocp7", spec.namespace)
	l.MustKubectl(t, "ocp7", "", "label", "namespace", spec.namespace, "tier=batch", "--overwrite")
	l.MustKubectl(t, "ocp7", `apiVersion: migrations.kubevirt.io/v1alpha1
kind: MigrationPolicy
metadata: {name: busy-postcopy}
spec:
  selectors:
    namespaceSelector: {tier: batch}
    virtualMachineInstanceSelector: {workload: busy}
  allowPostCopy: true
  bandwidthPerMigration: 2Mi
`, "apply", "-f", "-")
	defer l.MustKubectl(t, "ocp7", "", "delete", "migrationpolicy", "busy-postcopy", "--ignore-not-found")
	before, source, vmim := l.migrateBusyVM(t, spec)
	state := vmim.Status.MigrationState
	if vmim.Status.Phase != kubevirtv1.MigrationSucceeded {
		t.Fatalf("with post-copy allowed by the policy the migration ended %s: %s", vmim.Status.Phase, vmim.FailureMessage())
	}
	if state.Mode != kubevirtv1.MigrationPostCopy {
		t.Errorf("the migration ended in mode %q: it should have switched to post-copy", state.Mode)
	}
	vmi := l.VMI(t, "ocp7", spec.namespace, spec.name)
	if vmi.Status.NodeName == source {
		t.Fatalf("the VMI is still on %s", source)
	}
	labtest.WaitFor(t, "exactly one QEMU of the VM (the post-copy source gone)", 30*time.Second, func() (bool, string) {
		pids := labtest.QEMUPids(spec.namespace, spec.name)
		return len(pids) == 1, fmt.Sprintf("QEMU pids %v", pids)
	})
	applied := vmi.Status.MigrationState
	if applied.MigrationPolicyName == nil || *applied.MigrationPolicyName != "busy-postcopy" {
		t.Errorf("migrationPolicyName %v, want busy-postcopy", applied.MigrationPolicyName)
	}
	if config := applied.MigrationConfiguration; config == nil || config.AllowPostCopy == nil || !*config.AllowPostCopy ||
		config.BandwidthPerMigration == nil || config.BandwidthPerMigration.String() != "2Mi" {
		t.Errorf("migrationConfiguration %+v: want the policy's allowPostCopy and bandwidthPerMigration over the cluster's", config)
	}
	if info := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second); info.BootID != before.BootID {
		t.Fatal("the guest rebooted")
	}
	l.GuestCall(t, "ocp7", spec.namespace, spec.name, guestagent.CmdDirty, guestagent.DirtyArgs{}, nil)
}

// With auto-converge allowed, the same kind of migration completes: the
// source agent sees pre-copy cannot converge and raises QEMU's throttle at
// once to what the figures call for.
func TestAutoConvergeCompletesABusyMigration(t *testing.T) {
	l := sharedLab(t)
	restore := l.SetMigrationConfig(t, "ocp7", `{"bandwidthPerMigration":"8Mi","progressTimeout":60,"allowAutoConverge":true}`)
	defer restore()
	spec := vmSpec{name: "throttled", namespace: "autoconverge"}
	l.createVM(t, "ocp7", spec)
	l.removeAtEnd(t, spec.namespace, spec.name)
	before := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)
	l.startDirtying(t, "ocp7", spec, 16, 4)
	name := l.migrate(t, "ocp7", spec.namespace, spec.name)
	vmim := l.WaitVMIMFinal(t, "ocp7", spec.namespace, name, 4*time.Minute)
	if vmim.Status.Phase != kubevirtv1.MigrationSucceeded {
		t.Fatalf("with auto-converge the migration ended %s: %s", vmim.Status.Phase, vmim.Status.MigrationState.FailureReason)
	}
	if events := l.eventMessages(t, "ocp7", spec.namespace, "reason=NotConverging"); !strings.Contains(events, "throttling the guest's vCPUs to") {
		t.Errorf("no NotConverging event says the guest was throttled at once: %q", events)
	}
	if info := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second); info.BootID != before.BootID {
		t.Fatal("the guest rebooted")
	}
	l.GuestCall(t, "ocp7", spec.namespace, spec.name, guestagent.CmdDirty, guestagent.DirtyArgs{}, nil)
}
