package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TLSEndpoint is the side of a TLS connection QEMU's credentials are for.
type TLSEndpoint string

// The migration target (migration listener, NBD server) is the server; the
// source (migration stream, NBD client) is the client. Both verify the
// peer's certificate against the CA.
const (
	TLSServer TLSEndpoint = "server"
	TLSClient TLSEndpoint = "client"
)

func tlsEndpointFor(role MigrationRole) TLSEndpoint {
	if role == RoleTarget {
		return TLSServer
	}
	return TLSClient
}

// tlsCredsID is the QOM id of this package's tls-creds-x509 object.
func tlsCredsID(endpoint TLSEndpoint) string { return "cclm-tls-" + string(endpoint) }

// TLSMaterial is what QEMU needs for mutual TLS: the CA bundle to verify
// the peer with (it may hold several CAs, e.g. both clusters'), and this
// node's certificate and key. The certificate must allow both server and
// client authentication, so one set serves either side of a migration; the
// key must be PEM that gnutls reads (PKCS#8 "PRIVATE KEY" works).
type TLSMaterial struct {
	CACertPEM []byte
	CertPEM   []byte
	KeyPEM    []byte
}

// ffdhe2048 is RFC 7919's 2048-bit Diffie-Hellman group. Without a
// dh-params.pem QEMU generates parameters when it loads server
// credentials, which cost the migration target 0.3-2 s on the critical
// path (measured by the migration benchmark); a fixed, well-known group is
// what TLS 1.3 uses anyway.
const ffdhe2048 = `-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
`

// WriteTLSDir writes m in the layout QEMU's tls-creds-x509 reads: the CA as
// ca-cert.pem, the certificate and key under both the server and the
// client names, and the DH parameters. Keys are readable by their owner
// only.
func WriteTLSDir(dir string, m TLSMaterial) error {
	if len(m.CACertPEM) == 0 || len(m.CertPEM) == 0 || len(m.KeyPEM) == 0 {
		return errors.New("TLS material for QEMU needs a CA certificate, a certificate and a key")
	}
	if !strings.Contains(string(m.KeyPEM), "PRIVATE KEY-----") {
		return errors.New("TLS key for QEMU is not a PEM private key")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca-cert.pem", m.CACertPEM, 0o644},
		{"server-cert.pem", m.CertPEM, 0o644},
		{"server-key.pem", m.KeyPEM, 0o600},
		{"client-cert.pem", m.CertPEM, 0o644},
		{"client-key.pem", m.KeyPEM, 0o600},
		{"dh-params.pem", []byte(ffdhe2048), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("writing QEMU TLS file: %w", err)
		}
	}
	return nil
}

// AddTLSCredentials creates (or replaces) the instance's tls-creds-x509
// object for endpoint from dir (see WriteTLSDir), with peer verification
// on: the migration stream and NBD then require the peer to present a
// certificate of the CA. QEMU reads the files now, so a bad certificate is
// reported here rather than at migration time.
func (in *Instance) AddTLSCredentials(ctx context.Context, dir string, endpoint TLSEndpoint) error {
	if endpoint != TLSServer && endpoint != TLSClient {
		return fmt.Errorf("TLS endpoint %q: use %q or %q", endpoint, TLSServer, TLSClient)
	}
	id := tlsCredsID(endpoint)
	// Replacing lets a node agent that restarted re-add credentials. It
	// fails while a migration or NBD uses them, which is as it should be.
	var qmpErr *QMPError
	if err := in.Execute(ctx, "object-del", map[string]any{"id": id}, nil); err != nil && !errors.As(err, &qmpErr) {
		return err
	}
	args := map[string]any{
		"qom-type":    "tls-creds-x509",
		"id":          id,
		"dir":         dir,
		"endpoint":    string(endpoint),
		"verify-peer": true,
	}
	if err := in.Execute(ctx, "object-add", args, nil); err != nil {
		return fmt.Errorf("%s: loading TLS %s credentials from %s (ca-cert.pem, %s-cert.pem, %s-key.pem): %w",
			in.dom.Name, endpoint, dir, endpoint, endpoint, err)
	}
	return nil
}
