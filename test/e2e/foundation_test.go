package e2e

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/testenv"
)

// The seed's provider token: the ClusterRole, namespace, ServiceAccount,
// binding and token Secret made exactly with the page's commands, and the
// token then allowed and denied as the ClusterRole says.
func TestSeedServiceAccountTokenFollowsClusterRole(t *testing.T) {
	// openshift-cnv exists as on the seed's clusters: KubeVirt is installed.
	c := apiCluster(t)
	seed := testenv.OpenShiftExamples()
	for _, file := range []string{"clusterrole.yaml", "ocp7.net-attach-def.yaml", "ocp1.net-attach-def.yaml"} {
		out := mustKubectl(t, c, "", "apply", "-f", filepath.Join(seed, file))
		t.Logf("kubectl apply -f %s: %s", file, strings.TrimSpace(out))
	}
	nad := mustKubectl(t, c, "", "get", "network-attachment-definitions", "-n", "openshift-cnv", "livemigration-network", "-o", "jsonpath={.spec.config}")
	// ocp1 allocates from the upper half, so its NAD excludes the lower.
	if !strings.Contains(nad, `"192.168.201.0/25"`) {
		t.Fatalf("the NAD applied last (ocp1's) should exclude 192.168.201.0/25, got config %s", nad)
	}

	// The page's commands, kubectl for oc.
	mustKubectl(t, c, "", "create", "namespace", "openshift-mtv")
	mustKubectl(t, c, "", "create", "serviceaccount", "cclm", "-n", "openshift-mtv")
	mustKubectl(t, c, "", "create", "clusterrolebinding", "cclm", "--clusterrole=live-migration-role", "--serviceaccount=openshift-mtv:cclm")
	mustKubectl(t, c, `apiVersion: v1
kind: Secret
metadata:
  name: cclm
  namespace: openshift-mtv
  annotations:
    kubernetes.io/service-account.name: cclm
type: kubernetes.io/service-account-token
`, "apply", "-f", "-")

	token := waitForToken(t, c)
	viaTemplate := mustKubectl(t, c, "", "get", "secret", "cclm", "-n", "openshift-mtv", "-o", `go-template={{ .data.token | base64decode}}{{"\n"}}`)
	if strings.TrimSpace(viaTemplate) != token {
		t.Fatal("the page's go-template does not print the token stored in the Secret")
	}

	admin, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	asToken := rest.AnonymousClientConfig(admin)
	asToken.BearerToken = token
	ctx := context.Background()

	dyn := dynamic.NewForConfigOrDie(asToken)
	vms := schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "virtualmachines"}
	if _, err := dyn.Resource(vms).Namespace("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("the token may list virtualmachines per live-migration-role, but: %v", err)
	}
	kvs := schema.GroupVersionResource{Group: "kubevirt.io", Version: "v1", Resource: "kubevirts"}
	if _, err := dyn.Resource(kvs).Namespace("openshift-cnv").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("the token may list kubevirts per live-migration-role, but: %v", err)
	}
	err = kubernetes.NewForConfigOrDie(asToken).CoreV1().Nodes().Delete(ctx, "ocp7-worker-0", metav1.DeleteOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("deleting a node with the token must be Forbidden, got %v", err)
	}
	err = dyn.Resource(kvs).Namespace("openshift-cnv").Delete(ctx, "kubevirt", metav1.DeleteOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("the role only reads kubevirts: delete must be Forbidden, got %v", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("an error message carries the token")
	}
}

func waitForToken(t *testing.T, c interface {
	RESTConfig() (*rest.Config, error)
}) string {
	t.Helper()
	config, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	secrets := kubernetes.NewForConfigOrDie(config).CoreV1().Secrets("openshift-mtv")
	var token string
	err = kube.Poll(context.Background(), 100*time.Millisecond, 30*time.Second, "the token controller to fill Secret openshift-mtv/cclm",
		func(ctx context.Context) (bool, string, error) {
			secret, err := secrets.Get(ctx, "cclm", metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			token = string(secret.Data[corev1.ServiceAccountTokenKey])
			return token != "", "data.token still empty", nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1]); err != nil {
		t.Fatalf("data.token is not a JWT: %v", err)
	}
	return token
}

// ownerReferences cascade: the garbage collector runs.
func TestOwnerReferencesCascade(t *testing.T) {
	c := clusters.Get(t, "foundation")
	config, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	configMaps := kubernetes.NewForConfigOrDie(config).CoreV1().ConfigMaps("default")
	owner, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gc-owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dependent := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name:            "gc-dependent",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}},
	}}
	if _, err := configMaps.Create(ctx, dependent, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := configMaps.Delete(ctx, owner.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = kube.Poll(ctx, 200*time.Millisecond, time.Minute, "the garbage collector to delete gc-dependent",
		func(ctx context.Context) (bool, string, error) {
			_, err := configMaps.Get(ctx, dependent.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), "gc-dependent still exists", nil
		})
	if err != nil {
		t.Fatal(err)
	}
}
