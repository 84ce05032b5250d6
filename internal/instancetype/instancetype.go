// Package instancetype finds what a VM's spec.instancetype and
// spec.preference name: the kinds, the objects and their specs. The virt
// controller applies them, the preflight compares them between clusters,
// and the toolkit copies or requires them; all three read them here.
package instancetype

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Kinds of the objects a VM may name.
const (
	KindInstancetype        = kubevirtv1.SingularResourceName
	KindClusterInstancetype = kubevirtv1.ClusterSingularResourceName
	KindPreference          = kubevirtv1.SingularPreference
	KindClusterPreference   = kubevirtv1.ClusterSingularPreference
)

// Ref is an instancetype or preference a VM names.
type Ref struct {
	Kind, Name string
}

// Namespaced: the object is in the VM's namespace, not cluster-wide.
func (r Ref) Namespaced() bool { return r.Kind == KindInstancetype || r.Kind == KindPreference }

// IsInstancetype: the object sizes the VM (else it is a preference).
func (r Ref) IsInstancetype() bool {
	return r.Kind == KindInstancetype || r.Kind == KindClusterInstancetype
}

// Refs are what the VM's spec.instancetype and spec.preference name, in
// that order.
func Refs(vm *kubevirtv1.VirtualMachine) []Ref {
	var refs []Ref
	if m := vm.Spec.Instancetype; m != nil {
		kind := KindClusterInstancetype
		if m.IsNamespaced() {
			kind = KindInstancetype
		}
		refs = append(refs, Ref{Kind: kind, Name: m.Name})
	}
	if m := vm.Spec.Preference; m != nil {
		kind := KindClusterPreference
		if m.IsNamespaced() {
			kind = KindPreference
		}
		refs = append(refs, Ref{Kind: kind, Name: m.Name})
	}
	return refs
}

// NewObject is an empty object of one of the four kinds, nil for another.
func NewObject(kind string) client.Object {
	switch kind {
	case KindInstancetype:
		return &instancetypev1beta1.VirtualMachineInstancetype{}
	case KindClusterInstancetype:
		return &instancetypev1beta1.VirtualMachineClusterInstancetype{}
	case KindPreference:
		return &instancetypev1beta1.VirtualMachinePreference{}
	case KindClusterPreference:
		return &instancetypev1beta1.VirtualMachineClusterPreference{}
	}
	return nil
}

// Get reads the object ref names, the namespaced kinds in namespace; nil
// when it does not exist.
func Get(ctx context.Context, c client.Reader, ref Ref, namespace string) (client.Object, error) {
	key := client.ObjectKey{Name: ref.Name}
	if ref.Namespaced() {
		key.Namespace = namespace
	}
	obj := NewObject(ref.Kind)
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return obj, nil
}

// InstancetypeSpec is the spec of an instancetype of either scope, nil
// for another object.
func InstancetypeSpec(obj client.Object) *instancetypev1beta1.VirtualMachineInstancetypeSpec {
	switch o := obj.(type) {
	case *instancetypev1beta1.VirtualMachineInstancetype:
		return &o.Spec
	case *instancetypev1beta1.VirtualMachineClusterInstancetype:
		return &o.Spec
	}
	return nil
}

// PreferenceSpec is the spec of a preference of either scope, nil for
// another object.
func PreferenceSpec(obj client.Object) *instancetypev1beta1.VirtualMachinePreferenceSpec {
	switch o := obj.(type) {
	case *instancetypev1beta1.VirtualMachinePreference:
		return &o.Spec
	case *instancetypev1beta1.VirtualMachineClusterPreference:
		return &o.Spec
	}
	return nil
}

// Spec is what of an instancetype or preference must be equal for two
// clusters to size and default a VM alike; nil for other objects.
func Spec(obj client.Object) any {
	if spec := InstancetypeSpec(obj); spec != nil {
		return *spec
	}
	if spec := PreferenceSpec(obj); spec != nil {
		return *spec
	}
	return nil
}
