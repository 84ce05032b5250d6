// Package pki makes the X.509 material that cclm's components need: a CA per
// cluster, serving certificates, and client certificates whose subject names
// the Kubernetes user and groups. Keys are ECDSA P-256: fast to generate, which
// matters because every lab and test run makes its own.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// validity is long enough for a lab that stays up for months and short
// enough that a leaked lab key is not valid forever.
const validity = 365 * 24 * time.Hour

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CertPEM returns the certificate in PEM form.
func (kp *KeyPair) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.Cert.Raw})
}

// KeyPEM returns the private key in PKCS#8 PEM form.
func (kp *KeyPair) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(kp.Key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteFiles writes the certificate and key as PEM files; the key is readable
// by its owner only.
func (kp *KeyPair) WriteFiles(certPath, keyPath string) error {
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(certPath, kp.CertPEM(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, keyPEM, 0o600)
}

// NewCA makes a self-signed certificate authority.
func NewCA(commonName string) (*KeyPair, error) {
	template := baseTemplate(pkix.Name{CommonName: commonName})
	template.IsCA = true
	template.BasicConstraintsValid = true
	template.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	return sign(template, nil)
}

// CertRequest says what a leaf certificate is for.
type CertRequest struct {
	CommonName    string
	Organizations []string // Kubernetes reads these as the user's groups
	DNSNames      []string
	IPs           []net.IP
	Server        bool
	Client        bool
}

// Issue signs a leaf certificate with the CA.
func (ca *KeyPair) Issue(req CertRequest) (*KeyPair, error) {
	if !req.Server && !req.Client {
		return nil, errors.New("pki: a certificate must be for a server, a client or both")
	}
	template := baseTemplate(pkix.Name{CommonName: req.CommonName, Organization: req.Organizations})
	template.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	template.DNSNames = req.DNSNames
	template.IPAddresses = req.IPs
	if req.Server {
		template.ExtKeyUsage = append(template.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if req.Client {
		template.ExtKeyUsage = append(template.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	return sign(template, ca)
}

// NewSigningKey makes a bare key, for example the service-account token
// signing key.
func NewSigningKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// WritePrivateKey writes a key as PKCS#8 PEM, and its public half as PKIX PEM
// when publicPath is not empty.
func WritePrivateKey(key crypto.Signer, privatePath, publicPath string) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(privatePath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	if publicPath == "" {
		return nil
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	return os.WriteFile(publicPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
}

// ParseKeyPair reads a PEM certificate and PKCS#8 key.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	certBlock, _ := pem.Decode(certPEM)
	if certBlock == nil {
		return nil, errors.New("pki: no PEM certificate found")
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse certificate: %w", err)
	}
	keyBlock, _ := pem.Decode(keyPEM)
	if keyBlock == nil {
		return nil, errors.New("pki: no PEM private key found")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse private key: %w", err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, errors.New("pki: private key cannot sign")
	}
	return &KeyPair{Cert: cert, Key: signer}, nil
}

func baseTemplate(subject pkix.Name) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		// Back-dated so that clocks a little apart (a guest, a peer host)
		// still accept a certificate made a moment ago.
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(validity),
	}
}

// sign makes a key for the template and signs it with parent, or with itself
// when parent is nil.
func sign(template *x509.Certificate, parent *KeyPair) (*KeyPair, error) {
	key, err := NewSigningKey()
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	issuerCert, issuerKey := template, crypto.Signer(key)
	if parent != nil {
		issuerCert, issuerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, issuerCert, key.Public(), issuerKey)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %q: %w", template.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}
