package netlab_test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/testenv"
)

// The seed's names and addresses.
const (
	ocp7Node           = "ocp7-worker-0"
	ocp1Node           = "ocp1-worker-0"
	migrationBridge    = "br-2001"
	migrationInterface = "migration0"
)

var (
	migrationSubnet = netip.MustParsePrefix("192.168.201.0/24")
	ocp7Migration   = netip.MustParsePrefix("192.168.201.1/24")
	ocp1Migration   = netip.MustParsePrefix("192.168.201.129/24")
	// The VM segment's subnet in these tests (it exists only inside them).
	vmSubnet = netip.MustParsePrefix("192.168.150.0/24")
)

// newLab gives the test a lab of its own, with an ID no other lab (the
// user's, a parallel test's) has, destroyed when the test ends, failed or
// not; then nothing of it may remain.
func newLab(t *testing.T) *netlab.Fabric {
	t.Helper()
	labID := newLabID(t)
	fabric, err := netlab.CreateFabric(labID)
	if err != nil {
		t.Fatal(err)
	}
	return fabric
}

// newLabID is newLab without the fabric: it only arranges the cleanup.
func newLabID(t *testing.T) string {
	t.Helper()
	testenv.RequireE2E(t)
	testenv.RequireRoot(t, "the netlab integration tests create network namespaces and bind mounts")
	labID := fmt.Sprintf("t-%08x", rand.Uint32())
	hostLinksBefore := hostLinkNames(t)
	t.Cleanup(func() {
		if err := netlab.DestroyLab(labID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		requireNoNamespaces(t, labID)
		requireHostUntouched(t, hostLinksBefore)
	})
	return labID
}

func addNode(t *testing.T, fabric *netlab.Fabric, name string) *netlab.Node {
	t.Helper()
	node, err := fabric.AddNode(name)
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// applySeedMigrationNetwork does on a node what the seed's NNCP and NAD
// do: br-2001 with port enp2s0, STP off, and a bridge-mode macvlan on it.
func applySeedMigrationNetwork(t *testing.T, node *netlab.Node, address netip.Prefix) {
	t.Helper()
	steps := []func() error{
		func() error { return node.CreateBridge(migrationBridge, netlab.MigrationUplink) },
		func() error { return node.CreateMacvlan(migrationInterface, migrationBridge, "bridge", nil) },
		func() error { return node.AddAddress(migrationInterface, address) },
		func() error { return node.LinkUp(migrationInterface) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMigrationSegmentConnectsClusters(t *testing.T) {
	t.Parallel()
	fabric := newLab(t)
	ocp7 := addNode(t, fabric, ocp7Node)
	ocp1 := addNode(t, fabric, ocp1Node)
	applySeedMigrationNetwork(t, ocp7, ocp7Migration)
	applySeedMigrationNetwork(t, ocp1, ocp1Migration)
	applySeedMigrationNetwork(t, ocp7, ocp7Migration) // idempotent

	listener, err := ocp1.Listen("tcp4", netip.AddrPortFrom(ocp1Migration.Addr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	peer := serveEcho(listener)
	conn, err := ocp7.Dial("tcp4", listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	requireEcho(t, conn)
	if got := <-peer; got != ocp7Migration.Addr() {
		t.Errorf("ocp1 saw the connection come from %v, want %v", got, ocp7Migration.Addr())
	}

	requireLink(t, ocp7, migrationInterface, func(link netlab.Link) error {
		if link.Type != "macvlan" || link.Parent != migrationBridge || !link.Up || !slices.Contains(link.Addresses, ocp7Migration) {
			return fmt.Errorf("want an up macvlan on %s with %s", migrationBridge, ocp7Migration)
		}
		return nil
	})
	requireLink(t, ocp7, netlab.MigrationUplink, func(link netlab.Link) error {
		if link.Master != migrationBridge {
			return fmt.Errorf("want a port of %s", migrationBridge)
		}
		return nil
	})
	requireSTPOff(t, ocp7, migrationBridge)
	requireHostHasNoRouteTo(t, migrationSubnet)
}

func TestLinkOperationsExplainConflicts(t *testing.T) {
	t.Parallel()
	fabric := newLab(t)
	node := addNode(t, fabric, ocp7Node)
	applySeedMigrationNetwork(t, node, ocp7Migration)

	// Applying the NNCP again switches STP back off if someone turned it on.
	if output, err := exec.Command("ip", "-n", node.NetnsName(), "link", "set", migrationBridge, "type", "bridge", "stp_state", "1").CombinedOutput(); err != nil {
		t.Fatalf("turn STP on: %v\n%s", err, output)
	}
	if err := node.CreateBridge(migrationBridge, netlab.MigrationUplink); err != nil {
		t.Fatal(err)
	}
	requireSTPOff(t, node, migrationBridge)

	wantError(t, node.CreateBridge("br-x", "enp3s0"), `port "enp3s0" does not exist in node ocp7-worker-0`)
	wantError(t, node.CreateBridge("br-x", netlab.MigrationUplink), `"enp2s0" cannot join "br-x": it is already a port of "br-2001"`)
	wantError(t, node.CreateBridge(migrationInterface), `"migration0" exists in node ocp7-worker-0 as a macvlan, not a bridge`)
	wantError(t, node.CreateMacvlan(migrationInterface, netlab.VMBridge, "bridge", nil), "on another master")
	wantError(t, node.CreateMacvlan(migrationInterface, migrationBridge, "private", nil), "in mode bridge, not private")
	wantError(t, node.CreateMacvlan("mv1", migrationBridge, "vlan", nil), `mode "vlan" is not one of`)
	wantError(t, node.AddAddress(migrationInterface, netip.MustParsePrefix("192.168.201.1/25")), `already has 192.168.201.1/24`)
	wantError(t, node.CreateTap("tap0", "br-missing", 0), `bridge "br-missing" does not exist in node ocp7-worker-0`)
	wantError(t, node.CreateTap("tap-name-too-long", netlab.VMBridge, 0), "is not valid")
	if err := node.DeleteLink("no-such-link"); err != nil {
		t.Errorf("deleting a missing link: %v", err)
	}

	wantError(t, node.CreateMacvlan("mv1", netlab.VMUplink, "", nil), `master "vmuplink0" is a port of "br-vm"`)

	// A macvlan straight on a veth that is no bridge port works too.
	client, err := fabric.AddClient("client", netip.MustParsePrefix("192.168.150.10/24"))
	if err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{0x02, 0xcc, 0x1b, 0, 0, 1}
	for range 2 { // idempotent
		if err := client.CreateMacvlan("mv0", netlab.ClientInterface, "", mac); err != nil {
			t.Fatal(err)
		}
	}
	wantError(t, client.CreateMacvlan("mv0", netlab.ClientInterface, "", net.HardwareAddr{0x02, 0, 0, 0, 0, 2}), "with MAC 02:cc:1b:00:00:01")
}

func TestVMSegmentIsSharedByBothClusters(t *testing.T) {
	t.Parallel()
	fabric := newLab(t)
	ocp7 := addNode(t, fabric, ocp7Node)
	ocp1 := addNode(t, fabric, ocp1Node)
	const tapName = "tap-vm1"
	for range 2 { // idempotent
		if err := ocp7.CreateTap(tapName, netlab.VMBridge, 0); err != nil {
			t.Fatal(err)
		}
	}
	requireLink(t, ocp7, tapName, func(link netlab.Link) error {
		if link.Type != "tap" || link.Master != netlab.VMBridge || !link.Up {
			return fmt.Errorf("want an up tap in %s", netlab.VMBridge)
		}
		return nil
	})
	client, err := fabric.AddClient("client", netip.MustParsePrefix("192.168.150.10/24"))
	if err != nil {
		t.Fatal(err)
	}
	fakeVM, err := fabric.AddFakeVM("fake-vm", ocp1, netip.MustParsePrefix("192.168.150.20/24"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("client reaches a VM stand-in in ocp1's br-vm over TCP", func(t *testing.T) {
		listener, err := fakeVM.Listen("tcp4", "192.168.150.20:0")
		if err != nil {
			t.Fatal(err)
		}
		defer listener.Close()
		serveEcho(listener)
		conn, err := client.Dial("tcp4", listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		requireEcho(t, conn)
	})
	t.Run("client's ARP reaches the tap in ocp7's br-vm", func(t *testing.T) {
		tap := openTap(t, ocp7, tapName)
		defer tap.Close()
		requireARPSeenOnTap(t, client, tap, netip.MustParseAddr("192.168.150.30"))
	})

	if err := ocp7.DeleteLink(tapName); err != nil {
		t.Fatal(err)
	}
	if links, err := ocp7.Links(); err != nil || slices.ContainsFunc(links, func(l netlab.Link) bool { return l.Name == tapName }) {
		t.Errorf("tap still listed after DeleteLink (err=%v)", err)
	}
	requireHostHasNoRouteTo(t, vmSubnet)
}

func TestStartProcessRunsInTheNode(t *testing.T) {
	t.Parallel()
	fabric := newLab(t)
	node := addNode(t, fabric, ocp7Node)

	sleep := exec.Command("sleep", "60")
	if err := node.StartProcess(sleep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before the lab's cleanup: the process pins the namespace
		_ = sleep.Process.Kill()
		_ = sleep.Wait()
	})
	childNamespace := inode(t, fmt.Sprintf("/proc/%d/ns/net", sleep.Process.Pid))
	if want := inode(t, node.Path()); childNamespace != want {
		t.Errorf("child's network namespace is inode %d, the node's is %d", childNamespace, want)
	}
	if host := inode(t, "/proc/self/ns/net"); childNamespace == host {
		t.Error("child runs in the host's network namespace")
	}

	var output bytes.Buffer
	ipLink := exec.Command("ip", "-o", "link")
	ipLink.Stdout, ipLink.Stderr = &output, &output
	if err := node.StartProcess(ipLink); err != nil {
		t.Fatal(err)
	}
	if err := ipLink.Wait(); err != nil {
		t.Fatalf("ip -o link: %v\n%s", err, output.String())
	}
	for _, want := range []string{netlab.MigrationUplink, netlab.VMBridge, netlab.VMUplink} {
		if !strings.Contains(output.String(), " "+want+"@") && !strings.Contains(output.String(), " "+want+":") {
			t.Errorf("ip -o link in the node does not list %s:\n%s", want, output.String())
		}
	}
}

func TestDoReturnsTheThreadToTheHost(t *testing.T) {
	t.Parallel()
	fabric := newLab(t)
	node := addNode(t, fabric, ocp7Node)

	runtime.LockOSThread() // to look at the same thread before and after
	defer runtime.UnlockOSThread()
	before := currentNamespace(t)
	defer before.Close()
	err := node.Do(func() error {
		inside := currentNamespace(t)
		defer inside.Close()
		if inside.Equal(before) {
			return fmt.Errorf("fn runs in the caller's namespace")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	requireSameNamespace(t, before, "Do left the thread in the node's namespace")

	func() {
		defer func() { _ = recover() }()
		_ = node.Do(func() error { panic("fn fails badly") })
	}()
	requireSameNamespace(t, before, "a panicking fn left the thread in the node's namespace")

	gone := &netlab.Node{Namespace: node.Namespace, LabID: node.LabID, Name: node.Name}
	if err := gone.Remove(); err != nil {
		t.Fatal(err)
	}
	wantError(t, node.Do(func() error { return nil }), "node ocp7-worker-0 does not exist")
}

func TestDestroyLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	fabric := newLab(t)
	labID := fabric.LabID
	for _, name := range []string{ocp7Node, ocp1Node} {
		node := addNode(t, fabric, name)
		applySeedMigrationNetwork(t, node, ocp7Migration)
		if err := node.CreateTap("tap0", netlab.VMBridge, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fabric.AddClient("client", netip.MustParsePrefix("192.168.150.10/24")); err != nil {
		t.Fatal(err)
	}

	// Reattach as another process would; remove and re-add a node at once.
	reopened, err := netlab.OpenFabric(labID)
	if err != nil {
		t.Fatal(err)
	}
	node, err := netlab.OpenNode(labID, ocp1Node)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Remove(); err != nil {
		t.Fatal(err)
	}
	wantError(t, func() error { _, err := netlab.OpenNode(labID, ocp1Node); return err }(), "has no node ocp1-worker-0")
	requireNoFabricPorts(t, reopened, ocp1Node)
	addNode(t, reopened, ocp1Node)
	names, err := reopened.NodeNames()
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{"client", ocp1Node, ocp7Node}) {
		t.Errorf("NodeNames = %v, %v", names, err)
	}

	if err := reopened.Destroy(); err != nil {
		t.Fatal(err)
	}
	requireNoNamespaces(t, labID)
	if _, err := netlab.OpenFabric(labID); err == nil {
		t.Error("OpenFabric found the destroyed lab")
	}
}

func TestDestroyLabCleansUpAfterACrash(t *testing.T) {
	t.Parallel()
	labID := newLabID(t)
	neighbourID := newLabID(t)
	for _, id := range []string{labID, neighbourID} {
		fabric, err := netlab.CreateFabric(id)
		if err != nil {
			t.Fatal(err)
		}
		addNode(t, fabric, ocp7Node)
	}
	// A crash between creating a namespace's mount point and mounting it
	// leaves an empty file.
	stale := "/run/netns/cclm." + labID + ".stale"
	if err := os.WriteFile(stale, nil, 0o444); err != nil {
		t.Fatal(err)
	}

	if err := netlab.DestroyLab(labID); err != nil { // from names alone
		t.Fatal(err)
	}
	requireNoNamespaces(t, labID)
	if _, err := netlab.OpenNode(neighbourID, ocp7Node); err != nil {
		t.Errorf("destroying lab %s touched lab %s: %v", labID, neighbourID, err)
	}
	if err := netlab.DestroyLab(labID); err != nil {
		t.Errorf("destroying a lab that is gone: %v", err)
	}
}

// serveEcho accepts one connection, echoes one line and reports the
// peer's address.
func serveEcho(listener net.Listener) <-chan netip.Addr {
	peer := make(chan netip.Addr, 1)
	go func() {
		defer close(peer)
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		peer <- conn.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err == nil {
			_, _ = conn.Write([]byte(line))
		}
	}()
	return peer
}

func requireEcho(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("hello over the lab\n")); err != nil {
		t.Fatal(err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || reply != "hello over the lab\n" {
		t.Fatalf("echo: got %q, %v", reply, err)
	}
}

// openTap attaches to a persistent tap as QEMU does: the tap is found by
// name in the namespace of the thread that opens /dev/net/tun.
func openTap(t *testing.T, node *netlab.Node, name string) *os.File {
	t.Helper()
	var tap *os.File
	err := node.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		request, err := unix.NewIfreq(name)
		if err == nil {
			request.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, request)
		}
		if err == nil {
			// Non-blocking before os.NewFile, so reads honour deadlines.
			err = unix.SetNonblock(fd, true)
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("attach to tap %s: %w", name, err)
		}
		tap = os.NewFile(uintptr(fd), name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tap
}

// requireARPSeenOnTap makes from send datagrams to target, which nobody
// has, and waits for the resulting ARP request to arrive on the tap.
func requireARPSeenOnTap(t *testing.T, from *netlab.Node, tap *os.File, target netip.Addr) {
	t.Helper()
	sender, err := from.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	destination := net.UDPAddrFromAddrPort(netip.AddrPortFrom(target, 9))
	deadline := time.Now().Add(10 * time.Second)
	frame := make([]byte, 2048)
	for time.Now().Before(deadline) {
		_, _ = sender.WriteTo([]byte("who is there"), destination)
		_ = tap.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, err := tap.Read(frame)
			if err != nil {
				break // deadline: send again
			}
			if isARPRequestFor(frame[:n], target) {
				return
			}
		}
	}
	t.Fatalf("no ARP request for %s arrived on the tap", target)
}

func isARPRequestFor(frame []byte, target netip.Addr) bool {
	const etherTypeARP, arpRequest = 0x0806, 1
	if len(frame) < 42 || int(frame[12])<<8|int(frame[13]) != etherTypeARP {
		return false
	}
	arp := frame[14:]
	return int(arp[6])<<8|int(arp[7]) == arpRequest && netip.AddrFrom4([4]byte(arp[24:28])) == target
}

func requireLink(t *testing.T, node *netlab.Node, name string, check func(netlab.Link) error) {
	t.Helper()
	links, err := node.Links()
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range links {
		if link.Name == name {
			if err := check(link); err != nil {
				t.Errorf("%s in %s: %v; it is %+v", name, node, err, link)
			}
			return
		}
	}
	t.Errorf("%s is not in %s", name, node)
}

// requireSTPOff looks with iproute2, independently of netlab's own code.
func requireSTPOff(t *testing.T, node *netlab.Node, bridge string) {
	t.Helper()
	output, err := exec.Command("ip", "-n", node.NetnsName(), "-d", "link", "show", bridge).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -d link show %s: %v\n%s", bridge, err, output)
	}
	if !strings.Contains(string(output), "stp_state 0") {
		t.Errorf("STP is not off on %s:\n%s", bridge, output)
	}
}

func requireNoFabricPorts(t *testing.T, fabric *netlab.Fabric, node string) {
	t.Helper()
	links, err := fabric.Links()
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range links {
		if slices.Contains(netlab.FabricPortNames(fabric.LabID, node), link.Name) {
			t.Errorf("the fabric still has %s's port %s", node, link.Name)
		}
	}
}

// requireNoNamespaces checks /run/netns for any namespace of the lab.
func requireNoNamespaces(t *testing.T, labID string) {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, entry := range entries {
		name := entry.Name()
		if name == "cclm."+labID || strings.HasPrefix(name, "cclm."+labID+".") {
			t.Errorf("namespace %s is left behind", name)
		}
	}
}

func hostLinkNames(t *testing.T) []string {
	t.Helper()
	interfaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(interfaces))
	for _, iface := range interfaces {
		names = append(names, iface.Name)
	}
	return names
}

// requireHostUntouched checks that no link the lab makes showed up in the
// host's namespace. (Other links may come and go: other tests run too.)
func requireHostUntouched(t *testing.T, before []string) {
	t.Helper()
	labNames := []string{netlab.MigrationUplink, netlab.VMBridge, netlab.VMUplink, migrationBridge,
		migrationInterface, "br-migration", "br-vmnet", "tap0", "tap-vm1"}
	for _, name := range hostLinkNames(t) {
		isNew := !slices.Contains(before, name)
		isLabs := slices.Contains(labNames, name) || strings.HasPrefix(name, "mig-") || strings.HasPrefix(name, "vm-")
		if isNew && isLabs {
			t.Errorf("the lab's link %s appeared in the host's namespace", name)
		}
	}
}

// requireHostHasNoRouteTo checks the host's routes and addresses: the lab's
// subnets must exist only inside its namespaces.
func requireHostHasNoRouteTo(t *testing.T, subnet netip.Prefix) {
	t.Helper()
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range routes {
		if route.Dst == nil {
			continue // the default route
		}
		destination, ok := netipPrefix(route.Dst)
		if ok && destination.Bits() > 0 && destination.Overlaps(subnet) {
			t.Errorf("the host has a route to %s: %s", subnet, route)
		}
	}
	addresses, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, address := range addresses {
		if prefix, ok := netipPrefix(address.IPNet); ok && subnet.Contains(prefix.Addr()) {
			t.Errorf("the host has the address %s", prefix)
		}
	}
}

func netipPrefix(ipNet *net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(ipNet.IP)
	bits, _ := ipNet.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), bits), ok
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

func requireSameNamespace(t *testing.T, want netns.NsHandle, complaint string) {
	t.Helper()
	now := currentNamespace(t)
	defer now.Close()
	if !now.Equal(want) {
		t.Fatal(complaint)
	}
}

func currentNamespace(t *testing.T) netns.NsHandle {
	t.Helper()
	handle, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	return handle
}

func wantError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want one saying %q", err, want)
	}
}
