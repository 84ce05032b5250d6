package ipam

import (
	"errors"
	"testing"
)

// FuzzParseNADConfig feeds arbitrary documents to the parser and, when one
// parses, the resulting configuration to everything that computes with it:
// none may panic, and what they compute must respect the configuration.
func FuzzParseNADConfig(f *testing.F) {
	for _, seed := range []string{
		`{"cniVersion":"0.3.1","name":"migration-bridge","type":"macvlan","bridge":"br-2001","mode":"bridge","ipam":{"type":"whereabouts","range":"192.168.201.0/24","exclude":["192.168.201.128/25"]}}`,
		`{"type":"macvlan","master":"eth1","ipam":{"type":"whereabouts","range":"10.0.0.10-10.0.0.20/24","exclude":["10.0.0.12","10.0.0.16/30"],"gateway":"10.0.0.11"}}`,
		`{"type":"macvlan","ipam":{"type":"whereabouts","range":"fd00::/64","range_start":"fd00::5","range_end":"fd00::ffff","network_name":"n"}}`,
		`{"name":"l","plugins":[{"type":"bridge","bridge":"br0","ipam":{"type":"static","addresses":[{"address":"10.0.0.5/24"}]}}]}`,
		`{"type":"macvlan","ipam":{"type":"whereabouts","range":"10.0.0.0/30"}}`,
		`{"type":"macvlan","mtu":1500,"ipam":{"type":"host-local"}}`,
		`{"type":`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseNADConfig(data)
		if err != nil {
			return
		}
		checkConfig(t, cfg)
	})
}

func checkConfig(t *testing.T, cfg Config) {
	ipam := cfg.IPAM
	_ = Overlap(cfg, cfg)
	_ = Disjoint(cfg, cfg)
	if ipam.Type != TypeWhereabouts {
		return
	}
	if !ipam.Range.Contains(ipam.First) || !ipam.Range.Contains(ipam.Last) || ipam.First.Compare(ipam.Last) > 0 {
		t.Fatalf("bounds %v..%v outside %v", ipam.First, ipam.Last, ipam.Range)
	}
	if ipam.First == ipam.Range.Addr() || ipam.Last == lastAddr(ipam.Range) {
		t.Fatalf("bounds %v..%v include the network or broadcast address of %v", ipam.First, ipam.Last, ipam.Range)
	}
	free, err := nextFree(ipam, nil)
	if errors.Is(err, ErrPoolExhausted) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	address := addressAt(ipam.Range, free)
	if !ipam.isAssignable(address) || address.Compare(ipam.First) < 0 || address.Compare(ipam.Last) > 0 {
		t.Fatalf("nextFree gave %v, which %s does not allow", address, ipam.describe())
	}
	if address == ipam.Gateway {
		t.Fatalf("nextFree gave the gateway %v", address)
	}
	for _, exclude := range ipam.Exclude {
		if exclude.Contains(address) {
			t.Fatalf("nextFree gave %v, in exclude %v", address, exclude)
		}
	}
}
