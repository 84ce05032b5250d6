package ipam

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	whereaboutsv1alpha1 "github.com/cclm-io/cclm/api/whereabouts/v1alpha1"
)

func mustIPAM(t *testing.T, ipam string) IPAM {
	t.Helper()
	cfg, err := ParseNADConfig([]byte(`{"type":"macvlan","ipam":{"type":"whereabouts",` + ipam + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.IPAM
}

// taken makes allocations holding the given offsets.
func taken(offsets ...uint64) Allocations {
	allocations := Allocations{}
	for _, offset := range offsets {
		allocations[strconv.FormatUint(offset, 10)] = whereaboutsv1alpha1.IPAllocation{ContainerID: "holder-" + strconv.FormatUint(offset, 10)}
	}
	return allocations
}

func TestNextFree(t *testing.T) {
	const seedOCP7 = `"range":"192.168.201.0/24","exclude":["192.168.201.128/25"]`
	const seedOCP1 = `"range":"192.168.201.0/24","exclude":["192.168.201.0/25"]`
	for _, tc := range []struct {
		name        string
		ipam        string
		allocations Allocations
		want        uint64
	}{
		{"never the network address", `"range":"10.0.0.0/24"`, nil, 1},
		{"lowest free", `"range":"10.0.0.0/24"`, taken(1, 2, 4), 3},
		{"seed ocp7: first node", seedOCP7, nil, 1},
		{"seed ocp7: second node", seedOCP7, taken(1), 2},
		// Upstream whereabouts hands out the address right after an
		// excluded block (its tests: /29 excluding .0/30 gives .4); .128 is
		// neither the network nor the broadcast address of the /24.
		{"seed ocp1: the first address above the excluded lower half", seedOCP1, nil, 128},
		{"seed ocp1: second node", seedOCP1, taken(128), 129},
		{"whereabouts' own case", `"range":"192.168.0.0/29","exclude":["192.168.0.0/30"]`, nil, 4},
		{"whereabouts' unsorted excludes", `"range":"192.168.0.0/28","exclude":["192.168.0.0/30","192.168.0.6/31","192.168.0.8/31","192.168.0.4/30"]`, nil, 10},
		{"an exclude may be one address", `"range":"192.168.0.0/29","exclude":["192.168.0.1"]`, nil, 2},
		{"excludes in the middle", `"range":"10.0.0.0/24","exclude":["10.0.0.0/30","10.0.0.4/32"]`, taken(5), 6},
		{"gateway skipped", `"range":"10.0.0.0/24","gateway":"10.0.0.1"`, nil, 2},
		{"range_start", `"range":"10.0.0.0/24","range_start":"10.0.0.100"`, taken(1, 100), 101},
		{"start in the range", `"range":"10.0.0.50-10.0.0.60/24"`, taken(50, 51), 52},
		{"last before the broadcast", `"range":"10.0.0.0/29"`, taken(1, 2, 3, 4, 5), 6},
		{"keys outside the range or not offsets are ignored", `"range":"10.0.0.0/29"`,
			Allocations{"1": {}, "x": {}, "-2": {}, "999": {}, "18446744073709551615": {}}, 2},
		{"ipv6", `"range":"fd00::/64","exclude":["fd00::/120"]`, taken(256), 257},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nextFree(mustIPAM(t, tc.ipam), tc.allocations)
			if err != nil || got != tc.want {
				t.Errorf("nextFree = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestNextFreeExhausted(t *testing.T) {
	for _, tc := range []struct {
		name, ipam  string
		allocations Allocations
		want        string
	}{
		{"all taken", `"range":"10.0.0.0/29"`, taken(1, 2, 3, 4, 5, 6),
			"every address of ipam.range 10.0.0.0/29 (assignable: 10.0.0.1-10.0.0.6) is allocated"},
		{"start to end taken", `"range":"10.0.0.0/24","range_start":"10.0.0.10","range_end":"10.0.0.11"`, taken(10, 11),
			"(assignable: 10.0.0.10-10.0.0.11)"},
		{"everything excluded", `"range":"10.0.0.0/24","exclude":["10.0.0.0/24"]`, nil,
			"every address of ipam.range 10.0.0.0/24 excluding [10.0.0.0/24] (assignable: none) is allocated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := nextFree(mustIPAM(t, tc.ipam), tc.allocations)
			if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrPoolExhausted containing %q", err, tc.want)
			}
		})
	}
}

func TestReserveIsIdempotentPerID(t *testing.T) {
	ipam := mustIPAM(t, `"range":"192.168.201.0/24","exclude":["192.168.201.128/25"]`)
	allocations := Allocations{}
	holder := func(id string) whereaboutsv1alpha1.IPAllocation {
		return whereaboutsv1alpha1.IPAllocation{ContainerID: id, PodRef: "openshift-cnv/virt-handler-" + id, IfName: "migration0"}
	}
	first, changed, err := reserve(ipam, allocations, holder("ocp7-worker-0"))
	if err != nil || !changed || first != netip.MustParseAddr("192.168.201.1") {
		t.Fatalf("first reserve: %v %v %v", first, changed, err)
	}
	second, _, _ := reserve(ipam, allocations, holder("ocp7-worker-1"))
	again, changed, err := reserve(ipam, allocations, holder("ocp7-worker-0"))
	if err != nil || changed || again != first {
		t.Errorf("a restarted holder got %v (changed %v, %v), want its own %v unchanged", again, changed, err, first)
	}
	if second != netip.MustParseAddr("192.168.201.2") || len(allocations) != 2 {
		t.Errorf("second holder got %v; allocations %v", second, allocations)
	}
	if got := allocations["1"]; got != holder("ocp7-worker-0") {
		t.Errorf("allocation 1 is %+v, stored as whereabouts does", got)
	}
}

func TestReserveMovesAHolderOffAnAddressTheNADNoLongerAllows(t *testing.T) {
	// The NAD gained an exclude covering .1 (say, the other cluster's
	// half): the holder of .1 moves on its next allocation.
	ipam := mustIPAM(t, `"range":"10.0.0.0/24","exclude":["10.0.0.0/30"]`)
	allocations := Allocations{"1": {ContainerID: "node-a"}, "200": {ContainerID: "node-b"}}
	address, changed, err := reserve(ipam, allocations, whereaboutsv1alpha1.IPAllocation{ContainerID: "node-a"})
	if err != nil || !changed || address != netip.MustParseAddr("10.0.0.4") {
		t.Fatalf("got %v %v %v, want 10.0.0.4", address, changed, err)
	}
	if _, stale := allocations["1"]; stale || len(allocations) != 2 {
		t.Errorf("allocations %v: want the stale entry gone", allocations)
	}
}

func TestRelease(t *testing.T) {
	allocations := Allocations{"1": {ContainerID: "a"}, "2": {ContainerID: "b"}}
	if !release(allocations, "a") || len(allocations) != 1 {
		t.Errorf("release a: %v", allocations)
	}
	if release(allocations, "a") {
		t.Error("releasing twice reported a change")
	}
	ipam := mustIPAM(t, `"range":"10.0.0.0/24"`)
	if free, _ := nextFree(ipam, allocations); free != 1 {
		t.Errorf("after release the lowest free offset is %d, want 1", free)
	}
}

func TestOffsetsRoundTrip(t *testing.T) {
	for _, cidr := range []string{"192.168.201.0/24", "10.0.0.0/8", "fd00:1::/64", "fd00:1::/120"} {
		network := netip.MustParsePrefix(cidr)
		for _, want := range []uint64{0, 1, 129, 255} {
			address := addressAt(network, want)
			if got := offset(network, address); !network.Contains(address) || got != want {
				t.Errorf("%s offset %d: address %v, back %d", cidr, want, address, got)
			}
		}
	}
}

func TestSpanPrefixes(t *testing.T) {
	for _, tc := range []struct{ first, last, want string }{
		{"192.168.201.1", "192.168.201.127", "[192.168.201.1/32 192.168.201.2/31 192.168.201.4/30 192.168.201.8/29 192.168.201.16/28 192.168.201.32/27 192.168.201.64/26]"},
		{"192.168.201.128", "192.168.201.255", "[192.168.201.128/25]"},
		{"0.0.0.0", "255.255.255.255", "[0.0.0.0/0]"},
		{"10.0.0.5", "10.0.0.5", "[10.0.0.5/32]"},
		{"fd00::", "fd00::ff", "[fd00::/120]"},
	} {
		s := span{netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.last)}
		if got := fmtPrefixes(s.prefixes()); got != tc.want {
			t.Errorf("%v: got %s, want %s", s, got, tc.want)
		}
	}
}

func fmtPrefixes(prefixes []netip.Prefix) string {
	texts := make([]string, len(prefixes))
	for i, p := range prefixes {
		texts[i] = p.String()
	}
	return "[" + strings.Join(texts, " ") + "]"
}
