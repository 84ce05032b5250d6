package virtcontroller

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

func blankDV(storage *cdiv1beta1.StorageSpec) *cdiv1beta1.DataVolume {
	return &cdiv1beta1.DataVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "disk", Namespace: "ns", Labels: map[string]string{"app": "x"}},
		Spec:       cdiv1beta1.DataVolumeSpec{Source: &cdiv1beta1.DataVolumeSource{Blank: &cdiv1beta1.DataVolumeBlankImage{}}, Storage: storage},
	}
}

func sized(q string) corev1.VolumeResourceRequirements {
	return corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(q)}}
}

func TestUnsupportedSource(t *testing.T) {
	for _, tc := range []struct {
		name   string
		source *cdiv1beta1.DataVolumeSource
		want   string // substring; "" means supported
	}{
		{"blank", &cdiv1beta1.DataVolumeSource{Blank: &cdiv1beta1.DataVolumeBlankImage{}}, ""},
		{"http", &cdiv1beta1.DataVolumeSource{HTTP: &cdiv1beta1.DataVolumeSourceHTTP{URL: "https://x/y.img"}}, "source http is not supported by cclm yet"},
		{"registry", &cdiv1beta1.DataVolumeSource{Registry: &cdiv1beta1.DataVolumeSourceRegistry{URL: "docker://x"}}, "source registry is not supported"},
		{"clone", &cdiv1beta1.DataVolumeSource{PVC: &cdiv1beta1.DataVolumeSourcePVC{Namespace: "a", Name: "b"}}, "source pvc (clone) is not supported"},
		{"missing", nil, "spec.source is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := unsupportedSource(tc.source)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if got != "" && !strings.Contains(got, "spec.source.blank: {}") {
				t.Errorf("%q does not say how to fix it", got)
			}
		})
	}
}

func TestDesiredPVC(t *testing.T) {
	block := corev1.PersistentVolumeBlock
	for _, tc := range []struct {
		name         string
		dv           *cdiv1beta1.DataVolume
		defaultClass string
		wantClass    *string
		wantModes    []corev1.PersistentVolumeAccessMode
		wantVolume   corev1.PersistentVolumeMode
		wantErr      error
	}{
		{
			name: "storage gets CDI's defaults", dv: blankDV(&cdiv1beta1.StorageSpec{Resources: sized("1Gi")}), defaultClass: "cclm-local",
			wantClass: ptr.To("cclm-local"), wantModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, wantVolume: corev1.PersistentVolumeFilesystem,
		},
		{
			name: "what storage says wins",
			dv: blankDV(&cdiv1beta1.StorageSpec{Resources: sized("1Gi"), StorageClassName: ptr.To("fast"),
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, VolumeMode: &block}),
			defaultClass: "cclm-local",
			wantClass:    ptr.To("fast"), wantModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, wantVolume: block,
		},
		{
			name: "an empty class means none, not the default", dv: blankDV(&cdiv1beta1.StorageSpec{Resources: sized("1Gi"), StorageClassName: ptr.To("")}), defaultClass: "cclm-local",
			wantClass: ptr.To(""), wantModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, wantVolume: corev1.PersistentVolumeFilesystem,
		},
		{
			name: "no class and no default", dv: blankDV(&cdiv1beta1.StorageSpec{Resources: sized("1Gi")}),
			wantErr: errNoStorageClass,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pvc, err := desiredPVC(tc.dv, tc.defaultClass)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if pvc.Name != "disk" || pvc.Namespace != "ns" || pvc.Labels["app"] != "x" {
				t.Errorf("metadata = %+v", pvc.ObjectMeta)
			}
			size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			if size.String() != "1Gi" || *pvc.Spec.StorageClassName != *tc.wantClass || *pvc.Spec.VolumeMode != tc.wantVolume ||
				len(pvc.Spec.AccessModes) != 1 || pvc.Spec.AccessModes[0] != tc.wantModes[0] {
				t.Errorf("spec = %+v", pvc.Spec)
			}
		})
	}
	verbatim := blankDV(nil)
	verbatim.Spec.PVC = &corev1.PersistentVolumeClaimSpec{Resources: sized("2Gi")}
	pvc, err := desiredPVC(verbatim, "cclm-local")
	if err != nil || pvc.Spec.StorageClassName != nil || len(pvc.Spec.AccessModes) != 0 {
		t.Errorf("spec.pvc must be taken as is (the apiserver defaults the class): %+v, %v", pvc.Spec, err)
	}
}

func TestJudgeDataVolume(t *testing.T) {
	pvc := func(phase corev1.PersistentVolumeClaimPhase) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "disk"}, Status: corev1.PersistentVolumeClaimStatus{Phase: phase}}
	}
	for _, tc := range []struct {
		name       string
		obs        dvObservation
		want       cdiv1beta1.DataVolumePhase
		wantReason string
	}{
		{"unsupported source", dvObservation{SourceProblem: "source http is not supported"}, cdiv1beta1.Failed, "UnsupportedSource"},
		{"no class", dvObservation{ClaimProblem: errNoStorageClass.Error()}, cdiv1beta1.Pending, "ClaimNotCreated"},
		{"no PVC yet", dvObservation{}, cdiv1beta1.Pending, "ClaimPending"},
		{"PVC new, late binding", dvObservation{PVC: pvc(""), WaitForFirstConsumer: true}, cdiv1beta1.WaitForFirstConsumer, "WaitForFirstConsumer"},
		{"PVC pending, late binding", dvObservation{PVC: pvc(corev1.ClaimPending), WaitForFirstConsumer: true}, cdiv1beta1.WaitForFirstConsumer, "WaitForFirstConsumer"},
		{"PVC pending, immediate binding", dvObservation{PVC: pvc(corev1.ClaimPending)}, cdiv1beta1.Pending, "Pending"},
		{"PVC bound", dvObservation{PVC: pvc(corev1.ClaimBound), WaitForFirstConsumer: true}, cdiv1beta1.Succeeded, "Bound"},
		{"PVC lost", dvObservation{PVC: pvc(corev1.ClaimLost)}, cdiv1beta1.Failed, "ClaimLost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.DV, tc.obs.Now = blankDV(nil), testNow
			status := dataVolumeStatus(tc.obs)
			ready := dvCondition(&cdiv1beta1.DataVolume{Status: status}, cdiv1beta1.DataVolumeReady)
			if status.Phase != tc.want || ready == nil || ready.Reason != tc.wantReason || ready.Message == "" {
				t.Errorf("phase %s, Ready %+v; want %s/%s", status.Phase, ready, tc.want, tc.wantReason)
			}
			if (ready.Status == corev1.ConditionTrue) != (tc.want == cdiv1beta1.Succeeded) {
				t.Errorf("Ready is %s in phase %s", ready.Status, status.Phase)
			}
		})
	}
}

func TestDataVolumeStatusKeepsTransitionTimes(t *testing.T) {
	earlier := metav1.NewTime(testNow.Add(-time.Hour))
	dv := blankDV(nil)
	dv.Status.Conditions = []cdiv1beta1.DataVolumeCondition{{Type: cdiv1beta1.DataVolumeBound, Status: corev1.ConditionFalse, LastTransitionTime: earlier}}
	pending := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "disk"}}
	status := dataVolumeStatus(dvObservation{DV: dv, PVC: pending, WaitForFirstConsumer: true, Now: testNow})
	if bound := dvCondition(&cdiv1beta1.DataVolume{Status: status}, cdiv1beta1.DataVolumeBound); !bound.LastTransitionTime.Equal(&earlier) {
		t.Errorf("Bound stayed False but its time moved: %+v", bound)
	}
	dv.Status = status
	pending.Status.Phase = corev1.ClaimBound
	status = dataVolumeStatus(dvObservation{DV: dv, PVC: pending, Now: testNow})
	if bound := dvCondition(&cdiv1beta1.DataVolume{Status: status}, cdiv1beta1.DataVolumeBound); bound.Status != corev1.ConditionTrue || !bound.LastTransitionTime.Time.Equal(testNow) {
		t.Errorf("Bound turned True, its time must be now: %+v", bound)
	}
}

func TestDataVolumeReadiness(t *testing.T) {
	dv := func(phase cdiv1beta1.DataVolumePhase) *cdiv1beta1.DataVolume {
		d := blankDV(nil)
		d.Status.Phase = phase
		return d
	}
	failed := dv(cdiv1beta1.Failed)
	failed.Status.Conditions = []cdiv1beta1.DataVolumeCondition{{Type: cdiv1beta1.DataVolumeReady, Message: "source http is not supported"}}
	readiness := dataVolumeReadiness(
		[]string{"ok", "wffc", "missing", "new", "failed"},
		map[string]*cdiv1beta1.DataVolume{
			"ok": dv(cdiv1beta1.Succeeded), "wffc": dv(cdiv1beta1.WaitForFirstConsumer), "missing": nil,
			"new": dv(""), "failed": failed,
		})
	wantPending := "DataVolume missing does not exist yet; DataVolume new is new (no phase yet)"
	if got := strings.Join(readiness.Pending, "; "); got != wantPending {
		t.Errorf("pending = %q, want %q", got, wantPending)
	}
	if got := strings.Join(readiness.Failed, "; "); got != "DataVolume failed failed: source http is not supported" {
		t.Errorf("failed = %q", got)
	}
	if !readiness.Referenced || readiness.ready() {
		t.Errorf("readiness = %+v", readiness)
	}
	if none := dataVolumeReadiness(nil, nil); none.Referenced || !none.ready() {
		t.Errorf("no DataVolumes: %+v", none)
	}
}

func TestNewVMIAndDataVolume(t *testing.T) {
	vm := testVM(kubevirtv1.RunStrategyAlways)
	vm.Spec.Template.ObjectMeta = kubevirtv1.TemplateObjectMeta{Labels: map[string]string{"app": "x"}, Annotations: map[string]string{"a": "b"}}
	vm.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "nvme"}

	vmi := newVMI(vm, false)
	ref := vmi.OwnerReferences[0]
	if vmi.Name != "vm" || vmi.Namespace != "ns" || vmi.Labels["app"] != "x" || vmi.Annotations["a"] != "b" || vmi.Spec.NodeSelector["disk"] != "nvme" {
		t.Errorf("VMI = %+v", vmi)
	}
	if ref.Kind != "VirtualMachine" || ref.APIVersion != "kubevirt.io/v1" || ref.UID != vm.UID || !*ref.Controller || !*ref.BlockOwnerDeletion {
		t.Errorf("owner = %+v", ref)
	}
	if isReceiver(vmi) {
		t.Error("a plain VMI is no receiver")
	}
	vmi.Labels["changed"] = "yes"
	if _, shared := vm.Spec.Template.ObjectMeta.Labels["changed"]; shared {
		t.Error("the VMI shares its labels map with the VM")
	}
	if receiver := newVMI(vm, true); receiver.Annotations[kubevirtv1.CreateMigrationTargetAnnotation] != "true" || !isReceiver(receiver) {
		t.Errorf("receiver annotations = %v", receiver.Annotations)
	}

	template := kubevirtv1.DataVolumeTemplateSpec{
		ObjectMeta: kubevirtv1.DataVolumeTemplateObjectMeta{Name: "disk", Labels: map[string]string{"l": "v"}},
		Spec:       blankDV(&cdiv1beta1.StorageSpec{Resources: sized("1Gi")}).Spec,
	}
	dv := newDataVolume(vm, &template)
	if dv.Name != "disk" || dv.Namespace != "ns" || dv.Labels["l"] != "v" || dv.OwnerReferences[0].UID != vm.UID || dv.Spec.Source.Blank == nil {
		t.Errorf("DataVolume = %+v", dv)
	}
}

func TestWithPhaseRecordsEachTransitionOnce(t *testing.T) {
	now := metav1.NewTime(testNow)
	status := withPhase(kubevirtv1.VirtualMachineInstanceStatus{}, kubevirtv1.Pending, now)
	status = withPhase(status, kubevirtv1.Pending, now)
	status = withPhase(status, kubevirtv1.Scheduled, now)
	if status.Phase != kubevirtv1.Scheduled || len(status.PhaseTransitionTimestamps) != 2 {
		t.Errorf("status = %+v", status)
	}
}
