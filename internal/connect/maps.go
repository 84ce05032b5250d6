package connect

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// MapName is the name of the NetworkMap and of the StorageMap that
// `cclm migrate` makes for a source Provider, and reuses.
func MapName(provider string) string { return provider + "-default" }

// defaultClassAnnotation marks a cluster's default StorageClass.
const defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"

// DefaultNetworkPairs maps the pod network to the pod network, and each
// multus network the VMs use to the NetworkAttachmentDefinition of the same
// namespace and name on the target when it has one (targetNADs holds
// "namespace/name"); a network without a counterpart is left unmapped, for
// preflight to name.
func DefaultNetworkPairs(vms []kubevirtv1.VirtualMachine, targetNADs map[string]bool) []forkliftv1beta1.NetworkPair {
	pairs := []forkliftv1beta1.NetworkPair{{
		Source:      forkliftv1beta1.Ref{Type: "pod"},
		Destination: forkliftv1beta1.DestinationNetwork{Type: "pod"},
	}}
	seen := map[string]bool{}
	for _, vm := range vms {
		if vm.Spec.Template == nil {
			continue
		}
		for _, network := range vm.Spec.Template.Spec.Networks {
			if network.Multus == nil {
				continue
			}
			namespace, name := vm.Namespace, network.Multus.NetworkName
			if ns, n, ok := strings.Cut(name, "/"); ok {
				namespace, name = ns, n
			}
			key := namespace + "/" + name
			if seen[key] || !targetNADs[key] {
				continue
			}
			seen[key] = true
			pairs = append(pairs, forkliftv1beta1.NetworkPair{
				Source:      forkliftv1beta1.Ref{Namespace: namespace, Name: name},
				Destination: forkliftv1beta1.DestinationNetwork{Type: "multus", Namespace: namespace, Name: name},
			})
		}
	}
	return pairs
}

// DefaultStoragePairs maps each source storage class to the target's class
// of the same name, else to the target's default class; a class with
// neither is left unmapped, for preflight to name. The pairs are sorted by
// source class.
func DefaultStoragePairs(sourceClasses []string, targetClasses []storagev1.StorageClass) []forkliftv1beta1.StoragePair {
	names := map[string]bool{}
	defaultClass := ""
	for _, class := range targetClasses {
		names[class.Name] = true
		if class.Annotations[defaultClassAnnotation] == "true" && (defaultClass == "" || class.Name < defaultClass) {
			defaultClass = class.Name
		}
	}
	sorted := slices.Clone(sourceClasses)
	slices.Sort(sorted)
	pairs := []forkliftv1beta1.StoragePair{}
	for _, class := range slices.Compact(sorted) {
		destination := class
		if !names[class] {
			destination = defaultClass
		}
		if destination == "" {
			continue
		}
		pairs = append(pairs, forkliftv1beta1.StoragePair{
			Source:      forkliftv1beta1.Ref{Name: class},
			Destination: forkliftv1beta1.DestinationStorage{StorageClass: destination},
		})
	}
	return pairs
}

func networkKey(ref forkliftv1beta1.Ref) string {
	if ref.Type == "pod" {
		return "pod"
	}
	if ref.ID != "" {
		return "id:" + ref.ID
	}
	return ref.Namespace + "/" + ref.Name
}

func storageKey(ref forkliftv1beta1.Ref) string {
	if ref.ID != "" && ref.Name == "" {
		return "id:" + ref.ID
	}
	return ref.Name
}

// MergeNetworkPairs keeps every pair of existing and adds each default
// pair whose source existing does not map: a map the user edited keeps
// the user's choices.
func MergeNetworkPairs(existing, defaults []forkliftv1beta1.NetworkPair) []forkliftv1beta1.NetworkPair {
	out := slices.Clone(existing)
	for _, pair := range defaults {
		if !slices.ContainsFunc(out, func(p forkliftv1beta1.NetworkPair) bool { return networkKey(p.Source) == networkKey(pair.Source) }) {
			out = append(out, pair)
		}
	}
	return out
}

// MergeStoragePairs is MergeNetworkPairs for storage.
func MergeStoragePairs(existing, defaults []forkliftv1beta1.StoragePair) []forkliftv1beta1.StoragePair {
	out := slices.Clone(existing)
	for _, pair := range defaults {
		if !slices.ContainsFunc(out, func(p forkliftv1beta1.StoragePair) bool { return storageKey(p.Source) == storageKey(pair.Source) }) {
			out = append(out, pair)
		}
	}
	return out
}

// Maps are the network and storage maps of a plan from the source
// Provider: the existing ones (named MapName) completed with the
// defaults, or the defaults alone.
type Maps struct {
	Network *forkliftv1beta1.NetworkMap
	Storage *forkliftv1beta1.StorageMap
	// networkOutcome and storageOutcome say what Save must do.
	networkOutcome, storageOutcome Outcome
}

// PlanMaps computes the maps a plan for vms would use. source reads the
// source cluster (storage classes, the VMs' networks), target the target
// (its classes, NADs and existing maps). It writes nothing.
func PlanMaps(ctx context.Context, source, target client.Reader, provider *forkliftv1beta1.Provider, vms []kubevirtv1.VirtualMachine) (*Maps, error) {
	var sourceClasses storagev1.StorageClassList
	if err := source.List(ctx, &sourceClasses); err != nil {
		return nil, fmt.Errorf("list the source's StorageClasses: %w", err)
	}
	var targetClasses storagev1.StorageClassList
	if err := target.List(ctx, &targetClasses); err != nil {
		return nil, fmt.Errorf("list the target's StorageClasses: %w", err)
	}
	var nads cniv1.NetworkAttachmentDefinitionList
	if err := target.List(ctx, &nads); err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("list the target's NetworkAttachmentDefinitions: %w", err)
	}
	targetNADs := map[string]bool{}
	for _, nad := range nads.Items {
		targetNADs[nad.Namespace+"/"+nad.Name] = true
	}
	var classNames []string
	for _, class := range sourceClasses.Items {
		classNames = append(classNames, class.Name)
	}
	networkPairs := DefaultNetworkPairs(vms, targetNADs)
	storagePairs := DefaultStoragePairs(classNames, targetClasses.Items)

	providers := forkliftv1beta1.ProviderPair{
		Source:      corev1.ObjectReference{Name: provider.Name, Namespace: provider.Namespace},
		Destination: corev1.ObjectReference{Name: HostProvider, Namespace: provider.Namespace},
	}
	key := client.ObjectKey{Namespace: provider.Namespace, Name: MapName(provider.Name)}
	maps := &Maps{}

	network := &forkliftv1beta1.NetworkMap{}
	switch err := target.Get(ctx, key, network); {
	case apierrors.IsNotFound(err):
		network = &forkliftv1beta1.NetworkMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Spec:       forkliftv1beta1.NetworkMapSpec{Provider: providers, Map: networkPairs},
		}
		maps.networkOutcome = Created
	case err != nil:
		return nil, fmt.Errorf("read NetworkMap %s: %w", key, err)
	default:
		merged := MergeNetworkPairs(network.Spec.Map, networkPairs)
		maps.networkOutcome = Unchanged
		if !equality.Semantic.DeepEqual(merged, network.Spec.Map) || network.Spec.Provider != providers {
			network.Spec.Map, network.Spec.Provider, maps.networkOutcome = merged, providers, Updated
		}
	}
	maps.Network = network

	storage := &forkliftv1beta1.StorageMap{}
	switch err := target.Get(ctx, key, storage); {
	case apierrors.IsNotFound(err):
		storage = &forkliftv1beta1.StorageMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Spec:       forkliftv1beta1.StorageMapSpec{Provider: providers, Map: storagePairs},
		}
		maps.storageOutcome = Created
	case err != nil:
		return nil, fmt.Errorf("read StorageMap %s: %w", key, err)
	default:
		merged := MergeStoragePairs(storage.Spec.Map, storagePairs)
		maps.storageOutcome = Unchanged
		if !equality.Semantic.DeepEqual(merged, storage.Spec.Map) || storage.Spec.Provider != providers {
			storage.Spec.Map, storage.Spec.Provider, maps.storageOutcome = merged, providers, Updated
		}
	}
	maps.Storage = storage
	return maps, nil
}

// Save creates or updates the maps on the target as PlanMaps found
// needed, and says what it did.
func (m *Maps) Save(ctx context.Context, target client.Client) ([]Step, error) {
	var steps []Step
	for _, item := range []struct {
		obj     client.Object
		kind    string
		outcome Outcome
	}{{m.Network, "NetworkMap", m.networkOutcome}, {m.Storage, "StorageMap", m.storageOutcome}} {
		var err error
		switch item.outcome {
		case Created:
			err = target.Create(ctx, item.obj)
		case Updated:
			err = target.Update(ctx, item.obj)
		}
		if err != nil {
			return steps, fmt.Errorf("%s %s: %w", item.kind, client.ObjectKeyFromObject(item.obj), err)
		}
		steps = append(steps, Step{Object: item.kind + " " + client.ObjectKeyFromObject(item.obj).String(), Outcome: item.outcome})
	}
	return steps, nil
}
