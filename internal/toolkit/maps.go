package toolkit

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

// MapStatus is a NetworkMap's or StorageMap's status: Ready when both of
// its providers exist, else a Critical condition naming the missing one.
// (Whether each VM's networks and classes are mapped is the preflight's
// NetworkMapped and StorageMapped, per plan.)
func MapStatus(old forkliftv1beta1.MapStatus, generation int64, providers forkliftv1beta1.ProviderPair, namespace string, source, destination *forkliftv1beta1.Provider, now time.Time) forkliftv1beta1.MapStatus {
	var conditions []forkliftv1beta1.Condition
	if source == nil {
		conditions = append(conditions, critical(ConditionSourceProviderNotValid, "NotFound",
			fmt.Sprintf("source Provider %s does not exist", refName(providers.Source, namespace)), now))
	}
	if destination == nil {
		conditions = append(conditions, critical(ConditionDestinationProviderNotValid, "NotFound",
			fmt.Sprintf("destination Provider %s does not exist", refName(providers.Destination, namespace)), now))
	}
	ready := forkliftv1beta1.Condition{Type: forkliftv1beta1.ConditionReady, Status: forkliftv1beta1.ConditionTrue, Reason: "Ready",
		Category: forkliftv1beta1.CategoryRequired, Message: "The map is ready.", LastTransitionTime: metav1.NewTime(now)}
	if len(conditions) > 0 {
		ready.Status, ready.Reason, ready.Message = forkliftv1beta1.ConditionFalse, "NotReady", "The map's providers are missing."
	}
	status := *old.DeepCopy()
	status.Conditions = keepTransitions(old.Conditions, append(conditions, ready))
	status.ObservedGeneration = generation
	return status
}

// mapReconciler keeps the maps' Ready conditions.
type mapReconciler struct {
	client client.Client
	now    func() time.Time
	// newMap is an empty NetworkMap or StorageMap.
	newMap func() client.Object
}

func (r *mapReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := r.newMap()
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var providers forkliftv1beta1.ProviderPair
	var status *forkliftv1beta1.MapStatus
	switch m := obj.(type) {
	case *forkliftv1beta1.NetworkMap:
		providers, status = m.Spec.Provider, &m.Status
	case *forkliftv1beta1.StorageMap:
		providers, status = m.Spec.Provider, &m.Status
	default:
		return ctrl.Result{}, nil
	}
	source, err := getOrNil[forkliftv1beta1.Provider](ctx, r.client, providers.Source, req.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	destination, err := getOrNil[forkliftv1beta1.Provider](ctx, r.client, providers.Destination, req.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	updated := MapStatus(*status, obj.GetGeneration(), providers, req.Namespace, source, destination, r.now())
	if equality.Semantic.DeepEqual(*status, updated) {
		return ctrl.Result{}, nil
	}
	original := obj.DeepCopyObject().(client.Object)
	*status = updated
	return ctrl.Result{}, client.IgnoreNotFound(r.client.Status().Patch(ctx, obj, client.MergeFrom(original)))
}
