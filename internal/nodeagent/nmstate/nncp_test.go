package nmstate

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	"github.com/cclm-io/cclm/examples/openshift"
)

// fakeHost is a node's links in memory, with the kernel's rules that
// matter here: a port's master must be a bridge, deleting a bridge
// releases its ports and deletes the macvlans on it.
type fakeHost struct {
	l      map[string]hostLink
	parent map[string]string // macvlan -> lower link
	failOn string            // an op whose description contains this fails
	ops    []string
}

func newFakeHost() *fakeHost {
	h := &fakeHost{l: map[string]hostLink{}, parent: map[string]string{}}
	h.l["lo"] = hostLink{Name: "lo", Kind: "device", Up: true, IPv4: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}
	h.l["enp2s0"] = hostLink{Name: "enp2s0", Kind: "veth", Up: true}
	h.l["br-vm"] = hostLink{Name: "br-vm", Kind: "bridge", Up: true}
	h.l["vmuplink0"] = hostLink{Name: "vmuplink0", Kind: "veth", Up: true, Master: "br-vm"}
	return h
}

func (h *fakeHost) op(format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	h.ops = append(h.ops, what)
	if h.failOn != "" && strings.Contains(what, h.failOn) {
		return errors.New("injected failure")
	}
	return nil
}

func (h *fakeHost) get(name string) (hostLink, error) {
	link, ok := h.l[name]
	if !ok {
		return hostLink{}, fmt.Errorf("interface %q: Link not found", name)
	}
	return link, nil
}

func (h *fakeHost) links() (map[string]hostLink, error) {
	out := map[string]hostLink{}
	for name, link := range h.l {
		link.IPv4 = slices.Clone(link.IPv4)
		if len(link.IPv4) == 0 {
			link.IPv4 = nil
		}
		out[name] = link
	}
	return out, nil
}

func (h *fakeHost) addBridge(name string) error {
	if err := h.op("addBridge %s", name); err != nil {
		return err
	}
	if _, exists := h.l[name]; exists {
		return errors.New("file exists")
	}
	h.l[name] = hostLink{Name: name, Kind: "bridge"}
	return nil
}

func (h *fakeHost) deleteLink(name string) error {
	if err := h.op("deleteLink %s", name); err != nil {
		return err
	}
	if _, err := h.get(name); err != nil {
		return err
	}
	delete(h.l, name)
	for other, link := range h.l {
		if link.Master == name {
			link.Master = ""
			h.l[other] = link
		}
		if h.parent[other] == name {
			delete(h.l, other)
		}
	}
	return nil
}

func (h *fakeHost) setMaster(name, master string) error {
	if err := h.op("setMaster %s %s", name, master); err != nil {
		return err
	}
	link, err := h.get(name)
	if err != nil {
		return err
	}
	if master != "" {
		bridge, err := h.get(master)
		if err != nil {
			return err
		}
		if bridge.Kind != "bridge" {
			return errors.New("not a bridge")
		}
	}
	link.Master = master
	h.l[name] = link
	return nil
}

func (h *fakeHost) update(op, name string, change func(*hostLink)) error {
	if err := h.op("%s %s", op, name); err != nil {
		return err
	}
	link, err := h.get(name)
	if err != nil {
		return err
	}
	change(&link)
	h.l[name] = link
	return nil
}

func (h *fakeHost) setUp(name string, up bool) error {
	return h.update(fmt.Sprintf("setUp(%t)", up), name, func(l *hostLink) { l.Up = up })
}

func (h *fakeHost) setAlias(name, alias string) error {
	return h.update("setAlias", name, func(l *hostLink) { l.Alias = alias })
}

func (h *fakeHost) setSTP(name string, on bool) error {
	return h.update(fmt.Sprintf("setSTP(%t)", on), name, func(l *hostLink) { l.STP = on })
}

func (h *fakeHost) addAddress(name string, address netip.Prefix) error {
	return h.update("addAddress "+address.String(), name, func(l *hostLink) { l.IPv4 = append(l.IPv4, address) })
}

func (h *fakeHost) delAddress(name string, address netip.Prefix) error {
	return h.update("delAddress "+address.String(), name, func(l *hostLink) {
		l.IPv4 = slices.DeleteFunc(l.IPv4, func(p netip.Prefix) bool { return p == address })
	})
}

// seedState is the OpenShift guide's NNCP's desired state, read from its
// YAML in examples/openshift.
func seedState(t *testing.T) nmstatev1.State {
	t.Helper()
	var policy nmstatev1.NodeNetworkConfigurationPolicy
	if err := yaml.UnmarshalStrict(openshift.NNCPYAML(), &policy); err != nil {
		t.Fatal(err)
	}
	return policy.Spec.DesiredState
}

func TestSeedPolicyMakesTheBridgeOnceThenNothing(t *testing.T) {
	h := newFakeHost()
	result, err := applyDesiredState(h, "ocp7-worker-0", seedState(t))
	if err != nil {
		t.Fatal(err)
	}
	bridge := h.l["br-2001"]
	if bridge.Kind != "bridge" || !bridge.Up || bridge.STP || bridge.Alias != "Linux Brige info COE Network via enp2s0" {
		t.Fatalf("br-2001: %+v", bridge)
	}
	if port := h.l["enp2s0"]; port.Master != "br-2001" || !port.Up {
		t.Fatalf("enp2s0: %+v", port)
	}
	if len(result.Changes) == 0 {
		t.Fatal("no change reported")
	}
	t.Logf("changes: %s", describeChanges(result.Changes))

	h.ops = nil
	again, err := applyDesiredState(h, "ocp7-worker-0", seedState(t))
	if err != nil || len(again.Changes) != 0 || len(h.ops) != 0 {
		t.Fatalf("applying again: %v, changes %v, ops %v", err, again.Changes, h.ops)
	}
}

// A desired state that fails half-way leaves the node exactly as before:
// the interfaces already made are removed again, nothing else is touched.
func TestFailedApplyIsRolledBack(t *testing.T) {
	for _, tc := range []struct {
		name, failOn, expect string
		state                nmstatev1.State
	}{
		{
			name:   "missing port",
			expect: `port "enp9s0" of linux-bridge "br-2003" does not exist on node n`,
			state: nmstatev1.State{Interfaces: []nmstatev1.Interface{
				{Name: "br-2002", Type: "linux-bridge", Description: "made, then rolled back", IPv4: &nmstatev1.IPv4{Enabled: true, Address: []nmstatev1.IPAddress{{IP: "10.20.0.1", PrefixLength: 24}}}},
				{Name: "br-2003", Type: "linux-bridge", Bridge: &nmstatev1.LinuxBridge{Port: []nmstatev1.BridgePort{{Name: "enp2s0"}, {Name: "enp9s0"}}}},
			}},
		},
		{
			name:   "a kernel error on the last step",
			failOn: "setUp(true) br-2001",
			expect: "bring br-2001 up: injected failure",
			state:  seedState(t),
		},
		{
			name:   "ethernet that is not there",
			expect: `ethernet interface "enp3s0" does not exist on node n`,
			state: nmstatev1.State{Interfaces: []nmstatev1.Interface{
				{Name: "enp2s0", Type: "ethernet", IPv4: &nmstatev1.IPv4{Enabled: true, Address: []nmstatev1.IPAddress{{IP: "192.168.201.250", PrefixLength: 24}}}},
				{Name: "enp3s0", Type: "ethernet"},
			}},
		},
		{
			name:   "type mismatch",
			expect: `interface "br-vm" exists on node n as a bridge, not a ethernet`,
			state:  nmstatev1.State{Interfaces: []nmstatev1.Interface{{Name: "br-vm", Type: "ethernet"}}},
		},
		{
			name:   "a bridge removed, its port moved, then a failure",
			failOn: "setUp(true) br-x",
			expect: "bring br-x up: injected failure",
			state: nmstatev1.State{Interfaces: []nmstatev1.Interface{
				{Name: "br-vm", State: "absent"},
				{Name: "br-x", Type: "linux-bridge", Bridge: &nmstatev1.LinuxBridge{Port: []nmstatev1.BridgePort{{Name: "vmuplink0"}}}},
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost()
			before, _ := h.links()
			h.failOn = tc.failOn
			result, err := applyDesiredState(h, "n", tc.state)
			if err == nil || !strings.Contains(err.Error(), tc.expect) || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("error %v, want one with %q that says it rolled back", err, tc.expect)
			}
			after, _ := h.links()
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("the node changed:\nbefore %+v\nafter  %+v\nops %v", before, after, h.ops)
			}
			t.Logf("%v (rolled back: %v)", err, result.Changes)
		})
	}
}

// Absent removes a bridge; the rollback of a later failure rebuilds it
// with its ports, description, STP and addresses.
func TestAbsentBridgeAndItsRollback(t *testing.T) {
	h := newFakeHost()
	if _, err := applyDesiredState(h, "n", seedState(t)); err != nil {
		t.Fatal(err)
	}
	h.parent["migration0"] = "br-2001"
	h.l["migration0"] = hostLink{Name: "migration0", Kind: "macvlan", Up: true}
	if err := h.addAddress("br-2001", netip.MustParsePrefix("10.1.0.1/16")); err != nil {
		t.Fatal(err)
	}
	before, _ := h.links()
	delete(before, "migration0") // goes with its bridge; the agent remakes it

	state := nmstatev1.State{Interfaces: []nmstatev1.Interface{
		{Name: "br-2001", Type: "linux-bridge", State: "absent"},
		{Name: "enp7s0", Type: "ethernet"},
	}}
	if _, err := applyDesiredState(h, "n", state); err == nil {
		t.Fatal("a missing ethernet interface must fail the apply")
	}
	after, _ := h.links()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("not rebuilt:\nbefore %+v\nafter  %+v", before, after)
	}

	state.Interfaces = state.Interfaces[:1]
	if _, err := applyDesiredState(h, "n", state); err != nil {
		t.Fatal(err)
	}
	if _, exists := h.l["br-2001"]; exists {
		t.Fatal("br-2001 still there")
	}
	if port := h.l["enp2s0"]; port.Master != "" {
		t.Fatalf("enp2s0 still a port: %+v", port)
	}
	if _, err := applyDesiredState(h, "n", state); err != nil {
		t.Fatalf("absent twice: %v", err)
	}
}

func TestPortsAddressesAndDeactivation(t *testing.T) {
	h := newFakeHost()
	h.l["enp3s0"] = hostLink{Name: "enp3s0", Kind: "veth", IPv4: []netip.Prefix{netip.MustParsePrefix("10.9.9.9/24")}}
	state := nmstatev1.State{Interfaces: []nmstatev1.Interface{
		{Name: "br-1", Type: "linux-bridge",
			Bridge: &nmstatev1.LinuxBridge{Options: &nmstatev1.BridgeOptions{STP: &nmstatev1.BridgeSTP{Enabled: ptrTo(true)}}, Port: []nmstatev1.BridgePort{{Name: "enp3s0"}, {Name: "vmuplink0"}}},
			IPv4:   &nmstatev1.IPv4{Enabled: true, Address: []nmstatev1.IPAddress{{IP: "192.168.50.1", PrefixLength: 24}}}},
		{Name: "enp3s0", Type: "ethernet", IPv4: &nmstatev1.IPv4{Enabled: false}},
	}}
	if _, err := applyDesiredState(h, "n", state); err != nil {
		t.Fatal(err)
	}
	if br := h.l["br-1"]; !br.STP || !br.Up || !slices.Equal(br.IPv4, []netip.Prefix{netip.MustParsePrefix("192.168.50.1/24")}) {
		t.Fatalf("br-1: %+v", br)
	}
	if p := h.l["enp3s0"]; p.Master != "br-1" || !p.Up || len(p.IPv4) != 0 {
		t.Fatalf("enp3s0: %+v", p)
	}
	if p := h.l["vmuplink0"]; p.Master != "br-1" {
		t.Fatalf("vmuplink0 moved from br-vm: %+v", p)
	}

	// An empty port list releases every port; enp3s0 absent deactivates it.
	state.Interfaces[0].Bridge.Port = []nmstatev1.BridgePort{}
	state.Interfaces[1] = nmstatev1.Interface{Name: "enp3s0", Type: "ethernet", State: "absent"}
	if _, err := applyDesiredState(h, "n", state); err != nil {
		t.Fatal(err)
	}
	if p := h.l["enp3s0"]; p.Master != "" || p.Up {
		t.Fatalf("enp3s0 not deactivated: %+v", p)
	}
	if p := h.l["vmuplink0"]; p.Master != "" {
		t.Fatalf("vmuplink0 not released: %+v", p)
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestOrderRemovesFirstAndBridgesLast(t *testing.T) {
	in := []nmstatev1.Interface{
		{Name: "br-a", Type: "linux-bridge"},
		{Name: "eth-a", Type: "ethernet"},
		{Name: "gone", State: "absent"},
		{Name: "br-b", Type: "linux-bridge"},
	}
	var names []string
	for _, i := range orderInterfaces(in) {
		names = append(names, i.Name)
	}
	if want := []string{"gone", "eth-a", "br-a", "br-b"}; !slices.Equal(names, want) {
		t.Fatalf("order %v, want %v", names, want)
	}
}

func TestEnactmentConditions(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(1000, 0))
	t1 := metav1.NewTime(time.Unix(2000, 0))
	var c nmstatev1.ConditionList
	if !setEnactmentConditions(&c, enactmentProgressing, "", t0) {
		t.Fatal("first set reports no change")
	}
	if setEnactmentConditions(&c, enactmentProgressing, "", t1) {
		t.Fatal("the same conditions again report a change")
	}
	setEnactmentConditions(&c, enactmentFailing, "port missing", t1)
	failing := c.Find(nmstatev1.EnactmentFailing)
	if failing.Status != corev1.ConditionTrue || failing.Reason != nmstatev1.EnactmentFailedToConfigure || failing.Message != "port missing" || !failing.LastTransitionTime.Equal(&t1) {
		t.Fatalf("Failing: %+v", failing)
	}
	if c.IsTrue(nmstatev1.EnactmentAvailable) || c.IsTrue(nmstatev1.EnactmentProgressing) {
		t.Fatalf("only Failing may be true: %+v", c)
	}
	if pending := c.Find(nmstatev1.EnactmentPending); pending == nil || !pending.LastTransitionTime.Equal(&t0) {
		t.Fatalf("Pending should keep its transition time: %+v", pending)
	}
}

func TestPolicyConditions(t *testing.T) {
	policy := &nmstatev1.NodeNetworkConfigurationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 3}}
	policy.Spec.NodeSelector = map[string]string{"node-role.kubernetes.io/worker": ""}
	worker := func(name string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"node-role.kubernetes.io/worker": ""}}}
	}
	nodes := []corev1.Node{worker("w0"), worker("w1"), {ObjectMeta: metav1.ObjectMeta{Name: "cp0"}}}
	enactment := func(node string, generation int64, phase enactmentPhase, message string) nmstatev1.NodeNetworkConfigurationEnactment {
		e := nmstatev1.NodeNetworkConfigurationEnactment{ObjectMeta: metav1.ObjectMeta{Name: nmstatev1.EnactmentName(node, "p")}}
		e.Status.PolicyGeneration = generation
		setEnactmentConditions(&e.Status.Conditions, phase, message, metav1.Now())
		return e
	}
	cases := []struct {
		name       string
		nodes      []corev1.Node
		enactments []nmstatev1.NodeNetworkConfigurationEnactment
		want       nmstatev1.ConditionType
		reason     nmstatev1.ConditionReason
		message    string
	}{
		{"no node", nodes[2:], nil, nmstatev1.PolicyAvailable, nmstatev1.PolicyNoMatchingNode, "Policy does not match any node"},
		{"none yet", nodes, nil, nmstatev1.PolicyProgressing, nmstatev1.PolicyConfigurationProgressing, "Policy is progressing 0/2 nodes finished"},
		{"one done, one of an old generation", nodes, []nmstatev1.NodeNetworkConfigurationEnactment{
			enactment("w0", 3, enactmentAvailable, ""), enactment("w1", 2, enactmentAvailable, "")},
			nmstatev1.PolicyProgressing, nmstatev1.PolicyConfigurationProgressing, "Policy is progressing 1/2 nodes finished"},
		{"all available", nodes, []nmstatev1.NodeNetworkConfigurationEnactment{
			enactment("w0", 3, enactmentAvailable, ""), enactment("w1", 3, enactmentAvailable, "")},
			nmstatev1.PolicyAvailable, nmstatev1.PolicySuccessfullyConfigured, "2/2 nodes successfully configured"},
		{"one failed", nodes, []nmstatev1.NodeNetworkConfigurationEnactment{
			enactment("w0", 3, enactmentAvailable, ""), enactment("w1", 3, enactmentFailing, `port "enp9s0" does not exist`)},
			nmstatev1.PolicyDegraded, nmstatev1.PolicyFailedToConfigure, `1/2 nodes failed to configure: w1: port "enp9s0" does not exist`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c nmstatev1.ConditionList
			setPolicyConditions(&c, tallyPolicy(policy, tc.nodes, tc.enactments), metav1.Now())
			var trueTypes []nmstatev1.ConditionType
			for _, cond := range c {
				if cond.Status == corev1.ConditionTrue {
					trueTypes = append(trueTypes, cond.Type)
				}
			}
			got := c.Find(tc.want)
			if !slices.Equal(trueTypes, []nmstatev1.ConditionType{tc.want}) || got.Reason != tc.reason || got.Message != tc.message {
				t.Fatalf("true: %v; %s: %+v", trueTypes, tc.want, got)
			}
		})
	}
}
