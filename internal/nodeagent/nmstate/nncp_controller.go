package nmstate

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	"github.com/cclm-io/cclm/internal/netlab"
)

// PolicyRules are the rights the node agent needs for
// NodeNetworkConfigurationPolicy, beyond install.NodeAgent's: read the
// policies and write their status, manage its nodes' enactments.
var PolicyRules = []rbacv1.PolicyRule{
	{APIGroups: []string{nmstatev1.GroupVersion.Group}, Resources: []string{"nodenetworkconfigurationpolicies"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{nmstatev1.GroupVersion.Group}, Resources: []string{"nodenetworkconfigurationpolicies/status"}, Verbs: []string{"get", "update", "patch"}},
	{APIGroups: []string{nmstatev1.GroupVersion.Group}, Resources: []string{"nodenetworkconfigurationenactments"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	{APIGroups: []string{nmstatev1.GroupVersion.Group}, Resources: []string{"nodenetworkconfigurationenactments/status"}, Verbs: []string{"get", "update", "patch"}},
}

// nncpReconciler applies the policies that match its node, as
// kubernetes-nmstate's handler does on each node: per policy it keeps the
// node's enactment "<node>.<policy>" and, like upstream's handlers, every
// node agent sums the enactments up into the policy's conditions. That
// write is optimistic (resourceVersion); any enactment change makes every
// agent recount from its cache, so the last count seen by all is written,
// whichever agent writes it.
//
// A policy is applied when the node has no final enactment (Available or
// Failing) for the policy's generation: a failed policy is not retried
// until it changes, as upstream.
type nncpReconciler struct {
	client client.Client // cached
	reader client.Reader // uncached, for the read-modify-write of a policy's status
	node   string
	host   linkHost
	logger *slog.Logger
	now    func() time.Time
}

// SetupPolicies applies the NodeNetworkConfigurationPolicies that match
// node nodeName inside host, its network namespace, keeping the node's
// enactments and the policies' conditions.
func SetupPolicies(mgr ctrl.Manager, nodeName string, host *netlab.Node, logger *slog.Logger) error {
	r := &nncpReconciler{client: mgr.GetClient(), reader: mgr.GetAPIReader(), node: nodeName, host: netlinkHost{node: host}, logger: logger}
	toPolicy := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		if policy := obj.GetLabels()[nmstatev1.EnactmentPolicyLabel]; policy != "" {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: policy}}}
		}
		return nil
	})
	allPolicies := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list nmstatev1.NodeNetworkConfigurationPolicyList
		if err := r.client.List(ctx, &list); err != nil {
			r.logger.Warn("list NodeNetworkConfigurationPolicies", "err", err)
			return nil
		}
		requests := make([]reconcile.Request, len(list.Items))
		for i := range list.Items {
			requests[i].Name = list.Items[i].Name
		}
		return requests
	})
	return ctrl.NewControllerManagedBy(mgr).Named("nncp").
		For(&nmstatev1.NodeNetworkConfigurationPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&nmstatev1.NodeNetworkConfigurationEnactment{}, toPolicy).
		// A node's labels decide which policies match it; any node's, how
		// many nodes a policy counts.
		Watches(&corev1.Node{}, allPolicies, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Complete(r)
}

func (r *nncpReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	policy := &nmstatev1.NodeNetworkConfigurationPolicy{}
	if err := r.client.Get(ctx, req.NamespacedName, policy); err != nil {
		// A deleted policy's enactments go with it (owner reference); the
		// node keeps its networking, as upstream.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	node := &corev1.Node{}
	if err := r.client.Get(ctx, client.ObjectKey{Name: r.node}, node); err != nil {
		return ctrl.Result{RequeueAfter: 2 * time.Second}, client.IgnoreNotFound(err)
	}
	var own *nmstatev1.NodeNetworkConfigurationEnactment
	var err error
	if nodeMatches(policy, node) {
		if own, err = r.enact(ctx, policy); err != nil {
			return ctrl.Result{}, err
		}
	} else if err := r.dropEnactment(ctx, policy); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.updatePolicyStatus(ctx, policy.Name, own)
}

// enact applies the policy on the node unless the node's enactment is
// final for the policy's generation, and returns the enactment.
func (r *nncpReconciler) enact(ctx context.Context, policy *nmstatev1.NodeNetworkConfigurationPolicy) (*nmstatev1.NodeNetworkConfigurationEnactment, error) {
	enactment, err := r.ensureEnactment(ctx, policy)
	if err != nil {
		return nil, err
	}
	if enactmentFinished(enactment, policy.Generation) {
		return enactment, nil
	}
	enactment.Status.DesiredState = *policy.Spec.DesiredState.DeepCopy()
	enactment.Status.PolicyGeneration = policy.Generation
	enactment.Status.DesiredStateMetaInfo = nmstatev1.EnactmentMetaInfo{Version: "cclm", TimeStamp: r.timestamp()}
	setEnactmentConditions(&enactment.Status.Conditions, enactmentProgressing, "", r.timestamp())
	if err := r.client.Status().Update(ctx, enactment); err != nil {
		return nil, fmt.Errorf("enactment %s: %w", enactment.Name, err)
	}
	began := time.Now()
	result, applyErr := applyDesiredState(r.host, r.node, policy.Spec.DesiredState)
	phase, message := enactmentAvailable, ""
	if applyErr != nil {
		phase, message = enactmentFailing, applyErr.Error()
		r.logger.Warn("NodeNetworkConfigurationPolicy failed on this node; rolled back", "policy", policy.Name, "generation", policy.Generation, "err", applyErr)
	} else {
		r.logger.Info("NodeNetworkConfigurationPolicy applied", "policy", policy.Name, "generation", policy.Generation,
			"changes", describeChanges(result.Changes), "took", time.Since(began).Round(time.Millisecond))
	}
	setEnactmentConditions(&enactment.Status.Conditions, phase, message, r.timestamp())
	if err := r.client.Status().Update(ctx, enactment); err != nil {
		return nil, fmt.Errorf("enactment %s: %w", enactment.Name, err)
	}
	return enactment, nil
}

// ensureEnactment reads the node's enactment of the policy, creating it
// (owned by the policy, labelled with policy and node) if missing.
func (r *nncpReconciler) ensureEnactment(ctx context.Context, policy *nmstatev1.NodeNetworkConfigurationPolicy) (*nmstatev1.NodeNetworkConfigurationEnactment, error) {
	name := nmstatev1.EnactmentName(r.node, policy.Name)
	enactment := &nmstatev1.NodeNetworkConfigurationEnactment{}
	err := r.client.Get(ctx, client.ObjectKey{Name: name}, enactment)
	if err == nil || !apierrors.IsNotFound(err) {
		return enactment, err
	}
	enactment = &nmstatev1.NodeNetworkConfigurationEnactment{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{nmstatev1.EnactmentPolicyLabel: policy.Name, nmstatev1.EnactmentNodeLabel: r.node},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: nmstatev1.GroupVersion.String(), Kind: "NodeNetworkConfigurationPolicy",
			Name: policy.Name, UID: policy.UID,
		}},
	}}
	if err := r.client.Create(ctx, enactment); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// The cache had not seen it yet; read it for real.
			err = r.reader.Get(ctx, client.ObjectKey{Name: name}, enactment)
		}
		if err != nil {
			return nil, fmt.Errorf("create enactment %s: %w", name, err)
		}
	}
	return enactment, nil
}

// dropEnactment deletes the node's enactment of a policy that no longer
// matches the node.
func (r *nncpReconciler) dropEnactment(ctx context.Context, policy *nmstatev1.NodeNetworkConfigurationPolicy) error {
	enactment := &nmstatev1.NodeNetworkConfigurationEnactment{ObjectMeta: metav1.ObjectMeta{Name: nmstatev1.EnactmentName(r.node, policy.Name)}}
	if err := r.client.Get(ctx, client.ObjectKeyFromObject(enactment), enactment); err != nil {
		return client.IgnoreNotFound(err)
	}
	return client.IgnoreNotFound(r.client.Delete(ctx, enactment))
}

// updatePolicyStatus recounts the policy's enactments and writes its
// conditions if they changed, with the policy read uncached and written
// with its resourceVersion. own, if set, is this node's enactment as just
// written, fresher than the cache.
func (r *nncpReconciler) updatePolicyStatus(ctx context.Context, name string, own *nmstatev1.NodeNetworkConfigurationEnactment) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		policy := &nmstatev1.NodeNetworkConfigurationPolicy{}
		if err := r.reader.Get(ctx, client.ObjectKey{Name: name}, policy); err != nil {
			return client.IgnoreNotFound(err)
		}
		var nodes corev1.NodeList
		if err := r.client.List(ctx, &nodes); err != nil {
			return err
		}
		var enactments nmstatev1.NodeNetworkConfigurationEnactmentList
		if err := r.client.List(ctx, &enactments, client.MatchingLabels{nmstatev1.EnactmentPolicyLabel: name}); err != nil {
			return err
		}
		if own != nil {
			replaced := false
			for i := range enactments.Items {
				if enactments.Items[i].Name == own.Name {
					enactments.Items[i], replaced = *own, true
				}
			}
			if !replaced {
				enactments.Items = append(enactments.Items, *own)
			}
		}
		tally := tallyPolicy(policy, nodes.Items, enactments.Items)
		if !setPolicyConditions(&policy.Status.Conditions, tally, r.timestamp()) {
			return nil
		}
		return r.client.Status().Update(ctx, policy)
	})
}

func (r *nncpReconciler) timestamp() metav1.Time {
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	return metav1.NewTime(now())
}
