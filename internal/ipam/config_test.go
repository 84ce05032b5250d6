package ipam

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	"github.com/cclm-io/cclm/examples/openshift"
)

// seedConfig parses the spec.config of one of the OpenShift guide's NADs,
// read unchanged from examples/openshift.
func seedConfig(t *testing.T, file string) Config {
	t.Helper()
	data, err := openshift.Files.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var nad cniv1.NetworkAttachmentDefinition
	if err := yaml.UnmarshalStrict(data, &nad); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	cfg, err := ParseNADConfig([]byte(nad.Spec.Config))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cfg
}

func TestParseSeedNADs(t *testing.T) {
	for file, want := range map[string]struct {
		exclude     string
		first, last string
	}{
		"ocp7.net-attach-def.yaml": {"192.168.201.128/25", "192.168.201.1", "192.168.201.254"},
		"ocp1.net-attach-def.yaml": {"192.168.201.0/25", "192.168.201.1", "192.168.201.254"},
	} {
		t.Run(file, func(t *testing.T) {
			got := seedConfig(t, file)
			wantCfg := Config{
				Name: "migration-bridge", Type: "macvlan", Master: "br-2001", MasterKey: KeyBridge, Mode: "bridge",
				IPAM: IPAM{
					Type:    TypeWhereabouts,
					Range:   netip.MustParsePrefix("192.168.201.0/24"),
					First:   netip.MustParseAddr(want.first),
					Last:    netip.MustParseAddr(want.last),
					Exclude: []netip.Prefix{netip.MustParsePrefix(want.exclude)},
				},
			}
			if !reflect.DeepEqual(got, wantCfg) {
				t.Errorf("got  %+v\nwant %+v", got, wantCfg)
			}
			if name := got.IPAM.PoolName(); name != "192.168.201.0-24" {
				t.Errorf("pool name %q, want whereabouts' 192.168.201.0-24", name)
			}
		})
	}
}

func TestParseNADConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		check        func(Config) bool
	}{
		{"master key", `{"type":"macvlan","master":"eth1","mode":"private","mtu":9000,"ipam":{"type":"whereabouts","range":"10.0.0.0/24"}}`,
			func(c Config) bool {
				return c.Master == "eth1" && c.MasterKey == KeyMaster && c.Mode == "private" && c.MTU == 9000
			}},
		{"master and bridge agreeing", `{"type":"macvlan","master":"br-2001","bridge":"br-2001"}`,
			func(c Config) bool { return c.Master == "br-2001" && c.IPAM.Type == "" }},
		{"bridge plugin", `{"type":"bridge","bridge":"br-vm","mode":"ignored"}`,
			func(c Config) bool { return c.Master == "br-vm" && c.MasterKey == KeyBridge && c.Mode == "ignored" }},
		{"plugin list reads the first plugin", `{"name":"list","plugins":[{"type":"macvlan","master":"eth1","ipam":{"type":"static","addresses":[{"address":"10.0.0.5/24"}]}},{"type":"tuning"}]}`,
			func(c Config) bool {
				return c.Name == "list" && c.Type == "macvlan" && c.IPAM.Type == TypeStatic &&
					c.IPAM.Addresses[0] == netip.MustParsePrefix("10.0.0.5/24")
			}},
		{"range with start and end", `{"type":"macvlan","ipam":{"type":"whereabouts","range":"10.0.0.10-10.0.0.20/24"}}`,
			func(c Config) bool {
				return c.IPAM.Range.String() == "10.0.0.0/24" && c.IPAM.First.String() == "10.0.0.10" && c.IPAM.Last.String() == "10.0.0.20"
			}},
		{"range_start and range_end", `{"type":"macvlan","ipam":{"type":"whereabouts","range":"10.0.0.0/24","range_start":"10.0.0.0","range_end":"10.0.0.255"}}`,
			func(c Config) bool {
				return c.IPAM.First.String() == "10.0.0.1" && c.IPAM.Last.String() == "10.0.0.254"
			}},
		{"host bits of the range are dropped", `{"type":"macvlan","ipam":{"type":"whereabouts","range":"192.168.2.225/28"}}`,
			func(c Config) bool {
				return c.IPAM.Range.String() == "192.168.2.224/28" && c.IPAM.PoolName() == "192.168.2.224-28"
			}},
		{"network_name prefixes the pool", `{"type":"macvlan","ipam":{"type":"whereabouts","range":"10.0.0.0/24","network_name":"mig"}}`,
			func(c Config) bool { return c.IPAM.PoolName() == "mig-10.0.0.0-24" }},
		{"ipv6", `{"type":"macvlan","ipam":{"type":"whereabouts","range":"fd00:201::/64","exclude":["fd00:201::/65"],"gateway":"fd00:201::8000:0:0:1"}}`,
			func(c Config) bool { return c.IPAM.PoolName() == "fd00-201---64" && c.IPAM.Gateway.IsValid() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseNADConfig([]byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Errorf("unexpected result: %+v", cfg)
			}
		})
	}
}

func TestParseNADConfigErrorsNameTheFieldAndTheFix(t *testing.T) {
	whereabouts := func(ipam string) string {
		return `{"type":"macvlan","bridge":"br-2001","ipam":{"type":"whereabouts",` + ipam + `}}`
	}
	for _, tc := range []struct{ config, want string }{
		{whereabouts(`"range":"192.168.201.0/33"`), `ipam.range "192.168.201.0/33": not a CIDR; use e.g. 192.168.201.0/24`},
		{whereabouts(`"range":"192.168.201.0"`), `ipam.range "192.168.201.0": not a CIDR`},
		{whereabouts(`"range":"192.168.201.300-192.168.201.20/24"`), `"192.168.201.300" is not an address in 192.168.201.0/24`},
		{whereabouts(`"range":"10.0.0.0/31"`), `a /31 has no address besides the network and broadcast addresses; use a /30 or shorter prefix`},
		{whereabouts(`"range":"fd00::/48"`), `more than 2^64 addresses; use a /64 or longer prefix`},
		{whereabouts(`"exclude":["10.0.0.0/25"]`), `ipam.range is missing; set the range`},
		{whereabouts(`"range":"10.0.0.0/24","exclude":["10.0.0.0/25","nope"]`), `ipam.exclude[1] "nope": not a CIDR or an address; use e.g.`},
		{whereabouts(`"range":"10.0.0.0/24","exclude":["fd00::/64"]`), `ipam.exclude[0] fd00::/64 is not of the family of ipam.range 10.0.0.0/24`},
		{whereabouts(`"range":"10.0.0.0/24","range_start":"10.0.1.1"`), `ipam.range_start 10.0.1.1 is outside ipam.range 10.0.0.0/24`},
		{whereabouts(`"range":"10.0.0.0/24","range_end":"ten"`), `ipam.range_end "ten": not an address; use e.g. 10.0.0.1`},
		{whereabouts(`"range":"10.0.0.0/24","range_start":"10.0.0.20","range_end":"10.0.0.10"`), `the range from 10.0.0.20 to 10.0.0.10 in 10.0.0.0/24 holds no address to hand out`},
		{whereabouts(`"range":"10.0.0.10-10.0.0.20/24","range_start":"10.0.0.5"`), `already sets the start; drop ipam.range_start`},
		{whereabouts(`"range":"10.0.0.0/24","gateway":"10.0.1.1"`), `ipam.gateway 10.0.1.1 is outside ipam.range 10.0.0.0/24`},
		{whereabouts(`"range":"10.0.0.0/24","network_name":"Mig Net"`), `ipam.network_name "Mig Net" makes the pool name "Mig Net-10.0.0.0-24", which is not a valid object name`},
		{whereabouts(`"ipRanges":[{"range":"10.0.0.0/24"}]`), `ipam.ipRanges is not supported; use a single ipam.range`},
		{whereabouts(`"range":24`), `ipam.range: got a JSON number, want a string`},
		{`{"type":"macvlan","ipam":{"type":"host-local","subnet":"10.0.0.0/24"}}`, `ipam.type "host-local" is not supported; use "whereabouts"`},
		{`{"type":"macvlan","ipam":{"type":"dhcp"}}`, `ipam.type "dhcp" is not supported`},
		{`{"type":"macvlan","ipam":{}}`, `ipam.type is missing`},
		{`{"type":"macvlan","ipam":{"type":"static"}}`, `ipam.addresses is empty`},
		{`{"type":"macvlan","ipam":{"type":"static","addresses":[{"address":"10.0.0.5"}]}}`, `ipam.addresses[0].address "10.0.0.5": not an address with a prefix length`},
		{`{"type":"macvlan","master":"eth1","bridge":"br-2001"}`, `master "eth1" and bridge "br-2001" disagree on the macvlan's parent; keep one of them`},
		{`{"type":"macvlan","mode":"l2"}`, `mode "l2" is not a macvlan mode; use one of bridge, private, vepa, passthru`},
		{`{"type":"macvlan","mtu":-1}`, `mtu -1 is negative`},
		{`{"bridge":"br-2001"}`, `type is missing`},
		{`{"plugins":[{"type":3}]}`, `plugins[0].type: got a JSON number, want a string`},
		{`{"type":"macvlan",`, `not valid JSON`},
		{`[]`, `not a JSON object`},
	} {
		_, err := ParseNADConfig([]byte(tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got error %v\nwant one containing %q", tc.config, err, tc.want)
		}
	}
}
