package lab

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The guide's two clusters get its halves; more clusters get disjoint
// blocks, in the order given, that together stay within the range.
func TestMigrationBlocks(t *testing.T) {
	cases := []struct {
		clusters []string
		want     map[string]string
	}{
		{DefaultClusters, map[string]string{"ocp7": "192.168.201.0/25", "ocp1": "192.168.201.128/25"}},
		{[]string{"ocp7", "ocp1", "ocp5"}, map[string]string{"ocp7": "192.168.201.0/26", "ocp1": "192.168.201.64/26", "ocp5": "192.168.201.128/26"}},
		{[]string{"a", "b", "c", "d"}, map[string]string{"a": "192.168.201.0/26", "b": "192.168.201.64/26", "c": "192.168.201.128/26", "d": "192.168.201.192/26"}},
	}
	for _, tc := range cases {
		blocks, err := MigrationBlocks(tc.clusters)
		if err != nil {
			t.Fatal(err)
		}
		for cluster, want := range tc.want {
			if got := blocks[cluster].String(); got != want {
				t.Errorf("%v: %s got %s, want %s", tc.clusters, cluster, got, want)
			}
		}
		for a, blockA := range blocks {
			for b, blockB := range blocks {
				if a != b && blockA.Overlaps(blockB) {
					t.Errorf("%v: %s's %s overlaps %s's %s", tc.clusters, a, blockA, b, blockB)
				}
			}
		}
	}
	if _, err := MigrationBlocks([]string{"ocp7"}); err == nil {
		t.Error("one cluster: no error")
	}
}

// Each cluster's NAD hands out exactly its own block: the whole range
// minus its excludes. With two clusters that is the guide's NAD.
func TestMigrationNADExcludesEveryOtherBlock(t *testing.T) {
	for _, clusters := range [][]string{DefaultClusters, {"ocp7", "ocp1", "ocp5"}} {
		blocks, err := MigrationBlocks(clusters)
		if err != nil {
			t.Fatal(err)
		}
		for _, cluster := range clusters {
			nad, err := migrationNAD(clusters, cluster, "openshift-cnv")
			if err != nil {
				t.Fatal(err)
			}
			var config struct {
				IPAM struct {
					Range   string   `json:"range"`
					Exclude []string `json:"exclude"`
				} `json:"ipam"`
			}
			if err := json.Unmarshal([]byte(nad.Spec.Config), &config); err != nil {
				t.Fatalf("%s: the NAD's config is not JSON: %v\n%s", cluster, err, nad.Spec.Config)
			}
			if config.IPAM.Range != "192.168.201.0/24" {
				t.Errorf("%s: range %s", cluster, config.IPAM.Range)
			}
			for address := netip.MustParseAddr("192.168.201.0"); migrationRange.Contains(address); address = address.Next() {
				excluded := slices.ContainsFunc(config.IPAM.Exclude, func(e string) bool { return netip.MustParsePrefix(e).Contains(address) })
				if own := blocks[cluster].Contains(address); own == excluded {
					t.Errorf("%v: %s's NAD: %s excluded %v, in its block %v", clusters, cluster, address, excluded, own)
					break
				}
			}
		}
	}
	nad, err := migrationNAD(DefaultClusters, "ocp7", "openshift-cnv")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nad.Spec.Config, "\"exclude\": [\n       \"192.168.201.128/25\"\n    ]") {
		t.Errorf("ocp7's NAD should exclude the guide's upper half as the guide writes it:\n%s", nad.Spec.Config)
	}
	if _, err := migrationNAD(DefaultClusters, "ocp5", "openshift-cnv"); err == nil {
		t.Error("a NAD for a cluster not in the lab: no error")
	}
}
