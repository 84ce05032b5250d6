package synccontroller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/cclm-io/cclm/internal/pki"
)

// A cluster's TLS side as the controller sets it up, without the API
// server: its CA, its identity and a trust bundle set by hand.
type tlsCluster struct {
	ca    *pki.KeyPair
	auth  *authenticator
	lines *logLines
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(line string) { l.mu.Lock(); l.lines = append(l.lines, line); l.mu.Unlock() }

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func newTLSCluster(t *testing.T, name string) *tlsCluster {
	t.Helper()
	ca, err := pki.NewCA("kubevirt-ca@openshift-cnv")
	if err != nil {
		t.Fatal(err)
	}
	server, err := issue(ca, pki.CertRequest{CommonName: ServerName, Organizations: []string{name}, DNSNames: []string{ServerName}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	client, err := issue(ca, pki.CertRequest{CommonName: LeaderElectionID, Organizations: []string{name}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &tlsCluster{ca: ca, lines: &logLines{}}
	logger := funcr.NewJSON(func(obj string) { c.lines.add(obj) }, funcr.Options{})
	c.auth = &authenticator{
		identity: identity{server: server, client: client},
		trust:    &trustBundle{},
		refusals: newRefusalReporter(logger, func(note string) { c.lines.add("EVENT " + note) }),
	}
	c.trusts(ca)
	return c
}

// trusts sets the trust bundle to the given CAs.
func (c *tlsCluster) trusts(cas ...*pki.KeyPair) {
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca.Cert)
	}
	c.auth.trust.roots.Store(roots)
}

// handshake connects client to server over loopback TCP and returns each
// end's handshake error.
func handshake(t *testing.T, client, server *tlsCluster) (clientErr, serverErr error) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	serverDone := make(chan error, 1)
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			serverDone <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		tlsConn := tls.Server(conn, server.auth.serverConfig())
		err = tlsConn.Handshake()
		if err == nil {
			// TLS 1.3 checks the client's certificate after the client
			// finished; a byte each way settles it for both ends.
			_, err = tlsConn.Write([]byte{1})
		}
		serverDone <- err
	}()
	conn, err := net.Dial("tcp", listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tlsConn := tls.Client(conn, client.auth.clientConfig(listener.Addr().String()))
	clientErr = tlsConn.Handshake()
	if clientErr == nil {
		_, clientErr = tlsConn.Read(make([]byte, 1))
	}
	return clientErr, <-serverDone
}

func TestMutualTLSBetweenClustersThatTrustEachOther(t *testing.T) {
	ocp7, ocp1 := newTLSCluster(t, "ocp7"), newTLSCluster(t, "ocp1")
	ocp7.trusts(ocp7.ca, ocp1.ca)
	ocp1.trusts(ocp1.ca, ocp7.ca)
	if clientErr, serverErr := handshake(t, ocp7, ocp1); clientErr != nil || serverErr != nil {
		t.Fatalf("client: %v, server: %v", clientErr, serverErr)
	}
	if lines := append(ocp7.lines.all(), ocp1.lines.all()...); len(lines) > 0 {
		t.Errorf("refusals reported for trusted peers: %q", lines)
	}
}

func TestServerRefusesAClientOfAnUntrustedCA(t *testing.T) {
	ocp7, ocp1 := newTLSCluster(t, "ocp7"), newTLSCluster(t, "ocp1")
	ocp7.trusts(ocp7.ca, ocp1.ca) // ocp7 imported ocp1's CA; ocp1 did not import ocp7's
	clientErr, serverErr := handshake(t, ocp7, ocp1)
	if serverErr == nil || clientErr == nil {
		t.Fatalf("the handshake went through: client %v, server %v", clientErr, serverErr)
	}
	want := regexp.MustCompile(`^refused connection from 127\.0\.0\.1:\d+: certificate signed by unknown authority "kubevirt-ca@openshift-cnv \(ocp7\)"; import its CA into ConfigMap kubevirt-external-ca$`)
	if !want.MatchString(serverErr.Error()) {
		t.Errorf("server error %q does not match %s", serverErr, want)
	}
	if !peerRefusedOurCertificate(clientErr.Error()) {
		t.Errorf("the client cannot tell the server refused its certificate from %q", clientErr)
	}
	requireReportedOnce(t, ocp1.lines.all(), want)

	// The peer retries: not reported again within the interval.
	_, _ = handshake(t, ocp7, ocp1)
	requireReportedOnce(t, ocp1.lines.all(), want)

	// Importing the CA takes effect at the next handshake.
	ocp1.trusts(ocp1.ca, ocp7.ca)
	if clientErr, serverErr := handshake(t, ocp7, ocp1); clientErr != nil || serverErr != nil {
		t.Fatalf("after the import: client %v, server %v", clientErr, serverErr)
	}
}

func TestClientRefusesAServerOfAnUntrustedCA(t *testing.T) {
	ocp7, ocp1 := newTLSCluster(t, "ocp7"), newTLSCluster(t, "ocp1")
	clientErr, serverErr := handshake(t, ocp7, ocp1)
	if clientErr == nil || serverErr == nil {
		t.Fatalf("the handshake went through: client %v, server %v", clientErr, serverErr)
	}
	want := regexp.MustCompile(`^refused the synchronization controller at 127\.0\.0\.1:\d+: certificate signed by unknown authority "kubevirt-ca@openshift-cnv \(ocp1\)"; import its CA into ConfigMap kubevirt-external-ca$`)
	requireReportedOnce(t, ocp7.lines.all(), want)
}

func TestClientRefusesAServerCertificateForAnotherName(t *testing.T) {
	ocp7, ocp1 := newTLSCluster(t, "ocp7"), newTLSCluster(t, "ocp1")
	ocp7.trusts(ocp7.ca, ocp1.ca)
	ocp1.trusts(ocp1.ca, ocp7.ca)
	// A node agent's certificate, valid from the same CA but not for
	// kubevirt-synchronization.
	impostor, err := issue(ocp1.ca, pki.CertRequest{CommonName: "kubevirt-migration", DNSNames: []string{"kubevirt-migration"}, Server: true, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	ocp1.auth.identity.server = impostor
	clientErr, _ := handshake(t, ocp7, ocp1)
	if clientErr == nil || !strings.Contains(clientErr.Error(), "not kubevirt-synchronization") {
		t.Errorf("client error %v, want a refusal of a certificate not for %s", clientErr, ServerName)
	}
}

func TestNoTrustYetRefusesEverything(t *testing.T) {
	ocp7, ocp1 := newTLSCluster(t, "ocp7"), newTLSCluster(t, "ocp1")
	ocp7.auth.trust = &trustBundle{}
	clientErr, _ := handshake(t, ocp7, ocp1)
	if clientErr == nil || !strings.Contains(clientErr.Error(), "has not been read yet") {
		t.Errorf("client error %v, want one saying the trust bundle is not read yet", clientErr)
	}
}

func requireReportedOnce(t *testing.T, lines []string, want *regexp.Regexp) {
	t.Helper()
	var logged, events int
	for _, line := range lines {
		note, isEvent := strings.CutPrefix(line, "EVENT ")
		if isEvent && want.MatchString(note) {
			events++
		}
		if !isEvent && want.MatchString(logMessage(t, line)) {
			logged++
		}
	}
	if logged != 1 || events != 1 {
		t.Errorf("reported %d times in the log and %d as events, want once each; lines: %q", logged, events, lines)
	}
}

// logMessage is the message of a JSON log line.
func logMessage(t *testing.T, line string) string {
	t.Helper()
	var entry struct {
		Msg string `json:"msg"`
	}
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	return entry.Msg
}

func TestDescribeRefusal(t *testing.T) {
	ca, _ := pki.NewCA("kubevirt-ca@openshift-cnv")
	leaf, _ := ca.Issue(pki.CertRequest{CommonName: "x", Organizations: []string{"ocp1"}, Client: true})
	bare, _ := ca.Issue(pki.CertRequest{CommonName: "x", Client: true})
	for _, tc := range []struct {
		err  error
		want string
	}{
		{x509.UnknownAuthorityError{Cert: leaf.Cert}, `certificate signed by unknown authority "kubevirt-ca@openshift-cnv (ocp1)"; import its CA into ConfigMap kubevirt-external-ca`},
		{x509.UnknownAuthorityError{Cert: bare.Cert}, `certificate signed by unknown authority "kubevirt-ca@openshift-cnv"; import its CA into ConfigMap kubevirt-external-ca`},
		{errors.New("x509: certificate has expired"), "x509: certificate has expired"},
	} {
		if got := describeRefusal(tc.err); got != tc.want {
			t.Errorf("describeRefusal(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// A peer whose CA is taken out of the trust bundle is refused on its next
// call, also over the connection it opened while it was trusted (the fault
// suite's "peer CA removed": gRPC had kept the connection, and the peer
// synchronized on).
func TestCallsOfAPeerNoLongerTrustedAreRefused(t *testing.T) {
	ocp7, ocp1 := newTLSCluster(t, "ocp7"), newTLSCluster(t, "ocp1")
	ocp7.trusts(ocp7.ca, ocp1.ca)
	ocp1.trusts(ocp1.ca, ocp7.ca)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer(grpc.Creds(credentials.NewTLS(ocp1.auth.serverConfig())), grpc.UnaryInterceptor(ocp1.auth.recheckCaller))
	healthpb.RegisterHealthServer(server, health.NewServer())
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()
	conn, err := grpc.NewClient(listener.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ocp7.auth.clientConfig(listener.Addr().String()))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	check := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := check(); err != nil {
		t.Fatalf("a call of a trusted peer: %v", err)
	}
	ocp1.trusts(ocp1.ca) // ocp7's CA taken out of kubevirt-external-ca
	err = check()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("a call over the open connection after the CA was removed: %v, want Unauthenticated naming the unknown authority", err)
	}
	if conn.GetState() == connectivity.Shutdown {
		t.Fatal("the client connection was shut down; the test needs it open to show the refusal is per call")
	}
}
