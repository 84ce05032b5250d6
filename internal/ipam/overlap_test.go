package ipam

import (
	"strings"
	"testing"
)

func mustConfig(t *testing.T, config string) Config {
	t.Helper()
	cfg, err := ParseNADConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestSeedNADsAreDisjoint(t *testing.T) {
	ocp7, ocp1 := seedConfig(t, "ocp7.net-attach-def.yaml"), seedConfig(t, "ocp1.net-attach-def.yaml")
	if err := Disjoint(ocp7, ocp1); err != nil {
		t.Errorf("the seed's NADs: %v", err)
	}
	if overlap := Overlap(ocp1, ocp7); len(overlap) != 0 {
		t.Errorf("the seed's NADs overlap in %v", overlap)
	}
}

func TestIdenticalNADsOverlap(t *testing.T) {
	ocp7 := seedConfig(t, "ocp7.net-attach-def.yaml")
	err := Disjoint(ocp7, ocp7)
	for _, want := range []string{
		"both NADs can hand out 192.168.201.1-192.168.201.127",
		"ipam.range 192.168.201.0/24 excluding [192.168.201.128/25]",
		`e.g. "exclude": ["192.168.201.128/25"] in one NAD and ["192.168.201.0/25"] in the other`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v\nwant it to contain %q", err, want)
		}
	}
	got := fmtPrefixes(Overlap(ocp7, ocp7))
	want := "[192.168.201.1/32 192.168.201.2/31 192.168.201.4/30 192.168.201.8/29 192.168.201.16/28 192.168.201.32/27 192.168.201.64/26]"
	if got != want {
		t.Errorf("Overlap = %s, want %s", got, want)
	}
}

func TestOverlap(t *testing.T) {
	whereabouts := func(ipam string) string { return `{"type":"macvlan","ipam":{"type":"whereabouts",` + ipam + `}}` }
	static := func(address string) string {
		return `{"type":"macvlan","ipam":{"type":"static","addresses":[{"address":"` + address + `"}]}}`
	}
	for _, tc := range []struct{ name, a, b, want string }{
		{"different subnets", whereabouts(`"range":"10.0.0.0/24"`), whereabouts(`"range":"10.0.1.0/24"`), "[]"},
		{"start and end split the range", whereabouts(`"range":"10.0.0.1-10.0.0.100/24"`), whereabouts(`"range":"10.0.0.101-10.0.0.200/24"`), "[]"},
		{"ranges touching in one address", whereabouts(`"range":"10.0.0.1-10.0.0.100/24"`), whereabouts(`"range":"10.0.0.100-10.0.0.200/24"`), "[10.0.0.100/32]"},
		{"a wider range holds a narrower one", whereabouts(`"range":"10.0.0.0/16"`), whereabouts(`"range":"10.0.5.0-10.0.5.255/16"`), "[10.0.5.0/24]"},
		{"the gateway is nobody's", whereabouts(`"range":"10.0.0.0/30","gateway":"10.0.0.1"`), whereabouts(`"range":"10.0.0.1-10.0.0.1/24"`), "[]"},
		{"families never overlap", whereabouts(`"range":"10.0.0.0/24"`), whereabouts(`"range":"fd00::/120"`), "[]"},
		{"static in the range", static("10.0.0.7/24"), whereabouts(`"range":"10.0.0.0/24"`), "[10.0.0.7/32]"},
		{"static in an exclude", static("10.0.0.7/24"), whereabouts(`"range":"10.0.0.0/24","exclude":["10.0.0.0/29"]`), "[]"},
		{"no ipam", `{"type":"macvlan"}`, whereabouts(`"range":"10.0.0.0/24"`), "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := mustConfig(t, tc.a), mustConfig(t, tc.b)
			if got := fmtPrefixes(Overlap(a, b)); got != tc.want {
				t.Errorf("Overlap = %s, want %s", got, tc.want)
			}
			if reverse := fmtPrefixes(Overlap(b, a)); reverse != tc.want {
				t.Errorf("Overlap reversed = %s, want %s", reverse, tc.want)
			}
			if err := Disjoint(a, b); (err == nil) != (tc.want == "[]") {
				t.Errorf("Disjoint = %v, but Overlap = %s", err, tc.want)
			}
		})
	}
}
