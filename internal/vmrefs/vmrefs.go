// Package vmrefs finds the objects a VM references besides its disks'
// claims (what spec.instancetype and spec.preference name: kinds, objects,
// specs) and says when two clusters' copies of a referenced object (those,
// or a Secret or ConfigMap) are the same. The virt controller applies
// instancetypes and preferences, the preflight compares references between
// clusters, and the toolkit copies or requires them, all through it.
package vmrefs

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// Kinds of the objects a VM may name.
const (
	KindSecret              = "Secret"
	KindConfigMap           = "ConfigMap"
	KindInstancetype        = kubevirtv1.SingularResourceName
	KindClusterInstancetype = kubevirtv1.ClusterSingularResourceName
	KindPreference          = kubevirtv1.SingularPreference
	KindClusterPreference   = kubevirtv1.ClusterSingularPreference
)

// Ref is an object a VM names.
type Ref struct {
	Kind, Name string
	// Optional: the VM does without it (an optional secret or configMap
	// volume).
	Optional bool
}

func (r Ref) String() string { return r.Kind + " " + r.Name }

// Namespaced: the object is in the VM's namespace, not cluster-wide.
func (r Ref) Namespaced() bool {
	return r.Kind != KindClusterInstancetype && r.Kind != KindClusterPreference
}

// IsInstancetype: the object sizes the VM (else it is a preference).
func (r Ref) IsInstancetype() bool {
	return r.Kind == KindInstancetype || r.Kind == KindClusterInstancetype
}

// All are the objects the VM names, each once: the Secrets and ConfigMaps
// of its volumes (secret, configMap and sysprep volumes, cloud-init
// secretRef and networkDataSecretRef), then its instancetype and
// preference. One several volumes name is optional only if each of them
// says so.
func All(vm *kubevirtv1.VirtualMachine) []Ref {
	var refs []Ref
	add := func(ref Ref) {
		for i, have := range refs {
			if have.Kind == ref.Kind && have.Name == ref.Name {
				refs[i].Optional = have.Optional && ref.Optional
				return
			}
		}
		refs = append(refs, ref)
	}
	if vm.Spec.Template != nil {
		for _, ref := range vm.Spec.Template.Spec.ReferencedObjects() {
			add(Ref{Kind: ref.Kind, Name: ref.Name, Optional: ref.Optional})
		}
	}
	for _, ref := range Refs(vm) {
		add(ref)
	}
	return refs
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

// NewObject is an empty object of one of the kinds, nil for another.
func NewObject(kind string) client.Object {
	switch kind {
	case KindSecret:
		return &corev1.Secret{}
	case KindConfigMap:
		return &corev1.ConfigMap{}
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

// Same: two clusters' copies of a referenced object hold the same: the
// spec of an instancetype or preference, the type and data of a Secret,
// the data and binary data of a ConfigMap. Metadata is not compared.
func Same(a, b client.Object) bool {
	switch x := a.(type) {
	case *corev1.Secret:
		y, ok := b.(*corev1.Secret)
		return ok && x.Type == y.Type && equality.Semantic.DeepEqual(x.Data, y.Data)
	case *corev1.ConfigMap:
		y, ok := b.(*corev1.ConfigMap)
		return ok && equality.Semantic.DeepEqual(x.Data, y.Data) && equality.Semantic.DeepEqual(x.BinaryData, y.BinaryData)
	}
	return equality.Semantic.DeepEqual(Spec(a), Spec(b))
}
