package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

// The cross-cluster tests follow the upstream user guide by hand, as the
// seed's reader would without the toolkit: on ocp1 a VM with runStrategy
// WaitAsReceiver and a VMIM with spec.receive; on ocp7 a VMIM with
// spec.sendTo whose connectURL is the ocp1 VMIM's first
// synchronizationAddress. One guest on ocp7 goes through every attempt:
// the failed ones first, so the last one, which must succeed, is also the
// retry after them.
const (
	sourceCluster = "ocp7"
	targetCluster = "ocp1"
	// syncControllerName is the lab's name of a cluster's sync controller.
	syncControllerName = "virt-synchronization-controller"
)

func TestCrossClusterLiveMigration(t *testing.T) {
	l := sharedLab(t)
	l.ExchangeCAs(t, sourceCluster, targetCluster)
	vm := newTraveller(t, l)
	t.Run("CancelFromTheSource", func(t *testing.T) { vm.cancelMidTransfer(t, sourceCluster) })
	t.Run("CancelFromTheTarget", func(t *testing.T) { vm.cancelMidTransfer(t, targetCluster) })
	t.Run("TargetSyncControllerDown", vm.failWithoutTargetSyncController)
	t.Run("Migrates", vm.migrates)
}

// traveller is the guest on ocp7 that the attempts move.
type traveller struct {
	l       *labEnv
	spec    vmSpec
	mac     string
	node    string
	written guestagent.DiskWriteResult
	booted  *guestagent.Info
	qemuPid int
	tries   int
}

func newTraveller(t *testing.T, l *labEnv) *traveller {
	vm := &traveller{l: l, spec: vmSpec{name: "traveller", namespace: "crosscluster", memory: "128Mi", dataDisk: "256Mi"}}
	l.createVM(t, sourceCluster, vm.spec)
	l.removeAtEnd(t, vm.spec.namespace, vm.spec.name)
	vm.booted = l.WaitGuestReady(t, sourceCluster, vm.spec.namespace, vm.spec.name, 90*time.Second)
	began := time.Now()
	l.GuestCall(t, sourceCluster, vm.spec.namespace, vm.spec.name, guestagent.CmdDiskWrite,
		// A seed of this run: no other disk, and no earlier run's, can
		// have the same digest.
		guestagent.DiskArgs{Disk: "datadisk", Seed: uint64(time.Now().UnixNano())}, &vm.written)
	t.Logf("the guest wrote its whole %s data disk in %s", vm.spec.dataDisk, time.Since(began).Round(100*time.Millisecond))
	var vmi *kubevirtv1.VirtualMachineInstance
	labtest.WaitFor(t, "the source VMI to report its NIC's IP and MAC", 30*time.Second, func() (bool, string) {
		vmi = l.VMI(t, sourceCluster, vm.spec.namespace, vm.spec.name)
		return vmiShowsRunningGuest(vmi), fmt.Sprintf("%+v", vmi.Status.Interfaces)
	})
	vm.mac, vm.node = vmi.Status.Interfaces[0].MAC, vmi.Status.NodeName
	pids := labtest.QEMUPids(vm.spec.namespace, vm.spec.name)
	if len(pids) != 1 {
		t.Fatalf("want one QEMU for the traveller, found %v", pids)
	}
	vm.qemuPid = pids[0]
	return vm
}

// attempt is one try at moving the traveller: its receiver on ocp1 lives
// in a namespace of its own, so that a failed try leaves nothing in the
// way of the next.
type attempt struct {
	namespace   string // on ocp1
	migrationID string
	sourceVMIM  string // on ocp7, in the traveller's namespace
	targetVMIM  string
	connectURL  string
}

// prepareReceiver makes the receiving side on ocp1: a VM like the
// traveller (same MAC, same disk size) with runStrategy WaitAsReceiver, and
// a VMIM with receive, and waits for its sync address.
func (vm *traveller) prepareReceiver(t *testing.T) *attempt {
	t.Helper()
	vm.tries++
	a := &attempt{
		namespace:   fmt.Sprintf("%s-%d", vm.spec.namespace, vm.tries),
		migrationID: fmt.Sprintf("%s-%d-%d", vm.spec.name, vm.tries, time.Now().Unix()),
		sourceVMIM:  fmt.Sprintf("%s-send-%d", vm.spec.name, vm.tries),
		targetVMIM:  fmt.Sprintf("%s-receive-%d", vm.spec.name, vm.tries),
	}
	vm.l.prepareReceiver(t, targetCluster, vm.spec, vm.mac, a, 250*time.Millisecond)
	return a
}

// receiverSteps are when prepareReceiver saw each of its steps done.
type receiverSteps struct {
	vmCreated   time.Time // the receiver VM applied
	waiting     time.Time // its VMI seen in phase WaitingForSync
	vmimCreated time.Time // the receiving VMIM created
	addressed   time.Time // the receiving VMIM seen with a sync address
}

// prepareReceiver makes the receiving side of attempt a on cluster: in
// a.namespace, a VM like spec (the same name, hence the same firmware UUID,
// and the sender's MAC) with runStrategy WaitAsReceiver, and a VMIM
// a.targetVMIM with spec.receive; it waits, reading every poll, for the
// VMIM's first sync address and stores it in a.connectURL.
func (l *labEnv) prepareReceiver(t testing.TB, cluster string, spec vmSpec, mac string, a *attempt, poll time.Duration) receiverSteps {
	t.Helper()
	var steps receiverSteps
	c := l.Client(t, cluster)
	receiver := spec
	receiver.namespace, receiver.runStrategy, receiver.restoreRunStrategy, receiver.mac = a.namespace, string(kubevirtv1.RunStrategyWaitAsReceiver), string(kubevirtv1.RunStrategyAlways), mac
	// What createVM does, for any testing.TB.
	l.MustKubectl(t, cluster, fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", receiver.namespace), "apply", "-f", "-")
	l.MustKubectl(t, cluster, receiver.manifest(), "apply", "-f", "-")
	steps.vmCreated = time.Now()
	labtest.WaitEvery(t, "the receiver VMI to wait for the sync", poll, time.Minute, func() (bool, string) {
		vmi := &kubevirtv1.VirtualMachineInstance{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: a.namespace, Name: spec.name}, vmi); err != nil {
			if client.IgnoreNotFound(err) != nil {
				t.Fatal(err)
			}
			vmi = nil
		}
		return vmi != nil && vmi.Status.Phase == kubevirtv1.WaitingForSync, fmt.Sprintf("VMI %+v", vmiPhase(vmi))
	})
	steps.waiting = time.Now()
	if err := c.Create(context.Background(), labtest.NewVMIM(a.namespace, a.targetVMIM, spec.name, a.receive)); err != nil {
		t.Fatal(err)
	}
	steps.vmimCreated = time.Now()
	labtest.WaitEvery(t, "the receiving VMIM to publish its sync address", poll, time.Minute, func() (bool, string) {
		var vmim kubevirtv1.VirtualMachineInstanceMigration
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: a.namespace, Name: a.targetVMIM}, &vmim); err != nil {
			t.Fatal(err)
		}
		if len(vmim.Status.SynchronizationAddresses) == 0 {
			return false, "phase " + string(vmim.Status.Phase)
		}
		a.connectURL = vmim.Status.SynchronizationAddresses[0]
		return true, ""
	})
	steps.addressed = time.Now()
	return steps
}

// receive makes a VMIM the receiving half of the attempt.
func (a *attempt) receive(spec *kubevirtv1.VirtualMachineInstanceMigrationSpec) {
	spec.Receive = &kubevirtv1.VirtualMachineInstanceMigrationTarget{MigrationID: a.migrationID}
}

// sendTo makes a VMIM the sending half of the attempt.
func (a *attempt) sendTo(spec *kubevirtv1.VirtualMachineInstanceMigrationSpec) {
	spec.SendTo = &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: a.migrationID, ConnectURL: a.connectURL}
}

// send creates the sending VMIM on ocp7.
func (vm *traveller) send(t *testing.T, a *attempt) {
	t.Helper()
	vm.l.CreateVMIM(t, sourceCluster, vm.spec.namespace, a.sourceVMIM, vm.spec.name, a.sendTo)
}

// cancelMidTransfer deletes one side's VMIM while the disks stream over a
// slow link: the other side fails with the reason, the guest runs on at
// the source, and the target's VMI fails with no QEMU left.
func (vm *traveller) cancelMidTransfer(t *testing.T, side string) {
	l := vm.l
	restore := l.SetMigrationConfig(t, sourceCluster, `{"bandwidthPerMigration":"8Mi","progressTimeout":300}`)
	defer restore()
	a := vm.prepareReceiver(t)
	vm.send(t, a)
	labtest.WaitFor(t, "the source to be transferring", 2*time.Minute, func() (bool, string) {
		vmim := l.VMIM(t, sourceCluster, vm.spec.namespace, a.sourceVMIM)
		return vmim.Status.Phase == kubevirtv1.MigrationRunning, "phase " + string(vmim.Status.Phase) + vmimReason(vmim)
	})
	cancelled, other := a.sourceVMIM, a.targetVMIM
	cancelledNamespace, otherCluster, otherNamespace := vm.spec.namespace, targetCluster, a.namespace
	if side == targetCluster {
		cancelled, other = a.targetVMIM, a.sourceVMIM
		cancelledNamespace, otherCluster, otherNamespace = a.namespace, sourceCluster, vm.spec.namespace
	}
	began := time.Now()
	l.MustKubectl(t, side, "", "delete", "vmim", cancelled, "-n", cancelledNamespace, "--wait=true", "--timeout=90s")
	peer := l.WaitVMIMFinal(t, otherCluster, otherNamespace, other, 2*time.Minute)
	if peer.Status.Phase != kubevirtv1.MigrationFailed || !strings.Contains(vmimReason(peer), "cancel") {
		t.Fatalf("after cancelling on %s, the VMIM on %s is %s%s; want Failed with a reason that says it was cancelled", side, otherCluster, peer.Status.Phase, vmimReason(peer))
	}
	t.Logf("cancel on %s: the %s side failed %s later%s", side, otherCluster, time.Since(began).Round(100*time.Millisecond), vmimReason(peer))
	vm.assertStillAtTheSource(t, a)
}

// failWithoutTargetSyncController freezes ocp1's sync controller once the
// receiver published its address: the source cannot synchronize, and its
// migration must fail within the peer deadline instead of hanging in
// Synchronizing as upstream's does. The guest runs on.
func (vm *traveller) failWithoutTargetSyncController(t *testing.T) {
	l := vm.l
	a := vm.prepareReceiver(t)
	pid := l.ControllerPid(t, targetCluster, syncControllerName)
	// SIGSTOP, not SIGKILL: the lab restarts a killed controller within a
	// second, and a frozen one is the harder case (its socket still
	// accepts connections that never answer).
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	began := time.Now()
	vm.send(t, a)
	source := l.WaitVMIMFinal(t, sourceCluster, vm.spec.namespace, a.sourceVMIM, 4*time.Minute)
	host := strings.Split(a.connectURL, ":")[0]
	if source.Status.Phase != kubevirtv1.MigrationFailed || !strings.Contains(vmimReason(source), host) {
		t.Fatalf("with ocp1's sync controller frozen the source VMIM ended %s%s; want Failed with a reason naming %s", source.Status.Phase, vmimReason(source), a.connectURL)
	}
	t.Logf("with ocp1's sync controller frozen the source failed after %s%s", time.Since(began).Round(time.Second), vmimReason(source))
	resume()
	// The receiver gives up too once told (or at its own deadline); the
	// user cancels it here, which must not hang either.
	l.MustKubectl(t, targetCluster, "", "delete", "vmim", a.targetVMIM, "-n", a.namespace, "--wait=true", "--timeout=120s")
	vm.assertStillAtTheSource(t, a)
}

// assertStillAtTheSource: after a failed attempt the traveller runs on at
// the source, the same boot in the same QEMU, its VM unchanged, and the
// attempt's receiver VMI failed with no QEMU of its own.
func (vm *traveller) assertStillAtTheSource(t *testing.T, a *attempt) {
	t.Helper()
	l := vm.l
	labtest.WaitFor(t, "the receiver VMI to be marked failed", 2*time.Minute, func() (bool, string) {
		vmi := l.VMI(t, targetCluster, a.namespace, vm.spec.name)
		return vmi != nil && vmi.Status.Phase == kubevirtv1.Failed, vmiPhase(vmi)
	})
	labtest.WaitFor(t, "only the source QEMU to run", time.Minute, func() (bool, string) {
		source, target := labtest.QEMUPids(vm.spec.namespace, vm.spec.name), labtest.QEMUPids(a.namespace, vm.spec.name)
		return slices.Equal(source, []int{vm.qemuPid}) && len(target) == 0, fmt.Sprintf("source QEMUs %v (want [%d]), target QEMUs %v", source, vm.qemuPid, target)
	})
	info := l.WaitGuestReady(t, sourceCluster, vm.spec.namespace, vm.spec.name, 30*time.Second)
	if info.BootID != vm.booted.BootID {
		t.Fatalf("the guest rebooted: %s -> %s", vm.booted.BootID, info.BootID)
	}
	vmi := l.VMI(t, sourceCluster, vm.spec.namespace, vm.spec.name)
	if vmi.Status.Phase != kubevirtv1.Running || vmi.Status.NodeName != vm.node {
		t.Fatalf("the source VMI is %s on %q after a failed attempt, want Running on %s", vmi.Status.Phase, vmi.Status.NodeName, vm.node)
	}
	if strategy := vm.runStrategy(t, sourceCluster, vm.spec.namespace); strategy != kubevirtv1.RunStrategyAlways {
		t.Fatalf("the source VM's runStrategy is %s after a failed attempt", strategy)
	}
}

// migrates is the seed's migration: the traveller leaves ocp7 for ocp1
// with the same boot, a continuous heartbeat, its disk intact and a TCP
// session from outside kept; the source VM ends Halted with its VMI
// Succeeded, nothing deleted; the receiver takes the run strategy to
// restore.
func (vm *traveller) migrates(t *testing.T) {
	l := vm.l
	vmi := l.VMI(t, sourceCluster, vm.spec.namespace, vm.spec.name)
	echo := l.openEcho(t, vmi.Status.Interfaces[0].IP)
	echo.exchange(t, "before")
	before, err := l.GuestInfo(t, sourceCluster, vm.spec.namespace, vm.spec.name)
	if err != nil {
		t.Fatal(err)
	}
	// The clusters configure migrations differently: the receiver's QEMU
	// must expect the stream the source sends (3 multifd channels), not the
	// one its own cluster would (one stream).
	defer l.SetMigrationConfig(t, sourceCluster, `{"parallelMigrationThreads":3}`)()
	defer l.SetMigrationConfig(t, targetCluster, `{"parallelMigrationThreads":0}`)()
	a := vm.prepareReceiver(t)
	began := time.Now()
	vm.send(t, a)
	source := l.WaitVMIMFinal(t, sourceCluster, vm.spec.namespace, a.sourceVMIM, 3*time.Minute)
	target := l.WaitVMIMFinal(t, targetCluster, a.namespace, a.targetVMIM, time.Minute)
	for _, vmim := range []*kubevirtv1.VirtualMachineInstanceMigration{source, target} {
		if vmim.Status.Phase != kubevirtv1.MigrationSucceeded {
			t.Fatalf("VMIM %s/%s ended %s%s\nocp7:\n%s\nocp1:\n%s", vmim.Namespace, vmim.Name, vmim.Status.Phase, vmimReason(vmim),
				l.Describe(t, sourceCluster, vm.spec.namespace), l.Describe(t, targetCluster, a.namespace))
		}
	}
	t.Logf("cross-cluster migration %s -> %s took %s (source VMIM created to both Succeeded)%s",
		vm.node, target.Status.MigrationState.TargetNode, time.Since(began).Round(time.Millisecond), progressSummary(source))

	after := l.WaitGuestReady(t, targetCluster, a.namespace, vm.spec.name, 30*time.Second)
	if after.BootID != before.BootID {
		t.Fatalf("the guest rebooted: %s -> %s", before.BootID, after.BootID)
	}
	downtime := time.Duration(0)
	if progress := source.Status.MigrationState.Progress; progress != nil {
		downtime = time.Duration(progress.DowntimeMs) * time.Millisecond
	}
	assertHeartbeatContinuous(t, before, after, downtime+time.Second)
	echo.exchange(t, "after")
	var verified guestagent.DiskVerifyResult
	l.GuestCall(t, targetCluster, a.namespace, vm.spec.name, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk"}, &verified)
	if !verified.OK || verified.Digest != vm.written.Digest {
		t.Fatalf("the data disk on ocp1: %+v; written on ocp7 with digest %s", verified, vm.written.Digest)
	}

	if state := l.VMI(t, targetCluster, a.namespace, vm.spec.name).Status.MigrationState; state == nil || state.SourceState == nil ||
		state.SourceState.MigrationConfiguration == nil || ptr.Deref(state.SourceState.MigrationConfiguration.ParallelMigrationThreads, 0) != 3 {
		t.Errorf("the receiving VMI does not show the source cluster's configuration (parallelMigrationThreads 3) in sourceState: %+v", state)
	}

	vm.assertLeftTheSource(t)
	vm.assertArrived(t, a)
}

// assertLeftTheSource: the source VMI Succeeded with no QEMU, the VM
// Halted, its DataVolume and PVC kept.
func (vm *traveller) assertLeftTheSource(t *testing.T) {
	t.Helper()
	l := vm.l
	labtest.WaitFor(t, "the source VMI to be Succeeded and its QEMU gone", time.Minute, func() (bool, string) {
		vmi := l.VMI(t, sourceCluster, vm.spec.namespace, vm.spec.name)
		pids := labtest.QEMUPids(vm.spec.namespace, vm.spec.name)
		return vmi != nil && vmi.Status.Phase == kubevirtv1.Succeeded && len(pids) == 0, fmt.Sprintf("%s, QEMUs %v", vmiPhase(vmi), pids)
	})
	labtest.WaitFor(t, "the source VM to be Halted", time.Minute, func() (bool, string) {
		strategy := vm.runStrategy(t, sourceCluster, vm.spec.namespace)
		return strategy == kubevirtv1.RunStrategyHalted, "runStrategy " + string(strategy)
	})
	c := l.Client(t, sourceCluster)
	dataVolume := vm.spec.name + "-data"
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: vm.spec.namespace, Name: dataVolume}, &cdiv1beta1.DataVolume{}); err != nil {
		t.Fatalf("the source DataVolume must be kept: %v", err)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: vm.spec.namespace, Name: dataVolume}, &corev1.PersistentVolumeClaim{}); err != nil {
		t.Fatalf("the source PVC must be kept: %v", err)
	}
}

// assertArrived: exactly one QEMU, on ocp1, and the receiver VM took the
// run strategy to restore.
func (vm *traveller) assertArrived(t *testing.T, a *attempt) {
	t.Helper()
	l := vm.l
	if pids := labtest.QEMUPids(a.namespace, vm.spec.name); len(pids) != 1 {
		t.Fatalf("want one QEMU on ocp1, found %v", pids)
	}
	vmi := l.VMI(t, targetCluster, a.namespace, vm.spec.name)
	if vmi.Status.Phase != kubevirtv1.Running || !strings.HasPrefix(vmi.Status.NodeName, targetCluster+"-") {
		t.Fatalf("the receiver VMI is %s on %q", vmi.Status.Phase, vmi.Status.NodeName)
	}
	labtest.WaitFor(t, "the receiver VM to take its restore-run-strategy", time.Minute, func() (bool, string) {
		strategy := vm.runStrategy(t, targetCluster, a.namespace)
		return strategy == kubevirtv1.RunStrategyAlways, "runStrategy " + string(strategy)
	})
}

func (vm *traveller) runStrategy(t *testing.T, contextName, namespace string) kubevirtv1.VirtualMachineRunStrategy {
	t.Helper()
	var v kubevirtv1.VirtualMachine
	if err := vm.l.Client(t, contextName).Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: vm.spec.name}, &v); err != nil {
		t.Fatal(err)
	}
	return v.EffectiveRunStrategy()
}

func vmiPhase(vmi *kubevirtv1.VirtualMachineInstance) string {
	if vmi == nil {
		return "no VMI"
	}
	return fmt.Sprintf("VMI phase %q reason %q", vmi.Status.Phase, vmi.Status.Reason)
}

// vmimReason is the failure reason a VMIM shows, for messages.
func vmimReason(vmim *kubevirtv1.VirtualMachineInstanceMigration) string {
	if vmim == nil || vmim.Status.MigrationState == nil || vmim.Status.MigrationState.FailureReason == "" {
		return ""
	}
	return ": " + vmim.Status.MigrationState.FailureReason
}

func progressSummary(vmim *kubevirtv1.VirtualMachineInstanceMigration) string {
	state := vmim.Status.MigrationState
	if state == nil || state.Progress == nil {
		return ""
	}
	return fmt.Sprintf(", downtime %d ms, %d MiB sent", state.Progress.DowntimeMs, state.Progress.TransferredBytes>>20)
}
