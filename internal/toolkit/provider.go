package toolkit

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/scheme"
)

// Provider condition types and phases. Ready and ConnectionTestSucceeded
// are upstream's; the failures name what to fix.
const (
	ConditionConnectionTestSucceeded = "ConnectionTestSucceeded"
	ConditionConnectionFailed        = "ConnectionFailed"
	ConditionTokenInvalid            = "TokenInvalid"
	ConditionPermissionDenied        = "PermissionDenied"
	ConditionSecretNotValid          = "SecretNotValid"

	PhaseReady            = "Ready"
	PhaseValidationFailed = "ValidationFailed"
	PhaseConnectionFailed = "ConnectionFailed"
	PhaseTokenInvalid     = "TokenInvalid"
	PhasePermissionDenied = "PermissionDenied"
)

// sourceRequestTimeout bounds each request to a source cluster, so that
// a partition makes a step wait (and meet its deadline) instead of
// hanging a reconcile.
const sourceRequestTimeout = 15 * time.Second

// SourceConfig is how the toolkit reaches a remote Provider's cluster: its
// spec.url, and the token, ca.crt and insecureSkipVerify of its Secret
// (spec.secret; namespace defaults to the Provider's). The errors name the
// Provider and the Secret, never the token.
func SourceConfig(ctx context.Context, c client.Reader, p *forkliftv1beta1.Provider) (*rest.Config, error) {
	if p.IsHost() {
		return nil, fmt.Errorf("provider %s/%s is the host cluster (spec.url is empty), not a remote source", p.Namespace, p.Name)
	}
	if p.Spec.URL == "" {
		return nil, fmt.Errorf("provider %s/%s has no spec.url: set the source API server's URL, e.g. https://api.ocp7.example.com:6443", p.Namespace, p.Name)
	}
	ref := p.Spec.Secret
	if ref.Name == "" {
		return nil, fmt.Errorf("provider %s/%s names no Secret (spec.secret.name): create a Secret with the source's service-account token (key %q) and name it there", p.Namespace, p.Name, forkliftv1beta1.SecretToken)
	}
	namespace := ref.Namespace
	if namespace == "" {
		namespace = p.Namespace
	}
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("the Secret %s/%s of Provider %s/%s does not exist: create it with the source's service-account token (key %q)", namespace, ref.Name, p.Namespace, p.Name, forkliftv1beta1.SecretToken)
		}
		return nil, fmt.Errorf("read Secret %s/%s of Provider %s/%s: %w", namespace, ref.Name, p.Namespace, p.Name, err)
	}
	token := string(secret.Data[forkliftv1beta1.SecretToken])
	if token == "" {
		return nil, fmt.Errorf("the Secret %s/%s of Provider %s/%s has no %q key: put the source's service-account token there", namespace, ref.Name, p.Namespace, p.Name, forkliftv1beta1.SecretToken)
	}
	config := &rest.Config{Host: p.Spec.URL, BearerToken: token, Timeout: sourceRequestTimeout, QPS: 20, Burst: 40}
	if string(secret.Data[forkliftv1beta1.SecretInsecureSkipVerify]) == "true" {
		config.Insecure = true
	} else {
		config.CAData = secret.Data[forkliftv1beta1.SecretCACert]
	}
	return config, nil
}

// MigrationSourceConfig is how the toolkit reaches a Plan's source
// cluster: for the host Provider its own config (host), which moves VMs
// between namespaces of this cluster, as Forklift's host-to-host plans
// do; else the remote Provider's, from SourceConfig.
func MigrationSourceConfig(ctx context.Context, c client.Reader, p *forkliftv1beta1.Provider, host *rest.Config) (*rest.Config, error) {
	if p.IsHost() {
		return rest.CopyConfig(host), nil
	}
	return SourceConfig(ctx, c, p)
}

// ProbeOutcome is what checking a Provider found.
type ProbeOutcome string

// Outcomes of a probe.
const (
	ProbeOK               ProbeOutcome = "OK"
	ProbeSecretNotValid   ProbeOutcome = "SecretNotValid"
	ProbeConnectionFailed ProbeOutcome = "ConnectionFailed"
	ProbeTokenInvalid     ProbeOutcome = "TokenInvalid"
	ProbePermissionDenied ProbeOutcome = "PermissionDenied"
)

// ProbeResult is the outcome of checking a Provider with real API calls.
type ProbeResult struct {
	Outcome ProbeOutcome
	// Message says what was found (never the token).
	Message string
	// User the token authenticated as, when it did.
	User string
}

// probeSource checks a source config with real calls: a SelfSubjectReview
// (is the token valid: 401 otherwise), then a list of VirtualMachines in
// all namespaces (may it read them: 403 otherwise).
func probeSource(ctx context.Context, config *rest.Config) ProbeResult {
	c, err := client.New(config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return ProbeResult{Outcome: ProbeConnectionFailed, Message: fmt.Sprintf("cannot make a client for %s: %v", config.Host, err)}
	}
	review := &authenticationv1.SelfSubjectReview{}
	user := ""
	if err := c.Create(ctx, review); err != nil {
		if result, failed := classify(config.Host, err, "authenticate"); failed {
			return result
		}
	} else {
		user = review.Status.UserInfo.Username
	}
	var vms kubevirtv1.VirtualMachineList
	if err := c.List(ctx, &vms, client.Limit(1)); err != nil {
		if result, failed := classify(config.Host, err, "list virtualmachines.kubevirt.io in all namespaces"); failed {
			result.User = user
			if result.Outcome == ProbePermissionDenied && user != "" {
				result.Message = fmt.Sprintf("%s may not list virtualmachines.kubevirt.io in all namespaces on %s: bind it to the ClusterRole live-migration-role (cclm connect does)", user, config.Host)
			}
			return result
		}
		return ProbeResult{Outcome: ProbeConnectionFailed, User: user, Message: fmt.Sprintf("%s: list virtualmachines.kubevirt.io: %v", config.Host, err)}
	}
	message := fmt.Sprintf("connected to %s", config.Host)
	if user != "" {
		message += " as " + user
	}
	return ProbeResult{Outcome: ProbeOK, User: user, Message: message}
}

// classify turns an API error into a probe failure; failed is false for
// errors that say nothing about the provider (the caller goes on).
func classify(host string, err error, what string) (ProbeResult, bool) {
	switch {
	case apierrors.IsUnauthorized(err):
		return ProbeResult{Outcome: ProbeTokenInvalid, Message: fmt.Sprintf("%s refused the token (401 Unauthorized): it was revoked, expired or belongs to another cluster; put a valid service-account token in the Provider's Secret (cclm connect does)", host)}, true
	case apierrors.IsForbidden(err):
		return ProbeResult{Outcome: ProbePermissionDenied, Message: fmt.Sprintf("the token may not %s on %s (403 Forbidden): bind its account to the ClusterRole live-migration-role (cclm connect does)", what, host)}, true
	case isConnectionError(err):
		return ProbeResult{Outcome: ProbeConnectionFailed, Message: fmt.Sprintf("cannot reach %s: %v; check the Provider's url and, for TLS errors, the Secret's ca.crt", host, err)}, true
	}
	return ProbeResult{}, false
}

func isConnectionError(err error) bool {
	var urlErr *url.Error
	var netErr net.Error
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &urlErr) || errors.As(err, &netErr) || errors.As(err, &unknownAuthority) ||
		errors.As(err, &hostname) || errors.As(err, &invalid) || apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err)
}

// ProviderStatus decides a Provider's status from its probe: Ready and
// ConnectionTestSucceeded, or the failure's condition (Critical) and
// phase. A host provider (no url) is Ready without a probe. Conditions
// that keep their status keep their transition time.
func ProviderStatus(p *forkliftv1beta1.Provider, probe ProbeResult, now time.Time) forkliftv1beta1.ProviderStatus {
	status := forkliftv1beta1.ProviderStatus{ObservedGeneration: p.Generation}
	at := metav1.NewTime(now)
	var conditions []forkliftv1beta1.Condition
	add := func(condType, conditionStatus, reason, category, message string) {
		conditions = append(conditions, forkliftv1beta1.Condition{
			Type: condType, Status: conditionStatus, Reason: reason, Category: category, Message: message, LastTransitionTime: at,
		})
	}
	if p.IsHost() {
		status.Phase = PhaseReady
		add(ConditionConnectionTestSucceeded, forkliftv1beta1.ConditionTrue, "Tested", forkliftv1beta1.CategoryRequired, "the host cluster: the toolkit's own")
		add(forkliftv1beta1.ConditionReady, forkliftv1beta1.ConditionTrue, "Ready", forkliftv1beta1.CategoryRequired, "The provider is ready.")
		status.Conditions = keepTransitions(p.Status.Conditions, conditions)
		return status
	}
	switch probe.Outcome {
	case ProbeOK:
		status.Phase = PhaseReady
		add(ConditionConnectionTestSucceeded, forkliftv1beta1.ConditionTrue, "Tested", forkliftv1beta1.CategoryRequired, probe.Message)
		add(forkliftv1beta1.ConditionReady, forkliftv1beta1.ConditionTrue, "Ready", forkliftv1beta1.CategoryRequired, "The provider is ready.")
	default:
		failure, known := probeFailures[probe.Outcome]
		if !known {
			failure = probeFailures[ProbeConnectionFailed]
		}
		condType, phase := failure.condition, failure.phase
		status.Phase = phase
		add(condType, forkliftv1beta1.ConditionTrue, string(probe.Outcome), forkliftv1beta1.CategoryCritical, probe.Message)
		connected := forkliftv1beta1.ConditionFalse
		if probe.Outcome == ProbePermissionDenied {
			connected = forkliftv1beta1.ConditionTrue // it reached the cluster and logged in
		}
		if probe.Outcome != ProbeSecretNotValid {
			add(ConditionConnectionTestSucceeded, connected, string(probe.Outcome), forkliftv1beta1.CategoryAdvisory, probe.Message)
		}
		add(forkliftv1beta1.ConditionReady, forkliftv1beta1.ConditionFalse, string(probe.Outcome), forkliftv1beta1.CategoryRequired, probe.Message)
	}
	status.Conditions = keepTransitions(p.Status.Conditions, conditions)
	return status
}

// probeFailures are the condition and phase of each failed probe.
var probeFailures = map[ProbeOutcome]struct{ condition, phase string }{
	ProbeSecretNotValid:   {ConditionSecretNotValid, PhaseValidationFailed},
	ProbeConnectionFailed: {ConditionConnectionFailed, PhaseConnectionFailed},
	ProbeTokenInvalid:     {ConditionTokenInvalid, PhaseTokenInvalid},
	ProbePermissionDenied: {ConditionPermissionDenied, PhasePermissionDenied},
}

// keepTransitions gives each new condition whose type and status were
// already there the earlier transition time.
func keepTransitions(old, updated []forkliftv1beta1.Condition) []forkliftv1beta1.Condition {
	for i := range updated {
		if previous := forkliftv1beta1.FindCondition(old, updated[i].Type); previous != nil && previous.Status == updated[i].Status {
			updated[i].LastTransitionTime = previous.LastTransitionTime
		}
	}
	return updated
}

// providerReconciler checks Providers: at once on a change, and again
// every ProviderRecheck, so that a revoked token shows.
type providerReconciler struct {
	client  client.Client
	reader  client.Reader // uncached: Secrets are not watched
	recheck time.Duration
	probe   func(context.Context, *rest.Config) ProbeResult
	now     func() time.Time
}

func (r *providerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &forkliftv1beta1.Provider{}
	if err := r.client.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var probe ProbeResult
	if !p.IsHost() {
		config, err := SourceConfig(ctx, r.reader, p)
		if err != nil {
			probe = ProbeResult{Outcome: ProbeSecretNotValid, Message: err.Error()}
		} else {
			probeCtx, cancel := context.WithTimeout(ctx, sourceRequestTimeout)
			probe = r.probe(probeCtx, config)
			cancel()
		}
	}
	status := ProviderStatus(p, probe, r.now())
	if !equality.Semantic.DeepEqual(p.Status, status) {
		updated := p.DeepCopy()
		updated.Status = status
		if err := r.client.Status().Update(ctx, updated); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil
			}
			return ctrl.Result{}, err
		}
		ctrl.LoggerFrom(ctx).Info("provider checked", "provider", req.NamespacedName, "phase", status.Phase)
	}
	if p.IsHost() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: r.recheck}, nil
}

// providerReady reports whether a Provider was found Ready.
func providerReady(p *forkliftv1beta1.Provider) bool {
	c := forkliftv1beta1.FindCondition(p.Status.Conditions, forkliftv1beta1.ConditionReady)
	return c != nil && c.Status == forkliftv1beta1.ConditionTrue
}
