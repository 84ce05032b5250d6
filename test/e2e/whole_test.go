package e2e

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/toolkit"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

// wholeProfileYAML is the cluster-wide instancetype the whole VM names
// (applied to both clusters, as an admin would) and the namespaced
// preference (on the source only: the Migration copies it).
const wholeProfileYAML = `apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachineClusterInstancetype
metadata: {name: cclm.whole}
spec:
  cpu: {guest: 2}
  memory: {guest: 128Mi}
`

const wholePreferenceYAML = `apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachinePreference
metadata: {name: whole-virtio, namespace: toolkit-whole}
spec:
  cpu: {preferredCPUTopology: cores}
  devices: {preferredDiskBus: virtio, preferredInterfaceModel: virtio}
  preferredTerminationGracePeriodSeconds: 5
`

// wholeVMYAML is a VM that sets every field of the lab's API that a
// running guest can carry: labels and annotations on the VM, its
// template and its DataVolume template; an instancetype (vCPUs and
// memory) and a preference; requests and limits, machine type, firmware
// UUID and kernel arguments; disks with bus, serial and boot order; an
// interface with model and MAC; a cloud-init disk whose data is in
// Secrets, a Secret disk, a ConfigMap disk and a sysprep disk; a node
// selector and a grace period.
const wholeVMYAML = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: whole
  namespace: toolkit-whole
  labels: {app: whole, tier: gold}
  annotations: {owner: team-a, description: "carries every field"}
spec:
  runStrategy: Always
  instancetype: {name: cclm.whole}
  preference: {kind: VirtualMachinePreference, name: whole-virtio}
  dataVolumeTemplates:
  - metadata: {name: whole-data, labels: {disk: data}, annotations: {note: kept}}
    spec:
      source: {blank: {}}
      storage: {storageClassName: cclm-local, accessModes: [ReadWriteOnce], resources: {requests: {storage: 64Mi}}}
  template:
    metadata:
      labels: {app: whole, kubevirt.io/domain: whole}
      annotations: {template-note: kept}
    spec:
      nodeSelector: {kubevirt.io/schedulable: "true"}
      terminationGracePeriodSeconds: 5
      domain:
        resources:
          requests: {memory: 128Mi, cpu: 100m}
          limits: {memory: 256Mi}
        machine: {type: q35}
        firmware:
          uuid: 5d3c6b5e-7a1f-4c1e-9d47-2f0e5a9b1c33
          kernelBoot: {kernelArgs: "cclm.test=whole"}
        devices:
          disks:
          - {name: rootdisk, disk: {bus: virtio}, bootOrder: 1}
          - {name: datadisk, disk: {bus: virtio}, serial: datadisk}
          - {name: cloudinit, disk: {bus: virtio}}
          - {name: creds, serial: creds}
          - {name: settings, disk: {bus: virtio}, serial: settings}
          - {name: sysprep, serial: sysprep}
          interfaces:
          - {name: default, bridge: {}, model: virtio, macAddress: "02:c1:a0:00:00:2a"}
      networks:
      - {name: default, pod: {}}
      volumes:
      - {name: rootdisk, containerDisk: {image: cclm/guest}}
      - {name: datadisk, dataVolume: {name: whole-data}}
      - {name: cloudinit, cloudInitNoCloud: {secretRef: {name: whole-creds}, networkDataSecretRef: {name: whole-net}}}
      - {name: creds, secret: {secretName: whole-creds}}
      - {name: settings, configMap: {name: whole-settings, volumeLabel: settings}}
      - {name: sysprep, sysprep: {configMap: {name: whole-unattend}}}
`

// wholeObjectsYAML are the Secrets and ConfigMaps the whole VM's volumes
// name, on the source only: the Migration copies them.
const wholeObjectsYAML = `apiVersion: v1
kind: Secret
metadata: {name: whole-creds, namespace: toolkit-whole}
stringData: {userdata: "#cloud-config\nhostname: whole\n", password: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: whole-net, namespace: toolkit-whole}
stringData: {networkdata: "version: 2\n"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: whole-settings, namespace: toolkit-whole}
data: {app.conf: "mode=fast\n"}
binaryData: {blob: AAEC}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: whole-unattend, namespace: toolkit-whole}
data: {unattend.xml: "<unattend/>"}
`

// toolkitCarriesTheWholeVM: the VM of wholeVMYAML migrates through a Plan
// and the VM on ocp1 equals the one on ocp7 but for the documented
// changes (the toolkit's labels, the restore annotation, the run
// strategy, which the migration itself changes on both sides).
func (l *labEnv) toolkitCarriesTheWholeVM(t *testing.T) {
	const namespace, name = "toolkit-whole", "whole"
	l.EnsureNamespace(t, sourceCluster, namespace)
	for _, cluster := range []string{sourceCluster, targetCluster} {
		l.MustKubectl(t, cluster, wholeProfileYAML, "apply", "-f", "-")
	}
	l.MustKubectl(t, sourceCluster, wholePreferenceYAML, "apply", "-f", "-")
	l.MustKubectl(t, sourceCluster, wholeObjectsYAML, "apply", "-f", "-")
	l.MustKubectl(t, sourceCluster, wholeVMYAML, "apply", "-f", "-")
	l.removeAtEnd(t, namespace, name)
	g := l.readyGuest(t, sourceCluster, vmSpec{name: name, namespace: namespace})
	var source kubevirtv1.VirtualMachine
	disksBefore := l.configDiskFiles(t, sourceCluster, namespace, name)
	l.applyPlan(t, "toolkit-whole", namespace, []*guest{g})
	// The plan's targetLabels and targetNodeSelector, as a Forklift user
	// sets them; the API server must keep them, and the VM on ocp1 get them.
	l.MustKubectl(t, targetCluster, "", "patch", "plan", "toolkit-whole", "-n", mtvNamespace, "--type=merge", "-p",
		`{"spec":{"targetLabels":{"team":"blue"},"targetNodeSelector":{"node-role.kubernetes.io/worker":""}}}`)
	plan := l.awaitPlanReady(t, "toolkit-whole")
	// A slow link keeps Migrate long enough to change a Secret in it.
	restore := l.SetMigrationConfig(t, sourceCluster, `{"bandwidthPerMigration":"16Mi"}`)
	defer restore()
	changed := false
	m := l.awaitMigration(t, l.startToolkitMigration(t, plan, "toolkit-whole-1"), 4*time.Minute, func(m *forkliftv1beta1.Migration) {
		if !changed && len(m.Status.VMs) == 1 && m.Status.VMs[0].Phase == toolkit.PhaseWaitForStateTransfer {
			changed = true
			l.MustKubectl(t, sourceCluster, "", "patch", "secret", "whole-creds", "-n", namespace, "--type=merge", "-p", `{"stringData":{"password":"rotated"}}`)
		}
	})
	assertPipelineCompleted(t, m)
	l.assertArrivedOnce(t, m, namespace, g)
	disksAfter := l.configDiskFiles(t, targetCluster, namespace, name)
	// ocp1 makes the Secret disk from its copy when the target is prepared,
	// which may be before or after the rotation reached the copy (as a
	// virt-launcher's on the target mounts the Secret as it is then).
	if password := disksAfter["creds"].Files["password"]; password == "rotated" {
		t.Logf("ocp1's Secret disk was made after the rotation reached the copy")
		disksAfter["creds"].Files["password"] = "s3cret"
	}
	if !equality.Semantic.DeepEqual(disksBefore, disksAfter) {
		t.Errorf("the guest's Secret, ConfigMap and sysprep disks on ocp1 differ from ocp7's:\n%s", cmp.Diff(disksBefore, disksAfter))
	}
	if !changed {
		t.Fatal("never saw the VM in Migrate to change its Secret")
	}
	labtest.WaitFor(t, "ocp1's copy of Secret whole-creds to follow the change", 30*time.Second, func() (bool, string) {
		var copied corev1.Secret
		if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: "whole-creds"}, &copied); err != nil {
			return false, err.Error()
		}
		return string(copied.Data["password"]) == "rotated", "the copy has the old password"
	})

	var target kubevirtv1.VirtualMachine
	if err := l.Client(t, sourceCluster).Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &source); err != nil {
		t.Fatal(err)
	}
	if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &target); err != nil {
		t.Fatal(err)
	}
	if target.Annotations[kubevirtv1.RestoreRunStrategyAnnotation] != "Always" {
		t.Errorf("the receiving VM's %s is %q, want the source's Always", kubevirtv1.RestoreRunStrategyAnnotation, target.Annotations[kubevirtv1.RestoreRunStrategyAnnotation])
	}
	l.assertSameProfile(t, namespace, name)
	template := target.Spec.Template
	if template.ObjectMeta.Labels["team"] != "blue" || template.Spec.NodeSelector["node-role.kubernetes.io/worker"] != "" || len(template.Spec.NodeSelector) != 2 {
		t.Errorf("the plan's targetLabels and targetNodeSelector did not reach the VM on ocp1: labels %v, node selector %v", template.ObjectMeta.Labels, template.Spec.NodeSelector)
	}
	// The plan's additions are documented changes too.
	delete(template.ObjectMeta.Labels, "team")
	delete(template.Spec.NodeSelector, "node-role.kubernetes.io/worker")
	want, got := withoutDocumentedChanges(&source), withoutDocumentedChanges(&target)
	if !equality.Semantic.DeepEqual(want, got) {
		t.Fatalf("the VM on ocp1 differs from the one on ocp7 beyond the documented changes (-ocp7 +ocp1):\n%s", cmp.Diff(want, got))
	}
	t.Logf("the VM arrived whole: %d labels, %d annotations, its template, %d disks, %d DataVolume template(s) as on ocp7",
		len(want.Labels), len(want.Annotations), len(want.Spec.Template.Spec.Domain.Devices.Disks), len(want.Spec.DataVolumeTemplates))
}

// withoutDocumentedChanges is what of a VM must travel unchanged: its
// name, labels, annotations and spec, without the toolkit's labels, the
// restore annotation and the run strategy.
func withoutDocumentedChanges(vm *kubevirtv1.VirtualMachine) *kubevirtv1.VirtualMachine {
	out := &kubevirtv1.VirtualMachine{Spec: *vm.Spec.DeepCopy()}
	out.Name = vm.Name
	out.Labels = maps.Clone(vm.Labels)
	maps.DeleteFunc(out.Labels, func(k, _ string) bool { return strings.HasPrefix(k, "forklift.konveyor.io/") })
	out.Annotations = maps.Clone(vm.Annotations)
	delete(out.Annotations, kubevirtv1.RestoreRunStrategyAnnotation)
	out.Spec.RunStrategy, out.Spec.Running = nil, nil
	maps.DeleteFunc(out.Spec.Template.ObjectMeta.Labels, func(k, _ string) bool { return strings.HasPrefix(k, "forklift.konveyor.io/") })
	return out
}

// assertSameProfile: the VMI on ocp1 runs with what the instancetype and
// preference gave the one on ocp7 (2 vCPUs as cores, 128Mi, virtio, the
// grace period), and ocp1's namespace holds the copied preference.
func (l *labEnv) assertSameProfile(t *testing.T, namespace, name string) {
	t.Helper()
	target := l.VMI(t, targetCluster, namespace, name)
	d := target.Spec.Domain
	if d.CPU == nil || d.CPU.Sockets != 1 || d.CPU.Cores != 2 || d.CPU.Threads != 1 || d.Memory == nil || d.Memory.Guest == nil || d.Memory.Guest.String() != "128Mi" {
		t.Errorf("the VMI on ocp1 has CPU %+v, memory %+v; want 1 socket of 2 cores and 128Mi from the instancetype and preference", d.CPU, d.Memory)
	}
	if target.Spec.TerminationGracePeriodSeconds == nil || *target.Spec.TerminationGracePeriodSeconds != 5 || target.Annotations["kubevirt.io/cluster-instancetype-name"] != "cclm.whole" {
		t.Errorf("the VMI on ocp1: grace %v, annotations %v", target.Spec.TerminationGracePeriodSeconds, target.Annotations)
	}
	var copied instancetypev1beta1.VirtualMachinePreference
	if err := l.Client(t, targetCluster).Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: "whole-virtio"}, &copied); err != nil {
		t.Fatalf("the preference was not copied to ocp1: %v", err)
	}
	if copied.Spec.CPU == nil || copied.Spec.CPU.PreferredCPUTopology != instancetypev1beta1.Cores {
		t.Errorf("the copied preference: %+v", copied.Spec)
	}
}

// configDiskFiles is what the guest reads from its creds, settings and
// sysprep disks: label and files.
func (l *labEnv) configDiskFiles(t *testing.T, cluster, namespace, name string) map[string]guestagent.DiskFilesResult {
	t.Helper()
	disks := map[string]guestagent.DiskFilesResult{}
	for _, serial := range []string{"creds", "settings", "sysprep"} {
		var files guestagent.DiskFilesResult
		l.GuestCall(t, cluster, namespace, name, guestagent.CmdDiskFiles, guestagent.DiskFilesArgs{Disk: serial}, &files)
		disks[serial] = files
	}
	if got := disks["creds"].Files["password"]; got != "s3cret" && got != "rotated" {
		t.Errorf("on %s the guest reads password %q from its Secret disk (all: %+v)", cluster, got, disks)
	}
	if disks["settings"].Label != "settings" || disks["settings"].Files["app.conf"] != "mode=fast\n" || disks["settings"].Files["blob"] != "\x00\x01\x02" {
		t.Errorf("on %s the guest reads %+v from its ConfigMap disk", cluster, disks["settings"])
	}
	if disks["sysprep"].Files["unattend.xml"] != "<unattend/>" {
		t.Errorf("on %s the guest reads %+v from its sysprep disk", cluster, disks["sysprep"])
	}
	return disks
}
