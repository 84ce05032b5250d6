package nodeapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/nodemeta"
	"github.com/cclm-io/cclm/internal/scheme"
)

// APIClient talks to the node agent that runs a VMI, as the user of a
// kubeconfig: what `cclm guest` and `cclm console` use.
type APIClient struct {
	base, namespace, name string
	http                  *http.Client
	tlsConfig             *tls.Config
	bearer                string
}

// DialVMI finds the node running namespace/name and prepares a client for
// its node agent, pinning the certificate the Node object publishes.
func DialVMI(ctx context.Context, restConfig *rest.Config, namespace, name string) (*APIClient, error) {
	kube, err := client.New(restConfig, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return nil, err
	}
	var vmi kubevirtv1.VirtualMachineInstance
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &vmi); err != nil {
		return nil, fmt.Errorf("VMI %s/%s: %w (is the VM running? `kubectl get vm,vmi -n %s`)", namespace, name, err, namespace)
	}
	if vmi.Status.Phase != kubevirtv1.Running || vmi.Status.NodeName == "" {
		return nil, fmt.Errorf("VMI %s/%s is %s, not Running on a node", namespace, name, orUnknown(string(vmi.Status.Phase)))
	}
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	node, err := clientset.CoreV1().Nodes().Get(ctx, vmi.Status.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("node %s of VMI %s/%s: %w", vmi.Status.NodeName, namespace, name, err)
	}
	return newAPIClient(restConfig, node, namespace, name)
}

func orUnknown(s string) string {
	if s == "" {
		return "not started yet"
	}
	return s
}

func newAPIClient(restConfig *rest.Config, node *corev1.Node, namespace, name string) (*APIClient, error) {
	pin := node.Annotations[nodemeta.APICertAnnotation]
	address := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			address = a.Address
		}
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if pin == "" || address == "" || port == 0 {
		return nil, fmt.Errorf("node %s publishes no node-agent API (address, port or certificate missing): is its node agent running?", node.Name)
	}
	clientTLS, err := rest.TLSConfigFor(restConfig)
	if err != nil {
		return nil, err
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS13}
	if clientTLS != nil {
		tlsConfig.Certificates = clientTLS.Certificates
		tlsConfig.GetClientCertificate = clientTLS.GetClientCertificate
	}
	// Trust exactly the certificate the API server vouched for.
	tlsConfig.InsecureSkipVerify = true
	tlsConfig.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("node agent sent no certificate")
		}
		sum := sha256.Sum256(raw[0])
		if hex.EncodeToString(sum[:]) != pin {
			return fmt.Errorf("node %s's agent certificate does not match the one its Node object publishes", node.Name)
		}
		return nil
	}
	bearer := restConfig.BearerToken
	if bearer == "" && restConfig.BearerTokenFile != "" {
		if token, err := transport.NewCachedFileTokenSource(restConfig.BearerTokenFile).Token(); err == nil {
			bearer = token.AccessToken
		}
	}
	return &APIClient{
		base: apiURL(address, port), namespace: namespace, name: name,
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}}, tlsConfig: tlsConfig, bearer: bearer,
	}, nil
}

func (c *APIClient) url(subresource string) string {
	return fmt.Sprintf("%s/v1/namespaces/%s/virtualmachineinstances/%s/%s", c.base, c.namespace, c.name, subresource)
}

func (c *APIClient) authorize(req *http.Request) {
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
}

// Guest runs one guest agent command and decodes its result into result.
func (c *APIClient) Guest(ctx context.Context, cmd string, args, result any) error {
	body, err := json.Marshal(guestRequest{Cmd: cmd, Args: mustJSON(args)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("guest"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("guest %s: %s", cmd, strings.TrimSpace(string(data)))
	}
	if result == nil {
		return nil
	}
	return json.Unmarshal(data, result)
}

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return data
}

// Console opens the VMI's serial console: what is written goes to the
// guest's ttyS0, what it prints comes back.
func (c *APIClient) Console(ctx context.Context) (net.Conn, error) {
	address := strings.TrimPrefix(c.base, "https://")
	dialer := &tls.Dialer{Config: c.tlsConfig}
	conn, err := dialer.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("node agent: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("console"), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", consoleUpgrade)
	c.authorize(req)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	reader := bufio.NewReader(conn)
	resp, err := http.ReadResponse(reader, req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		return nil, fmt.Errorf("console: %s", strings.TrimSpace(string(data)))
	}
	return &bufferedConn{Conn: conn, reader: reader}, nil
}

// bufferedConn reads what the HTTP reader already buffered first.
type bufferedConn struct {
	net.Conn
	reader *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.reader.Read(p) }
