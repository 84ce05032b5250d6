package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/scheduling"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/virtcontroller"
)

// The fake nodes the virt controller schedules onto (no node agent runs in
// these tests): two with CPU model Haswell-v4, of which only vc-big has
// memory for a 512Mi guest, and vc-plain without the model. 20Gi of
// storage each.
const (
	vcSmall = "vc-small"
	vcBig   = "vc-big"
	vcPlain = "vc-plain"
)

// vcBackoff is the crash-loop backoff the controller runs with here, short
// so that the test can watch it pass.
const vcBackoff = 3 * time.Second

// vcEnv is the shared cluster "virtcontroller" with KubeVirt, StorageClass
// cclm-local, the fake nodes, and the virt controller running in-process
// as its ServiceAccount (so that its RBAC is what is tested).
type vcEnv struct {
	client    client.Client
	clientset kubernetes.Interface
}

func TestVirtController(t *testing.T) {
	env := startVirtController(t)
	t.Run("AlwaysHaltedAlwaysAndDelete", env.testLifecycle)
	t.Run("RerunOnFailureBacksOffAndStopsAfterSuccess", env.testRerunOnFailure)
	t.Run("DataVolumeTemplateBecomesABoundPVCOnTheVMIsNode", env.testDataVolume)
	t.Run("DiskLargerThanAnyNodeIsUnschedulable", env.testDiskTooLarge)
	t.Run("NodeSelectorMatchingNoNodeWaitsForOne", env.testNodeSelector)
	t.Run("VMIWaitingForMemoryIsPlacedWhenAnotherLeaves", env.testMemoryFreedByAnotherVMI)
	t.Run("UnsupportedDataVolumeSourceBlocksTheVMI", env.testUnsupportedSource)
	t.Run("WaitAsReceiverIsNeverScheduled", env.testReceiver)
}

func startVirtController(t *testing.T) *vcEnv {
	_, admin := kubeVirtCluster(t, "virtcontroller")
	ctx := context.Background()
	if err := install.StorageClass(ctx, admin); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := install.InstallVirtController(ctx, admin, virtNamespace)
	if err != nil {
		t.Fatal(err)
	}
	asController, err := clientcmd.NewDefaultClientConfig(*kubeconfig, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	env := &vcEnv{}
	if env.client, err = client.New(admin, client.Options{Scheme: scheme.Scheme}); err != nil {
		t.Fatal(err)
	}
	env.clientset = kubernetes.NewForConfigOrDie(admin)
	env.createNode(t, vcSmall, "256Mi", map[string]string{scheduling.CPUModelLabelPrefix + "Haswell-v4": "true"})
	env.createNode(t, vcBig, "8Gi", map[string]string{scheduling.CPUModelLabelPrefix + "Haswell-v4": "true"})
	env.createNode(t, vcPlain, "8Gi", nil)

	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	logger, silence := testLogger(t)
	go func() {
		stopped <- virtcontroller.Run(runCtx, asController, virtcontroller.Options{
			Namespace: virtNamespace, LeaderElection: true, CrashLoopBackoff: vcBackoff, Logger: logger,
		})
	}()
	t.Cleanup(func() {
		defer silence()
		stop()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("virt controller ended with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("virt controller did not stop within 30s of its context's cancellation")
		}
	})
	return env
}

// testLogger logs to t until silenced: controller-runtime's manager still
// logs from a goroutine after Start returned, and logging to a finished
// test panics.
func testLogger(t *testing.T) (logr.Logger, func()) {
	var mu sync.Mutex
	active := true
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		if active {
			t.Log(prefix, args)
		}
	}, funcr.Options{})
	return logger, func() {
		mu.Lock()
		defer mu.Unlock()
		active = false
	}
}

// createNode registers a node as a node agent would: labels, capacity,
// Ready.
func (e *vcEnv) createNode(t *testing.T, name, memory string, labels map[string]string) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		scheduling.SchedulableLabel: "true", "kubernetes.io/hostname": name,
	}}}
	for k, v := range labels {
		node.Labels[k] = v
	}
	if err := e.client.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("4"),
		corev1.ResourceMemory:           resource.MustParse(memory),
		corev1.ResourceEphemeralStorage: resource.MustParse("20Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
	}
	node.Status = corev1.NodeStatus{
		Capacity: resources, Allocatable: resources,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}},
	}
	if err := e.client.Status().Update(context.Background(), node); err != nil {
		t.Fatal(err)
	}
}

// vmOption changes a test VM.
type vmOption func(*kubevirtv1.VirtualMachine)

// newTestVM is a VM with 64Mi of memory and one interface without a MAC.
func newTestVM(namespace, name string, strategy kubevirtv1.VirtualMachineRunStrategy, options ...vmOption) *kubevirtv1.VirtualMachine {
	memory := resource.MustParse("64Mi")
	vm := &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: &strategy,
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: kubevirtv1.TemplateObjectMeta{Labels: map[string]string{"app": name}},
				Spec: kubevirtv1.VirtualMachineInstanceSpec{
					Domain: kubevirtv1.DomainSpec{
						Memory: &kubevirtv1.Memory{Guest: &memory},
						Devices: kubevirtv1.Devices{Interfaces: []kubevirtv1.Interface{
							{Name: "default", Masquerade: &kubevirtv1.InterfaceMasquerade{}},
						}},
					},
					Networks: []kubevirtv1.Network{{Name: "default", Pod: &kubevirtv1.PodNetwork{}}},
				},
			},
		},
	}
	for _, option := range options {
		option(vm)
	}
	return vm
}

func withVMMemory(q string) vmOption {
	return func(vm *kubevirtv1.VirtualMachine) {
		memory := resource.MustParse(q)
		vm.Spec.Template.Spec.Domain.Memory.Guest = &memory
	}
}

// withBlankDisk adds a dataVolumeTemplate for a blank disk and its volume.
func withBlankDisk(name, size string) vmOption {
	return withDiskFrom(name, size, cdiv1beta1.DataVolumeSource{Blank: &cdiv1beta1.DataVolumeBlankImage{}})
}

func withDiskFrom(name, size string, source cdiv1beta1.DataVolumeSource) vmOption {
	return func(vm *kubevirtv1.VirtualMachine) {
		vm.Spec.DataVolumeTemplates = append(vm.Spec.DataVolumeTemplates, kubevirtv1.DataVolumeTemplateSpec{
			ObjectMeta: kubevirtv1.DataVolumeTemplateObjectMeta{Name: name},
			Spec: cdiv1beta1.DataVolumeSpec{Source: &source, Storage: &cdiv1beta1.StorageSpec{
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			}},
		})
		spec := &vm.Spec.Template.Spec
		spec.Domain.Devices.Disks = append(spec.Domain.Devices.Disks, kubevirtv1.Disk{Name: name, Disk: &kubevirtv1.DiskTarget{Bus: "virtio"}})
		spec.Volumes = append(spec.Volumes, kubevirtv1.Volume{Name: name, DataVolume: &kubevirtv1.DataVolumeSource{Name: name}})
	}
}

func (e *vcEnv) createVM(t *testing.T, vm *kubevirtv1.VirtualMachine) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: vm.Namespace}}
	if err := e.client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := e.client.Create(context.Background(), vm); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls check until it holds, failing the test with check's last
// word after timeout.
func (e *vcEnv) waitFor(t *testing.T, what string, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	began := time.Now()
	err := kube.Poll(context.Background(), 100*time.Millisecond, timeout, what, func(context.Context) (bool, string, error) {
		done, state := check()
		return done, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited > 5*time.Second {
		t.Logf("waited %s for %s", waited.Round(100*time.Millisecond), what)
	}
}

func (e *vcEnv) get(t *testing.T, namespace, name string, obj client.Object) bool {
	t.Helper()
	err := e.client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func (e *vcEnv) vmi(t *testing.T, namespace, name string) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if !e.get(t, namespace, name, vmi) {
		return nil
	}
	return vmi
}

func (e *vcEnv) vm(t *testing.T, namespace, name string) *kubevirtv1.VirtualMachine {
	t.Helper()
	vm := &kubevirtv1.VirtualMachine{}
	if !e.get(t, namespace, name, vm) {
		t.Fatalf("VM %s/%s does not exist", namespace, name)
	}
	return vm
}

// waitScheduled waits for a VMI other than notUID to be placed on a node.
func (e *vcEnv) waitScheduled(t *testing.T, namespace, name string, notUID string) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	var vmi *kubevirtv1.VirtualMachineInstance
	e.waitFor(t, "VMI "+name+" to be scheduled", 30*time.Second, func() (bool, string) {
		vmi = e.vmi(t, namespace, name)
		switch {
		case vmi == nil:
			return false, "no VMI"
		case string(vmi.UID) == notUID:
			return false, "still the old VMI " + notUID
		}
		return vmi.Status.NodeName != "" && vmi.Labels[kubevirtv1.NodeNameLabel] != "", fmt.Sprintf("phase %q, conditions %+v", vmi.Status.Phase, vmi.Status.Conditions)
	})
	return vmi
}

func (e *vcEnv) waitPrintableStatus(t *testing.T, namespace, name string, want kubevirtv1.VirtualMachinePrintableStatus) *kubevirtv1.VirtualMachine {
	t.Helper()
	var vm *kubevirtv1.VirtualMachine
	e.waitFor(t, fmt.Sprintf("VM %s to be %s", name, want), 30*time.Second, func() (bool, string) {
		vm = e.vm(t, namespace, name)
		return vm.Status.PrintableStatus == want, fmt.Sprintf("status %+v", vm.Status)
	})
	return vm
}

// waitEvent waits for an event about the object with that reason and
// returns its message.
func (e *vcEnv) waitEvent(t *testing.T, namespace, kind, name, reason string) string {
	t.Helper()
	var message string
	e.waitFor(t, fmt.Sprintf("a %s event on %s %s", reason, kind, name), 30*time.Second, func() (bool, string) {
		events, err := e.clientset.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.kind=" + kind + ",involvedObject.name=" + name + ",reason=" + reason,
		})
		if err != nil {
			return false, err.Error()
		}
		if len(events.Items) == 0 {
			return false, "none yet"
		}
		message = events.Items[0].Message
		return true, ""
	})
	return message
}

// waitObserved changes the VM's spec (an annotation of its template,
// which no decision reads) and waits until the VM controller has written
// the status of that generation: it acts on a VM (creates or deletes its
// VMI) before it writes its status, so what the controller would do to
// the VM as it is now has been done. It returns the VM.
func (e *vcEnv) waitObserved(t *testing.T, namespace, name string) *kubevirtv1.VirtualMachine {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"e2e.cclm.io/observed":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	if err := e.client.Patch(context.Background(), e.vm(t, namespace, name), client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	var vm *kubevirtv1.VirtualMachine
	e.waitFor(t, "the VM controller to observe VM "+name+"'s latest generation", 30*time.Second, func() (bool, string) {
		vm = e.vm(t, namespace, name)
		return vm.Status.ObservedGeneration == vm.Generation, fmt.Sprintf("generation %d, observed %d", vm.Generation, vm.Status.ObservedGeneration)
	})
	return vm
}

func (e *vcEnv) setRunStrategy(t *testing.T, vm *kubevirtv1.VirtualMachine, strategy kubevirtv1.VirtualMachineRunStrategy) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"runStrategy":%q}}`, strategy)
	if err := e.client.Patch(context.Background(), vm, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// setVMIPhase plays the node agent: it reports the guest's end.
func (e *vcEnv) setVMIPhase(t *testing.T, vmi *kubevirtv1.VirtualMachineInstance, phase kubevirtv1.VirtualMachineInstancePhase) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current := e.vmi(t, vmi.Namespace, vmi.Name)
		if current == nil || current.UID != vmi.UID {
			return errors.New("the VMI is gone")
		}
		current.Status.Phase = phase
		return e.client.Status().Update(context.Background(), current)
	})
	if err != nil {
		t.Fatalf("set VMI %s to %s: %v", vmi.Name, phase, err)
	}
}

func podScheduled(vmi *kubevirtv1.VirtualMachineInstance) *kubevirtv1.VirtualMachineInstanceCondition {
	for i := range vmi.Status.Conditions {
		if vmi.Status.Conditions[i].Type == virtcontroller.PodScheduled {
			return &vmi.Status.Conditions[i]
		}
	}
	return nil
}

// Always makes an owned VMI with a MAC written back into the VM, placed on
// the only node with the CPU model and the memory; Halted deletes it,
// Always again makes a new one with the same MAC; deleting the VM deletes
// its VMI.
func (e *vcEnv) testLifecycle(t *testing.T) {
	const ns, name = "vc-lifecycle", "web"
	e.createVM(t, newTestVM(ns, name, kubevirtv1.RunStrategyAlways, withVMMemory("512Mi"), func(vm *kubevirtv1.VirtualMachine) {
		vm.Spec.Template.Spec.Domain.CPU = &kubevirtv1.CPU{Model: "Haswell-v4"}
	}))
	first := e.waitScheduled(t, ns, name, "")
	vm := e.vm(t, ns, name)
	wantMAC := virtcontroller.StableMAC(ns, name, "default")
	if got := vm.Spec.Template.Spec.Domain.Devices.Interfaces[0].MacAddress; got != wantMAC {
		t.Errorf("VM's MAC = %q, want %s written back", got, wantMAC)
	}
	if got := first.Spec.Domain.Devices.Interfaces[0].MacAddress; got != wantMAC {
		t.Errorf("VMI's MAC = %q, want %s", got, wantMAC)
	}
	if !metav1.IsControlledBy(first, vm) || first.Labels["app"] != name {
		t.Errorf("VMI owners %+v, labels %v: want the VM as controller and the template's labels", first.OwnerReferences, first.Labels)
	}
	if first.Status.NodeName != vcBig || first.Labels[kubevirtv1.NodeNameLabel] != vcBig || first.Status.Phase != kubevirtv1.Scheduled {
		t.Errorf("VMI on %q (label %q) in phase %s; want %s, the only node with Haswell-v4 and 512Mi free",
			first.Status.NodeName, first.Labels[kubevirtv1.NodeNameLabel], first.Status.Phase, vcBig)
	}
	if c := podScheduled(first); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("PodScheduled = %+v", c)
	}
	vm = e.waitPrintableStatus(t, ns, name, kubevirtv1.VirtualMachineStatusStarting)
	if !vm.Status.Created || vm.Status.RunStrategy != kubevirtv1.RunStrategyAlways {
		t.Errorf("VM status %+v", vm.Status)
	}
	e.waitEvent(t, ns, "VirtualMachine", name, "MACAddressAssigned")
	e.waitEvent(t, ns, "VirtualMachine", name, "SuccessfulCreate")
	t.Logf("scheduled: %s", e.waitEvent(t, ns, "VirtualMachineInstance", name, "Scheduled"))

	e.setRunStrategy(t, vm, kubevirtv1.RunStrategyHalted)
	e.waitFor(t, "Halted to delete the VMI", 30*time.Second, func() (bool, string) {
		return e.vmi(t, ns, name) == nil, "the VMI is still there"
	})
	e.waitPrintableStatus(t, ns, name, kubevirtv1.VirtualMachineStatusStopped)

	e.setRunStrategy(t, vm, kubevirtv1.RunStrategyAlways)
	second := e.waitScheduled(t, ns, name, string(first.UID))
	if got := second.Spec.Domain.Devices.Interfaces[0].MacAddress; got != wantMAC {
		t.Errorf("MAC after a restart = %s, want %s", got, wantMAC)
	}

	foreground := metav1.DeletePropagationForeground
	if err := e.client.Delete(context.Background(), vm, &client.DeleteOptions{PropagationPolicy: &foreground}); err != nil {
		t.Fatal(err)
	}
	// The garbage collector ends a foreground deletion; on a fresh cluster
	// it learns of the CRDs' kinds only at its next discovery sync (every
	// 30 s), hence the longer wait.
	e.waitFor(t, "the VM and its VMI to be deleted", 90*time.Second, func() (bool, string) {
		vmi := e.vmi(t, ns, name)
		err := e.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &kubevirtv1.VirtualMachine{})
		return vmi == nil && apierrors.IsNotFound(err), fmt.Sprintf("VMI left: %v, VM: %v", vmi != nil, err)
	})
}

// RerunOnFailure restarts a failed VMI (at once the first time, after the
// crash-loop backoff the second), and not one that succeeded.
func (e *vcEnv) testRerunOnFailure(t *testing.T) {
	const ns, name = "vc-rerun", "batch"
	e.createVM(t, newTestVM(ns, name, kubevirtv1.RunStrategyRerunOnFailure))
	first := e.waitScheduled(t, ns, name, "")

	e.setVMIPhase(t, first, kubevirtv1.Failed)
	second := e.waitScheduled(t, ns, name, string(first.UID))

	e.setVMIPhase(t, second, kubevirtv1.Failed)
	failedAt := time.Now()
	e.waitPrintableStatus(t, ns, name, kubevirtv1.VirtualMachineStatusCrashLoopBackOff)
	t.Logf("backing off: %s", e.waitEvent(t, ns, "VirtualMachine", name, "CrashLoopBackOff"))
	third := e.waitScheduled(t, ns, name, string(second.UID))
	if waited := time.Since(failedAt); waited < vcBackoff-time.Second {
		t.Errorf("the second failure was restarted after %s, want the %s backoff", waited.Round(time.Millisecond), vcBackoff)
	}

	e.setVMIPhase(t, third, kubevirtv1.Succeeded)
	e.waitPrintableStatus(t, ns, name, kubevirtv1.VirtualMachineStatusStopped)
	// The backoff of the earlier failures is over (the third VMI ran):
	// a controller that took the success for a failure would restart at
	// once, or record it and restart after a new backoff.
	vm := e.waitObserved(t, ns, name)
	if vmi := e.vmi(t, ns, name); vmi == nil || vmi.UID != third.UID || vmi.Status.Phase != kubevirtv1.Succeeded {
		t.Errorf("after Succeeded the VMI must stay as it is, got %+v", vmi)
	}
	if failure := vm.Annotations[virtcontroller.StartFailureAnnotation]; strings.Contains(failure, string(third.UID)) {
		t.Errorf("the succeeded VMI was counted as a failure: %s", failure)
	}
}

// A dataVolumeTemplate becomes an owned DataVolume, whose PVC (owned by
// it) gets the default class, RWO and Filesystem, the VMI's node once the
// VMI is scheduled, and binds to the PV a node agent makes.
func (e *vcEnv) testDataVolume(t *testing.T) {
	const ns, name, disk = "vc-datavolume", "db", "db-data"
	e.createVM(t, newTestVM(ns, name, kubevirtv1.RunStrategyAlways, withBlankDisk(disk, "1Gi")))
	vmi := e.waitScheduled(t, ns, name, "")
	vm := e.vm(t, ns, name)

	dv := &cdiv1beta1.DataVolume{}
	if !e.get(t, ns, disk, dv) || !metav1.IsControlledBy(dv, vm) {
		t.Fatalf("DataVolume %s missing or not controlled by the VM: %+v", disk, dv.OwnerReferences)
	}
	pvc := &corev1.PersistentVolumeClaim{}
	e.waitFor(t, "the PVC to carry the VMI's node and the provisioner", 30*time.Second, func() (bool, string) {
		if !e.get(t, ns, disk, pvc) {
			return false, "no PVC"
		}
		return pvc.Annotations[scheduling.SelectedNodeAnnotation] == vmi.Status.NodeName &&
			pvc.Annotations["volume.kubernetes.io/storage-provisioner"] == install.LocalProvisioner, fmt.Sprintf("annotations %v", pvc.Annotations)
	})
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !metav1.IsControlledBy(pvc, dv) || ptr.Deref(pvc.Spec.StorageClassName, "") != install.LocalStorageClassName ||
		size.String() != "1Gi" || len(pvc.Spec.AccessModes) != 1 || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce ||
		ptr.Deref(pvc.Spec.VolumeMode, "") != corev1.PersistentVolumeFilesystem {
		t.Errorf("PVC owners %+v, spec %+v", pvc.OwnerReferences, pvc.Spec)
	}
	e.waitFor(t, "the DataVolume to wait for its first consumer", 30*time.Second, func() (bool, string) {
		e.get(t, ns, disk, dv)
		return dv.Status.Phase == cdiv1beta1.WaitForFirstConsumer, fmt.Sprintf("phase %q", dv.Status.Phase)
	})

	e.provisionLocalPV(t, pvc, vmi.Status.NodeName)
	e.waitFor(t, "the DataVolume to succeed once its PVC is bound", 30*time.Second, func() (bool, string) {
		e.get(t, ns, disk, dv)
		return dv.Status.Phase == cdiv1beta1.Succeeded, fmt.Sprintf("status %+v", dv.Status)
	})
}

// provisionLocalPV plays the node agent: a PV on node, pre-bound to the
// claim; the PV binder of kube-controller-manager binds them.
func (e *vcEnv) provisionLocalPV(t *testing.T, pvc *corev1.PersistentVolumeClaim, node string) {
	t.Helper()
	filesystem := corev1.PersistentVolumeFilesystem
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + string(pvc.UID)},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      pvc.Spec.Resources.Requests,
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              install.LocalStorageClassName,
			VolumeMode:                    &filesystem,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/" + pvc.Name}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
	if err := e.client.Create(context.Background(), pv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), pv) })
}

// A disk larger than any node's storage leaves the VMI Pending with a
// reason that names storage, the VM ErrorUnschedulable, and events.
func (e *vcEnv) testDiskTooLarge(t *testing.T) {
	const ns, name, disk = "vc-bigdisk", "hoarder", "hoarder-data"
	e.createVM(t, newTestVM(ns, name, kubevirtv1.RunStrategyAlways, withBlankDisk(disk, "100Gi")))
	var vmi *kubevirtv1.VirtualMachineInstance
	e.waitFor(t, "the VMI to be unschedulable", 30*time.Second, func() (bool, string) {
		vmi = e.vmi(t, ns, name)
		if vmi == nil {
			return false, "no VMI"
		}
		c := podScheduled(vmi)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == virtcontroller.ReasonUnschedulable, fmt.Sprintf("conditions %+v", vmi.Status.Conditions)
	})
	message := podScheduled(vmi).Message
	t.Logf("PodScheduled: %s", message)
	for _, want := range []string{"0/3 nodes are available: 3 node(s) did not have enough free storage", "need 100Gi", "20Gi ephemeral-storage"} {
		if !strings.Contains(message, want) {
			t.Errorf("reason lacks %q", want)
		}
	}
	if vmi.Status.Phase != kubevirtv1.Pending || vmi.Status.NodeName != "" {
		t.Errorf("VMI phase %s on %q; want Pending on no node", vmi.Status.Phase, vmi.Status.NodeName)
	}
	e.waitPrintableStatus(t, ns, name, kubevirtv1.VirtualMachineStatusUnschedulable)
	if got := e.waitEvent(t, ns, "VirtualMachineInstance", name, "FailedScheduling"); got != message {
		t.Errorf("FailedScheduling event says %q, want the condition's message", got)
	}
	e.waitEvent(t, ns, "VirtualMachine", name, string(kubevirtv1.VirtualMachineStatusUnschedulable))
	pvc := &corev1.PersistentVolumeClaim{}
	if e.get(t, ns, disk, pvc) && pvc.Annotations[scheduling.SelectedNodeAnnotation] != "" {
		t.Errorf("an unschedulable VMI's PVC got a node: %v", pvc.Annotations)
	}
}

// A node selector no node matches says so; labelling a node lets the VMI
// be scheduled there (a node change re-evaluates waiting VMIs).
func (e *vcEnv) testNodeSelector(t *testing.T) {
	const ns, name, label = "vc-selector", "picky", "cclm.io/test-disk"
	e.createVM(t, newTestVM(ns, name, kubevirtv1.RunStrategyAlways, func(vm *kubevirtv1.VirtualMachine) {
		vm.Spec.Template.Spec.NodeSelector = map[string]string{label: "nvme"}
	}))
	e.waitFor(t, "the VMI to be unschedulable", 30*time.Second, func() (bool, string) {
		vmi := e.vmi(t, ns, name)
		if vmi == nil || podScheduled(vmi) == nil {
			return false, "no VMI or no PodScheduled"
		}
		message := podScheduled(vmi).Message
		return strings.Contains(message, "3 node(s) didn't match the VMI's node selector") &&
			strings.Contains(message, "lacks label "+label+"=nvme"), message
	})

	node := &corev1.Node{}
	e.get(t, "", vcPlain, node)
	patch := client.MergeFrom(node.DeepCopy())
	node.Labels[label] = "nvme"
	if err := e.client.Patch(context.Background(), node, patch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.get(t, "", vcPlain, node)
		patch := client.MergeFrom(node.DeepCopy())
		delete(node.Labels, label)
		_ = e.client.Patch(context.Background(), node, patch)
	})
	if vmi := e.waitScheduled(t, ns, name, ""); vmi.Status.NodeName != vcPlain {
		t.Errorf("VMI on %s, want %s, the node just labelled", vmi.Status.NodeName, vcPlain)
	}
}

// A VMI that does not fit waits, and is placed once another VMI leaves the
// node (a VMI change re-evaluates waiting VMIs).
func (e *vcEnv) testMemoryFreedByAnotherVMI(t *testing.T) {
	const ns = "vc-memory"
	onBig := func(vm *kubevirtv1.VirtualMachine) {
		vm.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": vcBig}
	}
	e.createVM(t, newTestVM(ns, "hog", kubevirtv1.RunStrategyAlways, withVMMemory("7Gi"), onBig))
	hog := e.waitScheduled(t, ns, "hog", "")
	e.createVM(t, newTestVM(ns, "late", kubevirtv1.RunStrategyAlways, withVMMemory("7Gi"), onBig))
	e.waitFor(t, "the second VMI to lack memory", 30*time.Second, func() (bool, string) {
		vmi := e.vmi(t, ns, "late")
		if vmi == nil || podScheduled(vmi) == nil {
			return false, "no VMI or no PodScheduled"
		}
		message := podScheduled(vmi).Message
		return strings.Contains(message, "1 Insufficient memory") && strings.Contains(message, vcBig+": the guest needs 7Gi"), message
	})
	e.setRunStrategy(t, e.vm(t, ns, "hog"), kubevirtv1.RunStrategyHalted)
	if vmi := e.waitScheduled(t, ns, "late", ""); vmi.Status.NodeName != vcBig {
		t.Errorf("VMI on %s, want %s", vmi.Status.NodeName, vcBig)
	}
	if e.vmi(t, ns, "hog") != nil {
		t.Errorf("VMI %s (%s) still exists", hog.Name, hog.UID)
	}
	e.setRunStrategy(t, e.vm(t, ns, "late"), kubevirtv1.RunStrategyHalted) // give the memory back
}

// A DataVolume of a source cclm cannot fill fails with a reason that says
// what to do, gets no PVC, and the VM gets no VMI.
func (e *vcEnv) testUnsupportedSource(t *testing.T) {
	const ns, name, disk = "vc-registry", "imported", "imported-root"
	e.createVM(t, newTestVM(ns, name, kubevirtv1.RunStrategyAlways, withDiskFrom(disk, "1Gi", cdiv1beta1.DataVolumeSource{
		Registry: &cdiv1beta1.DataVolumeSourceRegistry{URL: "docker://quay.io/containerdisks/fedora:latest"},
	})))
	vm := e.waitPrintableStatus(t, ns, name, kubevirtv1.VirtualMachineStatusDataVolumeError)
	dv := &cdiv1beta1.DataVolume{}
	e.get(t, ns, disk, dv)
	var ready string
	for _, c := range dv.Status.Conditions {
		if c.Type == cdiv1beta1.DataVolumeReady {
			ready = c.Message
		}
	}
	if dv.Status.Phase != cdiv1beta1.Failed || !strings.Contains(ready, "not supported by cclm") || !strings.Contains(ready, "spec.source.blank") {
		t.Errorf("DataVolume phase %s, Ready message %q", dv.Status.Phase, ready)
	}
	t.Logf("VM conditions: %+v", vm.Status.Conditions)
	e.waitObserved(t, ns, name)
	if vmi := e.vmi(t, ns, name); vmi != nil {
		t.Errorf("a VMI was created despite the failed DataVolume")
	}
	if e.get(t, ns, disk, &corev1.PersistentVolumeClaim{}) {
		t.Errorf("a PVC was created for an unsupported source")
	}
}

// WaitAsReceiver makes a receiver VMI in WaitingForSync that is never
// scheduled.
func (e *vcEnv) testReceiver(t *testing.T) {
	const ns, name = "vc-receiver", "incoming"
	e.createVM(t, newTestVM(ns, name, kubevirtv1.RunStrategyWaitAsReceiver))
	var vmi *kubevirtv1.VirtualMachineInstance
	e.waitFor(t, "a receiver VMI in WaitingForSync", 30*time.Second, func() (bool, string) {
		vmi = e.vmi(t, ns, name)
		if vmi == nil {
			return false, "no VMI"
		}
		return vmi.Status.Phase == kubevirtv1.WaitingForSync, fmt.Sprintf("phase %q", vmi.Status.Phase)
	})
	if vmi.Annotations[kubevirtv1.CreateMigrationTargetAnnotation] != "true" {
		t.Errorf("annotations %v lack %s", vmi.Annotations, kubevirtv1.CreateMigrationTargetAnnotation)
	}
	e.waitPrintableStatus(t, ns, name, kubevirtv1.VirtualMachineStatusWaitingForReceiver)
	// The scheduler has had its chance at the receiver once it has placed
	// a VMI created after it: it looks at VMIs in the order they come.
	e.createVM(t, newTestVM(ns, "after-receiver", kubevirtv1.RunStrategyAlways))
	e.waitScheduled(t, ns, "after-receiver", "")
	vmi = e.vmi(t, ns, name)
	if vmi.Status.NodeName != "" || vmi.Labels[kubevirtv1.NodeNameLabel] != "" || podScheduled(vmi) != nil || vmi.Status.Phase != kubevirtv1.WaitingForSync {
		t.Errorf("the receiver was touched by the scheduler: %+v", vmi.Status)
	}
}
