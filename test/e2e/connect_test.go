package e2e

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/test/labtest"
)

const toolkitNamespace = "openshift-mtv"

// connectOutput is `cclm connect -o json`'s document.
type connectOutput struct {
	Steps []struct {
		Cluster, Object, Outcome, Detail string
	} `json:"steps"`
	Provider *struct {
		Ready          bool
		Phase, Message string
	} `json:"provider"`
	Preflight struct {
		OK     bool `json:"ok"`
		Checks []struct {
			ID, Side, VM, Status, Message, Fix string
		} `json:"checks"`
	} `json:"preflight"`
}

// runConnect runs `cclm connect --source ocp7 --target ocp1 -o json` on
// the lab and returns its document; it fails the test unless it exits 0.
func (l *labEnv) runConnect(t *testing.T) connectOutput {
	t.Helper()
	return l.runConnectPair(t, sourceCluster, targetCluster)
}

// runConnectPair runs `cclm connect --source SOURCE --target TARGET -o json`.
func (l *labEnv) runConnectPair(t *testing.T, source, target string) connectOutput {
	t.Helper()
	stdout, stderr, err := labtest.RunCCLM(t, 3*time.Minute, "connect", "--source", source, "--target", target, "--kubeconfig", l.Kubeconfig, "-o", "json")
	var doc connectOutput
	if jerr := json.Unmarshal([]byte(stdout), &doc); jerr != nil {
		t.Fatalf("cclm connect -o json: stdout is not one JSON document (%v): %v\nstdout:\n%s\nstderr:\n%s", jerr, err, stdout, stderr)
	}
	if err != nil {
		t.Fatalf("cclm connect: %v\n%s\nfailed checks: %+v", err, stderr, failedChecks(doc))
	}
	return doc
}

func failedChecks(doc connectOutput) []string {
	var failed []string
	for _, c := range doc.Preflight.Checks {
		if c.Status == "Failed" {
			failed = append(failed, c.ID+" ("+c.Side+"): "+c.Message+" -- fix: "+c.Fix)
		}
	}
	return failed
}

// connectedObject is an object connect makes.
type connectedObject struct {
	cluster string
	obj     client.Object
	key     client.ObjectKey
}

func connectedObjects() []connectedObject {
	return []connectedObject{
		{sourceCluster, &rbacv1.ClusterRole{}, client.ObjectKey{Name: "live-migration-role"}},
		{sourceCluster, &corev1.Namespace{}, client.ObjectKey{Name: toolkitNamespace}},
		{sourceCluster, &corev1.ServiceAccount{}, client.ObjectKey{Namespace: toolkitNamespace, Name: "cclm"}},
		{sourceCluster, &rbacv1.ClusterRoleBinding{}, client.ObjectKey{Name: "cclm"}},
		{sourceCluster, &corev1.Secret{}, client.ObjectKey{Namespace: toolkitNamespace, Name: "cclm"}},
		{sourceCluster, &corev1.ConfigMap{}, client.ObjectKey{Namespace: virtNamespace, Name: install.ExternalCAConfigMap}},
		{targetCluster, &corev1.Namespace{}, client.ObjectKey{Name: toolkitNamespace}},
		{targetCluster, &corev1.Secret{}, client.ObjectKey{Namespace: toolkitNamespace, Name: sourceCluster + "-token"}},
		{targetCluster, &forkliftv1beta1.Provider{}, client.ObjectKey{Namespace: toolkitNamespace, Name: sourceCluster}},
		{targetCluster, &forkliftv1beta1.Provider{}, client.ObjectKey{Namespace: toolkitNamespace, Name: "host"}},
		{targetCluster, &corev1.ConfigMap{}, client.ObjectKey{Namespace: virtNamespace, Name: install.ExternalCAConfigMap}},
	}
}

// resourceVersions reads every object connect makes: "cluster type key"
// -> resourceVersion. A Provider's status, which the toolkit writes, also
// moves its resourceVersion: only its spec's generation counts there.
func (l *labEnv) resourceVersions(t *testing.T) map[string]string {
	t.Helper()
	versions := map[string]string{}
	for _, o := range connectedObjects() {
		if err := l.Client(t, o.cluster).Get(context.Background(), o.key, o.obj); err != nil {
			t.Fatalf("%s: %T %s: %v", o.cluster, o.obj, o.key, err)
		}
		version := o.obj.GetResourceVersion()
		if _, ok := o.obj.(*forkliftv1beta1.Provider); ok {
			version = fmt.Sprintf("generation %d", o.obj.GetGeneration())
		}
		versions[fmt.Sprintf("%s %T %s", o.cluster, o.obj, o.key)] = version
	}
	return versions
}

// `cclm connect` on the lab, twice: the seed's objects on ocp7, the
// Provider and its Secret on ocp1, the CA bundles exchanged; the second
// run finds everything in place and changes nothing, the token included.
func TestConnectIsIdempotent(t *testing.T) {
	l := sharedLab(t)
	first := l.runConnect(t)
	if len(first.Steps) != 11 {
		t.Fatalf("want 11 steps (6 on the source, 5 on the target), got %+v", first.Steps)
	}
	for _, s := range first.Steps {
		if s.Outcome != "created" && s.Outcome != "already there" && s.Outcome != "updated" {
			t.Fatalf("step %+v", s)
		}
	}
	ctx := context.Background()
	source, target := l.Client(t, sourceCluster), l.Client(t, targetCluster)
	var tokenSecret corev1.Secret
	if err := source.Get(ctx, client.ObjectKey{Namespace: toolkitNamespace, Name: "cclm"}, &tokenSecret); err != nil {
		t.Fatal(err)
	}
	token := string(tokenSecret.Data[corev1.ServiceAccountTokenKey])
	if token == "" || tokenSecret.Type != corev1.SecretTypeServiceAccountToken {
		t.Fatalf("token Secret: type %s, token empty %v", tokenSecret.Type, token == "")
	}
	versions := l.resourceVersions(t)

	second := l.runConnect(t)
	for _, s := range second.Steps {
		if s.Outcome != "already there" {
			t.Fatalf("the second run changed %s on %s: %s", s.Object, s.Cluster, s.Outcome)
		}
		if strings.Contains(s.Detail+s.Object, token) {
			t.Fatal("connect printed the token")
		}
	}
	if again := l.resourceVersions(t); !equalMaps(versions, again) {
		t.Fatalf("resourceVersions changed:\nbefore %v\nafter  %v", versions, again)
	}
	var again corev1.Secret
	if err := source.Get(ctx, client.ObjectKey{Namespace: toolkitNamespace, Name: "cclm"}, &again); err != nil {
		t.Fatal(err)
	}
	if again.UID != tokenSecret.UID || string(again.Data[corev1.ServiceAccountTokenKey]) != token {
		t.Fatal("the second run replaced the token Secret or its token")
	}

	// The Provider and its Secret on ocp1.
	var provider forkliftv1beta1.Provider
	if err := target.Get(ctx, client.ObjectKey{Namespace: toolkitNamespace, Name: sourceCluster}, &provider); err != nil {
		t.Fatal(err)
	}
	sourceConfig := l.RESTConfig(t, sourceCluster)
	if provider.Spec.URL != sourceConfig.Host || provider.Spec.Secret.Name != sourceCluster+"-token" || provider.Spec.Type == nil || *provider.Spec.Type != forkliftv1beta1.OpenShift {
		t.Fatalf("Provider %s: %+v", sourceCluster, provider.Spec)
	}
	var providerSecret corev1.Secret
	if err := target.Get(ctx, client.ObjectKey{Namespace: toolkitNamespace, Name: sourceCluster + "-token"}, &providerSecret); err != nil {
		t.Fatal(err)
	}
	if string(providerSecret.Data["token"]) != token || len(providerSecret.Data["ca.crt"]) == 0 {
		t.Fatal("the Provider's Secret must hold the token and ocp7's API server CA")
	}
	if strings.TrimSpace(string(providerSecret.Data["ca.crt"])) != strings.TrimSpace(string(sourceConfig.CAData)) {
		t.Fatal("ca.crt is not the CA of ocp7's kubeconfig")
	}

	// The CA bundles: each cluster's CA in the other's external bundle,
	// exactly once.
	for _, pair := range [][2]string{{sourceCluster, targetCluster}, {targetCluster, sourceCluster}} {
		var own, external corev1.ConfigMap
		if err := l.Client(t, pair[0]).Get(ctx, client.ObjectKey{Namespace: virtNamespace, Name: install.CABundleConfigMap}, &own); err != nil {
			t.Fatal(err)
		}
		if err := l.Client(t, pair[1]).Get(ctx, client.ObjectKey{Namespace: virtNamespace, Name: install.ExternalCAConfigMap}, &external); err != nil {
			t.Fatal(err)
		}
		if n := countCert(t, external.Data[install.CABundleKey], own.Data[install.CABundleKey]); n != 1 {
			t.Fatalf("%s's CA is %d times in %s's %s", pair[0], n, pair[1], install.ExternalCAConfigMap)
		}
	}

	// What the token may do: the seed's role, no more.
	l.assertTokenPermissions(t, token)

	// The toolkit on ocp1 checks the Provider and marks it Ready.
	labtest.WaitFor(t, "Provider "+sourceCluster+" to be Ready (the toolkit on ocp1 checks it)", 90*time.Second, func() (bool, string) {
		if err := target.Get(ctx, client.ObjectKeyFromObject(&provider), &provider); err != nil {
			return false, err.Error()
		}
		c := forkliftv1beta1.FindCondition(provider.Status.Conditions, forkliftv1beta1.ConditionReady)
		return c != nil && c.Status == forkliftv1beta1.ConditionTrue, "status " + provider.Status.Phase + " " + conditionsText(provider.Status.Conditions)
	})
	if second.Provider == nil || !second.Provider.Ready {
		t.Fatalf("connect reports the toolkit's verdict on the Provider: %+v", second.Provider)
	}
	if !second.Preflight.OK {
		t.Fatalf("preflight after connect: %v", failedChecks(second))
	}
}

func conditionsText(conditions []forkliftv1beta1.Condition) string {
	var parts []string
	for _, c := range conditions {
		parts = append(parts, c.Type+"="+c.Status+" "+c.Message)
	}
	return strings.Join(parts, "; ")
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// countCert counts how often the certificate of cert is in bundle.
func countCert(t *testing.T, bundle, cert string) int {
	t.Helper()
	want, _ := pem.Decode([]byte(cert))
	if want == nil {
		t.Fatalf("no certificate in %q", cert)
	}
	n := 0
	for rest := []byte(bundle); ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return n
		}
		if string(block.Bytes) == string(want.Bytes) {
			n++
		}
	}
}

// assertTokenPermissions asks ocp7, as the token, what it may do.
func (l *labEnv) assertTokenPermissions(t *testing.T, token string) {
	t.Helper()
	config := rest.AnonymousClientConfig(l.RESTConfig(t, sourceCluster))
	config.BearerToken = token
	clientset := kubernetes.NewForConfigOrDie(config)
	for _, tc := range []struct {
		group, resource, verb, namespace string
		allowed                          bool
	}{
		{"kubevirt.io", "virtualmachines", "get", "default", true},
		{"kubevirt.io", "virtualmachineinstancemigrations", "create", "default", true},
		{"kubevirt.io", "kubevirts", "list", virtNamespace, true},
		{"", "persistentvolumeclaims", "create", "default", true},
		{"storage.k8s.io", "storageclasses", "list", "", true},
		{"kubevirt.io", "kubevirts", "update", virtNamespace, false},
		{"", "nodes", "delete", "", false},
		{"rbac.authorization.k8s.io", "clusterroles", "create", "", false},
	} {
		review, err := clientset.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group: tc.group, Resource: tc.resource, Verb: tc.verb, Namespace: tc.namespace,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if review.Status.Allowed != tc.allowed {
			t.Fatalf("the token may %s %s.%s in %q: %v, want %v", tc.verb, tc.resource, tc.group, tc.namespace, review.Status.Allowed, tc.allowed)
		}
	}
}
