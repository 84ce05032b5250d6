package hco

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hcov1beta1 "github.com/cclm-io/cclm/api/hco/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/install"
)

// PolicyRules are the rights the controller needs, for the virt
// controller's ClusterRole (install.InstallVirtController's extraRules).
var PolicyRules = []rbacv1.PolicyRule{
	{APIGroups: []string{hcov1beta1.GroupVersion.Group}, Resources: []string{"hyperconvergeds"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{hcov1beta1.GroupVersion.Group}, Resources: []string{"hyperconvergeds/status"}, Verbs: []string{"get", "update", "patch"}},
	{APIGroups: []string{kubevirtv1.GroupVersion.Group}, Resources: []string{"kubevirts"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
}

// Options configure the controller.
type Options struct {
	// Namespace is the virt namespace: the HyperConverged CR
	// kubevirt-hyperconverged there is reconciled into the KubeVirt CR
	// there (any other namespace's is ignored, as by the operator, which
	// runs in one namespace).
	Namespace string
	Logger    logr.Logger
}

// New adds the controller to mgr.
func New(mgr ctrl.Manager, opts Options) error {
	if opts.Namespace == "" {
		return fmt.Errorf("hco: Options.Namespace is empty; name the virt namespace, e.g. openshift-cnv")
	}
	r := &reconciler{client: mgr.GetClient(), namespace: opts.Namespace, logger: opts.Logger}
	if r.logger.GetSink() == nil {
		r.logger = logr.Discard()
	}
	inNamespace := predicate.NewPredicateFuncs(func(obj client.Object) bool { return obj.GetNamespace() == opts.Namespace })
	toHCO := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: opts.Namespace, Name: hcov1beta1.HyperConvergedName}}}
	})
	return ctrl.NewControllerManagedBy(mgr).Named("hyperconverged").
		For(&hcov1beta1.HyperConverged{}, builder.WithPredicates(inNamespace, predicate.GenerationChangedPredicate{})).
		// An edit of the KubeVirt CR is reverted where it touches a field
		// the HyperConverged CR sets.
		Watches(&kubevirtv1.KubeVirt{}, toHCO, builder.WithPredicates(inNamespace, predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Complete(r)
}

type reconciler struct {
	client    client.Client
	namespace string
	logger    logr.Logger
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if req.Namespace != r.namespace || req.Name != hcov1beta1.HyperConvergedName {
		return ctrl.Result{}, nil
	}
	hco := &hcov1beta1.HyperConverged{}
	if err := r.client.Get(ctx, req.NamespacedName, hco); err != nil {
		// Without a HyperConverged CR the KubeVirt CR is the user's alone.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	kv, err := r.kubeVirt(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	current := kubevirtv1.KubeVirtConfiguration{}
	previous := []string(nil)
	if kv != nil {
		current, previous = kv.Spec.Configuration, parseManaged(kv.Annotations[ManagedFieldsAnnotation])
	}
	desired, managed, err := Desired(hco.Spec, current, previous)
	if err != nil {
		return ctrl.Result{}, r.setStatus(ctx, hco, err)
	}
	if err := r.writeKubeVirt(ctx, kv, desired, managed); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.setStatus(ctx, hco, nil)
}

// kubeVirt is the namespace's KubeVirt CR (the first by name, as every
// component picks), or nil.
func (r *reconciler) kubeVirt(ctx context.Context) (*kubevirtv1.KubeVirt, error) {
	var list kubevirtv1.KubeVirtList
	if err := r.client.List(ctx, &list, client.InNamespace(r.namespace)); err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	first := slices.MinFunc(list.Items, func(a, b kubevirtv1.KubeVirt) int { return strings.Compare(a.Name, b.Name) })
	return &first, nil
}

// writeKubeVirt updates the KubeVirt CR's configuration and managed-fields
// annotation if they differ, or creates the CR, as the operator does, if
// there is none.
func (r *reconciler) writeKubeVirt(ctx context.Context, kv *kubevirtv1.KubeVirt, desired kubevirtv1.KubeVirtConfiguration, managed []string) error {
	annotation := strings.Join(managed, ",")
	if kv == nil {
		kv = &kubevirtv1.KubeVirt{ObjectMeta: metav1.ObjectMeta{Name: install.KubeVirtName, Namespace: r.namespace}}
		kv.Spec.Configuration = desired
		setAnnotation(kv, annotation)
		if err := r.client.Create(ctx, kv); err != nil {
			return fmt.Errorf("create KubeVirt %s/%s from HyperConverged %s: %w", r.namespace, install.KubeVirtName, hcov1beta1.HyperConvergedName, err)
		}
		r.logger.Info("KubeVirt CR created from the HyperConverged CR", "kubevirt", client.ObjectKeyFromObject(kv), "managed", annotation)
		return nil
	}
	if equality.Semantic.DeepEqual(kv.Spec.Configuration, desired) && kv.Annotations[ManagedFieldsAnnotation] == annotation {
		return nil
	}
	kv = kv.DeepCopy()
	kv.Spec.Configuration = desired
	setAnnotation(kv, annotation)
	if err := r.client.Update(ctx, kv); err != nil {
		return fmt.Errorf("update KubeVirt %s/%s from HyperConverged %s: %w", kv.Namespace, kv.Name, hcov1beta1.HyperConvergedName, err)
	}
	r.logger.Info("KubeVirt CR follows the HyperConverged CR", "kubevirt", client.ObjectKeyFromObject(kv), "managed", annotation)
	return nil
}

func setAnnotation(kv *kubevirtv1.KubeVirt, value string) {
	if value == "" {
		delete(kv.Annotations, ManagedFieldsAnnotation)
		return
	}
	if kv.Annotations == nil {
		kv.Annotations = map[string]string{}
	}
	kv.Annotations[ManagedFieldsAnnotation] = value
}

// setStatus writes the operator's conditions: all well, or Degraded with
// the reason the spec could not be applied.
func (r *reconciler) setStatus(ctx context.Context, hco *hcov1beta1.HyperConverged, failure error) error {
	updated := hco.DeepCopy()
	conditions := &updated.Status.Conditions
	set := func(t string, status metav1.ConditionStatus, reason, message string) {
		meta.SetStatusCondition(conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: message, ObservedGeneration: hco.Generation})
	}
	if failure != nil {
		set(hcov1beta1.ConditionReconcileComplete, metav1.ConditionFalse, "InvalidSpec", failure.Error())
		set(hcov1beta1.ConditionDegraded, metav1.ConditionTrue, "InvalidSpec", failure.Error())
		set(hcov1beta1.ConditionAvailable, metav1.ConditionFalse, "InvalidSpec", "the KubeVirt CR does not follow this HyperConverged CR")
		set(hcov1beta1.ConditionProgressing, metav1.ConditionFalse, "InvalidSpec", "")
	} else {
		set(hcov1beta1.ConditionReconcileComplete, metav1.ConditionTrue, "ReconcileCompleted", "Reconcile completed successfully")
		set(hcov1beta1.ConditionAvailable, metav1.ConditionTrue, "ReconcileCompleted", "Reconcile completed successfully")
		set(hcov1beta1.ConditionProgressing, metav1.ConditionFalse, "ReconcileCompleted", "Reconcile completed successfully")
		set(hcov1beta1.ConditionDegraded, metav1.ConditionFalse, "ReconcileCompleted", "Reconcile completed successfully")
		updated.Status.ObservedGeneration = hco.Generation
	}
	if equality.Semantic.DeepEqual(updated.Status, hco.Status) {
		return nil
	}
	return r.client.Status().Update(ctx, updated)
}
