package metrics

import (
	"context"
	"net"
	"path"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Directions of a synchronization call, as the controller sees it.
const (
	Outgoing = "outgoing"
	Incoming = "incoming"
)

// SyncCalls counts a synchronization controller's gRPC calls with its
// peers, per peer (the peer's IP on the migration network), method and
// direction. Upstream KubeVirt's controller has no metrics of its own;
// these are cclm's names. A nil *SyncCalls records nothing.
type SyncCalls struct {
	calls    *prometheus.CounterVec
	failures *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	peers    prometheus.Gauge
}

// NewSyncCalls makes the metrics; Register serves them.
func NewSyncCalls() *SyncCalls {
	labels := []string{"direction", "peer", "method"}
	return &SyncCalls{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cclm_synchronization_calls_total", Help: "Synchronization calls with peer clusters' controllers.",
		}, labels),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cclm_synchronization_call_errors_total", Help: "Synchronization calls that failed, by gRPC code.",
		}, append(labels, "code")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cclm_synchronization_call_duration_seconds", Help: "How long synchronization calls took.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1 ms to 16 s
		}, labels),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cclm_synchronization_peers", Help: "Peer controllers this controller holds a connection to.",
		}),
	}
}

// Register adds the metrics to registry.
func (s *SyncCalls) Register(registry prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{s.calls, s.failures, s.latency, s.peers} {
		if err := registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// SetPeers records how many peers the controller holds a connection to.
func (s *SyncCalls) SetPeers(n int) {
	if s != nil {
		s.peers.Set(float64(n))
	}
}

// Observe records one call.
func (s *SyncCalls) Observe(direction, peerAddress, fullMethod string, took time.Duration, err error) {
	if s == nil {
		return
	}
	host := peerAddress
	if h, _, splitErr := net.SplitHostPort(peerAddress); splitErr == nil {
		host = h
	}
	method := path.Base(fullMethod)
	s.calls.WithLabelValues(direction, host, method).Inc()
	s.latency.WithLabelValues(direction, host, method).Observe(took.Seconds())
	if err != nil {
		s.failures.WithLabelValues(direction, host, method, status.Code(err).String()).Inc()
	}
}

// ServerInterceptor records the calls the controller serves; put it first
// in the chain, so that calls refused by later interceptors count too.
func (s *SyncCalls) ServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, request any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		began := time.Now()
		response, err := handler(ctx, request)
		caller := "unknown"
		if p, ok := peer.FromContext(ctx); ok {
			caller = p.Addr.String()
		}
		s.Observe(Incoming, caller, info.FullMethod, time.Since(began), err)
		return response, err
	}
}

// ClientInterceptor records the calls the controller makes to address.
func (s *SyncCalls) ClientInterceptor(address string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, request, reply any, conn *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		began := time.Now()
		err := invoker(ctx, method, request, reply, conn, opts...)
		s.Observe(Outgoing, address, method, time.Since(began), err)
		return err
	}
}
