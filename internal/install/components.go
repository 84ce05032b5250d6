package install

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/cclm-io/cclm/internal/access"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/metrics"
)

// Component is one of cclm's in-cluster components (see access.Account).
type Component = access.Account

// NamespacedRole names a Role in a namespace.
type NamespacedRole = access.NamespacedRole

func rule(group string, resources []string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
}

var readVerbs = []string{"get", "list", "watch"}

// NodeAgent is the node agent's account: its own Node and Lease, the VMIs
// it runs, the local volumes it provisions, and reviews to guard its API.
var NodeAgent = Component{
	ServiceAccount: "kubevirt-handler",
	Rules: []rbacv1.PolicyRule{
		rule("", []string{"nodes"}, "get", "list", "watch", "create", "update", "patch"),
		rule("", []string{"nodes/status"}, "update", "patch"),
		rule("coordination.k8s.io", []string{"leases"}, "get", "create", "update"),
		rule("kubevirt.io", []string{"virtualmachineinstances"}, "get", "list", "watch", "update", "patch"),
		rule("kubevirt.io", []string{"virtualmachineinstances/status"}, "update", "patch"),
		rule("kubevirt.io", []string{"kubevirts"}, readVerbs...),
		rule("", []string{"persistentvolumeclaims"}, readVerbs...),
		// A VMI's secret, configMap and sysprep disks, and the Secrets its
		// cloud-init names, read by name when it starts (kubelet mounts
		// them for virt-launcher upstream; cclm has no kubelet).
		rule("", []string{"secrets", "configmaps"}, "get"),
		rule("", []string{"persistentvolumes"}, "get", "list", "watch", "create", "patch", "delete"),
		rule("k8s.cni.cncf.io", []string{"network-attachment-definitions"}, readVerbs...),
		rule("whereabouts.cni.cncf.io", []string{"ippools"}, "get", "list", "watch", "create", "update"),
		rule("", []string{"events"}, "create", "patch", "update"),
		rule("events.k8s.io", []string{"events"}, "create", "patch", "update"),
		rule("authentication.k8s.io", []string{"tokenreviews"}, "create"),
		rule("authorization.k8s.io", []string{"subjectaccessreviews"}, "create"),
	},
	NamespacedRoles: []NamespacedRole{{Namespace: "kube-system", Role: "extension-apiserver-authentication-reader"}},
}

// MetricsReader is an account that may read every component's /metrics,
// /healthz and /readyz, what a Prometheus is given; the lab makes it so
// that `kubectl create token cclm-metrics-reader -n openshift-cnv` gives
// a token to read them with.
var MetricsReader = Component{ServiceAccount: "cclm-metrics-reader", Rules: metrics.ReaderRules}

// InstallComponent makes the component's ServiceAccount in namespace, its
// ClusterRole and bindings, and returns a kubeconfig that authenticates as
// the ServiceAccount with a token from a service-account-token Secret.
func InstallComponent(ctx context.Context, restConfig *rest.Config, namespace string, component Component) (*clientcmdapi.Config, error) {
	applier, err := kube.NewApplier(restConfig)
	if err != nil {
		return nil, err
	}
	if err := applier.Apply(ctx, componentObjects(namespace, component)...); err != nil {
		return nil, err
	}
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	token, err := waitForToken(ctx, clientset, namespace, component.ServiceAccount)
	if err != nil {
		return nil, err
	}
	return tokenKubeconfig(restConfig, component.ServiceAccount, token), nil
}

func componentObjects(namespace string, component Component) []runtime.Object {
	name := "cclm:" + component.ServiceAccount
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: component.ServiceAccount, Namespace: namespace}}
	objects := []runtime.Object{
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Name: component.ServiceAccount, Namespace: namespace},
		},
		&corev1.Secret{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{
				Name: component.ServiceAccount + "-token", Namespace: namespace,
				Annotations: map[string]string{corev1.ServiceAccountNameKey: component.ServiceAccount},
			},
			Type: corev1.SecretTypeServiceAccountToken,
		},
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules:      component.Rules,
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
			Subjects:   subject,
		},
	}
	for _, role := range component.NamespacedRoles {
		objects = append(objects, &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: role.Namespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Role},
			Subjects:   subject,
		})
	}
	return objects
}

func waitForToken(ctx context.Context, clientset kubernetes.Interface, namespace, account string) (string, error) {
	var token string
	err := kube.Poll(ctx, 100*time.Millisecond, time.Minute, fmt.Sprintf("a token for ServiceAccount %s/%s", namespace, account),
		func(ctx context.Context) (bool, string, error) {
			secret, err := clientset.CoreV1().Secrets(namespace).Get(ctx, account+"-token", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, "token Secret not found", nil
			}
			if err != nil {
				return false, "", err
			}
			token = string(secret.Data[corev1.ServiceAccountTokenKey])
			return token != "", "the token controller has not filled data.token yet", nil
		})
	return token, err
}

func tokenKubeconfig(admin *rest.Config, user, token string) *clientcmdapi.Config {
	config := clientcmdapi.NewConfig()
	config.Clusters["cluster"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: admin.CAData}
	config.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	config.Contexts["default"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: user}
	config.CurrentContext = "default"
	return config
}
