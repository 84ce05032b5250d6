package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/preflight"
	"github.com/cclm-io/cclm/internal/toolkit"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

// A decentralized migration whose two halves are in one cluster, in two
// namespaces: the receiver VM and the receiving VMIM in one, the sending
// VMIM in the other, both synchronization "peers" being the same
// controller. Upstream KubeVirt 1.8.2 stalls there in Synchronizing
// (kubevirt/kubevirt#18259: the source handler never sees itself as the
// source); here the guest must arrive as across clusters: same boot, same
// disk, one QEMU, the source VM Halted.
func TestCrossNamespaceMigrationByHand(t *testing.T) {
	l := sharedLab(t)
	spec := vmSpec{name: "mover", namespace: "xns-from", memory: "128Mi", dataDisk: "64Mi"}
	l.createVM(t, targetCluster, spec)
	l.removeAtEnd(t, spec.namespace, spec.name)
	a := &attempt{
		namespace:   "xns-to",
		migrationID: fmt.Sprintf("mover-%d", time.Now().UnixNano()),
		sourceVMIM:  "mover-send",
		targetVMIM:  "mover-receive",
	}
	l.removeAtEnd(t, a.namespace, spec.name)
	moved := l.readyGuest(t, targetCluster, spec)
	l.prepareReceiver(t, targetCluster, spec, moved.mac, a, 250*time.Millisecond)
	l.CreateVMIM(t, targetCluster, spec.namespace, a.sourceVMIM, spec.name, a.sendTo)
	for _, half := range [][2]string{{spec.namespace, a.sourceVMIM}, {a.namespace, a.targetVMIM}} {
		vmim := l.WaitVMIMFinal(t, targetCluster, half[0], half[1], 3*time.Minute)
		if vmim.Status.Phase != kubevirtv1.MigrationSucceeded {
			t.Fatalf("VMIM %s/%s ended %s%s\n%s\n%s", half[0], half[1], vmim.Status.Phase, vmimReason(vmim),
				l.Describe(t, targetCluster, spec.namespace), l.Describe(t, targetCluster, a.namespace))
		}
	}
	l.assertMovedBetweenNamespaces(t, targetCluster, spec, a.namespace, moved)
}

// assertMovedBetweenNamespaces: the guest of spec runs in namespace to of
// the same cluster, the same boot, its data disk as written, one QEMU,
// and the VM it left is Halted with its VMI Succeeded.
func (l *labEnv) assertMovedBetweenNamespaces(t testing.TB, cluster string, spec vmSpec, to string, before *guest) {
	t.Helper()
	after := l.WaitGuestReady(t, cluster, to, spec.name, 30*time.Second)
	if after.BootID != before.booted.BootID {
		t.Fatalf("the guest rebooted: %s -> %s", before.booted.BootID, after.BootID)
	}
	var verified guestagent.DiskVerifyResult
	l.GuestCall(t, cluster, to, spec.name, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk"}, &verified)
	if !verified.OK || verified.Digest != before.written.Digest {
		t.Fatalf("the data disk in %s: %+v; written in %s with digest %s", to, verified, spec.namespace, before.written.Digest)
	}
	labtest.WaitFor(t, "one QEMU, in the new namespace", time.Minute, func() (bool, string) {
		from, into := labtest.QEMUPids(spec.namespace, spec.name), labtest.QEMUPids(to, spec.name)
		return len(from) == 0 && len(into) == 1, fmt.Sprintf("QEMUs in %s %v, in %s %v", spec.namespace, from, to, into)
	})
	labtest.WaitFor(t, "the VM it left to be Halted, its VMI Succeeded", time.Minute, func() (bool, string) {
		vmi := l.VMI(t, cluster, spec.namespace, spec.name)
		var vm kubevirtv1.VirtualMachine
		if err := l.Client(t, cluster).Get(context.Background(), client.ObjectKey{Namespace: spec.namespace, Name: spec.name}, &vm); err != nil {
			return false, err.Error()
		}
		strategy := vm.EffectiveRunStrategy()
		return vmi != nil && vmi.Status.Phase == kubevirtv1.Succeeded && strategy == kubevirtv1.RunStrategyHalted,
			fmt.Sprintf("%s, runStrategy %s", vmiPhase(vmi), strategy)
	})
	if vmi := l.VMI(t, cluster, to, spec.name); vmi.Status.Phase != kubevirtv1.Running || vmi.Status.NodeName == "" {
		t.Fatalf("the VMI in %s is %s on %q, want Running", to, vmi.Status.Phase, vmi.Status.NodeName)
	}
}

// toolkitMovesBetweenNamespaces: a live Plan whose source and destination
// Providers are both the host moves a running VM of ocp1 from one of its
// namespaces to another, written as YAML as a Forklift user would; a
// second Plan into the VM's own namespace is refused by name.
func (l *labEnv) toolkitMovesBetweenNamespaces(t *testing.T) {
	spec := vmSpec{name: "shifter", namespace: "xns-plan-from", memory: "128Mi", dataDisk: "64Mi"}
	const to = "xns-plan-to"
	l.createVM(t, targetCluster, spec)
	l.removeAtEnd(t, spec.namespace, spec.name)
	l.removeAtEnd(t, to, spec.name)
	before := l.readyGuest(t, targetCluster, spec)
	l.MustKubectl(t, targetCluster, hostToHostPlanYAML("xns-onto-itself", spec, spec.namespace), "apply", "-f", "-")
	defer l.MustKubectl(t, targetCluster, "", "delete", "plan", "xns-onto-itself", "-n", mtvNamespace)
	l.MustKubectl(t, targetCluster, hostToHostPlanYAML("xns", spec, to), "apply", "-f", "-")
	defer l.MustKubectl(t, targetCluster, "", "delete", "plan", "xns", "-n", mtvNamespace)
	plan := l.awaitPlanReady(t, "xns")
	refused := &forkliftv1beta1.Plan{}
	labtest.WaitFor(t, "the Plan into the VM's own namespace to be refused", time.Minute, func() (bool, string) {
		if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKey{Namespace: mtvNamespace, Name: "xns-onto-itself"}, refused); err != nil {
			return false, err.Error()
		}
		c := forkliftv1beta1.FindCondition(refused.Status.Conditions, preflight.VMExists)
		return c != nil && strings.Contains(c.Message, "would move onto itself"), fmt.Sprintf("%+v", refused.Status.Conditions)
	})
	m := l.startToolkitMigration(t, plan, "xns-1")
	m = l.awaitMigration(t, m, 4*time.Minute, nil)
	assertPipelineCompleted(t, m)
	l.assertMovedBetweenNamespaces(t, targetCluster, spec, to, before)
	labtest.WaitFor(t, "both VMIMs to be cleaned up", 30*time.Second, func() (bool, string) {
		var vmims kubevirtv1.VirtualMachineInstanceMigrationList
		if err := l.Client(t, targetCluster).List(context.Background(), &vmims, client.MatchingLabels{toolkit.LabelMigration: string(m.UID)}); err != nil {
			return false, err.Error()
		}
		return len(vmims.Items) == 0, fmt.Sprintf("%d VMIMs of the migration left", len(vmims.Items))
	})
}

// hostToHostPlanYAML is a live Plan moving spec's VM to namespace to, the
// host Provider on both ends, with maps of its own.
func hostToHostPlanYAML(name string, spec vmSpec, to string) string {
	return fmt.Sprintf(`apiVersion: forklift.konveyor.io/v1beta1
kind: NetworkMap
metadata: {name: host-pod, namespace: %[1]s}
spec:
  provider:
    source: {name: %[2]s, namespace: %[1]s}
    destination: {name: %[2]s, namespace: %[1]s}
  map:
  - {source: {type: pod}, destination: {type: pod}}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: StorageMap
metadata: {name: host-local, namespace: %[1]s}
spec:
  provider:
    source: {name: %[2]s, namespace: %[1]s}
    destination: {name: %[2]s, namespace: %[1]s}
  map:
  - {source: {name: cclm-local}, destination: {storageClass: cclm-local}}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  type: live
  targetNamespace: %[4]s
  provider:
    source: {name: %[2]s, namespace: %[1]s}
    destination: {name: %[2]s, namespace: %[1]s}
  map:
    network: {name: host-pod, namespace: %[1]s}
    storage: {name: host-local, namespace: %[1]s}
  vms:
  - {name: %[5]s, namespace: %[6]s}
`, mtvNamespace, hostProvider, name, to, spec.name, spec.namespace)
}
