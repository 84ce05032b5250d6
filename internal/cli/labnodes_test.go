package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cclm-io/cclm/internal/lab"
)

func TestLabNodesShowsTheSeedsFacts(t *testing.T) {
	var out bytes.Buffer
	printLabNodes(&out, &lab.NodesReport{
		Nodes: []lab.NodeReport{
			{Cluster: "ocp7", Name: "ocp7-worker-0", Roles: []string{"worker"}, Ready: true, MigrationAddress: "192.168.201.2/24",
				Uplinks:    []lab.InterfaceReport{{Name: "enp2s0", State: "UP", Master: "br-2001"}},
				Bridges:    []lab.BridgeReport{{Name: "br-vm", Ports: []string{"vmuplink0"}}, {Name: "br-2001", Ports: []string{"enp2s0"}}},
				Migration0: &lab.InterfaceReport{Name: "migration0", State: "UP", Addresses: []string{"192.168.201.2/24"}, Parent: "br-2001"}},
			{Cluster: "ocp1", Name: "ocp1-worker-0", Roles: []string{"worker"}, Ready: true,
				Uplinks: []lab.InterfaceReport{{Name: "enp2s0", State: "UP"}}},
		},
		SyncControllers: []lab.SyncControllerReport{{Cluster: "ocp7", Name: lab.SyncControllerName, Netns: "cclm.l1.ocp7-sync", Pid: 42, Alive: true,
			Migration0: &lab.InterfaceReport{Name: "migration0", State: "UP", Addresses: []string{"192.168.201.1/24"}}, SynchronizationAddresses: []string{"192.168.201.1:9185"}}},
	})
	text := out.String()
	for _, want := range []string{"enp2s0@br-2001", "br-2001[enp2s0]", "192.168.201.2/24 UP", "enp2s0@<none>", "cclm.l1.ocp7-sync", "192.168.201.1/24 UP", "192.168.201.1:9185"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if lines := strings.Split(text, "\n"); !strings.Contains(lines[2], "<none>") {
		t.Errorf("a node without a bridge or migration0 shows <none>:\n%s", text)
	}
}

func TestLabFlagsIncludeWithoutMigrationNetwork(t *testing.T) {
	for _, cmd := range []string{"up", "serve"} {
		c, _, err := newLabCommand().Find([]string{cmd})
		if err != nil {
			t.Fatal(err)
		}
		if f := c.Flags().Lookup("without-migration-network"); f == nil || f.DefValue != "false" {
			t.Errorf("lab %s: --without-migration-network %+v", cmd, f)
		}
	}
}
