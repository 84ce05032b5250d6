package config

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/cclm-io/cclm/examples/openshift"
)

// The OpenShift guide's files (examples/openshift) pass the CRDs' schemas
// as they are; what cclm's nmstate and HyperConverged do not implement is
// refused with a message that says what to change.

var (
	nncpGVK     = schema.GroupVersionKind{Group: "nmstate.io", Version: "v1", Kind: "NodeNetworkConfigurationPolicy"}
	hcoGVK      = schema.GroupVersionKind{Group: "hco.kubevirt.io", Version: "v1beta1", Kind: "HyperConverged"}
	forkliftGVK = schema.GroupVersionKind{Group: "forklift.konveyor.io", Version: "v1beta1", Kind: "ForkliftController"}
)

// guideObject reads one of examples/openshift's files as the API server
// receives it.
func guideObject(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := openshift.Files.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatalf("examples/openshift/%s: %v", name, err)
	}
	return obj
}

// The guide's policy and operator settings are accepted by cclm's CRDs.
func TestGuideKindsAreAccepted(t *testing.T) {
	validators := newValidators(t)
	for name, gvk := range map[string]schema.GroupVersionKind{
		openshift.NNCPFile:               nncpGVK,
		openshift.HyperConvergedFile:     hcoGVK,
		openshift.ForkliftControllerFile: forkliftGVK,
	} {
		if msgs := validators[gvk].validate(guideObject(t, name)); len(msgs) > 0 {
			t.Errorf("examples/openshift/%s is refused: %v", name, msgs)
		}
	}
}

func TestNNCPAndHyperConvergedValidation(t *testing.T) {
	validators := newValidators(t)
	nncp := func(iface string) string {
		return `
apiVersion: nmstate.io/v1
kind: NodeNetworkConfigurationPolicy
metadata: {name: p}
spec:
  nodeSelector: {node-role.kubernetes.io/worker: ""}
  desiredState:
    interfaces:
    - ` + iface
	}
	hco := func(name, spec string) string {
		return `
apiVersion: hco.kubevirt.io/v1beta1
kind: HyperConverged
metadata: {name: ` + name + `, namespace: openshift-cnv}
spec: ` + spec
	}
	cases := []struct {
		name   string
		gvk    schema.GroupVersionKind
		doc    string
		expect string // "" = valid
	}{
		{"ethernet with an address", nncpGVK, nncp(`{name: enp3s0, type: ethernet, state: up, ipv4: {enabled: true, address: [{ip: 192.168.50.1, prefix-length: 24}]}}`), ""},
		{"bridge without ports, STP on", nncpGVK, nncp(`{name: br-1, type: linux-bridge, bridge: {options: {stp: {enabled: true}}, port: []}}`), ""},
		{"absent without type", nncpGVK, nncp(`{name: br-1, state: absent}`), ""},
		{"the guide's HyperConverged settings", hcoGVK, hco("kubevirt-hyperconverged", `{liveMigrationConfig: {network: livemigration-network, bandwidthPerMigration: 64Mi, progressTimeout: 150}, featureGates: {decentralizedLiveMigration: true}}`), ""},

		{"vlan type", nncpGVK, nncp(`{name: eth0.2001, type: vlan}`), `Unsupported value: "vlan"`},
		{"unknown interface field", nncpGVK, nncp(`{name: br-1, type: linux-bridge, mtu: 9000}`), `unknown field "spec.desiredState.interfaces[0].mtu"`},
		{"no type", nncpGVK, nncp(`{name: br-1, state: up}`), "type is required unless state is absent"},
		{"bridge settings on ethernet", nncpGVK, nncp(`{name: enp2s0, type: ethernet, bridge: {port: [{name: enp3s0}]}}`), "bridge settings belong to an interface of type linux-bridge"},
		{"own port", nncpGVK, nncp(`{name: br-1, type: linux-bridge, bridge: {port: [{name: br-1}]}}`), "cannot be its own port"},
		{"dhcp", nncpGVK, nncp(`{name: br-1, type: linux-bridge, ipv4: {enabled: true, dhcp: true}}`), "ipv4.dhcp is not supported"},
		{"address while disabled", nncpGVK, nncp(`{name: br-1, type: linux-bridge, ipv4: {enabled: false, address: [{ip: 10.0.0.1, prefix-length: 8}]}}`), "ipv4.address needs ipv4.enabled: true"},
		{"not an IPv4 address", nncpGVK, nncp(`{name: br-1, type: linux-bridge, ipv4: {enabled: true, address: [{ip: fd00::1, prefix-length: 64}]}}`), "ipv4"},
		{"interface name too long", nncpGVK, nncp(`{name: a-very-long-bridge-name, type: linux-bridge}`), "may not be more than 15"},
		{"state down", nncpGVK, nncp(`{name: br-1, type: linux-bridge, state: down}`), `Unsupported value: "down"`},

		{"another name", hcoGVK, hco("hco", `{}`), "must be named kubevirt-hyperconverged"},
		{"bandwidth not a quantity", hcoGVK, hco("kubevirt-hyperconverged", `{liveMigrationConfig: {bandwidthPerMigration: fast}}`), "bandwidthPerMigration must be a quantity"},
		{"negative bandwidth", hcoGVK, hco("kubevirt-hyperconverged", `{liveMigrationConfig: {bandwidthPerMigration: "-1Mi"}}`), "bandwidthPerMigration must be a quantity"},
		{"zero progress timeout", hcoGVK, hco("kubevirt-hyperconverged", `{liveMigrationConfig: {progressTimeout: 0}}`), "greater than or equal to 1"},
		{"unknown feature gate", hcoGVK, hco("kubevirt-hyperconverged", `{featureGates: {deployKubeSecondaryDNS: true}}`), `unknown field "spec.featureGates.deployKubeSecondaryDNS"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(tc.doc), &obj); err != nil {
				t.Fatal(err)
			}
			msgs := validators[tc.gvk].validate(obj)
			if tc.expect == "" {
				if len(msgs) > 0 {
					t.Fatalf("refused: %v", msgs)
				}
				return
			}
			if !strings.Contains(strings.Join(msgs, "\n"), tc.expect) {
				t.Fatalf("want an error containing %q, got %q", tc.expect, msgs)
			}
		})
	}
}
