package scheduling

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// testNode is a ready, schedulable node with 4Gi memory and 10Gi storage,
// changed by the options.
func testNode(name string, options ...func(*corev1.Node)) corev1.Node {
	node := corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			SchedulableLabel: "true", "kubernetes.io/hostname": name,
		}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Allocatable: corev1.ResourceList{
				corev1.ResourceMemory:           resource.MustParse("4Gi"),
				corev1.ResourceEphemeralStorage: resource.MustParse("10Gi"),
			},
		},
	}
	for _, option := range options {
		option(&node)
	}
	return node
}

func withLabel(key, value string) func(*corev1.Node) {
	return func(n *corev1.Node) { n.Labels[key] = value }
}

func withMemory(q string) func(*corev1.Node) {
	return func(n *corev1.Node) { n.Status.Allocatable[corev1.ResourceMemory] = resource.MustParse(q) }
}

func withStorage(q string) func(*corev1.Node) {
	return func(n *corev1.Node) { n.Status.Allocatable[corev1.ResourceEphemeralStorage] = resource.MustParse(q) }
}

func notReady(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }

// testVMI is a VMI with 1Gi of guest memory, changed by the options.
func testVMI(name string, options ...func(*kubevirtv1.VirtualMachineInstance)) *kubevirtv1.VirtualMachineInstance {
	guest := resource.MustParse("1Gi")
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{
			Memory: &kubevirtv1.Memory{Guest: &guest},
		}},
	}
	for _, option := range options {
		option(vmi)
	}
	return vmi
}

func withGuestMemory(q string) func(*kubevirtv1.VirtualMachineInstance) {
	return func(vmi *kubevirtv1.VirtualMachineInstance) {
		guest := resource.MustParse(q)
		vmi.Spec.Domain.Memory.Guest = &guest
	}
}

func onNode(node string, phase kubevirtv1.VirtualMachineInstancePhase) func(*kubevirtv1.VirtualMachineInstance) {
	return func(vmi *kubevirtv1.VirtualMachineInstance) {
		vmi.Status.NodeName, vmi.Status.Phase = node, phase
	}
}

func withCPU(model string, features ...kubevirtv1.CPUFeature) func(*kubevirtv1.VirtualMachineInstance) {
	return func(vmi *kubevirtv1.VirtualMachineInstance) {
		vmi.Spec.Domain.CPU = &kubevirtv1.CPU{Model: model, Features: features}
	}
}

func withClaim(claim string) func(*kubevirtv1.VirtualMachineInstance) {
	return func(vmi *kubevirtv1.VirtualMachineInstance) {
		vmi.Spec.Volumes = append(vmi.Spec.Volumes, kubevirtv1.Volume{
			Name: claim, PersistentVolumeClaim: &kubevirtv1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		})
	}
}

func withDataVolume(name string) func(*kubevirtv1.VirtualMachineInstance) {
	return func(vmi *kubevirtv1.VirtualMachineInstance) {
		vmi.Spec.Volumes = append(vmi.Spec.Volumes, kubevirtv1.Volume{
			Name: name, DataVolume: &kubevirtv1.DataVolumeSource{Name: name},
		})
	}
}

func testPVC(name, size, volume, selectedNode string) corev1.PersistentVolumeClaim {
	pvc := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Annotations: map[string]string{}},
		Spec: corev1.PersistentVolumeClaimSpec{
			VolumeName: volume,
			Resources:  corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
	if selectedNode != "" {
		pvc.Annotations[SelectedNodeAnnotation] = selectedNode
	}
	return pvc
}

// localPV is a PV on node, as the node agent makes it.
func localPV(name, size, node string) corev1.PersistentVolume {
	return corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
				}}}},
			}},
		},
	}
}

func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		name  string
		vmi   *kubevirtv1.VirtualMachineInstance
		nodes []corev1.Node
		vmis  []kubevirtv1.VirtualMachineInstance
		pvcs  []corev1.PersistentVolumeClaim
		pvs   []corev1.PersistentVolume
		// wantNode "" means unschedulable; wantReason are substrings of
		// the reason.
		wantNode   string
		wantReason []string
	}{
		{
			name:       "no nodes at all",
			vmi:        testVMI("a"),
			wantReason: []string{"0/0 nodes are available", "node agent"},
		},
		{
			name:     "ties go to the node with the fewest VMIs",
			vmi:      testVMI("a"),
			nodes:    []corev1.Node{testNode("n1"), testNode("n2")},
			vmis:     []kubevirtv1.VirtualMachineInstance{*testVMI("b", onNode("n1", kubevirtv1.Running))},
			wantNode: "n2",
		},
		{
			name:       "then to the first by name",
			vmi:        testVMI("a"),
			nodes:      []corev1.Node{testNode("n2"), testNode("n1")},
			wantNode:   "n1",
			wantReason: []string{"2/2 nodes fit"},
		},
		{
			name:     "ended VMIs hold nothing",
			vmi:      testVMI("a"),
			nodes:    []corev1.Node{testNode("n1"), testNode("n2")},
			vmis:     []kubevirtv1.VirtualMachineInstance{*testVMI("b", onNode("n1", kubevirtv1.Succeeded)), *testVMI("c", onNode("n2", kubevirtv1.Scheduled))},
			wantNode: "n1",
		},
		{
			name:  "not ready, not schedulable, cordoned",
			vmi:   testVMI("a"),
			nodes: []corev1.Node{testNode("n1", notReady), testNode("n2", withLabel(SchedulableLabel, "false")), testNode("n3", func(n *corev1.Node) { n.Spec.Unschedulable = true })},
			wantReason: []string{
				"0/3 nodes are available: 1 node(s) were not labelled kubevirt.io/schedulable=true, 1 node(s) were not ready, 1 node(s) were unschedulable.",
				"n1: Ready is False", "n3: cordoned",
			},
		},
		{
			name:     "node selector",
			vmi:      testVMI("a", func(v *kubevirtv1.VirtualMachineInstance) { v.Spec.NodeSelector = map[string]string{"disk": "nvme"} }),
			nodes:    []corev1.Node{testNode("n1"), testNode("n2", withLabel("disk", "nvme"))},
			wantNode: "n2",
		},
		{
			name:       "node selector matching no node",
			vmi:        testVMI("a", func(v *kubevirtv1.VirtualMachineInstance) { v.Spec.NodeSelector = map[string]string{"disk": "nvme"} }),
			nodes:      []corev1.Node{testNode("n1"), testNode("n2", withLabel("disk", "hdd"))},
			wantReason: []string{"0/2 nodes are available: 2 node(s) didn't match the VMI's node selector.", "n1: lacks label disk=nvme"},
		},
		{
			name:     "a named CPU model needs the node's model label",
			vmi:      testVMI("a", withCPU("Haswell-v4")),
			nodes:    []corev1.Node{testNode("n1"), testNode("n2", withLabel(CPUModelLabelPrefix+"Haswell-v4", "true"))},
			wantNode: "n2",
		},
		{
			name:     "host-model needs no label",
			vmi:      testVMI("a", withCPU("host-model")),
			nodes:    []corev1.Node{testNode("n1")},
			wantNode: "n1",
		},
		{
			name:       "a CPU model no node has",
			vmi:        testVMI("a", withCPU("Skylake-Server")),
			nodes:      []corev1.Node{testNode("n1", withLabel(CPUModelLabelPrefix+"Haswell-v4", "true"))},
			wantReason: []string{"1 node(s) didn't support CPU model Skylake-Server", "no label cpu-model.node.kubevirt.io/Skylake-Server=true"},
		},
		{
			name: "required features need labels, optional ones do not",
			vmi: testVMI("a", withCPU("", kubevirtv1.CPUFeature{Name: "vmx"},
				kubevirtv1.CPUFeature{Name: "avx512f", Policy: "optional"})),
			nodes:    []corev1.Node{testNode("n1"), testNode("n2", withLabel(CPUFeatureLabelPrefix+"vmx", "true"))},
			wantNode: "n2",
		},
		{
			name:       "a required feature no node has",
			vmi:        testVMI("a", withCPU("", kubevirtv1.CPUFeature{Name: "vmx", Policy: "require"})),
			nodes:      []corev1.Node{testNode("n1")},
			wantReason: []string{"1 node(s) lacked required CPU features", "n1: lacks vmx"},
		},
		{
			name:     "memory: the node's VMIs count, an exact fit fits",
			vmi:      testVMI("a", withGuestMemory("2Gi")),
			nodes:    []corev1.Node{testNode("n1", withMemory("3Gi")), testNode("n2", withMemory("3Gi"))},
			vmis:     []kubevirtv1.VirtualMachineInstance{*testVMI("b", withGuestMemory("2Gi"), onNode("n1", kubevirtv1.Running)), *testVMI("c", onNode("n2", kubevirtv1.Running))},
			wantNode: "n2",
		},
		{
			name:       "memory: too big for every node",
			vmi:        testVMI("a", withGuestMemory("8Gi")),
			nodes:      []corev1.Node{testNode("n1"), testNode("n2", withLabel("x", "y"))},
			wantReason: []string{"0/2 nodes are available: 2 Insufficient memory.", "n1: the guest needs 8Gi, 4Gi free of 4Gi"},
		},
		{
			name: "memory: capacity stands in for a missing allocatable",
			vmi:  testVMI("a", withGuestMemory("2Gi")),
			nodes: []corev1.Node{testNode("n1", func(n *corev1.Node) {
				delete(n.Status.Allocatable, corev1.ResourceMemory)
				n.Status.Capacity = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}
			})},
			wantNode: "n1",
		},
		{
			name:     "the VMI itself does not count against its node",
			vmi:      testVMI("a", withGuestMemory("4Gi"), onNode("", kubevirtv1.Pending)),
			nodes:    []corev1.Node{testNode("n1")},
			vmis:     []kubevirtv1.VirtualMachineInstance{*testVMI("a", withGuestMemory("4Gi"), onNode("n1", kubevirtv1.Scheduled))},
			wantNode: "n1",
		},
		{
			name:       "storage: a disk larger than any node's storage",
			vmi:        testVMI("a", withDataVolume("disk")),
			nodes:      []corev1.Node{testNode("n1"), testNode("n2", withStorage("20Gi"))},
			pvcs:       []corev1.PersistentVolumeClaim{testPVC("disk", "100Gi", "", "")},
			wantReason: []string{"0/2 nodes are available: 2 node(s) did not have enough free storage.", "n1: the VMI's new volumes need 100Gi, 10Gi free of 10Gi ephemeral-storage", "n2:"},
		},
		{
			name:  "storage: local PVs and other claims placed on the node use it up",
			vmi:   testVMI("a", withClaim("disk")),
			nodes: []corev1.Node{testNode("n1"), testNode("n2"), testNode("n3")},
			pvcs: []corev1.PersistentVolumeClaim{
				testPVC("disk", "5Gi", "", ""),
				testPVC("other", "6Gi", "", "n2"),
			},
			pvs:        []corev1.PersistentVolume{localPV("pv1", "6Gi", "n1")},
			vmis:       []kubevirtv1.VirtualMachineInstance{*testVMI("b", onNode("n3", kubevirtv1.Running))},
			wantNode:   "n3",
			wantReason: []string{"1/3 nodes fit"},
		},
		{
			name:     "storage: the VMI's own claim placed earlier is no one else's reservation",
			vmi:      testVMI("a", withClaim("disk")),
			nodes:    []corev1.Node{testNode("n1")},
			pvcs:     []corev1.PersistentVolumeClaim{testPVC("disk", "10Gi", "", "n1")},
			wantNode: "n1",
		},
		{
			name:  "a claim placed earlier keeps the VMI on that node",
			vmi:   testVMI("a", withClaim("disk")),
			nodes: []corev1.Node{testNode("n1"), testNode("n2")},
			pvcs:  []corev1.PersistentVolumeClaim{testPVC("disk", "1Gi", "", "n2")},
			vmis:  []kubevirtv1.VirtualMachineInstance{*testVMI("b", onNode("n2", kubevirtv1.Running))},
			// n1 has fewer VMIs, but the claim is being provisioned on n2.
			wantNode: "n2",
		},
		{
			name:     "a bound claim's local PV decides the node, and its size needs no room",
			vmi:      testVMI("a", withClaim("disk")),
			nodes:    []corev1.Node{testNode("n1"), testNode("n2", withStorage("1Gi"))},
			pvcs:     []corev1.PersistentVolumeClaim{testPVC("disk", "8Gi", "pv1", "n2")},
			pvs:      []corev1.PersistentVolume{localPV("pv1", "8Gi", "n2")},
			wantNode: "n2",
		},
		{
			name:       "a bound claim's node that does not fit otherwise",
			vmi:        testVMI("a", withClaim("disk"), withGuestMemory("8Gi")),
			nodes:      []corev1.Node{testNode("n1"), testNode("n2")},
			pvcs:       []corev1.PersistentVolumeClaim{testPVC("disk", "1Gi", "pv1", "")},
			pvs:        []corev1.PersistentVolume{localPV("pv1", "1Gi", "n2")},
			wantReason: []string{"1 Insufficient memory, 1 node(s) had volume node affinity conflict", "n1: volume pv1 is local to another node"},
		},
		{
			name:       "a missing claim",
			vmi:        testVMI("a", withClaim("disk")),
			nodes:      []corev1.Node{testNode("n1")},
			wantReason: []string{`0/1 nodes are available: persistentvolumeclaim "disk" not found`},
		},
		{
			name:       "a bound claim whose PV is missing",
			vmi:        testVMI("a", withClaim("disk")),
			nodes:      []corev1.Node{testNode("n1")},
			pvcs:       []corev1.PersistentVolumeClaim{testPVC("disk", "1Gi", "pv1", "")},
			wantReason: []string{`persistentvolume "pv1" of persistentvolumeclaim "disk" not found`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node, reason := Schedule(tc.vmi, tc.nodes, VMIsByNode(tc.vmis), tc.pvcs, tc.pvs)
			if node != tc.wantNode {
				t.Errorf("node = %q, want %q (reason: %s)", node, tc.wantNode, reason)
			}
			for _, want := range tc.wantReason {
				if !strings.Contains(reason, want) {
					t.Errorf("reason lacks %q:\n%s", want, reason)
				}
			}
		})
	}
}

func TestUnschedulableMessageListsAtMostTenNodes(t *testing.T) {
	var nodes []corev1.Node
	for _, name := range []string{"n01", "n02", "n03", "n04", "n05", "n06", "n07", "n08", "n09", "n10", "n11", "n12"} {
		nodes = append(nodes, testNode(name, notReady))
	}
	_, reason := Schedule(testVMI("a"), nodes, nil, nil, nil)
	if !strings.HasPrefix(reason, "0/12 nodes are available: 12 node(s) were not ready. n01: ") || !strings.HasSuffix(reason, "; and 2 more.") {
		t.Errorf("reason = %s", reason)
	}
}

func TestVMIsByNode(t *testing.T) {
	migrating := testVMI("m", onNode("n1", kubevirtv1.Running))
	started := metav1.Now()
	migrating.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{StartTimestamp: &started, TargetNode: "n2"}
	byNode := VMIsByNode([]kubevirtv1.VirtualMachineInstance{
		*migrating,
		*testVMI("pending"),
		*testVMI("failed", onNode("n1", kubevirtv1.Failed)),
		*testVMI("scheduled", onNode("n2", kubevirtv1.Scheduled)),
	})
	if got := names(byNode["n1"]); got != "m" {
		t.Errorf("n1 holds %s, want m", got)
	}
	if got := names(byNode["n2"]); got != "m,scheduled" {
		t.Errorf("n2 holds %s, want the migration target m and scheduled", got)
	}
}

func names(vmis []kubevirtv1.VirtualMachineInstance) string {
	var out []string
	for _, vmi := range vmis {
		out = append(out, vmi.Name)
	}
	return strings.Join(out, ",")
}

func TestNodeSelectorMatches(t *testing.T) {
	node := testNode("n1", withLabel("zone", "a"), withLabel("cores", "8"))
	term := func(reqs ...corev1.NodeSelectorRequirement) *corev1.NodeSelector {
		return &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: reqs}}}
	}
	req := func(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	for _, tc := range []struct {
		name     string
		selector *corev1.NodeSelector
		want     bool
	}{
		{"In", term(req("zone", corev1.NodeSelectorOpIn, "a", "b")), true},
		{"In, other value", term(req("zone", corev1.NodeSelectorOpIn, "b")), false},
		{"NotIn", term(req("zone", corev1.NodeSelectorOpNotIn, "b")), true},
		{"NotIn, absent key", term(req("rack", corev1.NodeSelectorOpNotIn, "b")), true},
		{"Exists", term(req("zone", corev1.NodeSelectorOpExists)), true},
		{"DoesNotExist", term(req("zone", corev1.NodeSelectorOpDoesNotExist)), false},
		{"Gt", term(req("cores", corev1.NodeSelectorOpGt, "4")), true},
		{"Lt", term(req("cores", corev1.NodeSelectorOpLt, "4")), false},
		{"ANDed within a term", term(req("zone", corev1.NodeSelectorOpIn, "a"), req("cores", corev1.NodeSelectorOpIn, "4")), false},
		{"ORed across terms", &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{req("zone", corev1.NodeSelectorOpIn, "b")}},
			{MatchFields: []corev1.NodeSelectorRequirement{req("metadata.name", corev1.NodeSelectorOpIn, "n1")}},
		}}, true},
		{"an empty term matches nothing", &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nodeSelectorMatches(tc.selector, &node); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
