package preflight

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheduling"
)

// vmFacts is one VM of the input and what was read of it.
type vmFacts struct {
	ref forkliftv1beta1.Ref
	// vm is set once VMExists found it.
	vm     *kubevirtv1.VirtualMachine
	vmi    memo[*kubevirtv1.VirtualMachineInstance]
	claims memo[[]claim]
}

func newVMFacts(ref forkliftv1beta1.Ref) *vmFacts { return &vmFacts{ref: ref} }

// key names the VM in checks: namespace/name, or its ID when only that is
// given.
func (v *vmFacts) key() string {
	switch {
	case v.ref.Name != "" && v.ref.Namespace != "":
		return v.ref.Namespace + "/" + v.ref.Name
	case v.ref.Name != "":
		return v.ref.Name
	default:
		return v.ref.ID
	}
}

// name is namespace/name of the VM found, else key.
func (v *vmFacts) name() string {
	if v.vm != nil {
		return v.vm.Namespace + "/" + v.vm.Name
	}
	return v.key()
}

// VMExists: the VM is on the source, by namespace and name or by UID.
func checkVMExists(ctx context.Context, r *runner, v *vmFacts) Check {
	c := r.source
	if v.ref.Name != "" && v.ref.Namespace != "" {
		vm := &kubevirtv1.VirtualMachine{}
		err := c.client.Get(ctx, client.ObjectKey{Namespace: v.ref.Namespace, Name: v.ref.Name}, vm)
		switch {
		case apierrors.IsNotFound(err):
			return r.vmNotFound(v)
		case err != nil:
			return r.readFailure(c, "get VM "+v.key(), err)
		}
		if v.ref.ID != "" && string(vm.UID) != v.ref.ID {
			return failed(fmt.Sprintf("VM %s on %s has UID %s, not the plan's id %s: it was deleted and made again since the plan was written", v.key(), c.name, vm.UID, v.ref.ID),
				"update the VM's id in the plan (spec.vms[].id) or drop the id and keep namespace and name")
		}
		v.vm = vm
		return r.vmFound(vm)
	}
	vms, err := c.listVMs(ctx)
	if err != nil {
		return r.readFailure(c, "list VMs", err)
	}
	var matches []kubevirtv1.VirtualMachine
	for _, vm := range vms {
		if (v.ref.ID != "" && string(vm.UID) == v.ref.ID) || (v.ref.ID == "" && vm.Name == v.ref.Name && (v.ref.Namespace == "" || vm.Namespace == v.ref.Namespace)) {
			matches = append(matches, vm)
		}
	}
	switch len(matches) {
	case 0:
		return r.vmNotFound(v)
	case 1:
		v.vm = &matches[0]
		return r.vmFound(v.vm)
	default:
		var names []string
		for _, m := range matches {
			names = append(names, m.Namespace+"/"+m.Name)
		}
		return failed(fmt.Sprintf("%d VMs on %s match %s: %s", len(matches), c.name, v.key(), strings.Join(names, ", ")), "name the VM with its namespace")
	}
}

// vmFound passes a VM that was found, unless it would move onto itself:
// one cluster, and the target namespace its own.
func (r *runner) vmFound(vm *kubevirtv1.VirtualMachine) Check {
	c := r.source
	if r.in.SameCluster && r.targetNamespace(vm) == vm.Namespace {
		return failed(fmt.Sprintf("VM %s/%s would move onto itself: source and target are one cluster (%s) and the target namespace is the VM's own", vm.Namespace, vm.Name, c.name),
			"set the Plan's spec.targetNamespace to another namespace of the cluster")
	}
	return passed("VM %s/%s exists on %s (uid %s, runStrategy %s, status %s)", vm.Namespace, vm.Name, c.name, vm.UID, vm.EffectiveRunStrategy(), orDash(string(vm.Status.PrintableStatus)))
}

func (r *runner) vmNotFound(v *vmFacts) Check {
	what := "VM " + v.key()
	if v.ref.Name == "" {
		what = "VM with uid " + v.ref.ID
	}
	return failed(fmt.Sprintf("no %s on %s", what, r.source.name),
		fmt.Sprintf("check the VM's namespace and name: `%s get vm -A`", r.source.kubectl()))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// readVMI is the VM's VMI on the source; nil when there is none.
func (r *runner) readVMI(ctx context.Context, v *vmFacts) (*kubevirtv1.VirtualMachineInstance, error) {
	return v.vmi.get(func() (*kubevirtv1.VirtualMachineInstance, error) {
		vmi := &kubevirtv1.VirtualMachineInstance{}
		err := r.source.client.Get(ctx, client.ObjectKey{Namespace: v.vm.Namespace, Name: v.vm.Name}, vmi)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return vmi, nil
	})
}

// VMRunning: the VM's VMI runs, and is not being migrated already.
func checkVMRunning(ctx context.Context, r *runner, v *vmFacts) Check {
	vmi, err := r.readVMI(ctx, v)
	if err != nil {
		return r.readFailure(r.source, "get VMI "+v.name(), err)
	}
	return evalVMRunning(r.source, v.vm, vmi)
}

func evalVMRunning(c *cluster, vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) Check {
	name := vm.Namespace + "/" + vm.Name
	start := fmt.Sprintf("`%s patch vm %s -n %s --type=merge -p '{\"spec\":{\"runStrategy\":\"Always\"}}'` (or `virtctl start %s -n %s`), wait until it runs, then run preflight again",
		c.kubectl(), vm.Name, vm.Namespace, vm.Name, vm.Namespace)
	if vmi == nil {
		return failed(fmt.Sprintf("VM %s on %s is not running: it has no VMI (runStrategy %s, status %s); only a running VM can be live-migrated", name, c.name, vm.EffectiveRunStrategy(), orDash(string(vm.Status.PrintableStatus))),
			"start it: "+start)
	}
	if vmi.Status.Phase != kubevirtv1.Running {
		reason := ""
		if vmi.Status.Reason != "" {
			reason = ", reason " + vmi.Status.Reason
		}
		return failed(fmt.Sprintf("VM %s on %s is not running: its VMI is in phase %s%s", name, c.name, orDash(string(vmi.Status.Phase)), reason),
			fmt.Sprintf("wait until it runs (`%s get vmi %s -n %s -w`); if it does not, see `%s describe vmi %s -n %s`", c.kubectl(), vm.Name, vm.Namespace, c.kubectl(), vm.Name, vm.Namespace))
	}
	if state := vmi.Status.MigrationState; state != nil && state.StartTimestamp != nil && state.EndTimestamp == nil && !state.Completed {
		return failed(fmt.Sprintf("VM %s on %s is being migrated already (migration %s, to node %s)", name, c.name, state.MigrationUID, orDash(state.TargetNode)),
			fmt.Sprintf("wait for that migration to end, or cancel it by deleting its VMIM (`%s get vmim -n %s`)", c.kubectl(), vm.Namespace))
	}
	return passed("VMI %s runs on node %s of %s", name, vmi.Status.NodeName, c.name)
}

// VMStorageLiveMigratable: the VMI says every volume can be migrated.
func checkStorageLiveMigratable(ctx context.Context, r *runner, v *vmFacts) Check {
	vmi, err := r.readVMI(ctx, v)
	if err != nil {
		return r.readFailure(r.source, "get VMI "+v.name(), err)
	}
	return evalStorageLiveMigratable(r.source, vmi)
}

func evalStorageLiveMigratable(c *cluster, vmi *kubevirtv1.VirtualMachineInstance) Check {
	name := vmi.Namespace + "/" + vmi.Name
	condition := kubevirtv1.VirtualMachineInstanceIsStorageLiveMigratable
	for _, cond := range vmi.Status.Conditions {
		if cond.Type != condition {
			continue
		}
		if cond.Status == corev1.ConditionTrue {
			return passed("VMI %s has condition %s=True (%s)", name, condition, orDash(cond.Message))
		}
		return failed(fmt.Sprintf("VMI %s on %s has condition %s=%s: %s: %s", name, c.name, condition, cond.Status, orDash(cond.Reason), orDash(cond.Message)),
			"make every volume migratable as the condition's message says: shareable disks, LUNs, virtio-fs and host disks cannot be copied across clusters; remove them from the VM (spec.template.spec.volumes) and restart it")
	}
	return failed(fmt.Sprintf("VMI %s on %s has no condition %s yet: its node agent has not judged its volumes", name, c.name, condition),
		fmt.Sprintf("wait a few seconds for the node agent to report the VMI's conditions (`%s get vmi %s -n %s -o yaml`), then run preflight again", c.kubectl(), vmi.Name, vmi.Namespace))
}

// vmNetwork is one network of a VM, as the NetworkMap names it.
type vmNetwork struct {
	name string // the VM's network name
	// pod: the pod network; else the NAD's namespace and name.
	pod                bool
	namespace, nadName string
}

func (n vmNetwork) String() string {
	if n.pod {
		return fmt.Sprintf("%q (pod network)", n.name)
	}
	return fmt.Sprintf("%q (multus %s/%s)", n.name, n.namespace, n.nadName)
}

func networksOf(vm *kubevirtv1.VirtualMachine) []vmNetwork {
	if vm.Spec.Template == nil {
		return nil
	}
	var networks []vmNetwork
	for _, n := range vm.Spec.Template.Spec.Networks {
		switch {
		case n.Pod != nil:
			networks = append(networks, vmNetwork{name: n.Name, pod: true})
		case n.Multus != nil:
			key := nadKey(n.Multus.NetworkName, vm.Namespace)
			networks = append(networks, vmNetwork{name: n.Name, namespace: key.Namespace, nadName: key.Name})
		}
	}
	return networks
}

// NetworkMapped: every network of the VM has a NetworkMap entry, and a
// multus destination exists on the target.
func checkNetworkMapped(ctx context.Context, r *runner, v *vmFacts) Check {
	networks := networksOf(v.vm)
	// Entries given by id only need the source NAD's UID.
	uids := map[string]string{}
	for _, n := range networks {
		if n.pod || !mapHasIDOnly(r.in.NetworkMap) {
			continue
		}
		var nad cniv1.NetworkAttachmentDefinition
		if err := r.source.client.Get(ctx, client.ObjectKey{Namespace: n.namespace, Name: n.nadName}, &nad); err == nil {
			uids[n.namespace+"/"+n.nadName] = string(nad.UID)
		}
	}
	check := evalNetworkMapped(r, v.vm, networks, uids)
	if check.Status != Passed {
		return check
	}
	// The destinations of multus networks must exist on the target.
	var missing []string
	for _, n := range networks {
		pair := findNetworkPair(r.in.NetworkMap, n, uids)
		if pair == nil || pair.Destination.Type != "multus" {
			continue
		}
		key := client.ObjectKey{Namespace: cmpOr(pair.Destination.Namespace, r.targetNamespace(v.vm)), Name: pair.Destination.Name}
		var nad cniv1.NetworkAttachmentDefinition
		err := r.target.client.Get(ctx, key, &nad)
		if apierrors.IsNotFound(err) {
			missing = append(missing, fmt.Sprintf("network %s maps to NAD %s, which does not exist on %s", n, key, r.target.name))
		} else if err != nil {
			return r.readFailure(r.target, "get NetworkAttachmentDefinition "+key.String(), err)
		}
	}
	if len(missing) > 0 {
		return failed(fmt.Sprintf("VM %s: %s", v.name(), strings.Join(missing, "; ")),
			fmt.Sprintf("create those NADs on %s, or map the networks to NADs that exist there (NetworkMap spec.map[].destination)", r.target.name))
	}
	return check
}

func mapHasIDOnly(pairs []forkliftv1beta1.NetworkPair) bool {
	for _, p := range pairs {
		if p.Source.ID != "" && p.Source.Name == "" {
			return true
		}
	}
	return false
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// targetNamespace is where the VM goes on the target.
func (r *runner) targetNamespace(vm *kubevirtv1.VirtualMachine) string {
	return cmpOr(r.in.TargetNamespace, vm.Namespace)
}

// findNetworkPair is the NetworkMap entry for a VM network; uids holds the
// source NADs' UIDs (namespace/name -> uid) for entries given by id.
func findNetworkPair(pairs []forkliftv1beta1.NetworkPair, n vmNetwork, uids map[string]string) *forkliftv1beta1.NetworkPair {
	for i := range pairs {
		src := pairs[i].Source
		if n.pod {
			if src.Type == "pod" {
				return &pairs[i]
			}
			continue
		}
		if src.Type == "pod" {
			continue
		}
		if src.Name == n.nadName && cmpOr(src.Namespace, n.namespace) == n.namespace {
			return &pairs[i]
		}
		if src.ID != "" && src.ID == uids[n.namespace+"/"+n.nadName] {
			return &pairs[i]
		}
	}
	return nil
}

func evalNetworkMapped(r *runner, vm *kubevirtv1.VirtualMachine, networks []vmNetwork, uids map[string]string) Check {
	name := vm.Namespace + "/" + vm.Name
	if len(networks) == 0 {
		return passed("VM %s has no networks to map", name)
	}
	var mapped, unmapped, entries []string
	for _, n := range networks {
		pair := findNetworkPair(r.in.NetworkMap, n, uids)
		if pair == nil {
			unmapped = append(unmapped, n.String())
			if n.pod {
				entries = append(entries, "{source: {type: pod}, destination: {type: pod}}")
			} else {
				entries = append(entries, fmt.Sprintf("{source: {namespace: %s, name: %s}, destination: {type: multus, namespace: <NAD namespace on %s>, name: <NAD name>}}", n.namespace, n.nadName, r.target.name))
			}
			continue
		}
		dest := pair.Destination.Type
		if dest == "multus" {
			dest += " " + cmpOr(pair.Destination.Namespace, r.targetNamespace(vm)) + "/" + pair.Destination.Name
		}
		mapped = append(mapped, n.String()+" -> "+dest)
	}
	if len(unmapped) > 0 {
		return failed(fmt.Sprintf("VM %s: network %s has no entry in the NetworkMap", name, strings.Join(unmapped, ", ")),
			"add to the NetworkMap's spec.map: "+strings.Join(entries, ", ")+" (destination type ignored leaves the interface out)")
	}
	return passed("VM %s: every network is mapped: %s", name, strings.Join(mapped, ", "))
}

// claim is one persistent volume of a VM.
type claim struct {
	name string
	// class is the storage class; from says where it came from (PVC,
	// DataVolume, dataVolumeTemplate, default class).
	class, from string
	size        int64
}

// readClaims finds the VM's PVCs (a DataVolume's PVC has its name) and
// their classes and sizes.
func (r *runner) readClaims(ctx context.Context, v *vmFacts) ([]claim, error) {
	return v.claims.get(func() ([]claim, error) {
		vm := v.vm
		if vm.Spec.Template == nil {
			return nil, nil
		}
		var claims []claim
		for _, volume := range vm.Spec.Template.Spec.Volumes {
			var name string
			switch {
			case volume.PersistentVolumeClaim != nil:
				name = volume.PersistentVolumeClaim.ClaimName
			case volume.DataVolume != nil:
				name = volume.DataVolume.Name
			default:
				continue
			}
			if slices.ContainsFunc(claims, func(c claim) bool { return c.name == name }) {
				continue
			}
			c, err := r.readClaim(ctx, vm, name, volume.DataVolume != nil)
			if err != nil {
				return nil, err
			}
			claims = append(claims, c)
		}
		return claims, nil
	})
}

func (r *runner) readClaim(ctx context.Context, vm *kubevirtv1.VirtualMachine, name string, dataVolume bool) (claim, error) {
	c := claim{name: name}
	key := client.ObjectKey{Namespace: vm.Namespace, Name: name}
	var pvc corev1.PersistentVolumeClaim
	err := r.source.client.Get(ctx, key, &pvc)
	switch {
	case err == nil:
		c.from, c.size = "PVC", quantity(pvc.Spec.Resources.Requests, pvc.Status.Capacity)
		if pvc.Spec.StorageClassName != nil {
			c.class = *pvc.Spec.StorageClassName
		}
	case !apierrors.IsNotFound(err):
		return c, fmt.Errorf("get PVC %s: %w", key, err)
	case dataVolume:
		var dv cdiv1beta1.DataVolume
		err := r.source.client.Get(ctx, key, &dv)
		switch {
		case err == nil:
			c.from = "DataVolume"
			c.class, c.size = dataVolumeClass(dv.Spec)
		case !apierrors.IsNotFound(err):
			return c, fmt.Errorf("get DataVolume %s: %w", key, err)
		default:
			for _, t := range vm.Spec.DataVolumeTemplates {
				if t.ObjectMeta.Name == name {
					c.from = "dataVolumeTemplate"
					c.class, c.size = dataVolumeClass(t.Spec)
				}
			}
		}
	}
	if c.from == "" {
		return c, fmt.Errorf("VM %s/%s uses claim %s, but there is no PVC or DataVolume of that name", vm.Namespace, vm.Name, name)
	}
	if c.class == "" {
		classes, err := r.source.listClasses(ctx)
		if err != nil {
			return c, fmt.Errorf("list StorageClasses for the default class of claim %s: %w", name, err)
		}
		c.class, c.from = scheduling.DefaultStorageClass(classes), c.from+" (default class)"
	}
	return c, nil
}

func quantity(lists ...corev1.ResourceList) int64 {
	for _, list := range lists {
		if q, ok := list[corev1.ResourceStorage]; ok {
			return q.Value()
		}
	}
	return 0
}

func dataVolumeClass(spec cdiv1beta1.DataVolumeSpec) (class string, size int64) {
	switch {
	case spec.Storage != nil:
		if spec.Storage.StorageClassName != nil {
			class = *spec.Storage.StorageClassName
		}
		size = quantity(corev1.ResourceList(spec.Storage.Resources.Requests))
	case spec.PVC != nil:
		if spec.PVC.StorageClassName != nil {
			class = *spec.PVC.StorageClassName
		}
		size = quantity(corev1.ResourceList(spec.PVC.Resources.Requests))
	}
	return class, size
}

// StorageMapped: the storage class of every PVC of the VM has a
// StorageMap entry, whose destination class exists on the target.
func checkStorageMapped(ctx context.Context, r *runner, v *vmFacts) Check {
	claims, err := r.readClaims(ctx, v)
	if err != nil {
		return r.readFailure(r.source, "read the VM's volumes", err)
	}
	targetClasses, err := r.target.listClasses(ctx)
	if err != nil {
		return r.readFailure(r.target, "list StorageClasses", err)
	}
	var sourceClasses []storagev1.StorageClass
	if storageMapHasIDOnly(r.in.StorageMap) {
		sourceClasses, _ = r.source.listClasses(ctx)
	}
	return evalStorageMapped(r, v.vm, claims, sourceClasses, targetClasses)
}

func storageMapHasIDOnly(pairs []forkliftv1beta1.StoragePair) bool {
	for _, p := range pairs {
		if p.Source.ID != "" && p.Source.Name == "" {
			return true
		}
	}
	return false
}

// findStoragePair is the StorageMap entry of a source class.
func findStoragePair(pairs []forkliftv1beta1.StoragePair, class string, sourceClasses []storagev1.StorageClass) *forkliftv1beta1.StoragePair {
	uid := ""
	for _, sc := range sourceClasses {
		if sc.Name == class {
			uid = string(sc.UID)
		}
	}
	for i := range pairs {
		if pairs[i].Source.Name == class || (uid != "" && pairs[i].Source.ID == uid) {
			return &pairs[i]
		}
	}
	return nil
}

func evalStorageMapped(r *runner, vm *kubevirtv1.VirtualMachine, claims []claim, sourceClasses, targetClasses []storagev1.StorageClass) Check {
	name := vm.Namespace + "/" + vm.Name
	if len(claims) == 0 {
		return passed("VM %s has no persistent volumes to map (container disks travel with the guest)", name)
	}
	var targetNames []string
	for _, sc := range targetClasses {
		targetNames = append(targetNames, sc.Name)
	}
	suggestion := "<a class of " + r.target.name + ": " + strings.Join(targetNames, ", ") + ">"
	var mapped, unmapped, badDest, entries []string
	for _, c := range claims {
		if c.class == "" {
			unmapped = append(unmapped, fmt.Sprintf("PVC %s has no storage class and %s has no default class", c.name, r.source.name))
			continue
		}
		pair := findStoragePair(r.in.StorageMap, c.class, sourceClasses)
		if pair == nil {
			unmapped = append(unmapped, fmt.Sprintf("storage class %q (of %s %s) has no entry in the StorageMap", c.class, c.from, c.name))
			entries = append(entries, fmt.Sprintf("{source: {name: %s}, destination: {storageClass: %s}}", c.class, suggestion))
			continue
		}
		dest := pair.Destination.StorageClass
		if !slices.Contains(targetNames, dest) {
			badDest = append(badDest, fmt.Sprintf("the StorageMap maps %q to %q, which does not exist on %s (its classes: %s)", c.class, dest, r.target.name, strings.Join(targetNames, ", ")))
			continue
		}
		mapped = append(mapped, fmt.Sprintf("%s (%s) -> %s", c.class, c.name, dest))
	}
	switch {
	case len(unmapped) > 0:
		return failed(fmt.Sprintf("VM %s: %s", name, strings.Join(append(unmapped, badDest...), "; ")),
			"add to the StorageMap's spec.map: "+strings.Join(entries, ", "))
	case len(badDest) > 0:
		return failed(fmt.Sprintf("VM %s: %s", name, strings.Join(badDest, "; ")),
			"set spec.map[].destination.storageClass of the StorageMap to one of "+strings.Join(targetNames, ", "))
	}
	return passed("VM %s: every storage class is mapped: %s", name, strings.Join(mapped, ", "))
}

// KubeVirt's node labels for CPU models (see internal/nodeagent/cpu.go).
const (
	cpuModelLabelPrefix          = scheduling.CPUModelLabelPrefix
	cpuModelMigrationLabelPrefix = "cpu-model-migration.node.kubevirt.io/"
	hostModelCPULabelPrefix      = "host-model-cpu.node.kubevirt.io/"
)

// CPU models that take the node's own CPU.
const (
	hostModel       = "host-model"
	hostPassthrough = "host-passthrough"
)

// CPUModel: a target node offers the VM's CPU model: a named model by
// label cpu-model.node.kubevirt.io/<model>; host-model by
// cpu-model-migration.node.kubevirt.io/<the source node's host model>.
func checkCPUModel(ctx context.Context, r *runner, v *vmFacts) Check {
	model, from := r.cpuModelOf(ctx, v.vm)
	nodes, err := r.target.listNodes(ctx)
	if err != nil {
		return r.readFailure(r.target, "list Nodes", err)
	}
	sourceHostModel := ""
	if model == hostModel || model == hostPassthrough || model == "host" {
		vmi, err := r.readVMI(ctx, v)
		if err != nil {
			return r.readFailure(r.source, "get VMI "+v.name(), err)
		}
		if vmi == nil || vmi.Status.NodeName == "" {
			return skipped("VM %s has CPU model %s (%s): the VM does not run on a node, so the host model it needs is unknown (see VMRunning)", v.name(), model, from)
		}
		var node corev1.Node
		err = r.source.nodeReader.Get(ctx, client.ObjectKey{Name: vmi.Status.NodeName}, &node)
		if apierrors.IsForbidden(err) {
			return skipped("VM %s has CPU model %s (%s) and runs on node %s, which the token may not read (the OpenShift guide's %s grants no access to nodes): its host model is unknown, so no target node can be matched with it",
				v.name(), model, from, vmi.Status.NodeName, ClusterRoleName)
		}
		if err != nil {
			return r.readFailure(r.source, "get node "+vmi.Status.NodeName, err)
		}
		sourceHostModel = labelSuffix(node.Labels, hostModelCPULabelPrefix)
		if sourceHostModel == "" {
			return skipped("VM %s has CPU model %s and runs on node %s of %s, which has no %s* label: its host model is unknown", v.name(), model, node.Name, r.source.name, hostModelCPULabelPrefix)
		}
		from += ", node " + node.Name + " of " + r.source.name + " has host model " + sourceHostModel
	}
	return evalCPUModel(r, v.vm, model, from, sourceHostModel, nodes)
}

// cpuModelOf is the VM's CPU model and where it comes from.
func (r *runner) cpuModelOf(ctx context.Context, vm *kubevirtv1.VirtualMachine) (model, from string) {
	if t := vm.Spec.Template; t != nil && t.Spec.Domain.CPU != nil && t.Spec.Domain.CPU.Model != "" {
		return t.Spec.Domain.CPU.Model, "spec.template.spec.domain.cpu.model"
	}
	if kv, err := r.source.getKubeVirt(ctx, r.in.VirtNamespace); err == nil && kv.Spec.Configuration.CPUModel != "" {
		return kv.Spec.Configuration.CPUModel, "the source KubeVirt's spec.configuration.cpuModel"
	}
	return hostModel, "the default"
}

// labelSuffix is the rest of the first label with prefix set to "true".
func labelSuffix(labels map[string]string, prefix string) string {
	var found []string
	for k, v := range labels {
		if strings.HasPrefix(k, prefix) && v == "true" {
			found = append(found, strings.TrimPrefix(k, prefix))
		}
	}
	sort.Strings(found)
	if len(found) == 0 {
		return ""
	}
	return found[0]
}

// schedulable nodes are those that run VMIs.
func schedulable(nodes []corev1.Node) []corev1.Node {
	var out []corev1.Node
	for _, n := range nodes {
		if n.Labels[scheduling.SchedulableLabel] == "true" && !n.Spec.Unschedulable {
			out = append(out, n)
		}
	}
	return out
}

func evalCPUModel(r *runner, vm *kubevirtv1.VirtualMachine, model, from, sourceHostModel string, nodes []corev1.Node) Check {
	name := vm.Namespace + "/" + vm.Name
	candidates := schedulable(nodes)
	if len(candidates) == 0 {
		return failed(fmt.Sprintf("%s has no schedulable node (label %s=true, not cordoned) to run VM %s", r.target.name, scheduling.SchedulableLabel, name),
			fmt.Sprintf("start the node agents of %s, or uncordon its nodes", r.target.name))
	}
	var label string
	switch model {
	case hostModel, "host":
		label = cpuModelMigrationLabelPrefix + sourceHostModel
	case hostPassthrough:
		// The same host CPU is needed: approximated by the same host model.
		label = hostModelCPULabelPrefix + sourceHostModel
	default:
		label = cpuModelLabelPrefix + model
	}
	var offering []string
	for _, n := range candidates {
		if n.Labels[label] == "true" {
			offering = append(offering, n.Name)
		}
	}
	if len(offering) > 0 {
		return passed("VM %s needs CPU model %s (%s): %s offer it (%s=true)", name, model, from, strings.Join(offering, ", "), label)
	}
	offered := commonModels(candidates)
	example := "a model they offer"
	if len(offered) > 0 {
		example = strings.Join(firstN(offered, 8), ", ")
	}
	missing := model
	if sourceHostModel != "" {
		missing = sourceHostModel
	}
	return failed(
		fmt.Sprintf("VM %s needs CPU model %s (%s), which no node of %s offers: none of %s is labelled %s=true; all of them offer %s",
			name, model, from, r.target.name, nodeNames(candidates), label, orNone(offered)),
		fmt.Sprintf("give the VM a named CPU model that %s's nodes offer (and %s's) in spec.template.spec.domain.cpu.model, e.g. %s, and restart it (`%s patch vm %s -n %s --type=merge -p '{\"spec\":{\"template\":{\"spec\":{\"domain\":{\"cpu\":{\"model\":\"%s\"}}}}}}'`), or add nodes to %s whose CPU offers %s",
			r.target.name, r.source.name, example, r.source.kubectl(), vm.Name, vm.Namespace, firstOr(offered, "MODEL"), r.target.name, missing))
}

// commonModels are the named models every node offers.
func commonModels(nodes []corev1.Node) []string {
	var common []string
	for i, n := range nodes {
		var models []string
		for k, v := range n.Labels {
			if m, ok := strings.CutPrefix(k, cpuModelLabelPrefix); ok && v == "true" && !strings.Contains(m, "-v") {
				models = append(models, m)
			}
		}
		if i == 0 {
			common = models
			continue
		}
		common = slices.DeleteFunc(common, func(m string) bool { return !slices.Contains(models, m) })
	}
	// The nodes' own host models first (the newest they run), then by name.
	hostModels := map[string]bool{}
	for _, n := range nodes {
		if m := labelSuffix(n.Labels, hostModelCPULabelPrefix); m != "" {
			hostModels[m] = true
		}
	}
	sort.Slice(common, func(i, j int) bool {
		if hostModels[common[i]] != hostModels[common[j]] {
			return hostModels[common[i]]
		}
		return common[i] < common[j]
	})
	return common
}

func nodeNames(nodes []corev1.Node) string {
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	return strings.Join(names, ", ")
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func firstOr(s []string, otherwise string) string {
	if len(s) > 0 {
		return s[0]
	}
	return otherwise
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no named model"
	}
	return strings.Join(s, ", ")
}

// macsOf lists the VM's MACs: those in its template, and those its VMI
// reports; interface name -> MAC (normalized).
func macsOf(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) map[string]string {
	macs := map[string]string{}
	if vm.Spec.Template != nil {
		for _, iface := range vm.Spec.Template.Spec.Domain.Devices.Interfaces {
			if iface.MacAddress != "" {
				macs[iface.Name] = normalizeMAC(iface.MacAddress)
			}
		}
	}
	if vmi != nil {
		for _, iface := range vmi.Status.Interfaces {
			if iface.MAC != "" && macs[iface.Name] == "" {
				macs[cmpOr(iface.Name, iface.InterfaceName)] = normalizeMAC(iface.MAC)
			}
		}
	}
	return macs
}

func normalizeMAC(mac string) string { return strings.ReplaceAll(strings.ToLower(mac), "-", ":") }

// MACConflict: no VM or VMI on the target uses one of the VM's MACs.
func checkMACConflict(ctx context.Context, r *runner, v *vmFacts) Check {
	vmi, err := r.readVMI(ctx, v)
	if err != nil {
		return r.readFailure(r.source, "get VMI "+v.name(), err)
	}
	vms, err := r.target.listVMs(ctx)
	if err != nil {
		return r.readFailure(r.target, "list VMs", err)
	}
	vmis, err := r.target.listVMIs(ctx)
	if err != nil {
		return r.readFailure(r.target, "list VMIs", err)
	}
	if r.in.SameCluster {
		// The VM's own objects use its MACs: no conflict with itself.
		vms = slices.DeleteFunc(vms, func(t kubevirtv1.VirtualMachine) bool { return t.UID == v.vm.UID })
		vmis = slices.DeleteFunc(vmis, func(t kubevirtv1.VirtualMachineInstance) bool { return vmi != nil && t.UID == vmi.UID })
	}
	return evalMACs(r, v.vm, macsOf(v.vm, vmi), vms, vmis)
}

func evalMACs(r *runner, vm *kubevirtv1.VirtualMachine, macs map[string]string, targetVMs []kubevirtv1.VirtualMachine, targetVMIs []kubevirtv1.VirtualMachineInstance) Check {
	name := vm.Namespace + "/" + vm.Name
	if len(macs) == 0 {
		return passed("VM %s has no MAC address to compare (no interfaces with one yet)", name)
	}
	users := map[string][]string{} // MAC -> users on the target
	add := func(mac, user string) {
		mac = normalizeMAC(mac)
		if !slices.Contains(users[mac], user) {
			users[mac] = append(users[mac], user)
		}
	}
	for _, t := range targetVMs {
		if t.Spec.Template == nil {
			continue
		}
		for _, iface := range t.Spec.Template.Spec.Domain.Devices.Interfaces {
			if iface.MacAddress != "" {
				add(iface.MacAddress, "VM "+t.Namespace+"/"+t.Name)
			}
		}
	}
	for _, t := range targetVMIs {
		for _, iface := range t.Spec.Domain.Devices.Interfaces {
			if iface.MacAddress != "" {
				add(iface.MacAddress, "VMI "+t.Namespace+"/"+t.Name)
			}
		}
		for _, iface := range t.Status.Interfaces {
			if iface.MAC != "" {
				add(iface.MAC, "VMI "+t.Namespace+"/"+t.Name)
			}
		}
	}
	var conflicts, all []string
	ifaces := make([]string, 0, len(macs))
	for iface := range macs {
		ifaces = append(ifaces, iface)
	}
	sort.Strings(ifaces)
	for _, iface := range ifaces {
		mac := macs[iface]
		all = append(all, iface+" "+mac)
		if u := users[mac]; len(u) > 0 {
			conflicts = append(conflicts, fmt.Sprintf("MAC %s (interface %s) is used on %s by %s", mac, iface, r.target.name, strings.Join(u, ", ")))
		}
	}
	if len(conflicts) > 0 {
		return failed(fmt.Sprintf("VM %s: %s", name, strings.Join(conflicts, "; ")),
			fmt.Sprintf("two guests with one MAC on one network break each other's traffic: delete the %s objects named if they are leftovers of an earlier migration, or give the source VM another MAC (spec.template.spec.domain.devices.interfaces[].macAddress) and restart it", r.target.name))
	}
	return passed("VM %s: no VM or VMI on %s uses its MACs (%s)", name, r.target.name, strings.Join(all, ", "))
}

// TargetStorage: one target node has room for all of the VM's volumes
// that the mapped classes provision on the nodes (cclm-local): the
// receiver and its disks land on one node.
func checkTargetStorage(ctx context.Context, r *runner, v *vmFacts) Check {
	claims, err := r.readClaims(ctx, v)
	if err != nil {
		return r.readFailure(r.source, "read the VM's volumes", err)
	}
	classes, err := r.target.listClasses(ctx)
	if err != nil {
		return r.readFailure(r.target, "list StorageClasses", err)
	}
	var sourceClasses []storagev1.StorageClass
	if storageMapHasIDOnly(r.in.StorageMap) {
		sourceClasses, _ = r.source.listClasses(ctx)
	}
	var local []claim
	var elsewhere []string
	for _, c := range claims {
		pair := findStoragePair(r.in.StorageMap, c.class, sourceClasses)
		if pair == nil {
			continue // StorageMapped says so
		}
		dest := pair.Destination.StorageClass
		if i := slices.IndexFunc(classes, func(sc storagev1.StorageClass) bool { return sc.Name == dest }); i >= 0 && classes[i].Provisioner == scheduling.LocalProvisioner {
			local = append(local, c)
		} else {
			elsewhere = append(elsewhere, fmt.Sprintf("%s (%s on class %s)", c.name, size(c.size), dest))
		}
	}
	if len(local) == 0 {
		return evalTargetStorage(r, v.vm, nil, elsewhere, nil, nil, nil)
	}
	nodes, err := r.target.listNodes(ctx)
	if err != nil {
		return r.readFailure(r.target, "list Nodes", err)
	}
	pvcs, err := r.target.listPVCs(ctx)
	if err != nil {
		return r.readFailure(r.target, "list PVCs", err)
	}
	pvs, err := r.target.listPVs(ctx)
	if err != nil {
		return r.readFailure(r.target, "list PVs", err)
	}
	return evalTargetStorage(r, v.vm, local, elsewhere, schedulable(nodes), pvcs, pvs)
}

func size(n int64) string { return resource.NewQuantity(n, resource.BinarySI).String() }

func evalTargetStorage(r *runner, vm *kubevirtv1.VirtualMachine, local []claim, elsewhere []string, nodes []corev1.Node, pvcs []corev1.PersistentVolumeClaim, pvs []corev1.PersistentVolume) Check {
	name := vm.Namespace + "/" + vm.Name
	note := ""
	if len(elsewhere) > 0 {
		note = "; not counted, as their classes are not provisioned on the nodes: " + strings.Join(elsewhere, ", ")
	}
	if len(local) == 0 {
		return passed("VM %s needs no node-local storage on %s%s", name, r.target.name, note)
	}
	var need int64
	var parts []string
	for _, c := range local {
		need += c.size
		parts = append(parts, fmt.Sprintf("%s %s", c.name, size(c.size)))
	}
	if len(nodes) == 0 {
		return failed(fmt.Sprintf("VM %s needs %s of local storage (%s) on one node of %s, which has no schedulable node", name, size(need), strings.Join(parts, ", "), r.target.name),
			fmt.Sprintf("start the node agents of %s, or uncordon its nodes", r.target.name))
	}
	var fits, report []string
	bestFree := int64(-1 << 62)
	for i := range nodes {
		free, allocatable := scheduling.LocalStorageFree(&nodes[i], pvcs, pvs)
		report = append(report, fmt.Sprintf("%s %s free of %s", nodes[i].Name, size(max(free, 0)), size(allocatable)))
		bestFree = max(bestFree, free)
		if free >= need {
			fits = append(fits, nodes[i].Name)
		}
	}
	if len(fits) > 0 {
		return passed("VM %s needs %s of local storage (%s) on one node of %s: %s can hold it (%s)%s", name, size(need), strings.Join(parts, ", "), r.target.name, strings.Join(fits, ", "), strings.Join(report, "; "), note)
	}
	return failed(
		fmt.Sprintf("VM %s needs %s of local storage (%s) on one node of %s, and no node has that much left: %s", name, size(need), strings.Join(parts, ", "), r.target.name, strings.Join(report, "; ")),
		fmt.Sprintf("free %s on a node of %s (delete PVCs no longer needed there: `%s get pvc -A`), give its node agents a larger --storage, or map the VM's class to storage that is not node-local", size(need-max(bestFree, 0)), r.target.name, r.target.kubectl()))
}
