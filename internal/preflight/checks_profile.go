package preflight

import (
	"context"
	"fmt"
	"strings"

	"github.com/cclm-io/cclm/internal/vmrefs"
)

// VMReferences: the objects the VM references (vmrefs.All) exist on the
// source, and the target will give the migrated VM the same.
//   - A cluster-wide instancetype or preference must exist on the target
//     with an equal spec: the toolkit does not make cluster-wide objects,
//     and the receiving VMI is sized from it.
//   - A namespaced instancetype or preference is copied by the Migration,
//     unless the target namespace holds one of that name, which must then
//     be equal.
//   - A Secret or ConfigMap is copied unless the target namespace holds
//     one of that name, which is then kept (as Forklift does); the check
//     says so when its content differs, since the guest's disk on the
//     target is made from it.
func checkVMReferences(ctx context.Context, r *runner, v *vmFacts) Check {
	refs := vmrefs.All(v.vm)
	if len(refs) == 0 {
		return passed("VM %s references no Secret, ConfigMap, instancetype or preference", v.name())
	}
	var said, differ []string
	for _, ref := range refs {
		source, err := vmrefs.Get(ctx, r.source.client, ref, v.vm.Namespace)
		if err != nil {
			return r.readFailure(r.source, fmt.Sprintf("get %s %s", ref.Kind, ref.Name), err)
		}
		if source == nil && ref.Optional {
			said = append(said, fmt.Sprintf("optional %s %s is absent", ref.Kind, ref.Name))
			continue
		}
		if source == nil {
			return failed(fmt.Sprintf("VM %s references %s %s, which does not exist on %s", v.name(), ref.Kind, ref.Name, r.source.name),
				"create it on the source, or fix the VM's reference to it")
		}
		target, err := vmrefs.Get(ctx, r.target.client, ref, r.targetNamespace(v.vm))
		if err != nil {
			return r.readFailure(r.target, fmt.Sprintf("get %s %s", ref.Kind, ref.Name), err)
		}
		profile := ref.Kind != vmrefs.KindSecret && ref.Kind != vmrefs.KindConfigMap
		switch {
		case target == nil && ref.Namespaced():
			said = append(said, fmt.Sprintf("%s %s will be copied into %s", ref.Kind, ref.Name, r.targetNamespace(v.vm)))
		case target == nil:
			differ = append(differ, fmt.Sprintf("%s %s does not exist on %s", ref.Kind, ref.Name, r.target.name))
		case vmrefs.Same(source, target):
			said = append(said, fmt.Sprintf("%s %s is the same on both", ref.Kind, ref.Name))
		case profile:
			differ = append(differ, fmt.Sprintf("%s %s differs between %s and %s", ref.Kind, ref.Name, r.source.name, r.target.name))
		default:
			said = append(said, fmt.Sprintf("%s %s exists in %s on %s with other data and is kept: the migrated guest reads that one", ref.Kind, ref.Name, r.targetNamespace(v.vm), r.target.name))
		}
	}
	if len(differ) > 0 {
		return failed(fmt.Sprintf("VM %s: %s", v.name(), strings.Join(differ, "; ")),
			fmt.Sprintf("make %s hold the same instancetype and preference as %s (kubectl get -o yaml on one, apply on the other), so that the VM arrives with its size and defaults", r.target.name, r.source.name))
	}
	return passed("VM %s: %s", v.name(), strings.Join(said, "; "))
}
