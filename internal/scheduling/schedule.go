package scheduling

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// CPU models that need no node label: the guest takes the node's own CPU.
var hostCPUModels = map[string]bool{"": true, "host-model": true, "host-passthrough": true}

// Schedule picks the node for vmi the way kube-scheduler picks one for a
// pod: every node is filtered (ready and schedulable, node selector, CPU
// model and features, reachability of the VMI's bound volumes, memory,
// room for its unbound volumes), and of the nodes left the one with the
// fewest VMIs wins, ties broken by name.
//
// vmisOnNodes holds, per node name, the VMIs that hold its resources (see
// VMIsByNode); pvcs must include the VMI's claims, pvs every PV. The result
// is the node, or "" and a kube-scheduler style message that says why each
// node was rejected. On success the message says why that node.
func Schedule(vmi *kubevirtv1.VirtualMachineInstance, nodes []corev1.Node, vmisOnNodes map[string][]kubevirtv1.VirtualMachineInstance, pvcs []corev1.PersistentVolumeClaim, pvs []corev1.PersistentVolume) (node string, reason string) {
	if len(nodes) == 0 {
		return "", "0/0 nodes are available: no node is registered; is a node agent running?"
	}
	need, err := demandOf(vmi, pvcs, pvs)
	if err != nil {
		return "", fmt.Sprintf("0/%d nodes are available: %v", len(nodes), err)
	}
	var fitting []candidate
	var rejections []rejection
	for i := range nodes {
		usage := usageOf(&nodes[i], vmisOnNodes[nodes[i].Name], vmi.UID, need.ownClaims, pvcs, pvs)
		if r := firstRejection(&nodes[i], need, usage); r != nil {
			rejections = append(rejections, *r)
			continue
		}
		fitting = append(fitting, candidate{name: nodes[i].Name, vmis: usage.vmis})
	}
	if len(fitting) == 0 {
		return "", unschedulableMessage(len(nodes), rejections)
	}
	best := slices.MinFunc(fitting, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.vmis, b.vmis), strings.Compare(a.name, b.name))
	})
	return best.name, fmt.Sprintf("%d/%d nodes fit; %s runs the fewest VMIs (%d)", len(fitting), len(nodes), best.name, best.vmis)
}

type candidate struct {
	name string
	vmis int
}

// demand is what the VMI asks of a node.
type demand struct {
	memory       int64
	nodeSelector map[string]string
	cpuModel     string
	cpuFeatures  []string
	// storage is the size of the VMI's unbound claims, which will be
	// provisioned on the chosen node.
	storage int64
	// boundPVs are the local PVs of the VMI's bound claims: the node must
	// reach them.
	boundPVs []*corev1.PersistentVolume
	// selectedNodes: claim -> node an earlier attempt already chose (the
	// node agent may be provisioning there).
	selectedNodes map[string]string
	// ownClaims are "namespace/name" of the VMI's claims, so that they are
	// not counted as someone else's reservation.
	ownClaims map[string]bool
}

func demandOf(vmi *kubevirtv1.VirtualMachineInstance, pvcs []corev1.PersistentVolumeClaim, pvs []corev1.PersistentVolume) (*demand, error) {
	need := &demand{
		memory:        guestMemory(vmi),
		nodeSelector:  vmi.Spec.NodeSelector,
		selectedNodes: map[string]string{},
		ownClaims:     map[string]bool{},
	}
	if cpu := vmi.Spec.Domain.CPU; cpu != nil {
		need.cpuModel = cpu.Model
		for _, feature := range cpu.Features {
			if feature.Policy == "" || feature.Policy == "require" {
				need.cpuFeatures = append(need.cpuFeatures, feature.Name)
			}
		}
	}
	for _, claim := range vmi.Spec.ClaimNames() {
		if err := need.addClaim(vmi.Namespace, claim, pvcs, pvs); err != nil {
			return nil, err
		}
	}
	return need, nil
}

func (need *demand) addClaim(namespace, claim string, pvcs []corev1.PersistentVolumeClaim, pvs []corev1.PersistentVolume) error {
	pvc := FindPVC(pvcs, namespace, claim)
	switch {
	case pvc == nil:
		return fmt.Errorf("persistentvolumeclaim %q not found", claim)
	case pvc.DeletionTimestamp != nil:
		return fmt.Errorf("persistentvolumeclaim %q is being deleted", claim)
	}
	need.ownClaims[namespace+"/"+claim] = true
	if pvc.Spec.VolumeName == "" {
		need.storage += claimSize(pvc)
		if selected := pvc.Annotations[SelectedNodeAnnotation]; selected != "" {
			need.selectedNodes[claim] = selected
		}
		return nil
	}
	pv := findPV(pvs, pvc.Spec.VolumeName)
	if pv == nil {
		return fmt.Errorf("persistentvolume %q of persistentvolumeclaim %q not found", pvc.Spec.VolumeName, claim)
	}
	if pvLocal(pv) {
		need.boundPVs = append(need.boundPVs, pv)
	}
	return nil
}

// guestMemory is the memory the guest gets, as every component counts it.
func guestMemory(vmi *kubevirtv1.VirtualMachineInstance) int64 {
	return vmi.Spec.GuestMemoryBytes()
}

func claimSize(pvc *corev1.PersistentVolumeClaim) int64 {
	q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	return q.Value()
}

// nodeUsage is what a node already gives away.
type nodeUsage struct {
	vmis   int
	memory int64
	// storage: local PVs on the node plus unbound claims of other VMIs
	// already placed there.
	storage int64
}

func usageOf(node *corev1.Node, vmisOnNode []kubevirtv1.VirtualMachineInstance, self types.UID, ownClaims map[string]bool, pvcs []corev1.PersistentVolumeClaim, pvs []corev1.PersistentVolume) nodeUsage {
	var usage nodeUsage
	for i := range vmisOnNode {
		if vmisOnNode[i].UID == self {
			continue
		}
		usage.vmis++
		usage.memory += guestMemory(&vmisOnNode[i])
	}
	for i := range pvs {
		if pvOnNode(&pvs[i], node) {
			capacity := pvs[i].Spec.Capacity[corev1.ResourceStorage]
			usage.storage += capacity.Value()
		}
	}
	for i := range pvcs {
		pvc := &pvcs[i]
		reserved := pvc.Spec.VolumeName == "" && pvc.DeletionTimestamp == nil &&
			pvc.Annotations[SelectedNodeAnnotation] == node.Name && !ownClaims[pvc.Namespace+"/"+pvc.Name]
		if reserved {
			usage.storage += claimSize(pvc)
		}
	}
	return usage
}

// rejection is why one node does not fit: short is counted across nodes
// (kube-scheduler's wording where it has one), detail is for this node.
type rejection struct {
	node, short, detail string
}

type nodeFilter func(node *corev1.Node, need *demand, usage nodeUsage) *rejection

// filters run in this order; a node's first failure is its rejection.
var filters = []nodeFilter{
	readyFilter, schedulableFilter, nodeSelectorFilter, cpuModelFilter,
	cpuFeaturesFilter, volumeAffinityFilter, memoryFilter, storageFilter,
}

func firstRejection(node *corev1.Node, need *demand, usage nodeUsage) *rejection {
	for _, filter := range filters {
		if r := filter(node, need, usage); r != nil {
			r.node = node.Name
			return r
		}
	}
	return nil
}

func readyFilter(node *corev1.Node, _ *demand, _ nodeUsage) *rejection {
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			return nil
		}
		return &rejection{short: "node(s) were not ready", detail: fmt.Sprintf("Ready is %s (%s)", c.Status, c.Reason)}
	}
	return &rejection{short: "node(s) were not ready", detail: "no Ready condition yet"}
}

func schedulableFilter(node *corev1.Node, _ *demand, _ nodeUsage) *rejection {
	if node.Labels[SchedulableLabel] != "true" {
		return &rejection{short: "node(s) were not labelled " + SchedulableLabel + "=true", detail: "no node agent offers it for VMIs"}
	}
	if node.Spec.Unschedulable {
		return &rejection{short: "node(s) were unschedulable", detail: "cordoned (spec.unschedulable)"}
	}
	return nil
}

func nodeSelectorFilter(node *corev1.Node, need *demand, _ nodeUsage) *rejection {
	var missing []string
	for key, value := range need.nodeSelector {
		if node.Labels[key] != value {
			missing = append(missing, key+"="+value)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return &rejection{short: "node(s) didn't match the VMI's node selector", detail: "lacks label " + strings.Join(missing, ", ")}
}

func cpuModelFilter(node *corev1.Node, need *demand, _ nodeUsage) *rejection {
	if hostCPUModels[need.cpuModel] || node.Labels[CPUModelLabelPrefix+need.cpuModel] == "true" {
		return nil
	}
	return &rejection{
		short:  "node(s) didn't support CPU model " + need.cpuModel,
		detail: "no label " + CPUModelLabelPrefix + need.cpuModel + "=true",
	}
}

func cpuFeaturesFilter(node *corev1.Node, need *demand, _ nodeUsage) *rejection {
	var missing []string
	for _, feature := range need.cpuFeatures {
		if node.Labels[CPUFeatureLabelPrefix+feature] != "true" {
			missing = append(missing, feature)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &rejection{
		short:  "node(s) lacked required CPU features",
		detail: "lacks " + strings.Join(missing, ", ") + " (labels " + CPUFeatureLabelPrefix + "<feature>=true)",
	}
}

func volumeAffinityFilter(node *corev1.Node, need *demand, _ nodeUsage) *rejection {
	for _, pv := range need.boundPVs {
		if !pvOnNode(pv, node) {
			return &rejection{short: "node(s) had volume node affinity conflict", detail: "volume " + pv.Name + " is local to another node"}
		}
	}
	for _, claim := range sortedKeys(need.selectedNodes) {
		if selected := need.selectedNodes[claim]; selected != node.Name {
			return &rejection{short: "node(s) had volume node affinity conflict", detail: "claim " + claim + " is being provisioned on node " + selected}
		}
	}
	return nil
}

func memoryFilter(node *corev1.Node, need *demand, usage nodeUsage) *rejection {
	allocatable := allocatableOf(node, corev1.ResourceMemory)
	if free := allocatable - usage.memory; need.memory > free {
		return &rejection{
			short:  "Insufficient memory",
			detail: fmt.Sprintf("the guest needs %s, %s free of %s", sizeString(need.memory), sizeString(max(free, 0)), sizeString(allocatable)),
		}
	}
	return nil
}

func storageFilter(node *corev1.Node, need *demand, usage nodeUsage) *rejection {
	if need.storage == 0 {
		return nil
	}
	allocatable := allocatableOf(node, corev1.ResourceEphemeralStorage)
	if free := allocatable - usage.storage; need.storage > free {
		return &rejection{
			short: "node(s) did not have enough free storage",
			detail: fmt.Sprintf("the VMI's new volumes need %s, %s free of %s ephemeral-storage",
				sizeString(need.storage), sizeString(max(free, 0)), sizeString(allocatable)),
		}
	}
	return nil
}

// LocalStorageFree is the local storage a node can still give new volumes,
// counted as Schedule counts it: its allocatable ephemeral-storage (else
// its capacity) less its local PVs and the unbound claims already placed
// on it (pvcs and pvs: all of the cluster's). free may be negative.
func LocalStorageFree(node *corev1.Node, pvcs []corev1.PersistentVolumeClaim, pvs []corev1.PersistentVolume) (free, allocatable int64) {
	allocatable = allocatableOf(node, corev1.ResourceEphemeralStorage)
	return allocatable - usageOf(node, nil, "", nil, pvcs, pvs).storage, allocatable
}

// allocatableOf is the node's allocatable amount, else its capacity (a
// node agent may publish only one of them).
func allocatableOf(node *corev1.Node, name corev1.ResourceName) int64 {
	if q, ok := node.Status.Allocatable[name]; ok {
		return q.Value()
	}
	q := node.Status.Capacity[name]
	return q.Value()
}

func sizeString(n int64) string { return resource.NewQuantity(n, resource.BinarySI).String() }

// maxDetailedNodes bounds the per-node part of the message.
const maxDetailedNodes = 10

// unschedulableMessage is kube-scheduler's summary ("0/3 nodes are
// available: 1 Insufficient memory, 2 node(s) didn't match ...") followed
// by what each node lacks.
func unschedulableMessage(total int, rejections []rejection) string {
	counts := map[string]int{}
	for _, r := range rejections {
		counts[r.short]++
	}
	var summary []string
	for short, n := range counts {
		summary = append(summary, fmt.Sprintf("%d %s", n, short))
	}
	sort.Strings(summary)
	slices.SortFunc(rejections, func(a, b rejection) int { return strings.Compare(a.node, b.node) })
	var details []string
	for i, r := range rejections {
		if i == maxDetailedNodes {
			details = append(details, fmt.Sprintf("and %d more", len(rejections)-i))
			break
		}
		details = append(details, r.node+": "+r.detail)
	}
	return fmt.Sprintf("0/%d nodes are available: %s. %s.", total, strings.Join(summary, ", "), strings.Join(details, "; "))
}

// VMIsByNode groups by node the VMIs that hold a node's memory: those
// placed there and not ended, and, while a migration is in flight, its
// target node too.
func VMIsByNode(vmis []kubevirtv1.VirtualMachineInstance) map[string][]kubevirtv1.VirtualMachineInstance {
	byNode := map[string][]kubevirtv1.VirtualMachineInstance{}
	for _, vmi := range vmis {
		if vmi.Status.NodeName == "" || vmi.Status.Phase.IsFinal() {
			continue
		}
		byNode[vmi.Status.NodeName] = append(byNode[vmi.Status.NodeName], vmi)
		if target := migrationTarget(&vmi); target != "" && target != vmi.Status.NodeName {
			byNode[target] = append(byNode[target], vmi)
		}
	}
	return byNode
}

func migrationTarget(vmi *kubevirtv1.VirtualMachineInstance) string {
	if !vmi.IsMigrating() {
		return ""
	}
	return vmi.Status.MigrationState.TargetNode
}

func FindPVC(pvcs []corev1.PersistentVolumeClaim, namespace, name string) *corev1.PersistentVolumeClaim {
	for i := range pvcs {
		if pvcs[i].Namespace == namespace && pvcs[i].Name == name {
			return &pvcs[i]
		}
	}
	return nil
}

func findPV(pvs []corev1.PersistentVolume, name string) *corev1.PersistentVolume {
	for i := range pvs {
		if pvs[i].Name == name {
			return &pvs[i]
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
