package install

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/pki"
	"github.com/cclm-io/cclm/internal/trust"
)

// The objects of a cluster's migration PKI, with upstream KubeVirt's names:
// the CA (Secret kubevirt-ca), its trust bundle (ConfigMap kubevirt-ca, key
// ca-bundle), the bundle of peers' CAs (ConfigMap kubevirt-external-ca) and
// the node agents' certificate (Secret kubevirt-virt-handler-certs).
const (
	CASecretName          = trust.CASecretName
	CABundleConfigMap     = trust.CABundleConfigMap
	ExternalCAConfigMap   = trust.ExternalCAConfigMap
	CABundleKey           = trust.BundleKey
	HandlerCertSecretName = trust.HandlerCertSecretName
	MigrationTLSName      = trust.MigrationTLSName
)

// MigrationPKI makes the cluster's migration CA and the node agents'
// certificate unless they exist, and lets the node agent account read them.
func MigrationPKI(ctx context.Context, restConfig *rest.Config, namespace string) error {
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	ca, err := ensureCA(ctx, clientset, namespace)
	if err != nil {
		return err
	}
	if err := ensureHandlerCert(ctx, clientset, namespace, ca); err != nil {
		return err
	}
	applier, err := kube.NewApplier(restConfig)
	if err != nil {
		return err
	}
	return applier.Apply(ctx,
		&corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: CABundleConfigMap, Namespace: namespace},
			Data:       map[string]string{CABundleKey: string(ca.CertPEM())},
		},
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: "cclm:kubevirt-handler-certs", Namespace: namespace},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{HandlerCertSecretName}, Verbs: []string{"get"}},
				{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{CABundleConfigMap, ExternalCAConfigMap}, Verbs: []string{"get", "list", "watch"}},
			},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: "cclm:kubevirt-handler-certs", Namespace: namespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "cclm:kubevirt-handler-certs"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: NodeAgent.ServiceAccount, Namespace: namespace}},
		},
	)
}

// ensureCA reads the CA Secret or makes it; a CA is never replaced, since
// peers may trust it already.
func ensureCA(ctx context.Context, clientset kubernetes.Interface, namespace string) (*pki.KeyPair, error) {
	secrets := clientset.CoreV1().Secrets(namespace)
	secret, err := secrets.Get(ctx, CASecretName, metav1.GetOptions{})
	if err == nil {
		return pki.ParseKeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	ca, err := pki.NewCA("kubevirt-ca@" + namespace)
	if err != nil {
		return nil, err
	}
	if err := createTLSSecret(ctx, secrets, CASecretName, ca); err != nil {
		return nil, err
	}
	return ca, nil
}

func ensureHandlerCert(ctx context.Context, clientset kubernetes.Interface, namespace string, ca *pki.KeyPair) error {
	secrets := clientset.CoreV1().Secrets(namespace)
	if _, err := secrets.Get(ctx, HandlerCertSecretName, metav1.GetOptions{}); err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	cert, err := ca.Issue(pki.CertRequest{CommonName: MigrationTLSName, DNSNames: []string{MigrationTLSName}, Server: true, Client: true})
	if err != nil {
		return err
	}
	return createTLSSecret(ctx, secrets, HandlerCertSecretName, cert)
}

type secretCreator interface {
	Create(ctx context.Context, secret *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error)
}

func createTLSSecret(ctx context.Context, secrets secretCreator, name string, pair *pki.KeyPair) error {
	keyPEM, err := pair.KeyPEM()
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: pair.CertPEM(), corev1.TLSPrivateKeyKey: keyPEM},
	}
	if _, err := secrets.Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Secret %s: %w", name, err)
	}
	return nil
}
