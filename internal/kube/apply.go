// Package kube holds the small client-side helpers that several cclm
// components share: server-side apply of typed or unstructured objects, and
// waiting for conditions with a deadline.
package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager is the name cclm's server-side applies own fields under.
const FieldManager = "cclm"

// Applier server-side applies objects of any kind.
type Applier struct {
	dynamic dynamic.Interface
	mapper  meta.ResettableRESTMapper
}

// NewApplier makes an Applier for the cluster behind config.
func NewApplier(config *rest.Config) (*Applier, error) {
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	return &Applier{dynamic: dyn, mapper: mapper}, nil
}

// Apply server-side applies each object, taking ownership of the fields it
// sets (force), and returns the first error naming the object.
func (a *Applier) Apply(ctx context.Context, objects ...runtime.Object) error {
	for _, obj := range objects {
		u, err := ToUnstructured(obj)
		if err != nil {
			return err
		}
		if err := a.applyOne(ctx, u); err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), NameOf(u), err)
		}
	}
	return nil
}

func (a *Applier) applyOne(ctx context.Context, u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		// A CRD installed a moment ago: read discovery again.
		a.mapper.Reset()
		mapping, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return err
	}
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	resource := a.dynamic.Resource(mapping.Resource)
	force := true
	options := metav1.PatchOptions{FieldManager: FieldManager, Force: &force, FieldValidation: "Strict"}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		_, err = resource.Namespace(u.GetNamespace()).Patch(ctx, u.GetName(), types.ApplyPatchType, data, options)
	} else {
		_, err = resource.Patch(ctx, u.GetName(), types.ApplyPatchType, data, options)
	}
	return err
}

// ToUnstructured converts a typed object, which must carry its apiVersion and
// kind, into unstructured form.
func ToUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u, nil
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: content}
	if u.GetKind() == "" || u.GetAPIVersion() == "" {
		return nil, fmt.Errorf("object %s has no apiVersion or kind set", NameOf(u))
	}
	// Server-side apply refuses a creationTimestamp of null.
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return u, nil
}

// NameOf gives namespace/name, or name for cluster-scoped objects.
func NameOf(obj metav1.Object) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}
