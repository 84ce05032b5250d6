package synccontroller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	syncpb "github.com/cclm-io/cclm/api/proto/synchronization"
	"github.com/cclm-io/cclm/internal/metrics"
	"github.com/cclm-io/cclm/internal/trust"
)

// peerClients keeps one gRPC connection per peer address; gRPC reconnects
// by itself.
type peerClients struct {
	dial      func(ctx context.Context, network, address string) (net.Conn, error)
	tlsConfig func(peerAddress string) *tls.Config
	calls     *metrics.SyncCalls

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeerClients(dial func(ctx context.Context, network, address string) (net.Conn, error), tlsConfig func(string) *tls.Config, calls *metrics.SyncCalls) *peerClients {
	return &peerClients{dial: dial, tlsConfig: tlsConfig, calls: calls, conns: map[string]*grpc.ClientConn{}}
}

// reconnectBackoff keeps gRPC's waits between connection attempts short
// (its default grows to 2 minutes), so that a peer that comes back, or
// whose CA was just imported, is reached within seconds.
var reconnectBackoff = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
	MinConnectTimeout: 5 * time.Second,
}

func (p *peerClients) client(address string) (syncpb.SynchronizeClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if conn, found := p.conns[address]; found {
		return syncpb.NewSynchronizeClient(conn), nil
	}
	conn, err := grpc.NewClient("passthrough:///"+address,
		grpc.WithTransportCredentials(credentials.NewTLS(p.tlsConfig(address))),
		grpc.WithContextDialer(func(ctx context.Context, address string) (net.Conn, error) {
			return p.dial(ctx, "tcp", address)
		}),
		grpc.WithConnectParams(reconnectBackoff),
		grpc.WithUnaryInterceptor(p.calls.ClientInterceptor(address)),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to the synchronization controller at %s: %w", address, err)
	}
	p.conns[address] = conn
	p.calls.SetPeers(len(p.conns))
	return syncpb.NewSynchronizeClient(conn), nil
}

func (p *peerClients) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for address, conn := range p.conns {
		_ = conn.Close()
		delete(p.conns, address)
	}
	p.calls.SetPeers(0)
}

// pushStatus sends the local VMI's status to the peer: a source side
// reports with SyncSourceMigrationStatus, a target side with
// SyncTargetMigrationStatus.
func (p *peerClients) pushStatus(ctx context.Context, from role, address, migrationID string, statusJSON []byte) error {
	peer, err := p.client(address)
	if err != nil {
		return err
	}
	request := &syncpb.VMIStatusRequest{MigrationID: migrationID, VmiStatus: &syncpb.VMIStatus{VmiStatusJson: statusJSON}}
	if from == roleSource {
		_, err = peer.SyncSourceMigrationStatus(ctx, request)
	} else {
		_, err = peer.SyncTargetMigrationStatus(ctx, request)
	}
	return describeCallError(address, err)
}

func (p *peerClients) cancel(ctx context.Context, address, migrationUID string) error {
	peer, err := p.client(address)
	if err != nil {
		return err
	}
	_, err = peer.CancelMigration(ctx, &syncpb.MigrationCancelRequest{MigrationUID: migrationUID})
	return describeCallError(address, err)
}

// describeCallError turns a failed call into a sentence that says who
// failed and, where the cause is known, what to do.
func describeCallError(address string, err error) error {
	if err == nil {
		return nil
	}
	message := status.Convert(err).Message()
	switch {
	case status.Code(err) == codes.NotFound:
		return fmt.Errorf("the synchronization controller at %s: %s", address, message)
	case peerRefusedOurCertificate(message):
		return fmt.Errorf("the synchronization controller at %s refused this cluster's certificate (%s): import this cluster's CA (ConfigMap %s, key %s) into the peer's ConfigMap %s",
			address, message, trust.CABundleConfigMap, trust.BundleKey, trust.ExternalCAConfigMap)
	case errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
		return fmt.Errorf("the synchronization controller at %s did not answer in time: %s", address, message)
	}
	return fmt.Errorf("call the synchronization controller at %s: %s", address, message)
}

// peerRefusedOurCertificate recognizes the TLS alerts a server sends when
// it does not accept the client's certificate.
func peerRefusedOurCertificate(message string) bool {
	for _, alert := range []string{"tls: bad certificate", "tls: unknown certificate authority", "tls: certificate required"} {
		if strings.Contains(message, alert) {
			return true
		}
	}
	return false
}
