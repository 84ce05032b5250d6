package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

// vmSpec is what a test VM varies.
type vmSpec struct {
	name, namespace, runStrategy string
	memory                       string // e.g. 128Mi
	dataDisk                     string // size of a blank DataVolume, "" for none
	image                        string // containerDisk image
	mac                          string // the NIC's MAC, "" to let the controller choose
	restoreRunStrategy           string // receiver VMs: annotation kubevirt.io/restore-run-strategy
	kernelArgs                   string // spec.domain.firmware.kernelBoot.kernelArgs
	labels                       string // the template's labels (the VMI's), e.g. "{workload: busy}"
}

// manifest is the VM's YAML.
func (s vmSpec) manifest() string {
	return labtest.VM{
		Name: s.name, Namespace: s.namespace, RunStrategy: s.runStrategy, Memory: s.memory, DataDisk: s.dataDisk,
		Image: s.image, MAC: s.mac, RestoreRunStrategy: s.restoreRunStrategy, KernelArgs: s.kernelArgs, Labels: s.labels,
	}.Manifest()
}

// createVM makes the namespace (if needed) and the VM on a lab cluster.
func (l *labEnv) createVM(t testing.TB, contextName string, spec vmSpec) {
	t.Helper()
	l.EnsureNamespace(t, contextName, spec.namespace)
	l.MustKubectl(t, contextName, spec.manifest(), "apply", "-f", "-")
}

// removeAtEnd deletes the VMs from every lab cluster once the test ends,
// without waiting: guests no later test uses only take CPU from the rest.
func (l *labEnv) removeAtEnd(t testing.TB, namespace string, names ...string) {
	t.Cleanup(func() {
		for _, cluster := range []string{sourceCluster, targetCluster} {
			_, _, _ = l.Kubectl(t, cluster, "", append([]string{"delete", "vm", "-n", namespace, "--wait=false", "--ignore-not-found"}, names...)...)
		}
	})
}

func (l *labEnv) setRunStrategy(t *testing.T, contextName, namespace, name, strategy string) {
	t.Helper()
	l.MustKubectl(t, contextName, "", "patch", "vm", name, "-n", namespace, "--type=merge", "-p", fmt.Sprintf(`{"spec":{"runStrategy":%q}}`, strategy))
}

// The example VM of the README: Running within seconds, its guest agent's
// heartbeat advancing, and `cclm guest VM info -o json` giving its boot ID.
func TestExampleVMRunsWithAHeartbeat(t *testing.T) {
	l := sharedLab(t)
	began := time.Now()
	l.MustKubectl(t, "ocp7", "", "apply", "-f", filepath.Join(testenv.RepoRoot(), "examples", "vm.yaml"))
	first := l.WaitGuestReady(t, "ocp7", "default", "demo-vm", 90*time.Second)
	t.Logf("examples/vm.yaml: guest agent answering %s after apply", time.Since(began).Round(100*time.Millisecond))
	labtest.WaitFor(t, "the heartbeat to advance 5 ticks within one boot", 30*time.Second, func() (bool, string) {
		second, err := l.GuestInfo(t, "ocp7", "default", "demo-vm")
		if err != nil {
			return false, err.Error()
		}
		if second.BootID != first.BootID {
			t.Fatalf("the guest rebooted while its heartbeat was watched: boot %s, then %s", first.BootID, second.BootID)
		}
		return second.Heartbeat >= first.Heartbeat+5, fmt.Sprintf("heartbeat %d, then %d", first.Heartbeat, second.Heartbeat)
	})

	stdout, stderr, err := labtest.RunCCLM(t, 30*time.Second, "guest", "demo-vm", "info", "-o", "json", "--kubeconfig", l.Kubeconfig, "--context", "ocp7", "-n", "default")
	if err != nil {
		t.Fatalf("cclm guest info: %v\n%s", err, stderr)
	}
	var viaCLI guestagent.Info
	if err := json.Unmarshal([]byte(stdout), &viaCLI); err != nil {
		t.Fatalf("cclm guest info -o json printed no JSON: %v\n%s", err, stdout)
	}
	if viaCLI.BootID != first.BootID {
		t.Fatalf("cclm guest info boot ID %q, want %q", viaCLI.BootID, first.BootID)
	}

	// The node agent refreshes a running VMI's status every few seconds, so
	// the guest may answer before its status says so: wait for the status.
	var vmi *kubevirtv1.VirtualMachineInstance
	err = kube.Poll(context.Background(), 200*time.Millisecond, 30*time.Second, "demo-vm's status to show its agent, conditions and IP",
		func(context.Context) (bool, string, error) {
			if vmi = l.VMI(t, "ocp7", "default", "demo-vm"); vmi == nil {
				return false, "no VMI", nil
			}
			return vmiShowsRunningGuest(vmi), fmt.Sprintf("%+v %+v", vmi.Status.Conditions, vmi.Status.Interfaces), nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(vmi.Status.NodeName, "ocp7-worker-") {
		t.Errorf("VMI nodeName %q", vmi.Status.NodeName)
	}
}

// vmiShowsRunningGuest says whether a VMI's status reports what a running
// guest with a connected agent should: the conditions and an addressed NIC.
func vmiShowsRunningGuest(vmi *kubevirtv1.VirtualMachineInstance) bool {
	for _, want := range []kubevirtv1.VirtualMachineInstanceConditionType{
		kubevirtv1.VirtualMachineInstanceReady, kubevirtv1.VirtualMachineInstanceAgentConnected,
		kubevirtv1.VirtualMachineInstanceIsMigratable, kubevirtv1.VirtualMachineInstanceIsStorageLiveMigratable,
	} {
		if !conditionTrue(vmi, want) {
			return false
		}
	}
	return len(vmi.Status.Interfaces) > 0 && vmi.Status.Interfaces[0].IP != "" && vmi.Status.Interfaces[0].MAC != ""
}

func conditionTrue(vmi *kubevirtv1.VirtualMachineInstance, kind kubevirtv1.VirtualMachineInstanceConditionType) bool {
	for _, c := range vmi.Status.Conditions {
		if c.Type == kind {
			return c.Status == "True"
		}
	}
	return false
}

// Run strategies: Halted stops QEMU, Always boots again (a new boot ID),
// and under RerunOnFailure a killed QEMU is started again.
func TestRunStrategiesStartAndStopTheGuest(t *testing.T) {
	l := sharedLab(t)
	spec := vmSpec{name: "rs", namespace: "runstrategy"}
	l.createVM(t, "ocp7", spec)
	booted := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)

	l.setRunStrategy(t, "ocp7", spec.namespace, spec.name, "Halted")
	labtest.WaitFor(t, "the VMI and its QEMU to be gone", time.Minute, func() (bool, string) {
		vmi, pids := l.VMI(t, "ocp7", spec.namespace, spec.name), labtest.QEMUPids(spec.namespace, spec.name)
		return vmi == nil && len(pids) == 0, fmt.Sprintf("VMI exists: %t, QEMU pids %v", vmi != nil, pids)
	})

	l.setRunStrategy(t, "ocp7", spec.namespace, spec.name, "Always")
	rebooted := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)
	if rebooted.BootID == booted.BootID {
		t.Fatal("Halted then Always kept the boot ID: the guest was not stopped")
	}

	l.setRunStrategy(t, "ocp7", spec.namespace, spec.name, "RerunOnFailure")
	pids := labtest.QEMUPids(spec.namespace, spec.name)
	if len(pids) != 1 {
		t.Fatalf("want one QEMU for the VM, found %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	labtest.WaitFor(t, "a new QEMU after the old one was killed", 90*time.Second, func() (bool, string) {
		now := labtest.QEMUPids(spec.namespace, spec.name)
		return len(now) == 1 && now[0] != pids[0], fmt.Sprintf("QEMU pids %v", now)
	})
	restarted := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)
	if restarted.BootID == rebooted.BootID {
		t.Fatal("RerunOnFailure: the guest after a QEMU kill has the old boot ID")
	}
}

// A node agent killed with SIGKILL is restarted by the lab (as a DaemonSet
// pod by the kubelet) and re-adopts its QEMU: same QEMU, same boot, and a
// heartbeat that never paused.
func TestNodeAgentRestartKeepsTheGuestRunning(t *testing.T) {
	l := sharedLab(t)
	spec := vmSpec{name: "adopt", namespace: "adopt"}
	l.createVM(t, "ocp7", spec)
	before := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)
	qemuBefore := labtest.QEMUPids(spec.namespace, spec.name)
	node := l.VMI(t, "ocp7", spec.namespace, spec.name).Status.NodeName

	agentPid := l.NodeAgentPid(t, node)
	if err := syscall.Kill(agentPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	labtest.WaitFor(t, "the lab to restart node agent "+node, 30*time.Second, func() (bool, string) {
		pid := l.NodeAgentPid(t, node)
		return pid != agentPid, fmt.Sprintf("node agent pid still %d", pid)
	})
	after := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, time.Minute)
	if after.BootID != before.BootID || after.AgentRestarts != before.AgentRestarts {
		t.Fatalf("the guest rebooted across a node agent restart: %s -> %s", before.BootID, after.BootID)
	}
	if qemuAfter := labtest.QEMUPids(spec.namespace, spec.name); len(qemuAfter) != 1 || qemuAfter[0] != qemuBefore[0] {
		t.Fatalf("QEMU changed across a node agent restart: %v -> %v", qemuBefore, qemuAfter)
	}
	assertHeartbeatContinuous(t, before, after, 0)
}

// assertHeartbeatContinuous checks that the heartbeat advanced with the
// guest clock between two readings, allowing gap for a known pause: the
// agent ticks every 100 ms while the guest runs.
func assertHeartbeatContinuous(t testing.TB, before, after *guestagent.Info, gap time.Duration) {
	t.Helper()
	elapsed := time.Duration(after.HeartbeatUnixNano - before.HeartbeatUnixNano)
	ticks := after.Heartbeat - before.Heartbeat
	// The guest may have been stopped for up to gap: the rest of the
	// span must show ticks (none expected when the span is shorter).
	expected := uint64(0)
	if elapsed > gap {
		expected = uint64((elapsed - gap) / (100 * time.Millisecond))
	}
	if ticks+2 < expected*9/10 {
		t.Fatalf("heartbeat advanced %d ticks over %s of guest time: the guest stopped for longer than %s", ticks, elapsed, gap)
	}
	t.Logf("heartbeat advanced %d ticks over %s", ticks, elapsed.Round(time.Millisecond))
}

// Data written to a disk survives a restart of the VM.
func TestDiskSurvivesARestart(t *testing.T) {
	l := sharedLab(t)
	spec := vmSpec{name: "disk", namespace: "disk", dataDisk: "64Mi"}
	l.createVM(t, "ocp7", spec)
	booted := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)
	var written guestagent.DiskWriteResult
	l.GuestCall(t, "ocp7", spec.namespace, spec.name, guestagent.CmdDiskWrite, guestagent.DiskArgs{Disk: "datadisk", SizeMiB: 32}, &written)

	l.setRunStrategy(t, "ocp7", spec.namespace, spec.name, "Halted")
	labtest.WaitFor(t, "the VM to stop", time.Minute, func() (bool, string) {
		return l.VMI(t, "ocp7", spec.namespace, spec.name) == nil, "VMI still exists"
	})
	l.setRunStrategy(t, "ocp7", spec.namespace, spec.name, "Always")
	rebooted := l.WaitGuestReady(t, "ocp7", spec.namespace, spec.name, 90*time.Second)
	if rebooted.BootID == booted.BootID {
		t.Fatal("the VM did not restart")
	}
	var verified guestagent.DiskVerifyResult
	l.GuestCall(t, "ocp7", spec.namespace, spec.name, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk", SizeMiB: 32}, &verified)
	if !verified.OK || verified.Digest != written.Digest {
		t.Fatalf("disk after restart: %+v, written digest %s", verified, written.Digest)
	}
}

// Bad specs end in a clear refusal or condition, and nothing half-made.
func TestBadSpecsAreExplainedAndLeaveNothing(t *testing.T) {
	l := sharedLab(t)
	namespace := "badspecs"
	l.EnsureNamespace(t, "ocp7", namespace)

	t.Run("zero memory", func(t *testing.T) {
		_, stderr, err := l.Kubectl(t, "ocp7", vmSpec{name: "zero", namespace: namespace, memory: "0"}.manifest(), "apply", "-f", "-")
		if err == nil || !strings.Contains(stderr, "memory.guest must be greater than 0") {
			t.Fatalf("zero memory should be refused naming memory.guest: %v %s", err, stderr)
		}
	})
	t.Run("unknown volume source", func(t *testing.T) {
		manifest := strings.Replace(vmSpec{name: "hostdisk", namespace: namespace}.manifest(), "containerDisk: {image: cclm/guest}", "hostDisk: {path: /tmp/x}", 1)
		_, stderr, err := l.Kubectl(t, "ocp7", manifest, "apply", "-f", "-")
		if err == nil || !strings.Contains(stderr, `unknown field "spec.template.spec.volumes[0].hostDisk"`) {
			t.Fatalf("an unknown volume source should be refused naming the field: %v %s", err, stderr)
		}
	})
	t.Run("disk larger than any node's storage", func(t *testing.T) {
		spec := vmSpec{name: "huge", namespace: namespace, dataDisk: "100Gi"}
		l.createVM(t, "ocp7", spec)
		labtest.WaitFor(t, "the VM to say it cannot be scheduled", time.Minute, func() (bool, string) {
			status := l.MustKubectl(t, "ocp7", "", "get", "vm", spec.name, "-n", namespace, "-o", "jsonpath={.status.printableStatus}")
			return status == "ErrorUnschedulable", "printableStatus " + status
		})
		events := l.MustKubectl(t, "ocp7", "", "get", "events", "-n", namespace, "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(events, "storage") {
			t.Fatalf("no event explains the storage shortage: %s", events)
		}
		if pids := labtest.QEMUPids(namespace, spec.name); len(pids) > 0 {
			t.Fatalf("an unschedulable VM has QEMU %v", pids)
		}
		pvs := l.MustKubectl(t, "ocp7", "", "get", "pv", "-o", "jsonpath={.items[*].spec.claimRef.name}")
		if strings.Contains(pvs, "huge-data") {
			t.Fatalf("a PV was made for a disk no node can hold: %s", pvs)
		}
		l.MustKubectl(t, "ocp7", "", "delete", "vm", spec.name, "-n", namespace, "--wait=true")
	})
	t.Run("image the nodes do not have", func(t *testing.T) {
		spec := vmSpec{name: "otherimage", namespace: namespace, image: "quay.io/containerdisks/fedora:40", runStrategy: "Once"}
		l.createVM(t, "ocp7", spec)
		labtest.WaitFor(t, "the VMI to fail naming the image", time.Minute, func() (bool, string) {
			vmi := l.VMI(t, "ocp7", namespace, spec.name)
			if vmi == nil {
				return false, "no VMI yet"
			}
			return vmi.Status.Phase == kubevirtv1.Failed && strings.Contains(vmi.Status.Reason, "cclm/guest"), string(vmi.Status.Phase) + ": " + vmi.Status.Reason
		})
		if pids := labtest.QEMUPids(namespace, spec.name); len(pids) > 0 {
			t.Fatalf("a failed VMI left QEMU %v", pids)
		}
	})
}

// sharedLabBootTimeout is the shared lab's --boot-timeout: long enough for
// TCG guests booting side by side on a busy CI machine, short enough for
// TestAGuestThatDoesNotBootIsReported.
const sharedLabBootTimeout = 45 * time.Second

// A guest that never boots (its kernel panics: there is no such init) is
// an error, not a silent wait: `cclm guest` gives up within seconds and
// says why, and once the boot timeout has passed the VMI's AgentConnected
// condition and a Warning event carry the panic from its serial console.
func TestAGuestThatDoesNotBootIsReported(t *testing.T) {
	l := sharedLab(t)
	spec := vmSpec{name: "no-init", namespace: "bootfailure", kernelArgs: "rdinit=/no-such-init"}
	l.createVM(t, "ocp7", spec)
	labtest.WaitFor(t, "the VMI to run", time.Minute, func() (bool, string) {
		vmi := l.VMI(t, "ocp7", spec.namespace, spec.name)
		return vmi != nil && vmi.Status.Phase == kubevirtv1.Running, "VMI not Running yet"
	})
	started := time.Now()

	guestInfo := func() string {
		t.Helper()
		began := time.Now()
		_, stderr, err := labtest.RunCCLM(t, time.Minute, "guest", spec.name, "info", "--kubeconfig", l.Kubeconfig, "--context", "ocp7", "-n", spec.namespace)
		if err == nil {
			t.Fatal("cclm guest info succeeded on a guest that did not boot")
		}
		if took := time.Since(began); took > 15*time.Second {
			t.Errorf("cclm guest info took %v to give up; it must within a few seconds", took.Round(time.Second))
		}
		return stderr
	}
	if stderr := guestInfo(); !strings.Contains(stderr, "has not answered yet") && !strings.Contains(stderr, "did not boot") {
		t.Errorf("cclm guest info while the guest boots: %s", stderr)
	}

	var condition kubevirtv1.VirtualMachineInstanceCondition
	labtest.WaitFor(t, "AgentConnected to say GuestNotBooted", sharedLabBootTimeout+time.Minute, func() (bool, string) {
		vmi := l.VMI(t, "ocp7", spec.namespace, spec.name)
		for _, c := range vmi.Status.Conditions {
			if c.Type == kubevirtv1.VirtualMachineInstanceAgentConnected {
				condition = c
			}
		}
		return condition.Reason == "GuestNotBooted", fmt.Sprintf("%s %s", condition.Reason, condition.Message)
	})
	if after := time.Since(started); after < sharedLabBootTimeout-5*time.Second {
		t.Errorf("GuestNotBooted %v after the VMI ran, before the boot timeout %v", after.Round(time.Second), sharedLabBootTimeout)
	}
	const panicLine = "Kernel panic"
	if condition.Status != "False" || !strings.Contains(condition.Message, panicLine) {
		t.Fatalf("AgentConnected %s: %q; want False with the console's panic", condition.Status, condition.Message)
	}
	events := l.eventMessages(t, "ocp7", spec.namespace, "reason=GuestNotBooted,type=Warning")
	if !strings.Contains(events, panicLine) {
		t.Fatalf("no Warning event GuestNotBooted with the console's panic: %q", events)
	}
	if stderr := guestInfo(); !strings.Contains(stderr, "did not boot") || !strings.Contains(stderr, panicLine) {
		t.Errorf("cclm guest info once the boot timeout passed: want the reason and the console's panic, got %s", stderr)
	}
	l.MustKubectl(t, "ocp7", "", "delete", "vm", spec.name, "-n", spec.namespace, "--wait=true")
}
