package preflight

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// VMFieldsSupported: every field the source VM sets is one cclm's API
// knows, so the migration carries it to the target. The VM is read as
// unstructured JSON (as the source's API server has it, which for an
// upstream KubeVirt may hold fields cclm does not model) and decoded into
// cclm's types; a field the decoding loses is named, since the receiving
// VM would otherwise arrive without it.
func checkVMFieldsSupported(ctx context.Context, r *runner, v *vmFacts) Check {
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(kubevirtv1.GroupVersion.WithKind("VirtualMachine"))
	if err := r.source.client.Get(ctx, client.ObjectKeyFromObject(v.vm), raw); err != nil {
		return r.readFailure(r.source, "get VM "+v.name(), err)
	}
	dropped, err := droppedFields(raw.Object, &kubevirtv1.VirtualMachine{}, "metadata", "spec")
	if err != nil {
		return failed(fmt.Sprintf("VM %s on %s cannot be read as a kubevirt.io/v1 VirtualMachine: %v", v.name(), r.source.name, err),
			"fix the field named (its type differs from KubeVirt's)")
	}
	if len(dropped) > 0 {
		return failed(fmt.Sprintf("VM %s on %s sets %d field(s) that cclm does not carry, so the migrated VM would lack them: %s", v.name(), r.source.name, len(dropped), strings.Join(dropped, ", ")),
			"remove those fields from the VM if it can do without them (kubectl edit vm), or leave this VM out of the plan: cclm never drops a field silently")
	}
	return passed("VM %s: every field it sets is carried to the target", v.name())
}

// droppedFields lists the paths of raw's given top-level fields that
// typed (a pointer to a struct) has no field for, following encoding/json's
// rules (json tags, inlined embedded structs; a type that decodes itself,
// such as a Quantity, is taken whole). A null is unset and not counted;
// anything else is, even false or {} (upstream's rng: {} is a device).
// The error is a value of the wrong type for a known field.
func droppedFields(raw map[string]any, typed any, fields ...string) ([]string, error) {
	subset := map[string]any{}
	for _, f := range fields {
		if value, ok := raw[f]; ok {
			subset[f] = value
		}
	}
	data, err := json.Marshal(subset)
	if err == nil {
		err = json.Unmarshal(data, typed)
	}
	if err != nil {
		return nil, err
	}
	var missing []string
	collectUnknown("", subset, reflect.TypeOf(typed), &missing)
	return missing, nil
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

func collectUnknown(path string, value any, t reflect.Type, missing *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		object, _ := value.(map[string]any)
		known := jsonFields(t)
		for _, key := range slices.Sorted(maps.Keys(object)) {
			child := strings.TrimPrefix(path+"."+key, ".")
			field, ok := known[key]
			switch {
			case object[key] == nil:
			case !ok:
				*missing = append(*missing, child)
			default:
				collectUnknown(child, object[key], field, missing)
			}
		}
	case reflect.Map:
		object, _ := value.(map[string]any)
		for _, key := range slices.Sorted(maps.Keys(object)) {
			collectUnknown(path+"."+key, object[key], t.Elem(), missing)
		}
	case reflect.Slice:
		list, _ := value.([]any)
		for i, item := range list {
			collectUnknown(fmt.Sprintf("%s[%d]", path, i), item, t.Elem(), missing)
		}
	}
}

// jsonFields are the JSON names of a struct's fields and their types, with
// embedded structs inlined as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || (!f.IsExported() && !f.Anonymous):
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			maps.Copy(fields, jsonFields(f.Type))
		case name == "":
			fields[f.Name] = f.Type
		default:
			fields[name] = f.Type
		}
	}
	return fields
}
