package controlplane

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/cclm-io/cclm/internal/pki"
)

// clusterPKI is the cluster's certificate authority and the credentials made
// from it. The CA also signs the client certificates that the lab hands to
// cclm's components.
type clusterPKI struct {
	dir               string
	ca                *pki.KeyPair
	admin             *pki.KeyPair
	controllerManager *pki.KeyPair
}

func makePKI(dir string) (*clusterPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := pki.NewCA("cclm-kubernetes-ca")
	if err != nil {
		return nil, err
	}
	serving, err := ca.Issue(pki.CertRequest{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPs:        []net.IP{net.ParseIP(loopback)},
		Server:     true,
	})
	if err != nil {
		return nil, err
	}
	admin, err := ca.Issue(pki.CertRequest{CommonName: "cclm-admin", Organizations: []string{"system:masters"}, Client: true})
	if err != nil {
		return nil, err
	}
	controllerManager, err := ca.Issue(pki.CertRequest{CommonName: "system:kube-controller-manager", Client: true})
	if err != nil {
		return nil, err
	}
	saKey, err := pki.NewSigningKey()
	if err != nil {
		return nil, err
	}
	files := []struct {
		pair      *pki.KeyPair
		cert, key string
	}{
		{ca, "ca.crt", "ca.key"},
		{serving, "apiserver.crt", "apiserver.key"},
	}
	for _, f := range files {
		if err := f.pair.WriteFiles(filepath.Join(dir, f.cert), filepath.Join(dir, f.key)); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.cert, err)
		}
	}
	if err := pki.WritePrivateKey(saKey, filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")); err != nil {
		return nil, fmt.Errorf("write service-account key: %w", err)
	}
	return &clusterPKI{dir: dir, ca: ca, admin: admin, controllerManager: controllerManager}, nil
}

// CA returns the cluster's certificate authority, which signs both the API
// server's serving certificate and client certificates it accepts.
func (c *Cluster) CA() *pki.KeyPair { return c.pki.ca }

// Kubeconfig builds a kubeconfig for the cluster with the given client
// credentials, under context name contextName.
func (c *Cluster) Kubeconfig(contextName string, client *pki.KeyPair) (*clientcmdapi.Config, error) {
	keyPEM, err := client.KeyPEM()
	if err != nil {
		return nil, err
	}
	config := clientcmdapi.NewConfig()
	config.Clusters[contextName] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.pki.ca.CertPEM()}
	config.AuthInfos[contextName] = &clientcmdapi.AuthInfo{ClientCertificateData: client.CertPEM(), ClientKeyData: keyPEM}
	config.Contexts[contextName] = &clientcmdapi.Context{Cluster: contextName, AuthInfo: contextName}
	config.CurrentContext = contextName
	return config, nil
}

// AdminKubeconfigData is the admin kubeconfig, with context named after the
// cluster.
func (c *Cluster) AdminKubeconfigData() (*clientcmdapi.Config, error) {
	return c.Kubeconfig(c.Name, c.pki.admin)
}

func (c *Cluster) writeKubeconfig(user string, client *pki.KeyPair) (string, error) {
	config, err := c.Kubeconfig(c.Name, client)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.pki.dir, user+".kubeconfig")
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		return "", fmt.Errorf("%s: write %s kubeconfig: %w", c.Name, user, err)
	}
	return path, nil
}
