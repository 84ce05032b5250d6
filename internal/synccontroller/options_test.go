package synccontroller

import (
	"strings"
	"testing"
)

func TestSyncAddressBracketsIPv6(t *testing.T) {
	for ip, want := range map[string]string{
		"192.168.201.128": "192.168.201.128:9185",
		"fd00:2001::80":   "[fd00:2001::80]:9185",
	} {
		if got := syncAddress(ip, 9185); got != want {
			t.Errorf("syncAddress(%q) = %q, want %q", ip, got, want)
		}
	}
}

func TestOptionsComplete(t *testing.T) {
	opts, err := Options{VirtNamespace: "openshift-cnv", ListenAddress: "192.168.201.1"}.complete()
	if err != nil {
		t.Fatal(err)
	}
	if opts.PeerDeadline != DefaultPeerDeadline || opts.CallTimeout != DefaultCallTimeout || opts.Listen == nil || opts.Dial == nil {
		t.Errorf("defaults not filled in: %+v", opts)
	}
	if got := opts.timing(); got.heartbeat != DefaultPeerDeadline/3 {
		t.Errorf("heartbeat %s, want a third of the deadline", got.heartbeat)
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{ListenAddress: "192.168.201.1"}, "VirtNamespace is empty"},
		{Options{VirtNamespace: "ns"}, `ListenAddress "" is not an IP address peers can dial`},
		{Options{VirtNamespace: "ns", ListenAddress: "0.0.0.0"}, "not an IP address peers can dial"},
		{Options{VirtNamespace: "ns", ListenAddress: "sync.example"}, "not an IP address"},
		{Options{VirtNamespace: "ns", ListenAddress: "::1", Port: 70000}, "not a TCP port"},
	} {
		if _, err := tc.opts.complete(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("complete(%+v) = %v, want an error saying %q", tc.opts, err, tc.want)
		}
	}
}
