package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Calls count per peer IP (the port of an incoming call changes with each
// connection), method and direction; failures by their gRPC code.
func TestSyncCalls(t *testing.T) {
	calls := NewSyncCalls()
	registry := prometheus.NewRegistry()
	if err := calls.Register(registry); err != nil {
		t.Fatal(err)
	}
	const method = "/kubevirt.synchronization.Synchronize/SyncSourceMigrationStatus"
	calls.Observe(Outgoing, "192.168.201.2:9185", method, 3*time.Millisecond, nil)
	calls.Observe(Incoming, "192.168.201.2:40112", method, time.Millisecond, nil)
	calls.Observe(Incoming, "192.168.201.2:40113", method, time.Millisecond, status.Error(codes.Unauthenticated, "no CA"))
	calls.Observe(Outgoing, "192.168.201.2:9185", method, time.Second, errors.New("reset"))
	calls.SetPeers(1)

	if got := testutil.ToFloat64(calls.calls.WithLabelValues(Incoming, "192.168.201.2", "SyncSourceMigrationStatus")); got != 2 {
		t.Errorf("incoming calls = %v, want 2 (one peer, whatever its port)", got)
	}
	if got := testutil.ToFloat64(calls.failures.WithLabelValues(Incoming, "192.168.201.2", "SyncSourceMigrationStatus", "Unauthenticated")); got != 1 {
		t.Errorf("refused incoming calls = %v", got)
	}
	if got := testutil.ToFloat64(calls.failures.WithLabelValues(Outgoing, "192.168.201.2", "SyncSourceMigrationStatus", "Unknown")); got != 1 {
		t.Errorf("failed outgoing calls = %v", got)
	}
	if got := testutil.CollectAndCount(calls.latency); got != 2 {
		t.Errorf("latency series = %d, want one per direction", got)
	}
	if got := testutil.ToFloat64(calls.peers); got != 1 {
		t.Errorf("peers = %v", got)
	}
	var none *SyncCalls
	none.Observe(Outgoing, "x", method, 0, nil) // a nil SyncCalls records nothing, and does not panic
	none.SetPeers(3)
}
