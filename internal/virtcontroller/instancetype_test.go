package virtcontroller

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheme"
)

func TestApplyProfile(t *testing.T) {
	small := &instancetypev1beta1.VirtualMachineInstancetypeSpec{
		CPU:          instancetypev1beta1.CPUInstancetype{Guest: 2, Model: "Westmere"},
		Memory:       instancetypev1beta1.MemoryInstancetype{Guest: resource.MustParse("256Mi")},
		NodeSelector: map[string]string{"zone": "a"},
		Annotations:  map[string]string{"size": "small"},
	}
	virtio := &instancetypev1beta1.VirtualMachinePreferenceSpec{
		CPU:     &instancetypev1beta1.CPUPreferences{PreferredCPUTopology: instancetypev1beta1.PreferCores},
		Devices: &instancetypev1beta1.DevicePreferences{PreferredDiskBus: "sata", PreferredInterfaceModel: "e1000e"},
		Machine: &instancetypev1beta1.MachinePreferences{PreferredMachineType: "q35"},

		PreferredTerminationGracePeriodSeconds: ptr.To[int64](7),
	}
	newVMI := func() *kubevirtv1.VirtualMachineInstance {
		return &kubevirtv1.VirtualMachineInstance{Spec: kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{
			Devices: kubevirtv1.Devices{
				Disks:      []kubevirtv1.Disk{{Name: "a"}, {Name: "b", Disk: &kubevirtv1.DiskTarget{Bus: "virtio"}}},
				Interfaces: []kubevirtv1.Interface{{Name: "x"}, {Name: "y", Model: "virtio"}},
			},
		}}}
	}
	for _, tc := range []struct {
		name     string
		change   func(*kubevirtv1.VirtualMachineInstance)
		profile  profile
		want     string // the applied fields, summarized
		conflict string
	}{
		{name: "instancetype alone: sockets", profile: profile{Instancetype: small, InstancetypeKey: ClusterInstancetypeAnnotation, InstancetypeName: "u1.small"},
			want: "2/1/1 Westmere 256Mi zone=a size=small u1.small; disks [ virtio] nics [ virtio] machine - grace -"},
		{name: "with a preference: cores, defaults where unset",
			profile: profile{Instancetype: small, InstancetypeKey: InstancetypeAnnotation, InstancetypeName: "small", Preference: virtio, PreferenceKey: PreferenceAnnotation, PreferenceName: "virtio"},
			want:    "1/2/1 Westmere 256Mi zone=a size=small small; disks [sata virtio] nics [e1000e virtio] machine q35 grace 7"},
		{name: "a preference keeps what the VMI sets", change: func(vmi *kubevirtv1.VirtualMachineInstance) {
			vmi.Spec.Domain.Machine = &kubevirtv1.Machine{Type: "pc"}
			vmi.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
		}, profile: profile{Preference: virtio, PreferenceKey: ClusterPreferenceAnnotation, PreferenceName: "virtio"},
			want: "-/-/- - - - - -; disks [sata virtio] nics [e1000e virtio] machine pc grace 0"},
		{name: "node selector conflict", change: func(vmi *kubevirtv1.VirtualMachineInstance) { vmi.Spec.NodeSelector = map[string]string{"zone": "b"} },
			profile: profile{Instancetype: small}, conflict: "spec.template.spec.nodeSelector zone=b conflicts with the instancetype's zone=a"},
		{name: "CPU model conflict", change: func(vmi *kubevirtv1.VirtualMachineInstance) {
			vmi.Spec.Domain.CPU = &kubevirtv1.CPU{Model: "Haswell"}
		}, profile: profile{Instancetype: small}, conflict: `cpu.model "Haswell" conflicts with the instancetype's cpu.model "Westmere"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vmi := newVMI()
			if tc.change != nil {
				tc.change(vmi)
			}
			err := applyProfile(vmi, tc.profile)
			if tc.conflict != "" {
				if err == nil || !strings.Contains(err.Error(), tc.conflict) {
					t.Fatalf("error %v, want one containing %q", err, tc.conflict)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := summarizeProfile(vmi); got != tc.want {
				t.Errorf("applied:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func summarizeProfile(vmi *kubevirtv1.VirtualMachineInstance) string {
	d := vmi.Spec.Domain
	topology, model, memory := "-/-/-", "-", "-"
	if d.CPU != nil {
		topology = strings.Join([]string{itoa(d.CPU.Sockets), itoa(d.CPU.Cores), itoa(d.CPU.Threads)}, "/")
		model = orDash(d.CPU.Model)
	}
	if d.Memory != nil && d.Memory.Guest != nil {
		memory = d.Memory.Guest.String()
	}
	var selector, size, name []string
	for k, v := range vmi.Spec.NodeSelector {
		selector = append(selector, k+"="+v)
	}
	if v, ok := vmi.Annotations["size"]; ok {
		size = append(size, "size="+v)
	}
	for _, key := range []string{InstancetypeAnnotation, ClusterInstancetypeAnnotation} {
		if v, ok := vmi.Annotations[key]; ok {
			name = append(name, v)
		}
	}
	var buses, models []string
	for _, disk := range d.Devices.Disks {
		bus := ""
		if disk.Disk != nil {
			bus = disk.Disk.Bus
		}
		buses = append(buses, bus)
	}
	for _, iface := range d.Devices.Interfaces {
		models = append(models, iface.Model)
	}
	machine, grace := "-", "-"
	if d.Machine != nil {
		machine = d.Machine.Type
	}
	if vmi.Spec.TerminationGracePeriodSeconds != nil {
		grace = itoa(uint32(*vmi.Spec.TerminationGracePeriodSeconds))
	}
	return strings.Join([]string{topology, model, memory, orDash(strings.Join(selector, ",")), orDash(strings.Join(size, ",")), orDash(strings.Join(name, ","))}, " ") +
		"; disks [" + strings.Join(buses, " ") + "] nics [" + strings.Join(models, " ") + "] machine " + machine + " grace " + grace
}

func itoa(n uint32) string { return resource.NewQuantity(int64(n), resource.DecimalSI).String() }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// A VM naming an instancetype or preference that does not exist gets no
// VMI: the error names the kind, the object and the field to fix.
func TestReadProfileNamesWhatIsMissing(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(
		&instancetypev1beta1.VirtualMachineClusterInstancetype{ObjectMeta: metav1.ObjectMeta{Name: "u1.small"}, Spec: instancetypev1beta1.VirtualMachineInstancetypeSpec{
			CPU: instancetypev1beta1.CPUInstancetype{Guest: 1}, Memory: instancetypev1beta1.MemoryInstancetype{Guest: resource.MustParse("1Gi")},
		}},
	).Build()
	vm := &kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps"}, Spec: kubevirtv1.VirtualMachineSpec{
		Instancetype: &kubevirtv1.InstancetypeMatcher{Name: "u1.small"},
		Preference:   &kubevirtv1.PreferenceMatcher{Name: "fedora", Kind: kubevirtv1.SingularPreference},
	}}
	_, err := readProfile(context.Background(), c, vm)
	if err == nil || err.Error() != "spec.preference names VirtualMachinePreference fedora, which does not exist in namespace apps: create it, or fix spec.preference" {
		t.Fatalf("error %v", err)
	}
	vm.Spec.Preference = nil
	p, err := readProfile(context.Background(), c, vm)
	if err != nil || p.Instancetype == nil || p.Instancetype.Memory.Guest.String() != "1Gi" || p.InstancetypeKey != ClusterInstancetypeAnnotation {
		t.Fatalf("profile %+v, error %v", p, err)
	}
}
