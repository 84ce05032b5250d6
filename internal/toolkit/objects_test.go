package toolkit

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/randfill"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// The receiving VM is the source VM whole but for the documented changes:
// VMs with every field of the API filled at random (every pointer set in
// the first rounds, then some left nil) arrive equal to the source with
// only those changes applied, here written out again independently of
// receiverVM. A field added to the API that receiverVM forgot to carry,
// or one it changes undocumented, fails this.
func TestReceiverVMKeepsEveryField(t *testing.T) {
	ours := map[string]string{LabelPlan: "p", LabelMigration: "m", LabelVMID: "id"}
	for round := range 300 {
		nilChance := 0.0
		if round >= 50 {
			nilChance = 0.3
		}
		source := randomVM(int64(round), nilChance)
		networkMap, storageMap := identityMaps(source)
		got, err := receiverVM(receiverInput{
			Source: source, TargetNamespace: "moved", MACs: map[string]string{},
			RunStrategy: kubevirtv1.RunStrategyRerunOnFailure,
			NetworkMap:  networkMap, StorageMap: storageMap, Labels: ours,
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		want := withDocumentedChanges(source, "moved", ours, kubevirtv1.RunStrategyRerunOnFailure)
		if !equality.Semantic.DeepEqual(got, want) {
			t.Fatalf("round %d: the receiving VM differs from the source beyond the documented changes (-want +got):\n%s", round, cmp.Diff(want, got))
		}
	}
}

// randomVM is a VM with every field filled from seed; each network is
// either the pod network or a Multus one, as the API allows.
func randomVM(seed int64, nilChance float64) *kubevirtv1.VirtualMachine {
	f := randfill.NewWithSeed(seed).NilChance(nilChance).NumElements(1, 3).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewQuantity(c.Int63n(1<<40), resource.BinarySI)
		},
		func(t *metav1.Time, c randfill.Continue) { *t = metav1.Unix(c.Int63n(1<<31), 0) },
		func(n *kubevirtv1.Network, c randfill.Continue) {
			c.Fill(&n.Name)
			n.Pod, n.Multus = nil, nil
			if c.Bool() {
				n.Pod = &kubevirtv1.PodNetwork{}
			} else {
				name := fmt.Sprintf("net-%d", c.Intn(100))
				if c.Bool() {
					name = "elsewhere/" + name
				}
				n.Multus = &kubevirtv1.MultusNetwork{NetworkName: name}
			}
		},
	)
	vm := &kubevirtv1.VirtualMachine{}
	f.Fill(vm)
	vm.Status = kubevirtv1.VirtualMachineStatus{}
	if vm.Spec.Template == nil {
		vm.Spec.Template = &kubevirtv1.VirtualMachineInstanceTemplateSpec{}
	}
	return vm
}

// identityMaps map every network and storage class of vm to itself, so
// that the mapping changes nothing and what changes is receiverVM's own.
func identityMaps(vm *kubevirtv1.VirtualMachine) ([]forkliftv1beta1.NetworkPair, []forkliftv1beta1.StoragePair) {
	networks := []forkliftv1beta1.NetworkPair{{Source: forkliftv1beta1.Ref{Type: "pod"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "pod"}}}
	for _, n := range vm.Spec.Template.Spec.Networks {
		if n.Multus == nil {
			continue
		}
		namespace, name := splitNetworkName(n.Multus.NetworkName, vm.Namespace)
		destination := forkliftv1beta1.DestinationNetwork{Type: "multus", Name: name}
		if strings.Contains(n.Multus.NetworkName, "/") {
			destination.Namespace = namespace
		}
		networks = append(networks, forkliftv1beta1.NetworkPair{Source: forkliftv1beta1.Ref{Name: name, Namespace: namespace}, Destination: destination})
	}
	var classes []forkliftv1beta1.StoragePair
	for _, dv := range vm.Spec.DataVolumeTemplates {
		if class := storageClassOf(dv.Spec); class != nil {
			classes = append(classes, forkliftv1beta1.StoragePair{Source: forkliftv1beta1.Ref{Name: *class}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: *class}})
		}
	}
	return networks, classes
}

func storageClassOf(spec cdiv1beta1.DataVolumeSpec) *string {
	switch {
	case spec.Storage != nil:
		return spec.Storage.StorageClassName
	case spec.PVC != nil:
		return spec.PVC.StorageClassName
	}
	return nil
}

// withDocumentedChanges is source as it must arrive: receiverVM's doc
// comment, item by item.
func withDocumentedChanges(source *kubevirtv1.VirtualMachine, namespace string, ours map[string]string, restore kubevirtv1.VirtualMachineRunStrategy) *kubevirtv1.VirtualMachine {
	want := &kubevirtv1.VirtualMachine{Spec: *source.Spec.DeepCopy()}
	want.Name, want.Namespace = source.Name, namespace
	want.Labels = withOurs(source.Labels, ours)
	want.Annotations = map[string]string{}
	for k, v := range source.Annotations {
		want.Annotations[k] = v
	}
	delete(want.Annotations, kubevirtv1.StartFailureAnnotation)
	want.Annotations[kubevirtv1.RestoreRunStrategyAnnotation] = string(restore)
	want.Spec.Running, want.Spec.RunStrategy = nil, ptr.To(kubevirtv1.RunStrategyWaitAsReceiver)
	want.Spec.Template.ObjectMeta.Labels = withOurs(source.Spec.Template.ObjectMeta.Labels, ours)
	// dataVolumeTemplates stay: the identity StorageMap gives each the
	// class it had.
	return want
}

func withOurs(labels, ours map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		out[k] = v
	}
	for k, v := range ours {
		out[k] = v
	}
	return out
}

// A DataVolume template's storage follows the StorageMap, as the
// DataVolume CreateVolumes made does.
func TestReceiverVMMapsDataVolumeTemplates(t *testing.T) {
	source := sourceVM()
	source.Spec.DataVolumeTemplates = []kubevirtv1.DataVolumeTemplateSpec{
		{ObjectMeta: kubevirtv1.DataVolumeTemplateObjectMeta{Name: "a", Labels: map[string]string{"tier": "gold"}}, Spec: cdiv1beta1.DataVolumeSpec{
			Storage: &cdiv1beta1.StorageSpec{StorageClassName: ptr.To("cclm-local"), AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
		}},
		{ObjectMeta: kubevirtv1.DataVolumeTemplateObjectMeta{Name: "b"}, Spec: cdiv1beta1.DataVolumeSpec{PVC: &corev1.PersistentVolumeClaimSpec{}}},
	}
	storageMap := []forkliftv1beta1.StoragePair{{Source: forkliftv1beta1.Ref{Name: "cclm-local"}, Destination: forkliftv1beta1.DestinationStorage{
		StorageClass: "fast", AccessMode: corev1.ReadWriteMany, VolumeMode: corev1.PersistentVolumeBlock,
	}}}
	vm, err := receiverVM(receiverInput{Source: source, TargetNamespace: "dst", NetworkMap: networkMap, StorageMap: storageMap})
	if err != nil {
		t.Fatal(err)
	}
	a, b := vm.Spec.DataVolumeTemplates[0], vm.Spec.DataVolumeTemplates[1]
	got := fmt.Sprintf("%s %v %s %v", *a.Spec.Storage.StorageClassName, a.Spec.Storage.AccessModes, *a.Spec.Storage.VolumeMode, a.ObjectMeta.Labels)
	if got != "fast [ReadWriteMany] Block map[tier:gold]" {
		t.Errorf("template a: %s", got)
	}
	if b.Spec.PVC.StorageClassName != nil {
		t.Errorf("template b names no class and must keep none: %v", *b.Spec.PVC.StorageClassName)
	}
}

// A VM's references: each Secret and ConfigMap its volumes name once (an
// optional one stays optional only if every volume naming it is), then
// its instancetype and preference.
func TestReferencedResources(t *testing.T) {
	vm := sourceVM()
	vm.Spec.Instancetype = &kubevirtv1.InstancetypeMatcher{Name: "u1.small"}
	vm.Spec.Preference = &kubevirtv1.PreferenceMatcher{Name: "p", Kind: kubevirtv1.SingularPreference}
	vm.Spec.Template.Spec.Volumes = append(vm.Spec.Template.Spec.Volumes,
		kubevirtv1.Volume{Name: "s1", Secret: &kubevirtv1.SecretVolumeSource{SecretName: "creds", Optional: ptr.To(true)}},
		kubevirtv1.Volume{Name: "c", ConfigMap: &kubevirtv1.ConfigMapVolumeSource{Name: "settings", Optional: ptr.To(true)}},
		kubevirtv1.Volume{Name: "ci", CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{SecretRef: &kubevirtv1.LocalObjectReference{Name: "creds"}, NetworkDataSecretRef: &kubevirtv1.LocalObjectReference{Name: "net"}}},
		kubevirtv1.Volume{Name: "sys", Sysprep: &kubevirtv1.SysprepSource{ConfigMap: &kubevirtv1.LocalObjectReference{Name: "unattend"}}},
	)
	got := fmt.Sprint(ReferencedResources(vm))
	want := "[Secret creds ConfigMap settings Secret net ConfigMap unattend VirtualMachineClusterInstancetype u1.small VirtualMachinePreference p]"
	if got != want {
		t.Errorf("references %s, want %s", got, want)
	}
	refs := ReferencedResources(vm)
	if refs[0].Optional || !refs[1].Optional {
		t.Errorf("optional: creds %v (a cloud-init secretRef needs it), settings %v", refs[0].Optional, refs[1].Optional)
	}
}

// The plan's targetLabels and targetNodeSelector reach the target VM's
// template; the toolkit's labels win, and a node selector key the VM sets
// otherwise fails it by name.
func TestReceiverVMTakesThePlansTargetLabelsAndNodeSelector(t *testing.T) {
	source := sourceVM()
	source.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	in := receiverInput{Source: source, TargetNamespace: "dst", NetworkMap: networkMap,
		Labels:       map[string]string{LabelPlan: "p"},
		TargetLabels: map[string]string{"team": "blue", LabelPlan: "spoofed"}, TargetNodeSelector: map[string]string{"zone": "a"},
	}
	vm, err := receiverVM(in)
	if err != nil {
		t.Fatal(err)
	}
	template := vm.Spec.Template
	if template.ObjectMeta.Labels["team"] != "blue" || template.ObjectMeta.Labels[LabelPlan] != "p" || template.Spec.NodeSelector["zone"] != "a" || template.Spec.NodeSelector["disk"] != "ssd" {
		t.Errorf("template labels %v, node selector %v", template.ObjectMeta.Labels, template.Spec.NodeSelector)
	}
	if source.Spec.Template.Spec.NodeSelector["zone"] != "" {
		t.Error("the source VM was changed")
	}
	in.TargetNodeSelector = map[string]string{"disk": "hdd"}
	if _, err := receiverVM(in); err == nil || !strings.Contains(err.Error(), "spec.targetNodeSelector disk=hdd conflicts with VM src/vm1's nodeSelector disk=ssd") {
		t.Errorf("conflict: %v", err)
	}
}
