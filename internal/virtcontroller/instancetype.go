package virtcontroller

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/vmrefs"
)

// Annotations upstream puts on a VMI made with an instancetype or a
// preference: which one, by kind.
const (
	InstancetypeAnnotation        = "kubevirt.io/instancetype-name"
	ClusterInstancetypeAnnotation = "kubevirt.io/cluster-instancetype-name"
	PreferenceAnnotation          = "kubevirt.io/preference-name"
	ClusterPreferenceAnnotation   = "kubevirt.io/cluster-preference-name"
)

// profile is what a VM's spec.instancetype and spec.preference name, read.
type profile struct {
	Instancetype *instancetypev1beta1.VirtualMachineInstancetypeSpec
	// InstancetypeAnnotation and the name, for the VMI.
	InstancetypeKey, InstancetypeName string
	Preference                        *instancetypev1beta1.VirtualMachinePreferenceSpec
	PreferenceKey, PreferenceName     string
}

// readProfile reads the instancetype and preference the VM names; a
// missing one is an error that names it and the field.
func readProfile(ctx context.Context, c client.Reader, vm *kubevirtv1.VirtualMachine) (profile, error) {
	var p profile
	for _, ref := range vmrefs.Refs(vm) {
		obj, err := vmrefs.Get(ctx, c, ref, vm.Namespace)
		field := "spec.preference"
		if ref.IsInstancetype() {
			field = "spec.instancetype"
		}
		switch {
		case err != nil:
			return p, fmt.Errorf("read %s %s: %w", ref.Kind, ref.Name, err)
		case obj == nil && ref.Namespaced():
			return p, fmt.Errorf("%s names %s %s, which does not exist in namespace %s: create it, or fix %s", field, ref.Kind, ref.Name, vm.Namespace, field)
		case obj == nil:
			return p, fmt.Errorf("%s names %s %s, which does not exist: create it, or fix %s", field, ref.Kind, ref.Name, field)
		}
		key := map[string]string{
			vmrefs.KindInstancetype: InstancetypeAnnotation, vmrefs.KindClusterInstancetype: ClusterInstancetypeAnnotation,
			vmrefs.KindPreference: PreferenceAnnotation, vmrefs.KindClusterPreference: ClusterPreferenceAnnotation,
		}[ref.Kind]
		if ref.IsInstancetype() {
			p.Instancetype, p.InstancetypeKey, p.InstancetypeName = vmrefs.InstancetypeSpec(obj), key, ref.Name
		} else {
			p.Preference, p.PreferenceKey, p.PreferenceName = vmrefs.PreferenceSpec(obj), key, ref.Name
		}
	}
	return p, nil
}

// applyProfile gives the VMI what its instancetype sets (vCPUs in the
// preferred topology, CPU model, memory, node selector, annotations) and
// what its preference defaults where the VMI leaves a field unset, as
// upstream's virt-controller does when it creates the VMI. A value the
// VMI sets that the instancetype sets otherwise conflicts; the error names
// both.
func applyProfile(vmi *kubevirtv1.VirtualMachineInstance, p profile) error {
	spec := &vmi.Spec
	if pref := p.Preference; pref != nil {
		applyPreference(spec, pref)
		vmi.Annotations = withAnnotation(vmi.Annotations, p.PreferenceKey, p.PreferenceName)
	}
	it := p.Instancetype
	if it == nil {
		return nil
	}
	cpu := ptr.Deref(spec.Domain.CPU, kubevirtv1.CPU{})
	cpu.Sockets, cpu.Cores, cpu.Threads = 1, 1, 1
	switch preferredTopology(p.Preference) {
	case instancetypev1beta1.Cores:
		cpu.Cores = it.CPU.Guest
	case instancetypev1beta1.Threads:
		cpu.Threads = it.CPU.Guest
	default:
		cpu.Sockets = it.CPU.Guest
	}
	if it.CPU.Model != "" {
		if cpu.Model != "" && cpu.Model != it.CPU.Model {
			return fmt.Errorf("spec.template.spec.domain.cpu.model %q conflicts with the instancetype's cpu.model %q: remove one", cpu.Model, it.CPU.Model)
		}
		cpu.Model = it.CPU.Model
	}
	spec.Domain.CPU = &cpu
	spec.Domain.Memory = &kubevirtv1.Memory{Guest: ptr.To(it.Memory.Guest.DeepCopy())}
	for key, value := range it.NodeSelector {
		if have, ok := spec.NodeSelector[key]; ok && have != value {
			return fmt.Errorf("spec.template.spec.nodeSelector %s=%s conflicts with the instancetype's %s=%s: remove one", key, have, key, value)
		}
	}
	if len(it.NodeSelector) > 0 {
		spec.NodeSelector = mergeMaps(spec.NodeSelector, it.NodeSelector)
	}
	for key, value := range it.Annotations {
		if have, ok := vmi.Annotations[key]; ok && have != value {
			return fmt.Errorf("spec.template.metadata.annotations %s=%q conflicts with the instancetype's %q: remove one", key, have, value)
		}
	}
	vmi.Annotations = mergeMaps(vmi.Annotations, it.Annotations)
	vmi.Annotations = withAnnotation(vmi.Annotations, p.InstancetypeKey, p.InstancetypeName)
	return nil
}

// applyPreference fills what the VMI leaves unset from the preference.
func applyPreference(spec *kubevirtv1.VirtualMachineInstanceSpec, pref *instancetypev1beta1.VirtualMachinePreferenceSpec) {
	if devices := pref.Devices; devices != nil {
		for i := range spec.Domain.Devices.Disks {
			disk := &spec.Domain.Devices.Disks[i]
			if devices.PreferredDiskBus != "" && (disk.Disk == nil || disk.Disk.Bus == "") {
				disk.Disk = &kubevirtv1.DiskTarget{Bus: devices.PreferredDiskBus}
			}
		}
		for i := range spec.Domain.Devices.Interfaces {
			if iface := &spec.Domain.Devices.Interfaces[i]; iface.Model == "" {
				iface.Model = devices.PreferredInterfaceModel
			}
		}
	}
	if machine := pref.Machine; machine != nil && machine.PreferredMachineType != "" && (spec.Domain.Machine == nil || spec.Domain.Machine.Type == "") {
		spec.Domain.Machine = &kubevirtv1.Machine{Type: machine.PreferredMachineType}
	}
	if spec.TerminationGracePeriodSeconds == nil && pref.PreferredTerminationGracePeriodSeconds != nil {
		spec.TerminationGracePeriodSeconds = ptr.To(*pref.PreferredTerminationGracePeriodSeconds)
	}
}

// preferredTopology is the preference's layout of vCPUs, upstream's older
// prefer* spellings folded into the newer ones; sockets by default.
func preferredTopology(pref *instancetypev1beta1.VirtualMachinePreferenceSpec) instancetypev1beta1.PreferredCPUTopology {
	if pref == nil || pref.CPU == nil || pref.CPU.PreferredCPUTopology == "" {
		return instancetypev1beta1.Sockets
	}
	topology := pref.CPU.PreferredCPUTopology
	if after, ok := strings.CutPrefix(string(topology), "prefer"); ok {
		topology = instancetypev1beta1.PreferredCPUTopology(strings.ToLower(after))
	}
	return topology
}

func withAnnotation(annotations map[string]string, key, value string) map[string]string {
	if key == "" {
		return annotations
	}
	return mergeMaps(annotations, map[string]string{key: value})
}

func mergeMaps(base, extra map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, extra)
	return out
}
