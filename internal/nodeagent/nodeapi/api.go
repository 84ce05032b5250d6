// Package nodeapi is the node agent's API, what virtctl reaches through
// KubeVirt's subresource API: the guest agent and the serial console of
// the VMIs running on the node, and the client `cclm guest` and `cclm
// console` use. The server authenticates callers as the kubelet does and
// authorizes each call with a SubjectAccessReview.
package nodeapi

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/cclm-io/cclm/internal/pki"
)

// The node agent's API serves what virtctl reaches through KubeVirt's
// subresource API: the guest agent and the serial console. It authenticates
// callers as the kubelet does (client certificates of the cluster's client
// CA, or bearer tokens through a TokenReview) and authorizes each call with
// a SubjectAccessReview on upstream's subresources.kubevirt.io group.
const (
	subresourceGroup = "subresources.kubevirt.io"
	consoleUpgrade   = "cclm-console"
)

// Guests are the VMIs running on this node, as the API reaches them (the
// node agent's VMI runtime).
type Guests interface {
	// Runs tells whether VMI namespace/name runs on this node.
	Runs(namespace, name string) bool
	// Agent is the VMI's guest agent, once it answers.
	Agent(ctx context.Context, namespace, name string) (Agent, error)
	// SerialConsole is the unix socket of the VMI's serial console.
	SerialConsole(namespace, name string) (string, error)
}

// Agent is a guest agent: one command, its answer decoded into result.
type Agent interface {
	Call(ctx context.Context, cmd string, args, result any) error
}

// Server is the node agent's API server.
type Server struct {
	listener    net.Listener
	tlsConfig   *tls.Config
	certSHA256  string
	clientset   kubernetes.Interface
	guests      Guests
	clientCAsMu sync.Mutex
	clientCAs   *x509.CertPool
}

// NewServer listens on address (host:port; "" for a port of loopback)
// with a certificate of its own CA for node: clients pin it through the
// Node's annotation nodemeta.APICertAnnotation.
func NewServer(node, address string, restConfig *rest.Config) (*Server, error) {
	if address == "" {
		address = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("node API address %q: %w", address, err)
	}
	ca, err := pki.NewCA("cclm-node-" + node)
	if err != nil {
		return nil, err
	}
	serving, err := ca.Issue(pki.CertRequest{CommonName: node, IPs: []net.IP{net.ParseIP(host)}, Server: true})
	if err != nil {
		return nil, err
	}
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	listener, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("node API: listen on %s: %w", address, err)
	}
	sum := sha256.Sum256(serving.Cert.Raw)
	s := &Server{listener: listener, certSHA256: hex.EncodeToString(sum[:]), clientset: clientset}
	s.tlsConfig = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{serving.Cert.Raw}, PrivateKey: serving.Key, Leaf: serving.Cert}},
		// Token callers have no certificate: ask, verify by hand.
		ClientAuth: tls.RequestClientCert,
	}
	return s, nil
}

// Address is where the server listens, host:port.
func (s *Server) Address() string { return s.listener.Addr().String() }

// Port is the port it listens on.
func (s *Server) Port() int32 { return int32(s.listener.Addr().(*net.TCPAddr).Port) }

// CertSHA256 is the SHA-256 of its serving certificate, hex-encoded.
func (s *Server) CertSHA256() string { return s.certSHA256 }

// Serve answers for guests until ctx ends.
func (s *Server) Serve(ctx context.Context, guests Guests, logger *slog.Logger) {
	s.guests = guests
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/namespaces/{namespace}/virtualmachineinstances/{name}/guest", s.handleGuest)
	mux.HandleFunc("GET /v1/namespaces/{namespace}/virtualmachineinstances/{name}/console", s.handleConsole)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		server.Close()
	}()
	if err := server.Serve(tls.NewListener(s.listener, s.tlsConfig)); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("node API stopped", "err", err)
	}
}

// caller is an authenticated user.
type caller struct {
	user   string
	groups []string
}

func (s *Server) authenticate(r *http.Request) (caller, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		pool, err := s.clientCAPool(r.Context())
		if err != nil {
			return caller{}, err
		}
		leaf := r.TLS.PeerCertificates[0]
		intermediates := x509.NewCertPool()
		for _, cert := range r.TLS.PeerCertificates[1:] {
			intermediates.AddCert(cert)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return caller{}, fmt.Errorf("client certificate not signed by the cluster's client CA")
		}
		return caller{user: leaf.Subject.CommonName, groups: leaf.Subject.Organization}, nil
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return caller{}, fmt.Errorf("no client certificate and no bearer token")
	}
	review, err := s.clientset.AuthenticationV1().TokenReviews().Create(r.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return caller{}, fmt.Errorf("token review: %w", err)
	}
	if !review.Status.Authenticated {
		return caller{}, fmt.Errorf("token not accepted by the API server")
	}
	return caller{user: review.Status.User.Username, groups: review.Status.User.Groups}, nil
}

// clientCAPool is the cluster's client CA as the API server publishes it
// for extension servers, read once.
func (s *Server) clientCAPool(ctx context.Context) (*x509.CertPool, error) {
	s.clientCAsMu.Lock()
	defer s.clientCAsMu.Unlock()
	if s.clientCAs != nil {
		return s.clientCAs, nil
	}
	configMap, err := s.clientset.CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the cluster's client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(configMap.Data["client-ca-file"])) {
		return nil, fmt.Errorf("the cluster publishes no client CA in kube-system/extension-apiserver-authentication")
	}
	s.clientCAs = pool
	return pool, nil
}

func (s *Server) authorize(ctx context.Context, who caller, verb, namespace, name, subresource string) error {
	review, err := s.clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: who.user, Groups: who.groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group: subresourceGroup, Resource: "virtualmachineinstances", Subresource: subresource,
				Verb: verb, Namespace: namespace, Name: name,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("access review: %w", err)
	}
	if !review.Status.Allowed {
		return fmt.Errorf("user %q may not %s virtualmachineinstances/%s in %s", who.user, verb, subresource, namespace)
	}
	return nil
}

// guard authenticates and authorizes a request for a VMI running here
// (namespace and name from the request's path), answering it on failure.
func (s *Server) guard(w http.ResponseWriter, r *http.Request, verb, subresource string) (namespace, name string, ok bool) {
	who, err := s.authenticate(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return "", "", false
	}
	namespace, name = r.PathValue("namespace"), r.PathValue("name")
	if err := s.authorize(r.Context(), who, verb, namespace, name, subresource); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return "", "", false
	}
	if !s.guests.Runs(namespace, name) {
		http.Error(w, fmt.Sprintf("VMI %s/%s does not run on this node", namespace, name), http.StatusNotFound)
		return "", "", false
	}
	return namespace, name, true
}

// guestRequest is one guest agent command.
type guestRequest struct {
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args,omitempty"`
}

func (s *Server) handleGuest(w http.ResponseWriter, r *http.Request) {
	namespace, name, ok := s.guard(w, r, "update", "guest")
	if !ok {
		return
	}
	var req guestRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "bad request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	agent, err := s.guests.Agent(r.Context(), namespace, name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	var result json.RawMessage
	if err := agent.Call(r.Context(), req.Cmd, req.Args, &result); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(result)
}

// handleConsole upgrades the connection and joins it to the serial console.
func (s *Server) handleConsole(w http.ResponseWriter, r *http.Request) {
	namespace, name, ok := s.guard(w, r, "get", "console")
	if !ok {
		return
	}
	path, err := s.guests.SerialConsole(namespace, name)
	if err != nil {
		http.Error(w, "serial console: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	serial, err := net.Dial("unix", path)
	if err != nil {
		http.Error(w, "serial console: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer serial.Close()
	hijacker, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "console needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	w.Header().Set("Connection", "Upgrade")
	w.Header().Set("Upgrade", consoleUpgrade)
	w.WriteHeader(http.StatusSwitchingProtocols)
	conn, buffered, err := hijacker.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(serial, buffered); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, serial); done <- struct{}{} }()
	<-done
}

// ConsoleUpgrade is the Upgrade header value of the console endpoint.
func ConsoleUpgrade() string { return consoleUpgrade }

// apiURL is the node API's base URL from a Node's address and port.
func apiURL(host string, port int32) string {
	return "https://" + net.JoinHostPort(host, strconv.Itoa(int(port)))
}
