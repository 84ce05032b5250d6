// Package connect joins a source cluster to a target cluster for
// cross-cluster live migration, as the OpenShift guide's reader does by
// hand: the guide's ClusterRole, a ServiceAccount and its token on the
// source; the token's Secret and the Providers on the target; the CA
// exchange (docs/architecture.md lists the objects). Every step is
// idempotent. It also finds the source's Provider and the default maps.
package connect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	connectconfig "github.com/cclm-io/cclm/config/connect"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/trust"
)

// Names of what connect makes, the OpenShift guide's.
const (
	// ServiceAccount is the source's account whose token the toolkit uses,
	// in the toolkit namespace; its ClusterRoleBinding and token Secret
	// have the same name.
	ServiceAccount = "cclm"
	// HostProvider is the Provider of the target cluster itself.
	HostProvider = "host"
	// DefaultNamespace is the toolkit's namespace on both clusters.
	DefaultNamespace = "openshift-mtv"
	// DefaultVirtNamespace is KubeVirt's namespace on both clusters.
	DefaultVirtNamespace = "openshift-cnv"
)

// ProviderSecretName is the target's Secret holding the source's token.
func ProviderSecretName(source string) string { return source + "-token" }

// Cluster is one side: its kubeconfig context name and admin config.
type Cluster struct {
	Name   string
	Config *rest.Config
}

// Options say what to connect.
type Options struct {
	// Source and Target are the clusters; Source.Name names the Provider.
	Source, Target Cluster
	// Namespace is the toolkit's namespace (default openshift-mtv) on both
	// clusters; VirtNamespace KubeVirt's (default openshift-cnv).
	Namespace, VirtNamespace string
	// TokenTimeout bounds the wait for the token controller to fill the
	// token Secret (default one minute).
	TokenTimeout time.Duration
	// Report is told each step as it is done; nil reports nothing.
	Report func(Step)
}

// Outcome is what a step did.
type Outcome string

// Outcomes of a step.
const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Unchanged Outcome = "already there"
)

// Step is one object connect made sure of.
type Step struct {
	// Cluster is the context the object is on.
	Cluster string `json:"cluster"`
	// Object is its kind and name, e.g. "ClusterRole live-migration-role".
	Object string `json:"object"`
	// Outcome says whether it was created, updated or already there.
	Outcome Outcome `json:"outcome"`
	// Detail adds what the step found or did, never a secret.
	Detail string `json:"detail,omitempty"`
}

// Result is every step, in order, and the source's Provider.
type Result struct {
	Steps    []Step                    `json:"steps"`
	Provider *forkliftv1beta1.Provider `json:"-"`
}

// Changed reports whether any step changed something.
func (r *Result) Changed() bool {
	return slices.ContainsFunc(r.Steps, func(s Step) bool { return s.Outcome != Unchanged })
}

// Run makes sure of every object, in the guide's order.
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts.defaults()
	if opts.Source.Name == "" || opts.Target.Name == "" || opts.Source.Config == nil || opts.Target.Config == nil {
		return nil, errors.New("connect: name both the source and the target cluster (--source, --target)")
	}
	if opts.Source.Name == opts.Target.Name {
		return nil, fmt.Errorf("connect: --source and --target are both %q; a cluster cannot migrate to itself", opts.Source.Name)
	}
	source, err := newClient(opts.Source.Config)
	if err != nil {
		return nil, err
	}
	target, err := newClient(opts.Target.Config)
	if err != nil {
		return nil, err
	}
	return runWith(ctx, opts, source, target)
}

// runWith is Run with the clusters' clients.
func runWith(ctx context.Context, opts Options, source, target client.Client) (*Result, error) {
	r := &run{opts: opts, result: &Result{}}
	token, err := r.sourceAccount(ctx, source)
	if err != nil {
		return r.result, fmt.Errorf("on the source %s: %w", opts.Source.Name, err)
	}
	provider, err := r.targetProviders(ctx, target, token)
	if err != nil {
		return r.result, fmt.Errorf("on the target %s: %w", opts.Target.Name, err)
	}
	r.result.Provider = provider
	if err := r.exchangeCAs(ctx, source, target); err != nil {
		return r.result, err
	}
	return r.result, nil
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.VirtNamespace == "" {
		o.VirtNamespace = DefaultVirtNamespace
	}
	if o.TokenTimeout == 0 {
		o.TokenTimeout = time.Minute
	}
}

func newClient(config *rest.Config) (client.Client, error) {
	return client.New(config, client.Options{Scheme: scheme.Scheme})
}

type run struct {
	opts   Options
	result *Result
}

func (r *run) report(cluster, object string, outcome Outcome, detail string) {
	step := Step{Cluster: cluster, Object: object, Outcome: outcome, Detail: detail}
	r.result.Steps = append(r.result.Steps, step)
	if r.opts.Report != nil {
		r.opts.Report(step)
	}
}

// sourceAccount makes the guide's objects on the source and returns the
// token (never printed).
func (r *run) sourceAccount(ctx context.Context, c client.Client) (string, error) {
	cluster, ns := r.opts.Source.Name, r.opts.Namespace
	role, err := connectconfig.ClusterRole()
	if err != nil {
		return "", err
	}
	outcome, err := ensure(ctx, c, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role.Name}, Rules: role.Rules}, func(existing *rbacv1.ClusterRole) bool {
		if equality.Semantic.DeepEqual(existing.Rules, role.Rules) {
			return false
		}
		existing.Rules = role.Rules
		return true
	})
	if err != nil {
		return "", err
	}
	r.report(cluster, "ClusterRole "+role.Name, outcome, fmt.Sprintf("%d rules, the OpenShift guide's", len(role.Rules)))

	if err := r.namespace(ctx, c, cluster); err != nil {
		return "", err
	}

	outcome, err = ensure(ctx, c, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ServiceAccount}}, nil)
	if err != nil {
		return "", err
	}
	r.report(cluster, "ServiceAccount "+ns+"/"+ServiceAccount, outcome, "")

	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: ServiceAccount, Namespace: ns}
	roleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ServiceAccount}, RoleRef: roleRef, Subjects: []rbacv1.Subject{subject}}
	var refErr error
	outcome, err = ensure(ctx, c, binding, func(existing *rbacv1.ClusterRoleBinding) bool {
		if existing.RoleRef != roleRef {
			refErr = fmt.Errorf("ClusterRoleBinding %s binds ClusterRole %q, not %s; its roleRef cannot change: delete it (kubectl delete clusterrolebinding %s) and run cclm connect again",
				ServiceAccount, existing.RoleRef.Name, role.Name, ServiceAccount)
			return false
		}
		if slices.Contains(existing.Subjects, subject) {
			return false
		}
		existing.Subjects = append(existing.Subjects, subject)
		return true
	})
	if err == nil {
		err = refErr
	}
	if err != nil {
		return "", err
	}
	r.report(cluster, "ClusterRoleBinding "+ServiceAccount, outcome, "ServiceAccount "+ns+"/"+ServiceAccount+" -> ClusterRole "+role.Name)

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ServiceAccount, Annotations: map[string]string{corev1.ServiceAccountNameKey: ServiceAccount}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}
	var secretErr error
	outcome, err = ensure(ctx, c, secret, func(existing *corev1.Secret) bool {
		if existing.Type != corev1.SecretTypeServiceAccountToken || existing.Annotations[corev1.ServiceAccountNameKey] != ServiceAccount {
			secretErr = fmt.Errorf("the Secret %s/%s exists but is not ServiceAccount %s's token (type %s); delete it and run cclm connect again",
				ns, ServiceAccount, ServiceAccount, existing.Type)
		}
		return false
	})
	if err == nil {
		err = secretErr
	}
	if err != nil {
		return "", err
	}
	token, err := waitForToken(ctx, c, ns, ServiceAccount, r.opts.TokenTimeout)
	if err != nil {
		return "", err
	}
	r.report(cluster, "Secret "+ns+"/"+ServiceAccount, outcome, "service-account token issued")
	return token, nil
}

func (r *run) namespace(ctx context.Context, c client.Client, cluster string) error {
	outcome, err := ensure(ctx, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.opts.Namespace}}, nil)
	if err != nil {
		return err
	}
	r.report(cluster, "Namespace "+r.opts.Namespace, outcome, "")
	return nil
}

// waitForToken waits for the token controller to fill the Secret.
func waitForToken(ctx context.Context, c client.Client, namespace, name string, timeout time.Duration) (string, error) {
	var token string
	what := fmt.Sprintf("the token controller to fill Secret %s/%s with ServiceAccount %s's token", namespace, name, ServiceAccount)
	err := kube.Poll(ctx, 100*time.Millisecond, timeout, what, func(ctx context.Context) (bool, string, error) {
		var secret corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &secret); err != nil {
			return false, "", err
		}
		token = string(secret.Data[corev1.ServiceAccountTokenKey])
		return token != "", "data.token is still empty (is kube-controller-manager's token controller running?)", nil
	})
	return token, err
}

// targetProviders makes the target's namespace, the Secret with the
// source's token and CA, and the two Providers.
func (r *run) targetProviders(ctx context.Context, c client.Client, token string) (*forkliftv1beta1.Provider, error) {
	cluster, ns, source := r.opts.Target.Name, r.opts.Namespace, r.opts.Source
	if err := r.namespace(ctx, c, cluster); err != nil {
		return nil, err
	}
	data, err := providerSecretData(source.Config, token)
	if err != nil {
		return nil, err
	}
	secretName := ProviderSecretName(source.Name)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretName, Labels: providerSecretLabels()},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
	outcome, err := ensure(ctx, c, secret, func(existing *corev1.Secret) bool {
		changed := false
		if !equality.Semantic.DeepEqual(existing.Data, data) {
			existing.Data, changed = data, true
		}
		for k, v := range providerSecretLabels() {
			if existing.Labels[k] != v {
				if existing.Labels == nil {
					existing.Labels = map[string]string{}
				}
				existing.Labels[k], changed = v, true
			}
		}
		return changed
	})
	if err != nil {
		return nil, err
	}
	detail := "token"
	if _, ok := data[forkliftv1beta1.SecretCACert]; ok {
		detail += " and ca.crt of " + source.Name + "'s API server"
	}
	r.report(cluster, "Secret "+ns+"/"+secretName, outcome, detail)

	openshift := forkliftv1beta1.OpenShift
	spec := forkliftv1beta1.ProviderSpec{
		Type:   &openshift,
		URL:    source.Config.Host,
		Secret: corev1.ObjectReference{Name: secretName, Namespace: ns},
	}
	digest := secretDigest(data)
	provider := &forkliftv1beta1.Provider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: source.Name, Annotations: map[string]string{SecretDigestAnnotation: digest}},
		Spec:       spec,
	}
	outcome, err = ensure(ctx, c, provider, providerUpdate(spec, digest))
	if err != nil {
		return nil, err
	}
	r.report(cluster, "Provider "+ns+"/"+source.Name, outcome, "type openshift, url "+spec.URL)

	hostSpec := forkliftv1beta1.ProviderSpec{Type: &openshift}
	host := &forkliftv1beta1.Provider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: HostProvider}, Spec: hostSpec}
	outcome, err = ensure(ctx, c, host, providerUpdate(hostSpec, ""))
	if err != nil {
		return nil, err
	}
	r.report(cluster, "Provider "+ns+"/"+HostProvider, outcome, "type openshift, this cluster")
	return provider, nil
}

// providerSecretLabels are the labels Forklift's UI puts on a provider's
// Secret.
func providerSecretLabels() map[string]string {
	return map[string]string{"createdForProviderType": "openshift", "createdForResourceType": "providers"}
}

// SecretDigestAnnotation on a Provider is a digest of the Secret that
// cclm connect last put its credentials in. A new token changes only the
// Secret, which the toolkit does not watch (it may read Secrets by name
// only); the annotation's change makes it check the Provider again at once
// rather than at its next periodic check.
const SecretDigestAnnotation = "forklift.cclm.io/secret-digest"

// secretDigest is a short digest of a Secret's data, never the data: the
// annotation is readable by anyone who may read Providers.
func secretDigest(data map[string][]byte) string {
	hash := sha256.New()
	for _, key := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(hash, "%s=%x;", key, sha256.Sum256(data[key]))
	}
	return hex.EncodeToString(hash.Sum(nil))[:16]
}

// providerUpdate makes a Provider's spec what connect wants and, with a
// digest, records the digest of its Secret.
func providerUpdate(spec forkliftv1beta1.ProviderSpec, digest string) func(*forkliftv1beta1.Provider) bool {
	return func(existing *forkliftv1beta1.Provider) bool {
		changed := false
		if digest != "" && existing.Annotations[SecretDigestAnnotation] != digest {
			if existing.Annotations == nil {
				existing.Annotations = map[string]string{}
			}
			existing.Annotations[SecretDigestAnnotation], changed = digest, true
		}
		same := existing.Spec.Type != nil && *existing.Spec.Type == *spec.Type && existing.Spec.URL == spec.URL &&
			existing.Spec.Secret.Name == spec.Secret.Name && existing.Spec.Secret.Namespace == spec.Secret.Namespace
		if same {
			return changed
		}
		settings := existing.Spec.Settings
		existing.Spec = spec
		existing.Spec.Settings = settings
		return true
	}
}

// providerSecretData is the Secret of a Provider for the cluster behind
// config: the token, the API server's CA (from the kubeconfig: inline or
// file), or insecureSkipVerify when the kubeconfig skips verification.
func providerSecretData(config *rest.Config, token string) (map[string][]byte, error) {
	data := map[string][]byte{forkliftv1beta1.SecretToken: []byte(token)}
	ca := config.CAData
	if len(ca) == 0 && config.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(config.CAFile); err != nil {
			return nil, fmt.Errorf("the source's CA file from the kubeconfig: %w", err)
		}
	}
	if len(ca) > 0 {
		data[forkliftv1beta1.SecretCACert] = ca
	}
	if config.Insecure {
		data[forkliftv1beta1.SecretInsecureSkipVerify] = []byte("true")
	}
	return data, nil
}

// exchangeCAs puts each cluster's migration CA bundle into the other's
// kubevirt-external-ca, keeping what is there and adding no duplicate.
func (r *run) exchangeCAs(ctx context.Context, source, target client.Client) error {
	for _, pair := range []struct {
		from, to         client.Client
		fromName, toName string
	}{
		{source, target, r.opts.Source.Name, r.opts.Target.Name},
		{target, source, r.opts.Target.Name, r.opts.Source.Name},
	} {
		ns := r.opts.VirtNamespace
		var bundle corev1.ConfigMap
		if err := pair.from.Get(ctx, client.ObjectKey{Namespace: ns, Name: install.CABundleConfigMap}, &bundle); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("%s has no ConfigMap %s/%s (its migration CA): is KubeVirt installed there with --virt-namespace %s?", pair.fromName, ns, install.CABundleConfigMap, ns)
			}
			return fmt.Errorf("read %s's CA bundle: %w", pair.fromName, err)
		}
		peer := bundle.Data[install.CABundleKey]
		if blocks, err := trust.ParseBundle(peer); err != nil || len(blocks) == 0 {
			return fmt.Errorf("%s's ConfigMap %s/%s key %s holds no PEM certificate: %v", pair.fromName, ns, install.CABundleConfigMap, install.CABundleKey, err)
		}
		imported, err := trust.ImportPeerCA(ctx, pair.to, ns, peer)
		if err != nil {
			return fmt.Errorf("CA exchange %s -> %s: %s's %w", pair.fromName, pair.toName, pair.toName, err)
		}
		detail := pair.fromName + "'s " + install.CABundleConfigMap + " trusted"
		outcome := Unchanged
		switch {
		case imported.Created:
			outcome = Created
		case imported.Added > 0:
			outcome = Updated
			detail = fmt.Sprintf("%s (%d certificate(s) added)", detail, imported.Added)
		}
		r.report(pair.toName, "ConfigMap "+ns+"/"+install.ExternalCAConfigMap, outcome, detail)
	}
	return nil
}

// ensure creates obj unless it exists; if it does, update may change the
// existing object (returning true) and it is then updated. Conflicts are
// retried.
func ensure[T client.Object](ctx context.Context, c client.Client, obj T, update func(existing T) bool) (Outcome, error) {
	var outcome Outcome
	err := retry.OnError(retry.DefaultRetry, lostRace, func() error {
		var err error
		outcome, err = ensureOnce(ctx, c, obj, update)
		return err
	})
	return outcome, err
}

// lostRace: another writer created or changed the object since it was
// read; read it again.
func lostRace(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// ensureOnce is one read and write of ensure.
func ensureOnce[T client.Object](ctx context.Context, c client.Client, obj T, update func(existing T) bool) (Outcome, error) {
	existing := obj.DeepCopyObject().(T)
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	if apierrors.IsNotFound(err) {
		if err := c.Create(ctx, obj.DeepCopyObject().(T)); err != nil {
			return "", fmt.Errorf("create %s: %w", describe(c, obj), err)
		}
		return Created, nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", describe(c, obj), err)
	}
	if update == nil || !update(existing) {
		return Unchanged, nil
	}
	if err := c.Update(ctx, existing); err != nil {
		return "", fmt.Errorf("update %s: %w", describe(c, obj), err)
	}
	return Updated, nil
}

func describe(c client.Client, obj client.Object) string {
	kind := fmt.Sprintf("%T", obj)
	if gvk, err := c.GroupVersionKindFor(obj); err == nil {
		kind = gvk.Kind
	}
	return kind + " " + kube.NameOf(obj)
}
