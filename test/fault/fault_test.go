package fault

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

const (
	// The guest starts on home and moves between the two lab clusters.
	home, away = "ocp7", "ocp1"
	vmName     = "faulty"
	syncName   = "virt-synchronization-controller"
	// writerMiB is the region of the data disk the continuous writer
	// rewrites, pass after pass, while the migrations run.
	writerMiB = 32
	// slowLink is the migration bandwidth while faults are injected: it
	// makes the transfer (128Mi of memory, 128Mi of disk) last long enough
	// to hit a point of it.
	slowLink = `{"bandwidthPerMigration":"8Mi","progressTimeout":300}`
)

// victim is what a fault strikes: a component killed with SIGKILL, or the
// migration's link, the target's storage or the trust between the
// clusters taken away. Source and target are the sides of the migration
// in progress, whichever cluster they are.
type victim string

const (
	// noFault is the control: the same migration, slowed, with nothing
	// killed.
	noFault         victim = "nothing (control)"
	sourceNodeAgent victim = "source node agent"
	targetNodeAgent victim = "target node agent"
	sourceQEMU      victim = "source QEMU"
	targetQEMU      victim = "target QEMU"
	sourceSync      victim = "source sync controller"
	targetSync      victim = "target sync controller"
	sourceAPIServer victim = "source kube-apiserver"
	targetAPIServer victim = "target kube-apiserver"
	// migrationLink: the source node's uplink to the migration network
	// (enp2s0, the port of br-2001) down for linkCutFor, then up again.
	migrationLink victim = "migration link cut"
	// targetStorage: the target nodes' volume directories on a filesystem
	// with fullStorageSize of room, less than the disk copy needs.
	targetStorage victim = "target storage full"
	// peerCA: the source cluster's CA taken out of the target's
	// kubevirt-external-ca (put back after the outcome).
	peerCA victim = "peer CA removed"
)

const (
	linkCutFor      = 10 * time.Second
	fullStorageSize = "8m"
)

// point is when in the migration the fault strikes.
type point string

const (
	// beforeMigration: set up before the receiver is made (a fault that is
	// a state of the clusters rather than an event).
	beforeMigration point = "before the migration"
	// beforeTransfer: right after the sending VMIM is created (for the
	// target QEMU: as soon as it exists).
	beforeTransfer point = "before transfer"
	// midTransfer: the source VMIM Running with at least 16 MiB sent.
	midTransfer point = "mid-transfer"
	// atSwitchover: the first progress sample (one a second) of a later
	// memory pass than the first: memory and disks are across, the last
	// short passes, the pause and the switchover follow within a second or
	// two.
	atSwitchover point = "at switchover"
	// afterSwitchover: the first poll (100 ms) that sees the source's
	// migration completed: the guest runs on the target.
	afterSwitchover point = "just after switchover"
)

type fault struct {
	victim victim
	point  point
}

func (f fault) String() string { return string(f.victim) + ", " + string(f.point) }

// ciFaults are the representative subset CI runs: one fault of each kind,
// at the point where it does the most harm.
var ciFaults = []fault{
	{noFault, midTransfer},
	{targetQEMU, midTransfer},
	{sourceQEMU, midTransfer},
	{sourceSync, midTransfer},
	{targetNodeAgent, afterSwitchover},
	{sourceNodeAgent, atSwitchover},
	{sourceAPIServer, midTransfer},
	{migrationLink, midTransfer},
	{targetStorage, beforeMigration},
	{peerCA, beforeMigration},
	{sourceNodeAgent, midTransfer},
}

// soakFaults are every victim at every point that means something for it
// (CCLM_FAULT_SOAK=1). Left out: the target QEMU after the switchover (it
// is then the running VM: killing it is a guest crash, not a migration
// fault), the link cut after it (nothing crosses the link any more).
func soakFaults() []fault {
	all := []fault{{noFault, midTransfer}}
	transfer := []point{beforeTransfer, midTransfer, atSwitchover, afterSwitchover}
	for _, v := range []victim{sourceNodeAgent, targetNodeAgent, sourceQEMU, targetQEMU, sourceSync, targetSync, sourceAPIServer, targetAPIServer} {
		for _, p := range transfer {
			if v == targetQEMU && p == afterSwitchover {
				continue
			}
			all = append(all, fault{v, p})
		}
	}
	return append(all,
		fault{migrationLink, beforeTransfer}, fault{migrationLink, midTransfer},
		fault{targetStorage, beforeMigration},
		fault{peerCA, beforeMigration}, fault{peerCA, midTransfer})
}

// row is one line of the table of outcomes.
type row struct {
	fault    string
	outcome  string
	copies   int
	data     string
	duration time.Duration
}

// TestFaultsDuringCrossClusterMigration moves one guest, which writes to
// its disk and dirties its memory all along, between ocp7 and ocp1, once
// per fault; each attempt is also the retry of the one before it, and a
// last clean migration must succeed.
func TestFaultsDuringCrossClusterMigration(t *testing.T) {
	l := sharedLab(t)
	faults := ciFaults
	if os.Getenv("CCLM_FAULT_SOAK") == "1" {
		faults = soakFaults()
	}
	l.ExchangeCAs(t, home, away)
	vm := newGuest(t, l)
	var rows []row
	t.Cleanup(func() { t.Logf("outcomes:\n%s", table(rows)) })
	undo := []func(){l.SetMigrationConfig(t, home, slowLink), l.SetMigrationConfig(t, away, slowLink)}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			for _, u := range undo {
				u()
			}
		}
	}
	t.Cleanup(restore)
	for _, f := range faults {
		ok := t.Run(strings.NewReplacer(", ", "_", " ", "_").Replace(f.String()), func(t *testing.T) {
			rows = append(rows, vm.migrateWith(t, &f))
		})
		if !ok {
			// The invariants broke: what follows would be about a guest in
			// an unknown state.
			t.FailNow()
		}
	}
	restore()
	t.Run("RetrySucceeds", func(t *testing.T) {
		r := vm.migrateWith(t, nil)
		rows = append(rows, r)
		if r.outcome != "Succeeded" {
			t.Fatalf("the migration after the faults: %s", r.outcome)
		}
	})
}

// where is a VM's cluster and namespace.
type where struct{ cluster, namespace string }

func (w where) domain() string { return labtest.Domain(w.namespace, vmName) }

// guestVM is the guest the faults are injected around.
type guestVM struct {
	l      *labEnv
	base   string // namespace prefix of this run
	at     where  // where it runs now
	mac    string
	bootID string
	tries  int
	// agentRestarts is the guest agent's restart count since boot.
	agentRestarts int
}

func newGuest(t *testing.T, l *labEnv) *guestVM {
	base := fmt.Sprintf("fault-%d", time.Now().Unix()%1000000)
	vm := &guestVM{l: l, base: base, at: where{home, base}}
	l.EnsureNamespace(t, home, base)
	l.Apply(t, home, guestSpec(base).Manifest())
	info := vm.waitReady(t, vm.at, 3*time.Minute)
	vm.bootID, vm.agentRestarts = info.BootID, info.AgentRestarts
	labtest.WaitEvery(t, "the VMI to report its MAC", 250*time.Millisecond, time.Minute, func() (bool, string) {
		vmi := l.VMI(t, home, base, vmName)
		if vmi == nil || vmi.Status.Phase != kubevirtv1.Running || len(vmi.Status.Interfaces) == 0 || vmi.Status.Interfaces[0].MAC == "" {
			return false, fmt.Sprintf("%+v", vmi)
		}
		vm.mac = vmi.Status.Interfaces[0].MAC
		return true, ""
	})
	vm.startWorkloads(t)
	return vm
}

// startWorkloads starts the continuous disk writer (a new generation on
// the region) and the memory dirtier.
func (vm *guestVM) startWorkloads(t *testing.T) {
	t.Helper()
	var disk guestagent.DiskStatus
	if err := vm.l.Guest(t, vm.at.cluster, vm.at.namespace, vmName, guestagent.CmdDiskWrite,
		guestagent.DiskArgs{Disk: "datadisk", SizeMiB: writerMiB, Seed: uint64(time.Now().UnixNano()), Continuous: true, RateMiBps: 2}, &disk); err != nil {
		t.Fatal(err)
	}
	// 1 MiB/s over 8 MiB makes every migration take several memory
	// passes over the 8 MiB/s link; CCLM_FAULT_DIRTY_MIBPS changes it (0
	// turns the dirtier off).
	rate := 1.0
	if r, err := strconv.ParseFloat(os.Getenv("CCLM_FAULT_DIRTY_MIBPS"), 64); err == nil {
		rate = r
	}
	if rate <= 0 {
		return
	}
	var dirty guestagent.DirtyStatus
	if err := vm.l.Guest(t, vm.at.cluster, vm.at.namespace, vmName, guestagent.CmdDirty,
		guestagent.DirtyArgs{RateMiBps: rate, WorkingSetMiB: 8}, &dirty); err != nil {
		t.Fatal(err)
	}
}

func (vm *guestVM) waitReady(t *testing.T, at where, timeout time.Duration) *guestagent.Info {
	t.Helper()
	return vm.l.WaitGuestReady(t, at.cluster, at.namespace, vmName, timeout)
}

// writer is the continuous writer's status in the guest.
func (vm *guestVM) writer(t *testing.T) guestagent.DiskStatus {
	t.Helper()
	info := vm.waitReady(t, vm.at, time.Minute)
	if len(info.Disks) != 1 {
		t.Fatalf("want one disk writer in the guest, found %+v", info.Disks)
	}
	return info.Disks[0]
}

// migrateWith migrates the guest to the other cluster, by hand as the
// upstream guide does, injecting f (none when nil), then checks what must
// hold whatever the outcome and returns the table row.
func (vm *guestVM) migrateWith(t *testing.T, f *fault) row {
	l := vm.l
	began := time.Now()
	vm.tries++
	src := vm.at
	dst := where{away, fmt.Sprintf("%s-%d", vm.base, vm.tries)}
	if src.cluster == away {
		dst.cluster = home
	}
	migrationID := fmt.Sprintf("%s-%d", dst.namespace, time.Now().Unix())
	sending, receiving := fmt.Sprintf("send-%d", vm.tries), fmt.Sprintf("receive-%d", vm.tries)

	name := "no fault"
	var undo func()
	if f != nil {
		name = f.String()
		undo = vm.arm(t, *f, src, dst)
	}

	// The receiver: a VM like the guest, waiting, and a receiving VMIM.
	l.EnsureNamespace(t, dst.cluster, dst.namespace)
	receiver := guestSpec(dst.namespace)
	receiver.RunStrategy, receiver.RestoreRunStrategy, receiver.MAC = string(kubevirtv1.RunStrategyWaitAsReceiver), string(kubevirtv1.RunStrategyAlways), vm.mac
	l.Apply(t, dst.cluster, receiver.Manifest())
	labtest.WaitEvery(t, "the receiver VMI to wait for the sync", 250*time.Millisecond, 2*time.Minute, func() (bool, string) {
		vmi := l.VMI(t, dst.cluster, dst.namespace, vmName)
		return vmi != nil && vmi.Status.Phase == kubevirtv1.WaitingForSync, phase(vmi)
	})
	l.CreateVMIM(t, dst.cluster, dst.namespace, receiving, vmName, func(s *kubevirtv1.VirtualMachineInstanceMigrationSpec) {
		s.Receive = &kubevirtv1.VirtualMachineInstanceMigrationTarget{MigrationID: migrationID}
	})
	var connectURL string
	labtest.WaitEvery(t, "the receiving VMIM's sync address", 250*time.Millisecond, 2*time.Minute, func() (bool, string) {
		vmim := l.VMIM(t, dst.cluster, dst.namespace, receiving)
		if vmim == nil || len(vmim.Status.SynchronizationAddresses) == 0 {
			return false, "no address"
		}
		connectURL = vmim.Status.SynchronizationAddresses[0]
		return true, ""
	})

	before := vm.writer(t)
	if !before.Running || before.Error != "" {
		t.Fatalf("the continuous writer is not running before the migration: %+v", before)
	}
	l.CreateVMIM(t, src.cluster, src.namespace, sending, vmName, func(s *kubevirtv1.VirtualMachineInstanceMigrationSpec) {
		s.SendTo = &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: migrationID, ConnectURL: connectURL}
	})
	// lost is what the writer had acknowledged when a fault took the
	// guest's memory with it (the source QEMU killed before the switchover).
	var lost *guestagent.Ack
	if f != nil {
		lost = vm.inject(t, *f, src, dst, sending, before)
	}

	// The outcome, with a deadline: a migration that hangs fails here.
	source := l.WaitVMIMFinal(t, src.cluster, src.namespace, sending, 5*time.Minute)
	target := l.WaitVMIMFinal(t, dst.cluster, dst.namespace, receiving, 3*time.Minute)
	if undo != nil {
		undo()
	}
	outcome := string(source.Status.Phase)
	for _, vmim := range []*kubevirtv1.VirtualMachineInstanceMigration{source, target} {
		if vmim.Status.Phase == kubevirtv1.MigrationFailed && reason(vmim) == "" {
			t.Errorf("VMIM %s/%s on %s failed without a reason", vmim.Namespace, vmim.Name, vmim.Namespace)
		}
	}
	if source.Status.Phase != target.Status.Phase {
		// One side believes the VM moved, the other that it did not: the
		// seed of a split brain, whatever the processes say.
		t.Errorf("the clusters disagree: the source VMIM %s%s, the target VMIM %s%s",
			source.Status.Phase, withReason(source), target.Status.Phase, withReason(target))
	}
	if source.Status.Phase == kubevirtv1.MigrationFailed {
		outcome = "Failed: " + reason(source)
		if reason(target) != "" && reason(target) != reason(source) {
			outcome += " / target: " + reason(target)
		}
	}
	t.Logf("%s: %s in %s", name, outcome, time.Since(began).Round(time.Second))

	moved := source.Status.Phase == kubevirtv1.MigrationSucceeded
	runs, left := src, dst
	if moved {
		runs, left = dst, src
	}
	copies := vm.assertOneCopy(t, runs, left, moved)
	vm.at = runs
	var data string
	if lost != nil && vm.rebooted(t) {
		data = vm.assertRebootedWithDisk(t, *lost)
	} else {
		data = vm.assertNoWriteLost(t, before)
	}
	// The user's clean-up: the namespace the guest left (or the failed
	// receiver's) deleted, and with it everything the nodes held for it.
	l.deleteNamespace(t, left)
	l.assertNothingLeft(t)
	vm.startWorkloads(t)
	return row{fault: name, outcome: outcome, copies: copies, data: data, duration: time.Since(began)}
}

// inject waits for the fault's point and strikes; for a component the
// lab restarts, it waits for the restart. It returns what the guest's
// writer had acknowledged when the fault took the guest's memory with it,
// nil when it did not.
func (vm *guestVM) inject(t *testing.T, f fault, src, dst where, sending string, before guestagent.DiskStatus) *guestagent.Ack {
	t.Helper()
	sent := vm.waitForPoint(t, f, src, dst, sending)
	switch {
	case f.victim == noFault || f.point == beforeMigration:
		t.Logf("%s: nothing more to do %s (%d MiB sent)", f.victim, f.point, sent>>20)
	case f.victim == migrationLink:
		vm.l.cutMigrationLink(t, vm.l.VMI(t, src.cluster, src.namespace, vmName).Status.NodeName, linkCutFor)
		t.Logf("cut the migration link for %s %s (%d MiB sent)", linkCutFor, f.point, sent>>20)
	case f.victim == peerCA:
		vm.l.removePeerCA(t, src.cluster, dst.cluster)
		t.Logf("removed %s's CA from %s's %s %s (%d MiB sent)", src.cluster, dst.cluster, install.ExternalCAConfigMap, f.point, sent>>20)
	case f.victim == sourceQEMU && f.point != afterSwitchover, f.victim == targetQEMU && f.point == atSwitchover:
		// The QEMU that runs the guest may be the one killed (the source
		// before the switchover; the target if the switchover came first):
		// the guest then dies with it, and what it had acknowledged is what
		// its disk must hold when it boots again.
		ack := vm.ackNow(t, before, src, dst)
		vm.kill(t, f, sent, vm.processOf(t, f, src, dst, sending))
		return &ack
	default:
		vm.kill(t, f, sent, vm.processOf(t, f, src, dst, sending))
	}
	return nil
}

// ackNow is what the guest's writer has acknowledged, asked wherever the
// guest runs at this moment; what it had before the migration if it does
// not answer.
func (vm *guestVM) ackNow(t *testing.T, before guestagent.DiskStatus, sides ...where) guestagent.Ack {
	t.Helper()
	for _, at := range sides {
		var now guestagent.Info
		if err := vm.l.Guest(t, at.cluster, at.namespace, vmName, guestagent.CmdInfo, nil, &now); err == nil && len(now.Disks) == 1 {
			return now.Disks[0].Ack()
		}
	}
	return before.Ack()
}

// waitForPoint waits until the migration reaches the fault's point and
// returns the bytes sent by then.
func (vm *guestVM) waitForPoint(t *testing.T, f fault, src, dst where, sending string) int64 {
	t.Helper()
	l := vm.l
	var sent int64
	switch f.point {
	case beforeTransfer:
		if f.victim == targetQEMU {
			labtest.WaitEvery(t, "the target QEMU to start", 50*time.Millisecond, 2*time.Minute, func() (bool, string) {
				return len(labtest.QEMUs(func(d string) bool { return d == dst.domain() })) > 0, "no target QEMU"
			})
		}
	case midTransfer:
		var running time.Time
		labtest.WaitEvery(t, "the transfer to be under way", 100*time.Millisecond, 3*time.Minute, func() (bool, string) {
			vmim := l.VMIM(t, src.cluster, src.namespace, sending)
			if vmim.IsFinal() {
				t.Fatalf("the migration ended %s%s before the fault", vmim.Status.Phase, withReason(vmim))
			}
			if vmim.Status.Phase != kubevirtv1.MigrationRunning {
				return false, "phase " + string(vmim.Status.Phase)
			}
			if running.IsZero() {
				running = time.Now()
			}
			if state := vmim.Status.MigrationState; state != nil && state.Progress != nil {
				sent = state.Progress.TransferredBytes
			}
			return sent >= 16<<20 || sent == 0 && time.Since(running) > 5*time.Second, fmt.Sprintf("%d MiB sent", sent>>20)
		})
	case atSwitchover:
		labtest.WaitEvery(t, "the last memory passes", 100*time.Millisecond, 5*time.Minute, func() (bool, string) {
			vmim := l.VMIM(t, src.cluster, src.namespace, sending)
			if vmim.IsFinal() {
				t.Fatalf("the migration ended %s%s before the fault", vmim.Status.Phase, withReason(vmim))
			}
			state := vmim.Status.MigrationState
			if state == nil || state.Progress == nil {
				return false, "no progress yet"
			}
			sent = state.Progress.TransferredBytes
			return state.Progress.Iteration >= 2 || state.Completed, fmt.Sprintf("pass %d, %d MiB sent", state.Progress.Iteration, sent>>20)
		})
	case afterSwitchover:
		labtest.WaitEvery(t, "the switchover", 100*time.Millisecond, 5*time.Minute, func() (bool, string) {
			vmim := l.VMIM(t, src.cluster, src.namespace, sending)
			if vmim.Status.Phase == kubevirtv1.MigrationFailed {
				t.Fatalf("the migration failed before the switchover without a fault%s", withReason(vmim))
			}
			done := vmim.Status.Phase == kubevirtv1.MigrationSucceeded || vmim.Status.MigrationState != nil && vmim.Status.MigrationState.Completed
			return done, "phase " + string(vmim.Status.Phase)
		})
	}
	return sent
}

// process is a victim's pid now and, for what the lab restarts, how to
// read its pid again.
type process struct {
	pid     int
	current func() int // nil: not restarted
}

func (vm *guestVM) processOf(t *testing.T, f fault, src, dst where, sending string) process {
	t.Helper()
	l := vm.l
	var current func() int
	switch f.victim {
	case sourceNodeAgent:
		node := l.VMI(t, src.cluster, src.namespace, vmName).Status.NodeName
		current = func() int { return l.NodeAgentPid(t, node) }
	case targetNodeAgent:
		node := vm.targetNode(t, src, dst, sending)
		current = func() int { return l.NodeAgentPid(t, node) }
	case sourceSync:
		current = func() int { return l.ControllerPid(t, src.cluster, syncName) }
	case targetSync:
		current = func() int { return l.ControllerPid(t, dst.cluster, syncName) }
	case sourceAPIServer:
		current = func() int { return l.APIServerPid(t, src.cluster) }
	case targetAPIServer:
		current = func() int { return l.APIServerPid(t, dst.cluster) }
	case sourceQEMU, targetQEMU:
		at := src
		if f.victim == targetQEMU {
			at = dst
		}
		pids := slices.Collect(maps.Keys(labtest.QEMUs(func(d string) bool { return d == at.domain() })))
		if len(pids) == 0 && f.victim == sourceQEMU && (f.point == atSwitchover || f.point == afterSwitchover) {
			// The migration completed and the source quit first: it does
			// so within a few tens of ms of the target's takeover.
			return process{}
		}
		if len(pids) != 1 {
			t.Fatalf("want one %s to kill, found %v", f.victim, pids)
		}
		return process{pid: pids[0]}
	default:
		t.Fatalf("no process for %s", f.victim)
	}
	return process{pid: current(), current: current}
}

// kill SIGKILLs the victim and waits for the lab to restart it, if it does.
func (vm *guestVM) kill(t *testing.T, f fault, sent int64, p process) {
	t.Helper()
	if p.pid == 0 {
		t.Logf("nothing to kill: the %s had ended already %s (%d MiB sent)", f.victim, f.point, sent>>20)
		return
	}
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s (pid %d): %v", f.victim, p.pid, err)
	}
	t.Logf("killed the %s (pid %d) %s (%d MiB sent)", f.victim, p.pid, f.point, sent>>20)
	if p.current == nil {
		return
	}
	began := time.Now()
	labtest.WaitEvery(t, "the lab to restart the "+string(f.victim), 250*time.Millisecond, time.Minute, func() (bool, string) {
		now := p.current()
		return now != 0 && now != p.pid, fmt.Sprintf("pid still %d", now)
	})
	t.Logf("the lab restarted the %s after %s", f.victim, time.Since(began).Round(100*time.Millisecond))
}

// arm sets up a fault that is a state of the clusters before the
// migration starts, and returns its undo (nil if none), run once the
// migration has its outcome.
func (vm *guestVM) arm(t *testing.T, f fault, src, dst where) func() {
	t.Helper()
	l := vm.l
	switch {
	case f.victim == targetStorage:
		return l.fillStorage(t, dst.cluster)
	case f.victim == peerCA && f.point == beforeMigration:
		l.removePeerCA(t, src.cluster, dst.cluster)
		return func() { l.ExchangeCAs(t, home, away) }
	case f.victim == peerCA:
		return func() { l.ExchangeCAs(t, home, away) }
	}
	return nil
}

// targetNode is the node the receiver runs on.
func (vm *guestVM) targetNode(t *testing.T, src, dst where, sending string) string {
	t.Helper()
	var node string
	labtest.WaitEvery(t, "the target node to be known", 100*time.Millisecond, time.Minute, func() (bool, string) {
		if vmi := vm.l.VMI(t, dst.cluster, dst.namespace, vmName); vmi != nil && vmi.Status.NodeName != "" {
			node = vmi.Status.NodeName
		} else if vmim := vm.l.VMIM(t, src.cluster, src.namespace, sending); vmim.Status.MigrationState != nil {
			node = vmim.Status.MigrationState.TargetNode
		}
		return node != "", "unknown"
	})
	return node
}

// assertOneCopy: exactly one QEMU of the guest on the host (which runs
// both clusters' nodes), in the namespace where both clusters' APIs say
// it runs; the side it left has its VMI ended and no QEMU.
func (vm *guestVM) assertOneCopy(t *testing.T, runs, left where, moved bool) int {
	t.Helper()
	l := vm.l
	ours := func(d string) bool { return strings.HasPrefix(d, vm.base) && strings.HasSuffix(d, "_"+vmName) }
	var pids map[int]string
	labtest.WaitEvery(t, "exactly one QEMU of the guest, in "+runs.domain(), 250*time.Millisecond, 2*time.Minute, func() (bool, string) {
		pids = labtest.QEMUs(ours)
		return len(pids) == 1 && slices.Contains(slices.Collect(maps.Values(pids)), runs.domain()), fmt.Sprintf("QEMUs %v", pids)
	})
	labtest.WaitEvery(t, "both clusters' APIs to agree the guest runs on "+runs.cluster, 250*time.Millisecond, 2*time.Minute, func() (bool, string) {
		running := l.VMI(t, runs.cluster, runs.namespace, vmName)
		gone := l.VMI(t, left.cluster, left.namespace, vmName)
		leftDone := gone == nil || gone.Status.Phase == kubevirtv1.Failed
		if moved {
			leftDone = gone != nil && gone.Status.Phase == kubevirtv1.Succeeded
		}
		ok := running != nil && running.Status.Phase == kubevirtv1.Running && strings.HasPrefix(running.Status.NodeName, runs.cluster+"-") && leftDone
		return ok, fmt.Sprintf("on %s: %s; on %s: %s", runs.cluster, phase(running), left.cluster, phase(gone))
	})
	if moved {
		labtest.WaitEvery(t, "the VM it left to be Halted", 250*time.Millisecond, time.Minute, func() (bool, string) {
			return vm.runStrategy(t, left) == kubevirtv1.RunStrategyHalted, string(vm.runStrategy(t, left))
		})
	}
	labtest.WaitEvery(t, "the VM it runs in to run Always", 250*time.Millisecond, time.Minute, func() (bool, string) {
		return vm.runStrategy(t, runs) == kubevirtv1.RunStrategyAlways, string(vm.runStrategy(t, runs))
	})
	// Still one once both VM controllers have acted on their VM's latest
	// spec: nothing they would start is missing from the count.
	vm.waitObserved(t, runs)
	vm.waitObserved(t, left)
	if now := labtest.QEMUs(ours); !maps.Equal(now, pids) {
		t.Fatalf("QEMUs changed after settling: %v -> %v", pids, now)
	}
	return len(pids)
}

// waitObserved waits until the VM controller of at's cluster has acted on
// the VM's latest generation: it creates the VMI the run strategy calls
// for before it writes status.observedGeneration, so a copy it would start
// exists by then. A VM that is gone is observed.
func (vm *guestVM) waitObserved(t *testing.T, at where) {
	t.Helper()
	labtest.WaitFor(t, "the VM controller of "+at.cluster+" to act on the VM's latest spec", time.Minute, func() (bool, string) {
		var v kubevirtv1.VirtualMachine
		if !vm.l.Get(t, at.cluster, at.namespace, vmName, &v) {
			return true, ""
		}
		return v.Status.ObservedGeneration == v.Generation, fmt.Sprintf("generation %d, observed %d", v.Generation, v.Status.ObservedGeneration)
	})
}

func (vm *guestVM) runStrategy(t *testing.T, at where) kubevirtv1.VirtualMachineRunStrategy {
	t.Helper()
	var v kubevirtv1.VirtualMachine
	if !vm.l.Get(t, at.cluster, at.namespace, vmName, &v) {
		t.Fatalf("VM %s/%s on %s is gone", at.namespace, vmName, at.cluster)
	}
	return v.EffectiveRunStrategy()
}

// assertNoWriteLost: the same boot of the guest, its writer still running
// the same pass sequence and not behind what it had acknowledged before
// the migration; stopped, every write it acknowledged is on the disk.
func (vm *guestVM) assertNoWriteLost(t *testing.T, before guestagent.DiskStatus) string {
	t.Helper()
	l := vm.l
	if crash := consoleCrash(vm.at.domain()); crash != "" {
		t.Fatalf("the guest on %s came across damaged: its kernel crashed: %s", vm.at.cluster, crash)
	}
	info := vm.waitReady(t, vm.at, time.Minute)
	if info.BootID != vm.bootID {
		t.Fatalf("the guest rebooted: boot %s -> %s", vm.bootID, info.BootID)
	}
	if info.AgentRestarts != vm.agentRestarts {
		// The agent's writer (and what it had acknowledged) died with it:
		// in the same boot, that is the guest's memory going bad.
		t.Fatalf("the guest on %s came across damaged: its agent crashed and restarted (%d -> %d restarts): %s",
			vm.at.cluster, vm.agentRestarts, info.AgentRestarts, consoleTail(vm.at.domain(), 512))
	}
	var final guestagent.DiskStatus
	if err := l.Guest(t, vm.at.cluster, vm.at.namespace, vmName, guestagent.CmdDiskWrite, guestagent.DiskArgs{Disk: "datadisk", Stop: true}, &final); err != nil {
		t.Fatal(err)
	}
	if final.Error != "" || final.StartGeneration != before.StartGeneration || final.AckSeq < before.AckSeq {
		t.Fatalf("the writer went back or failed: before %+v, after %+v", before, final)
	}
	var verified guestagent.DiskVerifyResult
	ack := final.Ack()
	if err := l.Guest(t, vm.at.cluster, vm.at.namespace, vmName, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk", SizeMiB: writerMiB, Ack: &ack}, &verified); err != nil {
		t.Fatal(err)
	}
	if !verified.OK || verified.BadBlocks != 0 {
		t.Fatalf("acknowledged writes lost: %+v (ack %+v)", verified, ack)
	}
	return fmt.Sprintf("intact (acks %d..%d)", before.AckSeq, final.AckSeq)
}

// rebooted tells whether the guest runs in a new boot: its QEMU was killed
// while it ran the guest.
func (vm *guestVM) rebooted(t *testing.T) bool {
	t.Helper()
	return vm.waitReady(t, vm.at, 3*time.Minute).BootID != vm.bootID
}

// assertRebootedWithDisk: after a fault that took the guest's memory (its
// QEMU killed before the switchover), the VM came back where it was, in a
// new boot, and its disk holds every write the writer had acknowledged
// before the fault.
func (vm *guestVM) assertRebootedWithDisk(t *testing.T, ack guestagent.Ack) string {
	t.Helper()
	info := vm.waitReady(t, vm.at, 3*time.Minute)
	if info.BootID == vm.bootID {
		t.Fatalf("the guest's QEMU was killed but the guest kept its boot %s: a second copy?", vm.bootID)
	}
	vm.bootID, vm.agentRestarts = info.BootID, info.AgentRestarts
	var verified guestagent.DiskVerifyResult
	if err := vm.l.Guest(t, vm.at.cluster, vm.at.namespace, vmName, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk", SizeMiB: writerMiB, Ack: &ack}, &verified); err != nil {
		t.Fatal(err)
	}
	if !verified.OK || verified.BadBlocks != 0 {
		t.Fatalf("acknowledged writes lost in the crash: %+v (ack %+v)", verified, ack)
	}
	return fmt.Sprintf("intact after a reboot (acks up to %d)", ack.Seq)
}

// guestSpec is the guest's VM: 128Mi of memory, the built-in guest, a
// blank 128Mi data disk.
func guestSpec(namespace string) labtest.VM {
	return labtest.VM{Name: vmName, Namespace: namespace, Memory: "128Mi", DataDisk: "128Mi"}
}

func phase(vmi *kubevirtv1.VirtualMachineInstance) string {
	if vmi == nil {
		return "no VMI"
	}
	return fmt.Sprintf("VMI %s %s", vmi.Status.Phase, vmi.Status.Reason)
}

func reason(vmim *kubevirtv1.VirtualMachineInstanceMigration) string {
	if vmim == nil {
		return ""
	}
	return vmim.FailureMessage()
}

func withReason(vmim *kubevirtv1.VirtualMachineInstanceMigration) string {
	if r := reason(vmim); r != "" {
		return ": " + r
	}
	return ""
}

func table(rows []row) string {
	var b strings.Builder
	b.WriteString("| fault | outcome | copies | data | took |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		outcome := strings.Join(strings.Fields(r.outcome), " ")
		if len(outcome) > 200 {
			outcome = outcome[:200] + "…"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", r.fault, outcome, r.copies, r.data, r.duration.Round(time.Second))
	}
	return b.String()
}

// consoleTail is the end of the serial console of the domain's QEMU.
func consoleTail(domain string, n int) string {
	for _, path := range consoleLogs(domain) {
		console, _ := os.ReadFile(path)
		return string(console[max(0, len(console)-n):])
	}
	return "(no console)"
}

// consoleLogs are the console log files of the domain's QEMUs.
func consoleLogs(domain string) []string {
	var paths []string
	for pid := range labtest.QEMUs(func(d string) bool { return d == domain }) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			for _, option := range strings.Split(arg, ",") {
				if path, ok := strings.CutPrefix(option, "logfile="); ok {
					paths = append(paths, path)
				}
			}
		}
	}
	return paths
}

// consoleCrash is the first kernel crash line the serial console of the
// domain's QEMU shows, "" if none (or no such QEMU).
func consoleCrash(domain string) string {
	for _, path := range consoleLogs(domain) {
		console, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(console), "\n") {
			// The kernel's signs, and the Go runtime's (the guest agent).
			for _, sign := range []string{"Kernel panic", "BUG:", "Oops:", "general protection fault", "segfault", "fatal error:", "SIGSEGV", "panic:"} {
				if strings.Contains(line, sign) {
					return line
				}
			}
		}
	}
	return ""
}
