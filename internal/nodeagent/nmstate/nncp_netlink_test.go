package nmstate

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/testenv"
)

// The seed's policy and a failing one, applied with netlink inside a real
// lab node namespace: the kernel's bridge, STP state, ports and alias are
// what the policy says, and a failure leaves the namespace as it was.
func TestNNCPInANodeNamespace(t *testing.T) {
	testenv.RequireE2E(t)
	testenv.RequireRoot(t, "it creates network namespaces")
	labID := fmt.Sprintf("t-%08x", rand.Uint32())
	fabric, err := netlab.CreateFabric(labID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlab.DestroyLab(labID) })
	node, err := fabric.AddNode("ocp7-worker-0")
	if err != nil {
		t.Fatal(err)
	}
	host := netlinkHost{node: node}

	if _, err := applyDesiredState(host, node.Name, seedState(t)); err != nil {
		t.Fatal(err)
	}
	links, err := host.links()
	if err != nil {
		t.Fatal(err)
	}
	bridge, port := links["br-2001"], links[netlab.MigrationUplink]
	if bridge.Kind != "bridge" || !bridge.Up || bridge.STP || !strings.HasPrefix(bridge.Alias, "Linux Brige info") || port.Master != "br-2001" {
		t.Fatalf("br-2001 %+v, enp2s0 %+v", bridge, port)
	}
	// STP is read back from the kernel, both ways.
	if err := host.setSTP("br-2001", true); err != nil {
		t.Fatal(err)
	}
	if links, _ := host.links(); !links["br-2001"].STP {
		t.Fatal("STP on is not read back")
	}
	result, err := applyDesiredState(host, node.Name, seedState(t))
	if err != nil || len(result.Changes) != 1 {
		t.Fatalf("reapplying after STP was switched on: %v, changes %v (want STP off again only)", err, result.Changes)
	}

	before, _ := host.links()
	failing := nmstatev1.State{Interfaces: []nmstatev1.Interface{
		{Name: "br-2002", Type: "linux-bridge", IPv4: &nmstatev1.IPv4{Enabled: true, Address: []nmstatev1.IPAddress{{IP: "10.20.0.1", PrefixLength: 24}}}},
		{Name: "br-2003", Type: "linux-bridge", Bridge: &nmstatev1.LinuxBridge{Port: []nmstatev1.BridgePort{{Name: "enp9s0"}}}},
	}}
	if _, err := applyDesiredState(host, node.Name, failing); err == nil || !strings.Contains(err.Error(), `port "enp9s0"`) {
		t.Fatalf("want the missing port reported, got %v", err)
	}
	after, _ := host.links()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("not rolled back:\nbefore %+v\nafter  %+v", before, after)
	}

	absent := nmstatev1.State{Interfaces: []nmstatev1.Interface{{Name: "br-2001", State: "absent"}}}
	if _, err := applyDesiredState(host, node.Name, absent); err != nil {
		t.Fatal(err)
	}
	if links, _ := host.links(); links["br-2001"].Name != "" || links[netlab.MigrationUplink].Master != "" {
		t.Fatalf("br-2001 not removed: %+v", links)
	}
}
