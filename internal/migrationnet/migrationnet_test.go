package migrationnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	whereaboutsv1alpha1 "github.com/cclm-io/cclm/api/whereabouts/v1alpha1"
	"github.com/cclm-io/cclm/examples/openshift"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/scheme"
)

// Unit tests of Setup's logic against the fake client and fakeLinks; the
// real thing (API server, network namespaces, traffic) is in
// test/e2e/migrationnet_test.go.

const (
	virtNamespace = "openshift-cnv"
	node          = "ocp7-worker-0"
	seedNAD       = "livemigration-network"
)

// fakeLinks is a node's links, checked the way netlab checks them.
type fakeLinks struct {
	links   map[string]*netlab.Link
	modes   map[string]string
	creates int
}

func newFakeLinks(names ...string) *fakeLinks {
	links := &fakeLinks{links: map[string]*netlab.Link{}, modes: map[string]string{}}
	for _, name := range names {
		links.links[name] = &netlab.Link{Name: name, Type: "bridge"}
	}
	return links
}

func (f *fakeLinks) Links() ([]netlab.Link, error) {
	var list []netlab.Link
	for _, link := range f.links {
		list = append(list, *link)
	}
	return list, nil
}

func (f *fakeLinks) CreateMacvlan(name, master, mode string, _ net.HardwareAddr) error {
	if _, found := f.links[master]; !found {
		return fmt.Errorf("master %q does not exist", master)
	}
	if link, found := f.links[name]; found {
		if link.Type != "macvlan" || link.Parent != master || f.modes[name] != mode {
			return fmt.Errorf("%q exists otherwise", name)
		}
		return nil
	}
	f.creates++
	f.links[name] = &netlab.Link{Name: name, Type: "macvlan", Parent: master}
	f.modes[name] = mode
	return nil
}

func (f *fakeLinks) AddAddress(name string, address netip.Prefix) error {
	link, found := f.links[name]
	if !found {
		return fmt.Errorf("no link %q", name)
	}
	if !slices.Contains(link.Addresses, address) {
		link.Addresses = append(link.Addresses, address)
	}
	return nil
}

func (f *fakeLinks) LinkUp(name string) error {
	link, found := f.links[name]
	if !found {
		return fmt.Errorf("no link %q", name)
	}
	link.Up = true
	return nil
}

func (f *fakeLinks) DeleteLink(name string) error {
	delete(f.links, name)
	return nil
}

func kubeVirt(network string) *kubevirtv1.KubeVirt {
	kv := &kubevirtv1.KubeVirt{ObjectMeta: metav1.ObjectMeta{Name: "kubevirt", Namespace: virtNamespace}}
	if network != "" {
		kv.Spec.Configuration.MigrationConfiguration = &kubevirtv1.MigrationConfiguration{Network: network}
	}
	return kv
}

// seedNADObject is one of the OpenShift guide's NADs, unchanged.
func seedNADObject(t *testing.T, file string) *cniv1.NetworkAttachmentDefinition {
	t.Helper()
	data, err := openshift.Files.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var nad cniv1.NetworkAttachmentDefinition
	if err := yaml.Unmarshal(data, &nad); err != nil {
		t.Fatal(err)
	}
	return &nad
}

func newKube(objects ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objects...).Build()
}

func TestSetupGivesTheSeedsAddressAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	kube := newKube(kubeVirt(seedNAD), seedNADObject(t, "ocp7.net-attach-def.yaml"))
	links := newFakeLinks("br-2001")
	want := Interface{Name: "migration0", Address: netip.MustParsePrefix("192.168.201.1/24"), NAD: "openshift-cnv/livemigration-network"}
	for range 2 { // the second time is the node agent restarting
		got, err := Setup(ctx, kube, links, node, virtNamespace, "")
		if err != nil || got != want {
			t.Fatalf("Setup = %+v, %v; want %+v", got, err, want)
		}
	}
	link := links.links["migration0"]
	if link.Parent != "br-2001" || !link.Up || !slices.Equal(link.Addresses, []netip.Prefix{want.Address}) || links.modes["migration0"] != "bridge" {
		t.Errorf("migration0 is %+v (mode %s)", link, links.modes["migration0"])
	}
	if links.creates != 1 {
		t.Errorf("migration0 was created %d times, want once", links.creates)
	}
}

func TestSetupWithoutTheBridgeTakesNoAddress(t *testing.T) {
	ctx := context.Background()
	kube := newKube(kubeVirt(seedNAD), seedNADObject(t, "ocp7.net-attach-def.yaml"))
	_, err := Setup(ctx, kube, newFakeLinks("enp2s0"), node, virtNamespace, "")
	want := `bridge "br-2001" does not exist on node ocp7-worker-0: apply the NodeNetworkConfigurationPolicy that creates it, or fix the NAD's "bridge"`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	var pool whereaboutsv1alpha1.IPPool
	err = kube.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "192.168.201.0-24"}, &pool)
	if !apierrors.IsNotFound(err) {
		t.Errorf("the pool exists (%v): %+v", err, pool.Spec)
	}
}

func TestSetupExplainsWhatIsMissing(t *testing.T) {
	macvlanOn := func(key string) *cniv1.NetworkAttachmentDefinition {
		return &cniv1.NetworkAttachmentDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "mig", Namespace: "networks"},
			Spec: cniv1.NetworkAttachmentDefinitionSpec{Config: `{"type":"macvlan","` + key +
				`":"eth9","ipam":{"type":"whereabouts","range":"10.0.0.0/24"}}`},
		}
	}
	for _, tc := range []struct {
		name    string
		objects []client.Object
		want    string
	}{
		{"no KubeVirt", nil, "no KubeVirt CR in namespace openshift-cnv: install KubeVirt there"},
		{"no NAD", []client.Object{kubeVirt(seedNAD)},
			`KubeVirt openshift-cnv/kubevirt names migration network "livemigration-network", but there is no NetworkAttachmentDefinition openshift-cnv/livemigration-network: create it`},
		{"NAD in another namespace, master missing", []client.Object{kubeVirt("networks/mig"), macvlanOn("master")},
			`master "eth9" does not exist on node ocp7-worker-0: connect the node to the migration network through it, or fix the NAD's "master"`},
		{"bad config", []client.Object{kubeVirt("networks/mig"), &cniv1.NetworkAttachmentDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "mig", Namespace: "networks"},
			Spec:       cniv1.NetworkAttachmentDefinitionSpec{Config: `{"type":"macvlan","master":"br-2001","ipam":{"type":"whereabouts","range":"192.168.201.0/33"}}`},
		}}, `NetworkAttachmentDefinition networks/mig, spec.config: ipam.range "192.168.201.0/33": not a CIDR; use e.g. 192.168.201.0/24`},
		{"not a macvlan", []client.Object{kubeVirt("networks/mig"), &cniv1.NetworkAttachmentDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "mig", Namespace: "networks"},
			Spec:       cniv1.NetworkAttachmentDefinitionSpec{Config: `{"type":"bridge","bridge":"br-2001"}`},
		}}, `NAD networks/mig has "type": "bridge"; cclm makes migration0 as a macvlan`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Setup(context.Background(), newKube(tc.objects...), newFakeLinks("br-2001"), node, virtNamespace, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestSetupWithoutMigrationNetwork(t *testing.T) {
	_, err := Setup(context.Background(), newKube(kubeVirt("")), newFakeLinks(), node, virtNamespace, "")
	if !errors.Is(err, ErrNoMigrationNetwork) || !strings.Contains(err.Error(), "migrations use the node's default address") {
		t.Errorf("got %v, want ErrNoMigrationNetwork", err)
	}
}

func TestSetupRemakesAStaleLink(t *testing.T) {
	ctx := context.Background()
	kube := newKube(kubeVirt(seedNAD), seedNADObject(t, "ocp1.net-attach-def.yaml"))
	links := newFakeLinks("br-2001", "enp2s0")
	stale := netip.MustParsePrefix("192.168.201.7/24")
	links.links["migration0"] = &netlab.Link{Name: "migration0", Type: "macvlan", Parent: "br-2001", Addresses: []netip.Prefix{stale}}
	links.modes["migration0"] = "bridge"
	got, err := Setup(ctx, kube, links, "ocp1-worker-0", virtNamespace, "")
	if err != nil || got.Address != netip.MustParsePrefix("192.168.201.128/24") {
		t.Fatalf("Setup = %+v, %v", got, err)
	}
	if addresses := links.links["migration0"].Addresses; !slices.Equal(addresses, []netip.Prefix{got.Address}) {
		t.Errorf("migration0 has %v, want only %v", addresses, got.Address)
	}

	links.modes["migration0"] = "private" // as if the NAD's mode had changed
	if _, err := Setup(ctx, kube, links, "ocp1-worker-0", virtNamespace, ""); err != nil || links.modes["migration0"] != "bridge" {
		t.Errorf("Setup after a mode change: %v, mode %s", err, links.modes["migration0"])
	}
}

func TestTeardownReleasesTheAddress(t *testing.T) {
	ctx := context.Background()
	kube := newKube(kubeVirt(seedNAD), seedNADObject(t, "ocp7.net-attach-def.yaml"))
	links := newFakeLinks("br-2001")
	first, err := Setup(ctx, kube, links, node, virtNamespace, "pools")
	if err != nil {
		t.Fatal(err)
	}
	if err := Teardown(ctx, kube, links, node, virtNamespace, "pools"); err != nil {
		t.Fatal(err)
	}
	if _, found := links.links["migration0"]; found {
		t.Error("migration0 is still there")
	}
	next, err := Setup(ctx, kube, newFakeLinks("br-2001"), "ocp7-worker-1", virtNamespace, "pools")
	if err != nil || next.Address != first.Address {
		t.Errorf("the next node got %v, %v; want the released %v", next.Address, err, first.Address)
	}
	if err := Teardown(ctx, newKube(kubeVirt("")), links, node, virtNamespace, ""); err != nil {
		t.Errorf("Teardown without a migration network: %v", err)
	}
}
