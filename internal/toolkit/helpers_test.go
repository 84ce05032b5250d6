package toolkit

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/pki"
	"github.com/cclm-io/cclm/internal/trust"
)

// The fixtures: VM src/vm1 (UID vm-uid) runs on ocp7-worker-0 with 128Mi
// of memory, a container root disk and a 256Mi DataVolume vm1-data in
// class cclm-local, one pod NIC with a fixed MAC; Migration
// 1234abcd-... of plan plan-uid moves it to namespace dst.

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const (
	planUID         = types.UID("plan-uid")
	migrationUID    = types.UID("1234abcd-0000-4000-8000-000000000000")
	vmUID           = "vm-uid"
	sourceNamespace = "src"
	targetNamespace = "dst"
	vmName          = "vm1"
	dataVolume      = "vm1-data"
	vmimName        = "vm1-1234abcd"
	mac             = "02:00:00:00:00:01"
	connectURL      = "192.168.201.128:9185"
)

func at(d time.Duration) time.Time { return t0.Add(d) }

// testCAs are the source's and the target's migration CAs.
var testCAs = sync.OnceValues(func() (source, target string) {
	pem := func(name string) string {
		ca, err := pki.NewCA(name)
		if err != nil {
			panic(err)
		}
		return string(ca.CertPEM())
	}
	return pem("ocp7 migration CA"), pem("ocp1 migration CA")
})

// trustedBothWays: each cluster has the other's CA in kubevirt-external-ca.
func trustedBothWays() *TrustView {
	source, target := testCAs()
	return &TrustView{Source: ClusterTrust{CA: source, External: target}, Target: ClusterTrust{CA: target, External: source}}
}

// trustCAConfigMap is a cluster's kubevirt-ca holding bundle.
func trustCAConfigMap(bundle string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: DefaultVirtNamespace, Name: trust.CABundleConfigMap}, Data: map[string]string{trust.BundleKey: bundle}}
}

func mtp(d time.Duration) *metav1.Time {
	t := metav1.NewTime(at(d))
	return &t
}

func ours() map[string]string { return Labels(planUID, migrationUID, vmUID) }

func sourceVM() *kubevirtv1.VirtualMachine {
	memory := resource.MustParse("128Mi")
	return &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: vmName, Namespace: sourceNamespace, UID: vmUID, Labels: map[string]string{"app": vmName}},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: ptr.To(kubevirtv1.RunStrategyAlways),
			DataVolumeTemplates: []kubevirtv1.DataVolumeTemplateSpec{{
				ObjectMeta: kubevirtv1.DataVolumeTemplateObjectMeta{Name: dataVolume},
				Spec:       blankDV("256Mi", nil).Spec,
			}},
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: kubevirtv1.TemplateObjectMeta{Labels: map[string]string{"app": vmName}},
				Spec: kubevirtv1.VirtualMachineInstanceSpec{
					Domain: kubevirtv1.DomainSpec{
						Memory: &kubevirtv1.Memory{Guest: &memory},
						Devices: kubevirtv1.Devices{
							Disks: []kubevirtv1.Disk{{Name: "rootdisk"}, {Name: "datadisk"}},
							Interfaces: []kubevirtv1.Interface{{
								Name: "default", Bridge: &kubevirtv1.InterfaceBridge{}, MacAddress: mac,
							}},
						},
					},
					Networks: []kubevirtv1.Network{{Name: "default", Pod: &kubevirtv1.PodNetwork{}}},
					Volumes: []kubevirtv1.Volume{
						{Name: "rootdisk", ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "cclm/guest"}},
						{Name: "datadisk", DataVolume: &kubevirtv1.DataVolumeSource{Name: dataVolume}},
					},
				},
			},
		},
	}
}

func blankDV(size string, class *string) *cdiv1beta1.DataVolume {
	return &cdiv1beta1.DataVolume{
		ObjectMeta: metav1.ObjectMeta{Name: dataVolume, Namespace: sourceNamespace},
		Spec: cdiv1beta1.DataVolumeSpec{
			Source: &cdiv1beta1.DataVolumeSource{Blank: &cdiv1beta1.DataVolumeBlankImage{}},
			Storage: &cdiv1beta1.StorageSpec{
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
				StorageClassName: class,
			},
		},
	}
}

func sourcePVC(capacity string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: dataVolume, Namespace: sourceNamespace},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To("cclm-local"),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("256Mi")}},
		},
		Status: corev1.PersistentVolumeClaimStatus{Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(capacity)}},
	}
}

func sourceVMI(phase kubevirtv1.VirtualMachineInstancePhase) *kubevirtv1.VirtualMachineInstance {
	return &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: vmName, Namespace: sourceNamespace, UID: "vmi-uid"},
		Status: kubevirtv1.VirtualMachineInstanceStatus{
			Phase: phase, NodeName: "ocp7-worker-0",
			Interfaces: []kubevirtv1.VirtualMachineInstanceNetworkInterface{{Name: "default", MAC: mac, IP: "10.0.0.5"}},
		},
	}
}

var networkMap = []forkliftv1beta1.NetworkPair{{
	Source: forkliftv1beta1.Ref{Type: "pod"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "pod"},
}}

var storageMap = []forkliftv1beta1.StoragePair{{
	Source: forkliftv1beta1.Ref{Name: "cclm-local"}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: "cclm-local"},
}}

// statusIn is the VM's recorded status with every task before task
// Completed (Initialize's annotations recorded), task Running since
// started, the rest Pending.
func statusIn(task string, started time.Duration) forkliftv1beta1.VMStatus {
	status := forkliftv1beta1.VMStatus{
		Ref:      forkliftv1beta1.Ref{Name: vmName, Namespace: sourceNamespace},
		Pipeline: NewPipeline(),
	}
	index := taskIndex(task)
	if index > 0 {
		status.ID = vmUID
		status.Started = mtp(-time.Minute)
	}
	for i := range Tasks {
		s := taskAt(status.Pipeline, i)
		switch {
		case i < index && i != cleanupIndex:
			s.Phase, s.Started, s.Completed = PhaseCompleted, mtp(-time.Minute), mtp(-time.Minute)
		case i == index:
			s.Phase, s.Started = PhaseRunning, mtp(started)
		}
	}
	annotations := map[int]map[string]string{
		0: {
			AnnotationSourceNode: "ocp7-worker-0", AnnotationRunStrategy: "Always",
			AnnotationMACs: "default=" + mac, AnnotationMemoryBytes: "134217728",
		},
		createVolumesIndex:                   {AnnotationDiskBytes: "268435456"},
		taskIndex(TaskCreateTargetMigration): {AnnotationConnectURL: connectURL},
	}
	for at, recorded := range annotations {
		if index > at {
			taskAt(status.Pipeline, at).Annotations = recorded
		}
	}
	rollUp(&status)
	return status
}

// inCleanup is a status in Cleanup for outcome, after Migrate (for a
// success) or after a failed CreateReceiver.
func inCleanup(outcome string, started time.Duration) forkliftv1beta1.VMStatus {
	from := TaskCreateReceiver
	if outcome == VMSucceeded || outcome == VMPhaseCompleted {
		from = TaskCleanup
	}
	status := statusIn(from, -time.Minute)
	if from != TaskCleanup {
		failed := taskAt(status.Pipeline, taskIndex(from))
		failed.Phase, failed.Completed = PhaseFailed, mtp(-time.Minute)
		if outcome == VMFailed {
			failed.Error = &forkliftv1beta1.Error{Phase: PhaseCreateTarget, Reasons: []string{"boom"}}
			status.Error = failed.Error.DeepCopy()
		}
	}
	cleanup := taskAt(status.Pipeline, cleanupIndex)
	cleanup.Phase, cleanup.Started = PhaseRunning, mtp(started)
	cleanup.Annotations = map[string]string{AnnotationOutcome: outcome}
	rollUp(&status)
	return status
}

type obsOption func(*VMObserved)

// observe is the observation of status at now with the source VM running
// and its disk on the source, nothing on the target but the namespace.
func observe(status forkliftv1beta1.VMStatus, now time.Duration, options ...obsOption) VMObserved {
	obs := VMObserved{
		Now: at(now), Status: status, MayStart: true,
		PlanUID: planUID, MigrationUID: migrationUID, TargetNamespace: targetNamespace,
		NetworkMap: networkMap, StorageMap: storageMap,
		Inventory: NeedsInventory(status), Volumes: NeedsVolumes(status),
		Trust: trustedBothWays(), VirtNamespace: DefaultVirtNamespace,
		Source: SourceView{ClusterView{
			VM: sourceVM(), VMI: sourceVMI(kubevirtv1.Running),
			DataVolumes: map[string]*cdiv1beta1.DataVolume{dataVolume: blankDV("256Mi", nil)},
			PVCs:        map[string]*corev1.PersistentVolumeClaim{dataVolume: sourcePVC("256Mi")},
		}},
		Target: TargetView{
			Namespace: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: targetNamespace}},
			ClusterView: ClusterView{
				DataVolumes: map[string]*cdiv1beta1.DataVolume{}, PVCs: map[string]*corev1.PersistentVolumeClaim{},
				Resources: map[ResourceRef]client.Object{},
			},
		},
	}
	for _, option := range options {
		option(&obs)
	}
	return obs
}

func sourceErr(message string) obsOption {
	return func(o *VMObserved) { o.Source = SourceView{ClusterView: ClusterView{Err: message}} }
}

func noSourceVM(o *VMObserved) { o.Source.VM, o.Source.VMI = nil, nil }

func withSourceVMI(phase kubevirtv1.VirtualMachineInstancePhase) obsOption {
	return func(o *VMObserved) { o.Source.VMI = sourceVMI(phase) }
}

func canceled(o *VMObserved) { o.Cancel = true }

func withoutInventory(o *VMObserved) { o.Inventory, o.Volumes = false, false }

func withoutVolumes(o *VMObserved) { o.Volumes = false }

func withoutNamespace(o *VMObserved) { o.Target.Namespace = nil }

func withTargetDV(labels map[string]string) obsOption {
	return func(o *VMObserved) {
		dv := volumeObject(PlannedVolume{Kind: VolumeDataVolume, Name: dataVolume, Size: resource.MustParse("256Mi"), StorageClass: "cclm-local"}, targetNamespace, labels)
		o.Target.DataVolumes[dataVolume] = dv.(*cdiv1beta1.DataVolume)
	}
}

func withTargetVM(labels map[string]string) obsOption {
	return func(o *VMObserved) {
		o.Target.VM = &kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: vmName, Namespace: targetNamespace, Labels: labels}}
	}
}

func withTargetVMI(phase kubevirtv1.VirtualMachineInstancePhase) obsOption {
	return func(o *VMObserved) {
		o.Target.VMI = &kubevirtv1.VirtualMachineInstance{
			ObjectMeta: metav1.ObjectMeta{Name: vmName, Namespace: targetNamespace, Labels: ours()},
			Status:     kubevirtv1.VirtualMachineInstanceStatus{Phase: phase, Reason: "it broke"},
		}
		if phase == kubevirtv1.Running {
			o.Target.VMI.Status.NodeName = "ocp1-worker-0"
		}
	}
}

type vmimOption func(*kubevirtv1.VirtualMachineInstanceMigration)

func vmim(namespace string, phase kubevirtv1.VirtualMachineInstanceMigrationPhase, options ...vmimOption) *kubevirtv1.VirtualMachineInstanceMigration {
	m := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: vmimName, Namespace: namespace, Labels: ours()},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: vmName},
		Status:     kubevirtv1.VirtualMachineInstanceMigrationStatus{Phase: phase},
	}
	for _, option := range options {
		option(m)
	}
	return m
}

func addressed(m *kubevirtv1.VirtualMachineInstanceMigration) {
	m.Status.SynchronizationAddresses = []string{connectURL}
}

func failedWith(reason string) vmimOption {
	return func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		m.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{Failed: true, FailureReason: reason}
	}
}

func foreign(m *kubevirtv1.VirtualMachineInstanceMigration) { m.Labels = nil }

// queuedFor: the migration controller queued the migration (reason,
// e.g. kubevirtv1.MigrationReasonClusterLimit), saying message.
func queuedFor(reason, message string) vmimOption {
	return func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		m.Status.Conditions = append(m.Status.Conditions, kubevirtv1.VirtualMachineInstanceMigrationCondition{
			Type: kubevirtv1.VirtualMachineInstanceMigrationWaiting, Status: corev1.ConditionTrue, Reason: reason, Message: message,
		})
	}
}

func deleting(m *kubevirtv1.VirtualMachineInstanceMigration) {
	m.DeletionTimestamp = mtp(0)
	m.Finalizers = []string{"kubevirt.io/migrationJobFinalize"}
}

func progress(transferred, total, remaining int64) vmimOption {
	return func(m *kubevirtv1.VirtualMachineInstanceMigration) {
		m.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{Progress: &kubevirtv1.MigrationProgress{
			TransferredBytes: transferred, TotalBytes: total, RemainingBytes: remaining,
			DirtyRateBytesPerSecond: 1 << 20, Iteration: 3, DowntimeMs: 25,
		}}
	}
}

func withTargetVMIM(phase kubevirtv1.VirtualMachineInstanceMigrationPhase, options ...vmimOption) obsOption {
	return func(o *VMObserved) { o.Target.VMIM = vmim(targetNamespace, phase, options...) }
}

func withSourceVMIM(phase kubevirtv1.VirtualMachineInstanceMigrationPhase, options ...vmimOption) obsOption {
	return func(o *VMObserved) { o.Source.VMIM = vmim(sourceNamespace, phase, options...) }
}

func withLastError(step, message string, permanent bool) obsOption {
	return func(o *VMObserved) { o.LastError = &ActionError{Step: step, Message: message, Permanent: permanent} }
}
