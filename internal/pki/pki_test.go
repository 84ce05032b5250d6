package pki

import (
	"crypto/x509"
	"net"
	"testing"
)

func TestIssuedCertificatesChainToTheirCA(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(CertRequest{CommonName: "node", IPs: []net.IP{net.ParseIP("192.168.201.1")}, Server: true, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("usage %v: %v", usage, err)
		}
	}
	other, _ := NewCA("other-ca")
	foreign := x509.NewCertPool()
	foreign.AddCert(other.Cert)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: foreign}); err == nil {
		t.Fatal("a certificate verified against a CA that did not sign it")
	}
}

func TestKeyPairRoundTripsThroughPEM(t *testing.T) {
	ca, _ := NewCA("test-ca")
	leaf, err := ca.Issue(CertRequest{CommonName: "admin", Organizations: []string{"system:masters"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := leaf.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseKeyPair(leaf.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Cert.Subject.Organization[0] != "system:masters" {
		t.Fatalf("groups lost: %v", parsed.Cert.Subject)
	}
	if _, err := ParseKeyPair([]byte("junk"), keyPEM); err == nil {
		t.Fatal("junk parsed as a certificate")
	}
}

func TestIssueRefusesACertificateForNothing(t *testing.T) {
	ca, _ := NewCA("test-ca")
	if _, err := ca.Issue(CertRequest{CommonName: "x"}); err == nil {
		t.Fatal("a certificate with no usage was issued")
	}
}
