package connect

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/kube"
)

// ErrNoProvider is returned by FindProvider when the target has no
// Provider for the source.
var ErrNoProvider = errors.New("no Provider for the source")

// FindProvider finds, in namespace on the target, the Provider of the
// source cluster: the one named after the source's context, else the one
// whose url is the source's API server.
func FindProvider(ctx context.Context, target client.Reader, namespace, sourceName, sourceURL string) (*forkliftv1beta1.Provider, error) {
	provider := &forkliftv1beta1.Provider{}
	err := target.Get(ctx, client.ObjectKey{Namespace: namespace, Name: sourceName}, provider)
	if err == nil && !provider.IsHost() {
		return provider, nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read Provider %s/%s: %w", namespace, sourceName, err)
	}
	var list forkliftv1beta1.ProviderList
	if err := target.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list Providers in %s: %w", namespace, err)
	}
	for i := range list.Items {
		if p := &list.Items[i]; sourceURL != "" && p.Spec.URL == sourceURL {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w %s in namespace %s (none named %s, none with url %s): run `cclm connect --source %s --target <target>` first",
		ErrNoProvider, sourceName, namespace, sourceName, sourceURL, sourceName)
}

// ProviderVerdict is what the toolkit concluded of a Provider.
type ProviderVerdict struct {
	// Ready is the Provider's Ready condition.
	Ready bool
	// Phase is status.phase, e.g. Ready, ConnectionFailed, TokenInvalid.
	Phase string
	// Message explains: the connection test's message when Ready, the
	// failed conditions' messages otherwise.
	Message string
}

// WaitProviderVerdict waits, up to timeout, for the toolkit to check the
// Provider's current generation (status.observedGeneration and a Ready
// condition). With untilReady, a verdict other than Ready does not end the
// wait: the credentials were just changed, and the verdict may be the old
// ones' until the toolkit checks again; the last verdict is returned at the
// deadline. It returns nil when the toolkit gave no verdict in time.
func WaitProviderVerdict(ctx context.Context, target client.Reader, key client.ObjectKey, timeout time.Duration, untilReady bool) (*ProviderVerdict, error) {
	var verdict *ProviderVerdict
	what := fmt.Sprintf("the toolkit to check Provider %s", key)
	err := kube.Poll(ctx, 250*time.Millisecond, timeout, what, func(ctx context.Context) (bool, string, error) {
		var p forkliftv1beta1.Provider
		if err := target.Get(ctx, key, &p); err != nil {
			return false, err.Error(), nil
		}
		if verdict = providerVerdict(&p); verdict == nil {
			return false, "no status for its generation yet", nil
		}
		return verdict.Ready || !untilReady, verdict.Phase, nil
	})
	if err != nil && ctx.Err() == nil {
		return verdict, nil
	}
	return verdict, err
}

// providerVerdict reads a Provider's status; nil when the toolkit has not
// checked its current generation.
func providerVerdict(p *forkliftv1beta1.Provider) *ProviderVerdict {
	ready := forkliftv1beta1.FindCondition(p.Status.Conditions, forkliftv1beta1.ConditionReady)
	if ready == nil || p.Status.ObservedGeneration < p.Generation {
		return nil
	}
	v := &ProviderVerdict{Ready: ready.Status == forkliftv1beta1.ConditionTrue, Phase: p.Status.Phase}
	var messages []string
	for _, c := range p.Status.Conditions {
		switch {
		case v.Ready && c.Type == "ConnectionTestSucceeded" && c.Message != "":
			messages = append(messages, c.Message)
		case !v.Ready && c.Type != forkliftv1beta1.ConditionReady && c.Status == forkliftv1beta1.ConditionTrue &&
			(c.Category == forkliftv1beta1.CategoryCritical || c.Category == forkliftv1beta1.CategoryError):
			messages = append(messages, c.Type+": "+c.Message)
		}
	}
	if len(messages) == 0 {
		messages = append(messages, ready.Message)
	}
	v.Message = strings.Join(messages, "; ")
	return v
}
