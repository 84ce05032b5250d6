package synccontroller

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cclm-io/cclm/internal/pki"
	"github.com/cclm-io/cclm/internal/trust"
)

// identity is the controller's pair of certificates, issued at start from
// the cluster's CA: one to serve with, one to call peers with.
type identity struct {
	server tls.Certificate
	client tls.Certificate
}

// issueIdentity reads the cluster's CA (Secret kubevirt-ca) and issues the
// server certificate (the migration address as IP SAN, DNS name
// kubevirt-synchronization) and the client certificate. The cluster's name,
// if known, goes into both as organization, so that a peer refusing them
// can name the cluster.
func issueIdentity(ctx context.Context, reader client.Reader, namespace, listenIP, clusterName string) (identity, error) {
	ca, err := readCA(ctx, reader, namespace)
	if err != nil {
		return identity{}, err
	}
	var organizations []string
	if clusterName != "" {
		organizations = []string{clusterName}
	}
	server, err := issue(ca, pki.CertRequest{
		CommonName: ServerName, Organizations: organizations,
		DNSNames: []string{ServerName}, IPs: []net.IP{net.ParseIP(listenIP)}, Server: true,
	})
	if err != nil {
		return identity{}, err
	}
	client, err := issue(ca, pki.CertRequest{CommonName: LeaderElectionID, Organizations: organizations, Client: true})
	if err != nil {
		return identity{}, err
	}
	return identity{server: server, client: client}, nil
}

func readCA(ctx context.Context, reader client.Reader, namespace string) (*pki.KeyPair, error) {
	secret := &corev1.Secret{}
	if err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: trust.CASecretName}, secret); err != nil {
		return nil, fmt.Errorf("sync controller: read the cluster's CA, Secret %s/%s (made with the migration PKI): %w", namespace, trust.CASecretName, err)
	}
	ca, err := pki.ParseKeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("sync controller: Secret %s/%s does not hold a CA (%s and %s): %w", namespace, trust.CASecretName, corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
	}
	return ca, nil
}

// issue makes a leaf certificate as tls wants it. The chain is the leaf
// alone: peers hold this cluster's CA in their trust bundle.
func issue(ca *pki.KeyPair, request pki.CertRequest) (tls.Certificate, error) {
	pair, err := ca.Issue(request)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{pair.Cert.Raw}, PrivateKey: pair.Key, Leaf: pair.Cert}, nil
}
