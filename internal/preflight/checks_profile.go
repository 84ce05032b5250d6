package preflight

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/cclm-io/cclm/internal/instancetype"
)

// InstancetypesMatch: the instancetype and preference the VM names exist
// on the source, and the target has the same: a cluster-wide one must
// exist there with an equal spec (the toolkit does not make cluster-wide
// objects); a namespaced one is copied by the Migration unless the target
// namespace already holds one of that name, which must then be equal.
// Otherwise the receiving VMI would get another size or other defaults
// than the guest runs with.
func checkInstancetypesMatch(ctx context.Context, r *runner, v *vmFacts) Check {
	refs := instancetype.Refs(v.vm)
	if len(refs) == 0 {
		return passed("VM %s names no instancetype or preference", v.name())
	}
	var said, differ []string
	for _, ref := range refs {
		source, err := instancetype.Get(ctx, r.source.client, ref, v.vm.Namespace)
		if err != nil {
			return r.readFailure(r.source, fmt.Sprintf("get %s %s", ref.Kind, ref.Name), err)
		}
		if source == nil {
			return failed(fmt.Sprintf("VM %s names %s %s, which does not exist on %s", v.name(), ref.Kind, ref.Name, r.source.name),
				"create it on the source or fix the VM's spec.instancetype / spec.preference")
		}
		target, err := instancetype.Get(ctx, r.target.client, ref, r.targetNamespace(v.vm))
		if err != nil {
			return r.readFailure(r.target, fmt.Sprintf("get %s %s", ref.Kind, ref.Name), err)
		}
		switch {
		case target == nil && ref.Namespaced():
			said = append(said, fmt.Sprintf("%s %s will be copied into %s", ref.Kind, ref.Name, r.targetNamespace(v.vm)))
		case target == nil:
			differ = append(differ, fmt.Sprintf("%s %s does not exist on %s", ref.Kind, ref.Name, r.target.name))
		case !equality.Semantic.DeepEqual(instancetype.Spec(source), instancetype.Spec(target)):
			differ = append(differ, fmt.Sprintf("%s %s differs between %s and %s", ref.Kind, ref.Name, r.source.name, r.target.name))
		default:
			said = append(said, fmt.Sprintf("%s %s is the same on both", ref.Kind, ref.Name))
		}
	}
	if len(differ) > 0 {
		return failed(fmt.Sprintf("VM %s: %s", v.name(), strings.Join(differ, "; ")),
			fmt.Sprintf("make %s hold the same instancetype and preference as %s (kubectl get -o yaml on one, apply on the other), so that the VM arrives with its size and defaults", r.target.name, r.source.name))
	}
	return passed("VM %s: %s", v.name(), strings.Join(said, "; "))
}
