package trust

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The ConfigMaps of the migration trust, in KubeVirt's namespace, and
// their key (upstream KubeVirt's names).
const (
	// CABundleConfigMap holds the cluster's own migration CA.
	CABundleConfigMap = "kubevirt-ca"
	// ExternalCAConfigMap holds the CAs of the clusters it migrates with.
	ExternalCAConfigMap = "kubevirt-external-ca"
	// BundleKey is the key of the PEM bundle in both.
	BundleKey = "ca-bundle"
	// CASecretName is the Secret of the cluster's migration CA.
	CASecretName = "kubevirt-ca"
	// HandlerCertSecretName is the node agents' (virt-handlers')
	// certificate, issued by that CA.
	HandlerCertSecretName = "kubevirt-virt-handler-certs"
	// MigrationTLSName is the name in the node agents' certificate that
	// both ends of a migration check, since a certificate shared by all of
	// a cluster's nodes cannot name their addresses.
	MigrationTLSName = "kubevirt-migration"
)

// Import is what ImportPeerCA did.
type Import struct {
	// Created: kubevirt-external-ca did not exist and was made.
	Created bool
	// Added is how many certificates were added (0: all were there).
	Added int
}

// Missing is how many certificates of peer a cluster lacks whose own CA
// bundle is own and whose kubevirt-external-ca holds external: none when
// it trusts the peer already (the same CA, or imported before).
func Missing(own, external, peer string) (int, error) {
	_, n, err := MergeBundles(own+"\n"+external, peer)
	return n, err
}

// ImportPeerCA adds each certificate of peer that kubevirt-external-ca in
// namespace lacks, creating the ConfigMap if needed and leaving the CAs
// there alone; it retries on conflicts with other writers. A damaged
// bundle there is an error, not overwritten.
func ImportPeerCA(ctx context.Context, c client.Client, namespace, peer string) (Import, error) {
	if blocks, err := ParseBundle(peer); err != nil || len(blocks) == 0 {
		return Import{}, fmt.Errorf("the CA bundle to import holds no PEM certificate (%v)", err)
	}
	key := client.ObjectKey{Namespace: namespace, Name: ExternalCAConfigMap}
	var result Import
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		result = Import{}
		var existing corev1.ConfigMap
		err := c.Get(ctx, key, &existing)
		if apierrors.IsNotFound(err) {
			merged, n, err := MergeBundles("", peer)
			if err != nil {
				return err
			}
			created := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: ExternalCAConfigMap}, Data: map[string]string{BundleKey: merged}}
			if err := c.Create(ctx, created); err != nil {
				if apierrors.IsAlreadyExists(err) {
					return apierrors.NewConflict(corev1.Resource("configmaps"), ExternalCAConfigMap, err)
				}
				return fmt.Errorf("create ConfigMap %s/%s: %w", namespace, ExternalCAConfigMap, err)
			}
			result = Import{Created: true, Added: n}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read ConfigMap %s/%s: %w", namespace, ExternalCAConfigMap, err)
		}
		merged, n, err := MergeBundles(existing.Data[BundleKey], peer)
		if err != nil {
			return fmt.Errorf("ConfigMap %s/%s: %w", namespace, ExternalCAConfigMap, err)
		}
		if n == 0 {
			return nil
		}
		if existing.Data == nil {
			existing.Data = map[string]string{}
		}
		existing.Data[BundleKey] = merged
		if err := c.Update(ctx, &existing); err != nil {
			if apierrors.IsConflict(err) {
				return err
			}
			return fmt.Errorf("update ConfigMap %s/%s: %w", namespace, ExternalCAConfigMap, err)
		}
		result.Added = n
		return nil
	})
	return result, err
}

// Bundles are a cluster's migration CA (kubevirt-ca) and the CAs it
// trusts besides (kubevirt-external-ca); "" where the ConfigMap is absent.
type Bundles struct {
	CA, External string
	// HasCA: kubevirt-ca exists (KubeVirt is installed in the namespace).
	HasCA bool
}

// ReadBundles reads both ConfigMaps of the trust in namespace. An error
// names the ConfigMap and wraps the API's (apierrors classify it).
func ReadBundles(ctx context.Context, c client.Reader, namespace string) (Bundles, error) {
	var out Bundles
	for _, cm := range []struct {
		name   string
		bundle *string
	}{{CABundleConfigMap, &out.CA}, {ExternalCAConfigMap, &out.External}} {
		var read corev1.ConfigMap
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: cm.name}, &read)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return Bundles{}, fmt.Errorf("get ConfigMap %s/%s: %w", namespace, cm.name, err)
		default:
			*cm.bundle = read.Data[BundleKey]
			out.HasCA = out.HasCA || cm.name == CABundleConfigMap
		}
	}
	return out, nil
}
