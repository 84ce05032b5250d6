package toolkit

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/vmrefs"
)

// The objects the pipeline creates, built from what it observed. All are
// pure functions; the step function (pipeline.go) decides when.

// ResourceRef is a resource a VM references (vmrefs.All): a Secret or
// ConfigMap, or its instancetype or preference; the copying tasks copy the
// namespaced ones (Forklift's CreateSecrets, CreateConfigMaps,
// EnsurePreference and EnsureInstanceType) and require the
// cluster-wide ones on the target, equal, since one cluster-wide object
// serves every namespace and the toolkit does not make or change it.
type ResourceRef = vmrefs.Ref

// ReferencedResources are the resources the VM references, each once
// (vmrefs.All): the Secrets and ConfigMaps of its volumes and cloud-init,
// then its instancetype and preference.
func ReferencedResources(vm *kubevirtv1.VirtualMachine) []ResourceRef {
	if vm == nil {
		return nil
	}
	return vmrefs.All(vm)
}

// copyOf is the target's copy of a source resource: its content (data and
// type, or spec) kept, metadata only the name, the namespace and our
// labels (and an instancetype's or preference's annotations, which
// upstream's describe them with).
func copyOf(source client.Object, namespace string, labels map[string]string) client.Object {
	meta := metav1.ObjectMeta{Name: source.GetName(), Namespace: namespace, Labels: labels}
	switch s := source.DeepCopyObject().(type) {
	case *corev1.Secret:
		return &corev1.Secret{ObjectMeta: meta, Type: s.Type, Data: s.Data, StringData: s.StringData}
	case *corev1.ConfigMap:
		return &corev1.ConfigMap{ObjectMeta: meta, Data: s.Data, BinaryData: s.BinaryData}
	case *instancetypev1beta1.VirtualMachineInstancetype:
		meta.Annotations = s.Annotations
		return &instancetypev1beta1.VirtualMachineInstancetype{ObjectMeta: meta, Spec: s.Spec}
	case *instancetypev1beta1.VirtualMachinePreference:
		meta.Annotations = s.Annotations
		return &instancetypev1beta1.VirtualMachinePreference{ObjectMeta: meta, Spec: s.Spec}
	}
	return nil
}

// VolumeKind is how a VM disk is backed.
type VolumeKind string

// Disk backings the pipeline recreates.
const (
	VolumeDataVolume VolumeKind = "DataVolume"
	VolumePVC        VolumeKind = "PersistentVolumeClaim"
)

// PlannedVolume is one target volume CreateVolumes makes: the same name
// and at least the same size as the source's, in the mapped storage class.
type PlannedVolume struct {
	Kind         VolumeKind
	Name         string
	Size         resource.Quantity
	StorageClass string
	AccessModes  []corev1.PersistentVolumeAccessMode
	VolumeMode   *corev1.PersistentVolumeMode
}

// planVolumes works out the target volumes of the source VM's disks from
// its DataVolumes and PVCs on the source (maps by name) and the storage
// map. An error names the disk and what to fix.
func planVolumes(vm *kubevirtv1.VirtualMachine, dataVolumes map[string]*cdiv1beta1.DataVolume, pvcs map[string]*corev1.PersistentVolumeClaim, storageMap []forkliftv1beta1.StoragePair) ([]PlannedVolume, error) {
	if vm.Spec.Template == nil {
		return nil, nil
	}
	var planned []PlannedVolume
	for _, v := range vm.Spec.Template.Spec.Volumes {
		var kind VolumeKind
		var name string
		switch {
		case v.DataVolume != nil:
			kind, name = VolumeDataVolume, v.DataVolume.Name
		case v.PersistentVolumeClaim != nil:
			kind, name = VolumePVC, v.PersistentVolumeClaim.ClaimName
		default:
			continue
		}
		p, err := planVolume(vm, kind, name, dataVolumes[name], pvcs[name], storageMap)
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", v.Name, err)
		}
		planned = append(planned, p)
	}
	return planned, nil
}

func planVolume(vm *kubevirtv1.VirtualMachine, kind VolumeKind, name string, dv *cdiv1beta1.DataVolume, pvc *corev1.PersistentVolumeClaim, storageMap []forkliftv1beta1.StoragePair) (PlannedVolume, error) {
	p := PlannedVolume{Kind: kind, Name: name}
	if kind == VolumeDataVolume && dv == nil {
		return p, fmt.Errorf("DataVolume %s/%s does not exist on the source", vm.Namespace, name)
	}
	if pvc == nil && (kind == VolumePVC || dv.Spec.Storage == nil && dv.Spec.PVC == nil) {
		return p, fmt.Errorf("PVC %s/%s does not exist on the source", vm.Namespace, name)
	}
	var class string
	var sizes []resource.Quantity
	var sourceModes []corev1.PersistentVolumeAccessMode
	var sourceVolumeMode *corev1.PersistentVolumeMode
	if pvc != nil {
		class = ptr.Deref(pvc.Spec.StorageClassName, "")
		sizes = append(sizes, pvc.Status.Capacity[corev1.ResourceStorage], pvc.Spec.Resources.Requests[corev1.ResourceStorage])
		sourceModes, sourceVolumeMode = pvc.Spec.AccessModes, pvc.Spec.VolumeMode
	}
	if dv != nil {
		switch {
		case dv.Spec.Storage != nil:
			if class == "" {
				class = ptr.Deref(dv.Spec.Storage.StorageClassName, "")
			}
			sizes = append(sizes, dv.Spec.Storage.Resources.Requests[corev1.ResourceStorage])
		case dv.Spec.PVC != nil:
			if class == "" {
				class = ptr.Deref(dv.Spec.PVC.StorageClassName, "")
			}
			sizes = append(sizes, dv.Spec.PVC.Resources.Requests[corev1.ResourceStorage])
		}
	}
	for _, size := range sizes {
		if size.Cmp(p.Size) > 0 {
			p.Size = size
		}
	}
	if p.Size.IsZero() {
		return p, fmt.Errorf("%s %s/%s has no size (no requests.storage, no capacity)", kind, vm.Namespace, name)
	}
	if class == "" {
		return p, fmt.Errorf("%s %s/%s has no storage class to map: give its PVC a storageClassName", kind, vm.Namespace, name)
	}
	pair := findStoragePair(storageMap, class)
	if pair == nil {
		return p, fmt.Errorf("storage class %s (%s %s/%s) is not in the plan's StorageMap: add a pair with source.name %s", class, kind, vm.Namespace, name, class)
	}
	p.StorageClass = pair.Destination.StorageClass
	if pair.Destination.AccessMode != "" {
		p.AccessModes = []corev1.PersistentVolumeAccessMode{pair.Destination.AccessMode}
	} else if kind == VolumePVC {
		p.AccessModes = slices.Clone(sourceModes)
	}
	if pair.Destination.VolumeMode != "" {
		p.VolumeMode = ptr.To(pair.Destination.VolumeMode)
	} else if kind == VolumePVC && sourceVolumeMode != nil {
		p.VolumeMode = ptr.To(*sourceVolumeMode)
	}
	if kind == VolumePVC && len(p.AccessModes) == 0 {
		p.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return p, nil
}

func findStoragePair(pairs []forkliftv1beta1.StoragePair, class string) *forkliftv1beta1.StoragePair {
	for i := range pairs {
		if pairs[i].Source.Name == class {
			return &pairs[i]
		}
	}
	return nil
}

// volumeObject is the target object of a planned volume: a blank
// DataVolume, or a PVC.
func volumeObject(p PlannedVolume, namespace string, labels map[string]string) client.Object {
	meta := metav1.ObjectMeta{Name: p.Name, Namespace: namespace, Labels: labels}
	resources := corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: p.Size}}
	if p.Kind == VolumePVC {
		return &corev1.PersistentVolumeClaim{ObjectMeta: meta, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: slices.Clone(p.AccessModes), Resources: resources,
			StorageClassName: ptr.To(p.StorageClass), VolumeMode: p.VolumeMode,
		}}
	}
	return &cdiv1beta1.DataVolume{ObjectMeta: meta, Spec: cdiv1beta1.DataVolumeSpec{
		Source: &cdiv1beta1.DataVolumeSource{Blank: &cdiv1beta1.DataVolumeBlankImage{}},
		Storage: &cdiv1beta1.StorageSpec{
			AccessModes: slices.Clone(p.AccessModes), Resources: resources,
			StorageClassName: ptr.To(p.StorageClass), VolumeMode: p.VolumeMode,
		},
	}}
}

// totalBytes is the sum of the planned volumes' sizes.
func totalBytes(volumes []PlannedVolume) int64 {
	var total int64
	for _, v := range volumes {
		total += v.Size.Value()
	}
	return total
}

// rewriteNetworks maps the template's networks through the NetworkMap: the
// pod network and each Multus network to its destination; an "ignored"
// destination drops the network and its interface. An unmapped network is
// an error that names it.
func rewriteNetworks(spec *kubevirtv1.VirtualMachineInstanceSpec, vmNamespace string, pairs []forkliftv1beta1.NetworkPair) error {
	var networks []kubevirtv1.Network
	dropped := map[string]bool{}
	for _, n := range spec.Networks {
		var pair *forkliftv1beta1.NetworkPair
		var what string
		switch {
		case n.Pod != nil:
			what = "the pod network"
			pair = findNetworkPair(pairs, func(source forkliftv1beta1.Ref) bool { return source.Type == "pod" })
		case n.Multus != nil:
			namespace, name := splitNetworkName(n.Multus.NetworkName, vmNamespace)
			what = fmt.Sprintf("NetworkAttachmentDefinition %s/%s", namespace, name)
			pair = findNetworkPair(pairs, func(source forkliftv1beta1.Ref) bool {
				sourceNamespace := source.Namespace
				if sourceNamespace == "" {
					sourceNamespace = vmNamespace
				}
				return source.Type != "pod" && source.Name == name && sourceNamespace == namespace
			})
		default:
			networks = append(networks, n)
			continue
		}
		if pair == nil {
			return fmt.Errorf("network %s (%s) is not in the plan's NetworkMap: add a pair for it", n.Name, what)
		}
		switch pair.Destination.Type {
		case "ignored":
			dropped[n.Name] = true
			continue
		case "multus":
			name := pair.Destination.Name
			if pair.Destination.Namespace != "" {
				name = pair.Destination.Namespace + "/" + name
			}
			n.Pod, n.Multus = nil, &kubevirtv1.MultusNetwork{NetworkName: name}
		default: // pod
			n.Pod, n.Multus = &kubevirtv1.PodNetwork{}, nil
		}
		networks = append(networks, n)
	}
	spec.Networks = networks
	if len(dropped) > 0 {
		spec.Domain.Devices.Interfaces = slices.DeleteFunc(spec.Domain.Devices.Interfaces, func(i kubevirtv1.Interface) bool { return dropped[i.Name] })
	}
	return nil
}

func findNetworkPair(pairs []forkliftv1beta1.NetworkPair, match func(forkliftv1beta1.Ref) bool) *forkliftv1beta1.NetworkPair {
	for i := range pairs {
		if match(pairs[i].Source) {
			return &pairs[i]
		}
	}
	return nil
}

func splitNetworkName(networkName, defaultNamespace string) (string, string) {
	if namespace, name, ok := strings.Cut(networkName, "/"); ok {
		return namespace, name
	}
	return defaultNamespace, networkName
}

// interfaceMACs are the MACs of the guest's interfaces: the template's,
// else what the running VMI reports, by interface name. Encoded sorted as
// "name=mac,name=mac" for a task annotation.
func interfaceMACs(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) string {
	macs := map[string]string{}
	if vmi != nil {
		for _, i := range vmi.Status.Interfaces {
			if i.Name != "" && i.MAC != "" {
				macs[i.Name] = i.MAC
			}
		}
	}
	if vm.Spec.Template != nil {
		for _, i := range vm.Spec.Template.Spec.Domain.Devices.Interfaces {
			if i.MacAddress != "" {
				macs[i.Name] = i.MacAddress
			}
		}
	}
	names := make([]string, 0, len(macs))
	for name := range macs {
		names = append(names, name)
	}
	sort.Strings(names)
	pairs := make([]string, len(names))
	for i, name := range names {
		pairs[i] = name + "=" + macs[name]
	}
	return strings.Join(pairs, ",")
}

func parseMACs(encoded string) map[string]string {
	macs := map[string]string{}
	for pair := range strings.SplitSeq(encoded, ",") {
		if name, mac, ok := strings.Cut(pair, "="); ok {
			macs[name] = mac
		}
	}
	return macs
}

// receiverInput is what the receiving VM is built from.
type receiverInput struct {
	Source          *kubevirtv1.VirtualMachine
	TargetNamespace string
	// MACs and RunStrategy as Initialize recorded them.
	MACs        map[string]string
	RunStrategy kubevirtv1.VirtualMachineRunStrategy
	NetworkMap  []forkliftv1beta1.NetworkPair
	StorageMap  []forkliftv1beta1.StoragePair
	Labels      map[string]string
	// TargetLabels and TargetNodeSelector are the plan's.
	TargetLabels, TargetNodeSelector map[string]string
}

// controllerAnnotations are a VM's annotations that its cluster's
// controllers keep for themselves; they do not travel.
var controllerAnnotations = []string{kubevirtv1.StartFailureAnnotation}

// receiverVM is the target VM: the source VM whole, except for these
// documented changes (ReceiverChanges says them to users):
//   - metadata: the target namespace; only the name, labels and
//     annotations travel (not the owner references, finalizers or
//     anything the source's API server set); the toolkit's labels are
//     added and kubevirt.io/restore-run-strategy is set to the source's
//     run strategy; the source's controller bookkeeping is dropped;
//   - spec.runStrategy WaitAsReceiver (spec.running unset);
//   - the template: the plan's targetLabels and the toolkit's labels
//     added (the toolkit's win), the plan's targetNodeSelector added to
//     the node selector (a key the VM sets otherwise is an error), each
//     interface's MAC
//     filled in from the running guest where the template leaves it to
//     the controller, the networks mapped by the NetworkMap (an ignored
//     one dropped with its interface);
//   - dataVolumeTemplates: the storage class (and access and volume mode,
//     when the StorageMap gives them) mapped by the StorageMap; the
//     DataVolumes themselves are the blank ones CreateVolumes made, which
//     the VM controller uses as they are;
//   - no status.
func receiverVM(in receiverInput) (*kubevirtv1.VirtualMachine, error) {
	source := in.Source
	if source.Spec.Template == nil {
		return nil, fmt.Errorf("VM %s/%s has no template", source.Namespace, source.Name)
	}
	spec := source.Spec.DeepCopy()
	template := spec.Template
	if err := rewriteNetworks(&template.Spec, source.Namespace, in.NetworkMap); err != nil {
		return nil, err
	}
	for i := range template.Spec.Domain.Devices.Interfaces {
		iface := &template.Spec.Domain.Devices.Interfaces[i]
		if iface.MacAddress == "" {
			iface.MacAddress = in.MACs[iface.Name]
		}
	}
	template.ObjectMeta.Labels = mergeLabels(template.ObjectMeta.Labels, in.TargetLabels)
	template.ObjectMeta.Labels = mergeLabels(template.ObjectMeta.Labels, in.Labels)
	for key, value := range in.TargetNodeSelector {
		if have, ok := template.Spec.NodeSelector[key]; ok && have != value {
			return nil, fmt.Errorf("the plan's spec.targetNodeSelector %s=%s conflicts with VM %s/%s's nodeSelector %s=%s: remove one", key, value, source.Namespace, source.Name, key, have)
		}
		if template.Spec.NodeSelector == nil {
			template.Spec.NodeSelector = map[string]string{}
		}
		template.Spec.NodeSelector[key] = value
	}
	for i := range spec.DataVolumeTemplates {
		mapDataVolumeStorage(&spec.DataVolumeTemplates[i].Spec, in.StorageMap)
	}
	restore := in.RunStrategy
	if restore == "" || restore == kubevirtv1.RunStrategyWaitAsReceiver {
		restore = kubevirtv1.RunStrategyAlways
	}
	annotations := map[string]string{}
	for k, v := range source.Annotations {
		if !slices.Contains(controllerAnnotations, k) {
			annotations[k] = v
		}
	}
	annotations[kubevirtv1.RestoreRunStrategyAnnotation] = string(restore)
	spec.Running, spec.RunStrategy = nil, ptr.To(kubevirtv1.RunStrategyWaitAsReceiver)
	return &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{
			Name: source.Name, Namespace: in.TargetNamespace,
			Labels: mergeLabels(source.Labels, in.Labels), Annotations: annotations,
		},
		Spec: *spec,
	}, nil
}

// mapDataVolumeStorage gives a DataVolume template the StorageMap's
// destination for its storage class; a template that names no class, or
// one the map lacks, keeps its own (preflight's StorageMapped names the
// classes of the DataVolumes themselves).
func mapDataVolumeStorage(spec *cdiv1beta1.DataVolumeSpec, storageMap []forkliftv1beta1.StoragePair) {
	var class **string
	var modes *[]corev1.PersistentVolumeAccessMode
	var volumeMode **corev1.PersistentVolumeMode
	switch {
	case spec.Storage != nil:
		class, modes, volumeMode = &spec.Storage.StorageClassName, &spec.Storage.AccessModes, &spec.Storage.VolumeMode
	case spec.PVC != nil:
		class, modes, volumeMode = &spec.PVC.StorageClassName, &spec.PVC.AccessModes, &spec.PVC.VolumeMode
	default:
		return
	}
	if *class == nil {
		return
	}
	pair := findStoragePair(storageMap, **class)
	if pair == nil {
		return
	}
	*class = ptr.To(pair.Destination.StorageClass)
	if pair.Destination.AccessMode != "" {
		*modes = []corev1.PersistentVolumeAccessMode{pair.Destination.AccessMode}
	}
	if pair.Destination.VolumeMode != "" {
		*volumeMode = ptr.To(pair.Destination.VolumeMode)
	}
}

// mergeLabels is base without the toolkit's labels (a VM that came with an
// earlier migration carries that one's), plus ours.
func mergeLabels(base, ours map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		if !strings.HasPrefix(k, "forklift.konveyor.io/") {
			out[k] = v
		}
	}
	for k, v := range ours {
		out[k] = v
	}
	return out
}

// targetVMIM is the receiving half, in the target namespace.
func targetVMIM(name, namespace, vmName, migrationID string, labels map[string]string) *kubevirtv1.VirtualMachineInstanceMigration {
	return &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{
			VMIName: vmName,
			Receive: &kubevirtv1.VirtualMachineInstanceMigrationTarget{MigrationID: migrationID},
		},
	}
}

// sourceVMIM is the sending half, in the source VM's namespace.
func sourceVMIM(name, namespace, vmName, migrationID, connectURL string, labels map[string]string) *kubevirtv1.VirtualMachineInstanceMigration {
	return &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{
			VMIName: vmName,
			SendTo:  &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: migrationID, ConnectURL: connectURL},
		},
	}
}

// vmimFailure is why a VMIM failed, as it says.
func vmimFailure(m *kubevirtv1.VirtualMachineInstanceMigration) string {
	if m == nil {
		return ""
	}
	if state := m.Status.MigrationState; state != nil && state.FailureReason != "" {
		return state.FailureReason
	}
	for _, c := range m.Status.Conditions {
		if c.Status == corev1.ConditionTrue && c.Message != "" && c.Type != kubevirtv1.VirtualMachineInstanceMigrationAbortRequested {
			return c.Message
		}
	}
	return "no reason given"
}
