package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	whereaboutsv1alpha1 "github.com/cclm-io/cclm/api/whereabouts/v1alpha1"
	"github.com/cclm-io/cclm/examples/openshift"
	"github.com/cclm-io/cclm/internal/ipam"
	"github.com/cclm-io/cclm/internal/migrationnet"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/testenv"
)

// The IPAM and migration network tests share the "ipam" control plane.
// Each test works in namespaces of its own, so that it can run again
// (-count) against the same cluster.

// racingAllocators is how many allocators race for one pool.
const racingAllocators = 10

// seedMigrationNAD is the name of the seed's migration NAD.
const seedMigrationNAD = "livemigration-network"

func ipamRESTConfig(t *testing.T) *rest.Config {
	t.Helper()
	config, err := clusters.Get(t, "ipam").RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	config.QPS, config.Burst = 100, 200
	return config
}

func newIPAMClient(t *testing.T, config *rest.Config) client.Client {
	t.Helper()
	kube, err := client.New(config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

// createTestNamespace makes a namespace named base plus a random suffix,
// deleted when the test ends.
func createTestNamespace(t *testing.T, kube client.Client, base string) string {
	t.Helper()
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%04x", base, rand.Uint32N(1<<16))}}
	if err := kube.Create(context.Background(), namespace); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Delete(context.Background(), namespace) })
	return namespace.Name
}

func mustParseNAD(t *testing.T, config string) ipam.Config {
	t.Helper()
	cfg, err := ipam.ParseNADConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// raceClient is one racer's client: its first read waits until every racer
// has made its first read, so that all of them start from the same pool
// (or the same absence of one) and all but one must lose the first write.
// It counts writes lost to another racer.
type raceClient struct {
	client.Client
	firstRead sync.Once
	everyone  *sync.WaitGroup
	lostRaces *atomic.Int32
}

func (c *raceClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := c.Client.Get(ctx, key, obj, opts...)
	c.firstRead.Do(func() {
		c.everyone.Done()
		c.everyone.Wait()
	})
	return err
}

func (c *raceClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return c.count(c.Client.Create(ctx, obj, opts...))
}

func (c *raceClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return c.count(c.Client.Update(ctx, obj, opts...))
}

func (c *raceClient) count(err error) error {
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		c.lostRaces.Add(1)
	}
	return err
}

// raceAllocators lets racingAllocators allocators, each with a client of
// its own, allocate from one pool at once, and returns their addresses by
// holder and how many writes lost a race.
func raceAllocators(t *testing.T, config *rest.Config, cfg ipam.Config, poolNamespace string) (map[string]netip.Prefix, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var everyone sync.WaitGroup
	var lostRaces atomic.Int32
	everyone.Add(racingAllocators)
	addresses := make([]netip.Prefix, racingAllocators)
	errs := make([]error, racingAllocators)
	var done sync.WaitGroup
	for i := range racingAllocators {
		kube := &raceClient{Client: newIPAMClient(t, config), everyone: &everyone, lostRaces: &lostRaces}
		allocator, err := ipam.NewAllocator(kube, cfg.IPAM, poolNamespace, "migration0")
		if err != nil {
			t.Fatal(err)
		}
		done.Go(func() {
			id := fmt.Sprintf("node-%d", i)
			addresses[i], errs[i] = allocator.Allocate(ctx, id, "test/"+id)
		})
	}
	done.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	byHolder := map[string]netip.Prefix{}
	for i, address := range addresses {
		byHolder[fmt.Sprintf("node-%d", i)] = address
	}
	return byHolder, int(lostRaces.Load())
}

// requireAddresses checks that the holders got distinct addresses, exactly
// the ones wanted.
func requireAddresses(t *testing.T, got map[string]netip.Prefix, want []netip.Prefix) {
	t.Helper()
	var addresses []netip.Prefix
	for _, address := range got {
		addresses = append(addresses, address)
	}
	slices.SortFunc(addresses, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if !slices.Equal(addresses, want) {
		t.Errorf("the allocators got %v, want each of %v once", addresses, want)
	}
}

// readPool reads the allocations of a pool as address -> holder id.
func readPool(t *testing.T, kube client.Client, namespace string, cfg ipam.Config) map[netip.Addr]string {
	t.Helper()
	var pool whereaboutsv1alpha1.IPPool
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: cfg.IPAM.PoolName()}, &pool); err != nil {
		t.Fatal(err)
	}
	if pool.Spec.Range != cfg.IPAM.Range.String() {
		t.Errorf("pool %s has range %q, want %s", pool.Name, pool.Spec.Range, cfg.IPAM.Range)
	}
	holders := map[netip.Addr]string{}
	for key, allocation := range pool.Spec.Allocations {
		var offset uint32
		if _, err := fmt.Sscan(key, &offset); err != nil {
			t.Fatalf("pool key %q is not a decimal offset", key)
		}
		holders[addressAtOffset(cfg.IPAM.Range, offset)] = allocation.ContainerID
	}
	return holders
}

func addressAtOffset(network netip.Prefix, offset uint32) netip.Addr {
	address := network.Addr()
	for range offset {
		address = address.Next()
	}
	return address
}

// addressRun is count consecutive addresses from first, with bits.
func addressRun(first string, count, bits int) []netip.Prefix {
	address := netip.MustParseAddr(first)
	run := make([]netip.Prefix, count)
	for i := range run {
		run[i] = netip.PrefixFrom(address, bits)
		address = address.Next()
	}
	return run
}

func TestIPAMConcurrentAllocatorsGetDistinctAddresses(t *testing.T) {
	config := ipamRESTConfig(t)
	kube := newIPAMClient(t, config)
	poolNamespace := createTestNamespace(t, kube, "ipam-race")

	t.Run("racing to create the pool", func(t *testing.T) {
		cfg := mustParseNAD(t, `{"type":"macvlan","master":"br-2001","ipam":{"type":"whereabouts","range":"10.201.0.0/24"}}`)
		got, lost := raceAllocators(t, config, cfg, poolNamespace)
		t.Logf("%d allocators, %d writes lost a race and were retried", racingAllocators, lost)
		requireAddresses(t, got, addressRun("10.201.0.1", racingAllocators, 24))
		if lost < racingAllocators-1 {
			t.Errorf("only %d writes lost a race; the barrier should make at least %d lose", lost, racingAllocators-1)
		}
		requirePoolHolds(t, readPool(t, kube, poolNamespace, cfg), got)
	})

	t.Run("racing to update the pool", func(t *testing.T) {
		cfg := mustParseNAD(t, `{"type":"macvlan","master":"br-2001","ipam":{"type":"whereabouts","range":"10.202.0.0/24","exclude":["10.202.0.2/32"]}}`)
		first, err := ipam.NewAllocator(kube, cfg.IPAM, poolNamespace, "migration0")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := first.Allocate(context.Background(), "early", "test/early"); err != nil {
			t.Fatal(err)
		}
		got, lost := raceAllocators(t, config, cfg, poolNamespace)
		t.Logf("%d allocators, %d writes lost a race and were retried", racingAllocators, lost)
		// .1 is early's, .2 excluded.
		requireAddresses(t, got, addressRun("10.202.0.3", racingAllocators, 24))
		if lost < racingAllocators-1 {
			t.Errorf("only %d writes lost a race; the barrier should make at least %d lose", lost, racingAllocators-1)
		}
		got["early"] = netip.MustParsePrefix("10.202.0.1/24")
		requirePoolHolds(t, readPool(t, kube, poolNamespace, cfg), got)
	})
}

// requirePoolHolds checks that the pool records exactly the allocations
// the allocators reported.
func requirePoolHolds(t *testing.T, pool map[netip.Addr]string, allocated map[string]netip.Prefix) {
	t.Helper()
	want := map[netip.Addr]string{}
	for holder, address := range allocated {
		want[address.Addr()] = holder
	}
	if !maps.Equal(pool, want) {
		t.Errorf("the pool holds %v, want %v", pool, want)
	}
}

func TestIPAMRestartKeepsTheAddressAndReleaseFreesIt(t *testing.T) {
	config := ipamRESTConfig(t)
	kube := newIPAMClient(t, config)
	poolNamespace := createTestNamespace(t, kube, "ipam-restart")
	cfg := mustParseNAD(t, `{"type":"macvlan","master":"br-2001","ipam":{"type":"whereabouts","range":"192.168.201.0/24","exclude":["192.168.201.128/25"]}}`)
	ctx := context.Background()
	allocate := func(id string) netip.Prefix {
		t.Helper()
		// A new allocator and client each time, as after a restart.
		allocator, err := ipam.NewAllocator(newIPAMClient(t, config), cfg.IPAM, poolNamespace, "migration0")
		if err != nil {
			t.Fatal(err)
		}
		address, err := allocator.Allocate(ctx, id, "openshift-cnv/virt-handler-"+id)
		if err != nil {
			t.Fatal(err)
		}
		return address
	}
	first := allocate("ocp7-worker-0")
	second := allocate("ocp7-worker-1")
	if again := allocate("ocp7-worker-0"); again != first {
		t.Errorf("after a restart ocp7-worker-0 got %v, want its own %v", again, first)
	}
	if first != netip.MustParsePrefix("192.168.201.1/24") || second != netip.MustParsePrefix("192.168.201.2/24") {
		t.Errorf("got %v and %v, want 192.168.201.1/24 and .2/24", first, second)
	}

	allocator, _ := ipam.NewAllocator(kube, cfg.IPAM, poolNamespace, "migration0")
	if err := allocator.Release(ctx, "ocp7-worker-0"); err != nil {
		t.Fatal(err)
	}
	if third := allocate("ocp7-worker-2"); third != first {
		t.Errorf("after the release ocp7-worker-2 got %v, want the freed %v", third, first)
	}
	requirePoolHolds(t, readPool(t, kube, poolNamespace, cfg), map[string]netip.Prefix{"ocp7-worker-1": second, "ocp7-worker-2": first})
}

// labCluster is one of the seed's clusters, played by namespaces of the
// shared control plane: its virt namespace (KubeVirt CR and the seed's
// NAD, unchanged but for its namespace) and its pool namespace (its
// whereabouts' kube-system). Every object involved is namespaced, so two
// clusters can share one API server and keep their pools apart.
type labCluster struct {
	virtNamespace, poolNamespace string
}

func newLabCluster(t *testing.T, kube client.Client, name, nadFile string) labCluster {
	t.Helper()
	cluster := labCluster{
		virtNamespace: createTestNamespace(t, kube, name+"-cnv"),
		poolNamespace: createTestNamespace(t, kube, name+"-pools"),
	}
	network := ""
	if nadFile != "" {
		network = seedMigrationNAD
		createSeedNAD(t, kube, nadFile, cluster.virtNamespace)
	}
	createKubeVirt(t, kube, cluster.virtNamespace, network)
	return cluster
}

func createKubeVirt(t *testing.T, kube client.Client, namespace, network string) {
	t.Helper()
	kv := &kubevirtv1.KubeVirt{ObjectMeta: metav1.ObjectMeta{Name: "kubevirt-hyperconverged", Namespace: namespace}}
	if network != "" {
		kv.Spec.Configuration.MigrationConfiguration = &kubevirtv1.MigrationConfiguration{Network: network}
	}
	if err := kube.Create(context.Background(), kv); err != nil {
		t.Fatal(err)
	}
}

func createSeedNAD(t *testing.T, kube client.Client, file, namespace string) {
	t.Helper()
	data, err := openshift.Files.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var nad cniv1.NetworkAttachmentDefinition
	if err := yaml.UnmarshalStrict(data, &nad); err != nil {
		t.Fatal(err)
	}
	nad.Namespace = namespace
	if err := kube.Create(context.Background(), &nad); err != nil {
		t.Fatal(err)
	}
}

func (c labCluster) setUp(t *testing.T, kube client.Client, node *netlab.Node) (migrationnet.Interface, error) {
	t.Helper()
	return migrationnet.Setup(context.Background(), kube, node, node.Name, c.virtNamespace, c.poolNamespace)
}

func (c labCluster) mustSetUp(t *testing.T, kube client.Client, node *netlab.Node, want string) {
	t.Helper()
	got, err := c.setUp(t, kube, node)
	if err != nil {
		t.Fatal(err)
	}
	wantInterface := migrationnet.Interface{Name: "migration0", Address: netip.MustParsePrefix(want), NAD: c.virtNamespace + "/" + seedMigrationNAD}
	if got != wantInterface {
		t.Errorf("%s: Setup = %+v, want %+v", node.Name, got, wantInterface)
	}
	requireMigrationLink(t, node, wantInterface.Address)
}

// requireMigrationLink checks migration0 in the node: an up macvlan on
// br-2001 with exactly the address wanted (link-local ones aside).
func requireMigrationLink(t *testing.T, node *netlab.Node, want netip.Prefix) {
	t.Helper()
	links, err := node.Links()
	if err != nil {
		t.Fatal(err)
	}
	index := slices.IndexFunc(links, func(link netlab.Link) bool { return link.Name == "migration0" })
	if index < 0 {
		t.Fatalf("%s has no migration0", node.Name)
	}
	link := links[index]
	addresses := slices.DeleteFunc(slices.Clone(link.Addresses), func(p netip.Prefix) bool { return p.Addr().IsLinkLocalUnicast() })
	if link.Type != "macvlan" || link.Parent != "br-2001" || !link.Up || !slices.Equal(addresses, []netip.Prefix{want}) {
		t.Errorf("%s: migration0 is %+v; want an up macvlan on br-2001 with only %v", node.Name, link, want)
	}
}

// newMigrationLab makes a lab of its own with the given nodes, destroyed
// when the test ends.
func newMigrationLab(t *testing.T, nodeNames ...string) map[string]*netlab.Node {
	t.Helper()
	testenv.RequireRoot(t, "it creates network namespaces")
	labID := fmt.Sprintf("mn-%08x", rand.Uint32())
	t.Cleanup(func() {
		if err := netlab.DestroyLab(labID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	fabric, err := netlab.CreateFabric(labID)
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*netlab.Node{}
	for _, name := range nodeNames {
		if nodes[name], err = fabric.AddNode(name); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// The seed's two clusters on one migration segment: each node agent gets
// migration0 from its cluster's NAD, and ocp7 reaches ocp1 over it.
func TestMigrationNetworkOnLabNodes(t *testing.T) {
	// Root before the namespaces the test makes in the shared cluster.
	testenv.RequireE2E(t)
	testenv.RequireRoot(t, "it creates network namespaces")
	kube := newIPAMClient(t, ipamRESTConfig(t))
	ocp7 := newLabCluster(t, kube, "ocp7", "ocp7.net-attach-def.yaml")
	ocp1 := newLabCluster(t, kube, "ocp1", "ocp1.net-attach-def.yaml")
	nodes := newMigrationLab(t, "ocp7-worker-0", "ocp7-worker-1", "ocp1-worker-0")

	// Before the NNCP: the bridge is missing, and no address is taken.
	_, err := ocp1.setUp(t, kube, nodes["ocp1-worker-0"])
	want := `bridge "br-2001" does not exist on node ocp1-worker-0: apply the NodeNetworkConfigurationPolicy that creates it, or fix the NAD's "bridge"`
	if err == nil || err.Error() != want {
		t.Fatalf("Setup without br-2001: %v\nwant: %s", err, want)
	}

	for _, node := range nodes {
		if err := node.CreateBridge("br-2001", netlab.MigrationUplink); err != nil {
			t.Fatal(err)
		}
	}
	ocp7.mustSetUp(t, kube, nodes["ocp7-worker-0"], "192.168.201.1/24")
	ocp7.mustSetUp(t, kube, nodes["ocp7-worker-1"], "192.168.201.2/24")
	// Whereabouts hands out the first address after an excluded block:
	// .128 is neither the network nor the broadcast address of the /24.
	ocp1.mustSetUp(t, kube, nodes["ocp1-worker-0"], "192.168.201.128/24")
	ocp7.mustSetUp(t, kube, nodes["ocp7-worker-0"], "192.168.201.1/24") // the node agent restarted

	requireTCPOverMigrationNetwork(t, nodes["ocp7-worker-0"], nodes["ocp1-worker-0"],
		netip.MustParseAddr("192.168.201.1"), netip.MustParseAddr("192.168.201.128"))

	// ocp7-worker-1 leaves the cluster.
	if err := migrationnet.Teardown(context.Background(), kube, nodes["ocp7-worker-1"], "ocp7-worker-1", ocp7.virtNamespace, ocp7.poolNamespace); err != nil {
		t.Fatal(err)
	}
	links, _ := nodes["ocp7-worker-1"].Links()
	if slices.ContainsFunc(links, func(link netlab.Link) bool { return link.Name == "migration0" }) {
		t.Error("migration0 is still on ocp7-worker-1 after Teardown")
	}
	ocp7Config := mustParseNAD(t, `{"type":"macvlan","bridge":"br-2001","ipam":{"type":"whereabouts","range":"192.168.201.0/24"}}`)
	pool := readPool(t, kube, ocp7.poolNamespace, ocp7Config)
	if !maps.Equal(pool, map[netip.Addr]string{netip.MustParseAddr("192.168.201.1"): "ocp7-worker-0"}) {
		t.Errorf("ocp7's pool after Teardown holds %v, want only ocp7-worker-0 at .1", pool)
	}
}

func TestMigrationNetworkNotConfigured(t *testing.T) {
	kube := newIPAMClient(t, ipamRESTConfig(t))
	cluster := newLabCluster(t, kube, "nomig", "")
	// No links are touched before the KubeVirt CR is read, so no lab is needed.
	_, err := migrationnet.Setup(context.Background(), kube, nil, "worker-0", cluster.virtNamespace, cluster.poolNamespace)
	if !errors.Is(err, migrationnet.ErrNoMigrationNetwork) {
		t.Errorf("got %v, want ErrNoMigrationNetwork", err)
	}
}

// requireTCPOverMigrationNetwork connects from one node's migration
// address to the other's and echoes a line.
func requireTCPOverMigrationNetwork(t *testing.T, from, to *netlab.Node, fromAddress, toAddress netip.Addr) {
	t.Helper()
	listener, err := to.Listen("tcp4", netip.AddrPortFrom(toAddress, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	peers := make(chan netip.Addr, 1)
	go echoOneLine(listener, peers)
	conn, err := from.Dial("tcp4", listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("over migration0\n")); err != nil {
		t.Fatal(err)
	}
	if reply, err := bufio.NewReader(conn).ReadString('\n'); err != nil || reply != "over migration0\n" {
		t.Fatalf("echo from %s: %q, %v", to.Name, reply, err)
	}
	if peer := <-peers; peer != fromAddress {
		t.Errorf("%s saw the connection come from %v, want %s's migration address %v", to.Name, peer, from.Name, fromAddress)
	}
}

// echoOneLine accepts one connection, reports its peer and echoes a line.
func echoOneLine(listener net.Listener, peers chan<- netip.Addr) {
	defer close(peers)
	conn, err := listener.Accept()
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	peers <- conn.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	if line, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
		_, _ = conn.Write([]byte(line))
	}
}
