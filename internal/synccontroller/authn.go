package synccontroller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/cclm-io/cclm/internal/trust"
)

// authenticator makes the TLS configurations of both ends. Certificates are
// checked against the trust bundle as it is at each handshake (not as it
// was when a configuration was made), and a refusal is reported once, in
// words that say what to do.
type authenticator struct {
	identity identity
	trust    *trustBundle
	refusals *refusalReporter
}

// serverConfig requires a client certificate chaining to the trust bundle.
// The check is done by hand rather than by ClientAuth =
// RequireAndVerifyClientCert so that the bundle can change while serving
// and the refusal can name the caller.
func (a *authenticator) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			caller := hello.Conn.RemoteAddr().String()
			callerHost, _, _ := net.SplitHostPort(caller) // its port changes with every retry
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{a.identity.server},
				ClientAuth:   tls.RequireAnyClientCert,
				NextProtos:   []string{"h2"}, // gRPC runs on HTTP/2
				VerifyConnection: func(state tls.ConnectionState) error {
					return a.verify(state.PeerCertificates, x509.ExtKeyUsageClientAuth, "", "refused connection from "+caller, callerHost)
				},
			}, nil
		},
	}
}

// clientConfig checks that the server at peerAddress has a certificate
// for ServerName chaining to the trust bundle. InsecureSkipVerify only
// turns off the standard check, which would use a pool fixed at dial
// time; VerifyConnection does the same check against the current bundle.
func (a *authenticator) clientConfig(peerAddress string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{a.identity.client},
		ServerName:         ServerName,
		InsecureSkipVerify: true,
		VerifyConnection: func(state tls.ConnectionState) error {
			return a.verify(state.PeerCertificates, x509.ExtKeyUsageServerAuth, ServerName, "refused the synchronization controller at "+peerAddress, peerAddress)
		},
	}
}

// recheckCaller is a gRPC interceptor that checks the caller's certificate
// against the trust bundle as it is now, on every call. The handshake's
// check alone would let a peer whose CA was taken out of
// kubevirt-external-ca go on over the HTTP/2 connection it opened before:
// gRPC keeps connections for as long as they work.
func (a *authenticator) recheckCaller(ctx context.Context, request any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	caller, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer in the call's context")
	}
	tlsInfo, ok := caller.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "the call did not come over TLS")
	}
	address := caller.Addr.String()
	host, _, _ := net.SplitHostPort(address)
	if err := a.verify(tlsInfo.State.PeerCertificates, x509.ExtKeyUsageClientAuth, "", "refused a call from "+address, host); err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	return handler(ctx, request)
}

// verify checks a peer's chain; a refusal is reported as what + why, once
// in a while per peer and reason.
func (a *authenticator) verify(chain []*x509.Certificate, usage x509.ExtKeyUsage, dnsName, what, peer string) error {
	roots, err := a.trust.rootPool()
	if err == nil {
		err = verifyChain(chain, roots, usage, dnsName)
	}
	if err == nil {
		return nil
	}
	line := what + ": " + describeRefusal(err)
	a.refusals.report(peer+"|"+describeRefusal(err), line)
	return errors.New(line)
}

// verifyChain checks the leaf against roots, the rest of the chain serving
// as intermediates.
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage, dnsName string) error {
	if len(chain) == 0 {
		return errors.New("no certificate presented")
	}
	intermediates := x509.NewCertPool()
	for _, cert := range chain[1:] {
		intermediates.AddCert(cert)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: intermediates, DNSName: dnsName, KeyUsages: []x509.ExtKeyUsage{usage},
	})
	return err
}

// describeRefusal says why a certificate was refused and, for the usual
// cause, a CA not imported, what to do. The issuer is named with the
// cluster the certificate says it is from.
func describeRefusal(err error) string {
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) || unknown.Cert == nil {
		return err.Error()
	}
	return fmt.Sprintf("certificate signed by unknown authority %q; import its CA into ConfigMap %s",
		authorityName(unknown.Cert), trust.ExternalCAConfigMap)
}

// authorityName is "issuer (cluster)", e.g. "kubevirt-ca@openshift-cnv (ocp1)".
func authorityName(cert *x509.Certificate) string {
	issuer := cert.Issuer.CommonName
	if issuer == "" {
		issuer = cert.Issuer.String()
	}
	if len(cert.Subject.Organization) == 0 {
		return issuer
	}
	return fmt.Sprintf("%s (%s)", issuer, strings.Join(cert.Subject.Organization, ", "))
}

// refusalReporter logs a refusal and records a Warning event, at most once
// per interval for the same key: a refused peer retries every few seconds.
type refusalReporter struct {
	logger   logr.Logger
	event    func(note string)
	interval time.Duration
	now      func() time.Time

	mu       sync.Mutex
	reported map[string]time.Time
}

func newRefusalReporter(logger logr.Logger, event func(note string)) *refusalReporter {
	return &refusalReporter{logger: logger, event: event, interval: time.Minute, now: time.Now, reported: map[string]time.Time{}}
}

func (r *refusalReporter) report(key, line string) {
	if !r.due(key) {
		return
	}
	r.logger.Info(line)
	r.event(line)
}

func (r *refusalReporter) due(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if last, seen := r.reported[key]; seen && now.Sub(last) < r.interval {
		return false
	}
	r.reported[key] = now
	return true
}
