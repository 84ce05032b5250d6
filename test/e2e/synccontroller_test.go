package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/ipam"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/migrationnet"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/synccontroller"
	"github.com/cclm-io/cclm/internal/testenv"
)

// The synchronization controllers of the seed's two clusters, each on a
// real control plane of its own, talking gRPC over mutual TLS across a lab
// migration segment: each runs in a network namespace of its own with
// migration0 from its cluster's NAD (ocp7 allocates from .0/25, ocp1 from
// .128/25), as its ServiceAccount with exactly synccontroller.Component's
// rights. No node agents run: the test writes what they would into the
// VMIs' status. ocp7 runs two replicas, ocp1 one.

const (
	// scDeadline is the controllers' PeerDeadline here.
	scDeadline = 12 * time.Second
	// scHolderID holds the controller's migration address in whereabouts,
	// apart from the node agents' node names.
	scHolderID = "virt-synchronization-controller"
	// scTargetNodeAddress is what the target's node agent would listen on.
	scTargetNodeAddress = "192.168.201.129"
)

type scEnv struct {
	ocp7, ocp1 *scCluster
}

// scCluster is one cluster and its synchronization controller.
type scCluster struct {
	name      string
	admin     client.Client
	clientset kubernetes.Interface
	asSync    *rest.Config
	token     string // the controller's, to prove it is never logged
	node      *netlab.Node
	ip        string
	address   string // host:port, as published
	workloads string // namespace of the test's VMIs and VMIMs
	logs      *scLogs
	replicas  []*scReplica
}

func TestSyncController(t *testing.T) {
	env := newSCEnv(t)
	t.Run("AddressesArePublished", env.testAddressesPublished)
	t.Run("UntrustedPeersAreRefusedUntilTheCAsAreExchanged", env.testTrust)
	t.Run("StatusesAreExchanged", env.testExchange)
	t.Run("DeletingOneSideCancelsTheOther", env.testCancel)
	t.Run("AnotherReplicaTakesOverFromTheLeader", env.testFailover)
	t.Run("SilentPeerFailsTheMigrationAtTheDeadline", env.testSilentPeer)
}

func newSCEnv(t *testing.T) *scEnv {
	// The gates come first: the fabric below is made before the first
	// cluster starts (and so before Clusters.Get's own gate).
	testenv.RequireE2E(t)
	testenv.RequireRoot(t, "it creates network namespaces")
	testenv.RequireKubeBinaries(t)
	labID := fmt.Sprintf("sc-%08x", rand.Uint32())
	t.Cleanup(func() {
		if err := netlab.DestroyLab(labID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	fabric, err := netlab.CreateFabric(labID)
	if err != nil {
		t.Fatal(err)
	}
	env := &scEnv{
		ocp7: newSCCluster(t, fabric, "ocp7", "ocp7.net-attach-def.yaml", "192.168.201.1"),
		ocp1: newSCCluster(t, fabric, "ocp1", "ocp1.net-attach-def.yaml", "192.168.201.128"),
	}
	env.ocp1.startReplica(t)
	env.ocp7.startReplica(t)
	env.ocp7.waitLeader(t)
	env.ocp1.waitLeader(t)
	env.ocp7.startReplica(t) // the standby
	return env
}

// newSCCluster starts the cluster, installs KubeVirt, its CA, the seed's
// NAD and the controller's account, and gives the controller's network
// namespace migration0.
func newSCCluster(t *testing.T, fabric *netlab.Fabric, name, nadFile, wantIP string) *scCluster {
	adminConfig, err := clusters.Get(t, "sync-"+name).RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = install.KubeVirt(ctx, adminConfig, install.KubeVirtOptions{
		Namespace: virtNamespace, FeatureGates: []string{"DecentralizedLiveMigration"}, MigrationNetwork: seedMigrationNAD,
	})
	if err == nil {
		err = install.MigrationPKI(ctx, adminConfig, virtNamespace)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &scCluster{name: name, admin: newIPAMClient(t, adminConfig), clientset: kubernetes.NewForConfigOrDie(adminConfig), ip: wantIP,
		address: net.JoinHostPort(wantIP, "9185"), logs: &scLogs{}}
	c.ensureSeedNAD(t, nadFile)
	c.forgetEarlierRuns(t)
	c.workloads = createTestNamespace(t, c.admin, "sync-"+name)
	c.setUpNetwork(t, fabric)
	c.installAccount(t, adminConfig)
	t.Cleanup(func() { c.logs.dumpIfFailed(t, name) })
	return c
}

func (c *scCluster) ensureSeedNAD(t *testing.T, file string) {
	err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: virtNamespace, Name: seedMigrationNAD}, &cniv1.NetworkAttachmentDefinition{})
	if kerrors.IsNotFound(err) {
		createSeedNAD(t, c.admin, file, virtNamespace)
	} else if err != nil {
		t.Fatal(err)
	}
}

// forgetEarlierRuns undoes what an earlier run (-count) left in the shared
// cluster: imported CAs and the published address.
func (c *scCluster) forgetEarlierRuns(t *testing.T) {
	ctx := context.Background()
	external := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: virtNamespace, Name: install.ExternalCAConfigMap}}
	if err := c.admin.Delete(ctx, external); err != nil && !kerrors.IsNotFound(err) {
		t.Fatal(err)
	}
	kv := c.kubeVirt(t)
	published := kv.DeepCopy()
	published.Status.SynchronizationAddresses = nil
	if err := c.admin.Status().Patch(ctx, published, client.MergeFrom(kv)); err != nil {
		t.Fatal(err)
	}
}

// setUpNetwork makes the controller's namespace: br-2001 on the migration
// uplink, as on a worker, and migration0 from the cluster's NAD.
func (c *scCluster) setUpNetwork(t *testing.T, fabric *netlab.Fabric) {
	node, err := fabric.AddNode(c.name + "-sync")
	if err == nil {
		err = node.CreateBridge("br-2001", netlab.MigrationUplink)
	}
	if err != nil {
		t.Fatal(err)
	}
	iface, err := migrationnet.Setup(context.Background(), c.admin, node, scHolderID, virtNamespace, ipam.DefaultPoolNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if got := iface.Address.Addr().String(); got != c.ip {
		t.Fatalf("%s's sync controller got migration address %s, want %s", c.name, got, c.ip)
	}
	c.node = node
}

func (c *scCluster) installAccount(t *testing.T, adminConfig *rest.Config) {
	kubeconfig, err := install.InstallComponent(context.Background(), adminConfig, virtNamespace, synccontroller.Component)
	if err != nil {
		t.Fatal(err)
	}
	if c.asSync, err = clientcmd.NewDefaultClientConfig(*kubeconfig, nil).ClientConfig(); err != nil {
		t.Fatal(err)
	}
	c.token = c.asSync.BearerToken
}

// scReplica is one running controller.
type scReplica struct {
	name   string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (c *scCluster) startReplica(t *testing.T) *scReplica {
	ctx, cancel := context.WithCancel(context.Background())
	r := &scReplica{name: fmt.Sprintf("%s-sync-%d", c.name, len(c.replicas)), cancel: cancel, done: make(chan error, 1)}
	opts := synccontroller.Options{
		VirtNamespace: virtNamespace, ListenAddress: c.ip,
		Listen: c.node.Listen, Dial: c.node.DialContext,
		PeerDeadline: scDeadline, LeaderElection: true, ClusterName: c.name,
		Logger: c.logs.logger(r.name),
	}
	go func() { r.done <- synccontroller.Run(ctx, c.asSync, opts) }()
	c.replicas = append(c.replicas, r)
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the replica, as a pod's SIGTERM would, and waits for it.
func (r *scReplica) stop(t *testing.T) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("%s ended with: %v", r.name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30s of its context's cancellation", r.name)
		}
	})
}

func (c *scCluster) leaseHolder(t *testing.T) string {
	lease, err := c.clientset.CoordinationV1().Leases(virtNamespace).Get(context.Background(), synccontroller.LeaderElectionID, metav1.GetOptions{})
	if kerrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return scDeref(lease.Spec.HolderIdentity)
}

// waitLeader waits for a leader that publishes its address.
func (c *scCluster) waitLeader(t *testing.T) {
	scWait(t, c.name+"'s sync controller to lead and publish "+c.address, 60*time.Second, func() (bool, string) {
		kv := c.kubeVirt(t)
		holder := c.leaseHolder(t)
		return holder != "" && scSameAddresses(kv.Status.SynchronizationAddresses, c.address),
			fmt.Sprintf("lease holder %q, KubeVirt status.synchronizationAddresses %q", holder, kv.Status.SynchronizationAddresses)
	})
}

func (c *scCluster) kubeVirt(t *testing.T) *kubevirtv1.KubeVirt {
	kv := &kubevirtv1.KubeVirt{}
	if err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: virtNamespace, Name: install.KubeVirtName}, kv); err != nil {
		t.Fatal(err)
	}
	return kv
}

func (e *scEnv) testAddressesPublished(t *testing.T) {
	for _, c := range []*scCluster{e.ocp7, e.ocp1} {
		if got := c.kubeVirt(t).Status.SynchronizationAddresses; !scSameAddresses(got, c.address) {
			t.Errorf("%s: KubeVirt status.synchronizationAddresses = %q, want [%s]", c.name, got, c.address)
		}
	}
}

// testTrust: without each other's CA the controllers refuse each other
// with a line that says what to import where; importing the CAs (the
// seed's manual step) works without a restart.
func (e *scEnv) testTrust(t *testing.T) {
	e.startPair(t, "trust-a")
	e.ocp7.waitRefusal(t, regexp.MustCompile(`^refused the synchronization controller at 192\.168\.201\.128:9185: `+
		`certificate signed by unknown authority "kubevirt-ca@openshift-cnv \(ocp1\)"; import its CA into ConfigMap kubevirt-external-ca$`))

	// ocp7 trusts ocp1 now, but ocp1 not ocp7: ocp1's server refuses.
	scImportCA(t, e.ocp1, e.ocp7)
	e.startPair(t, "trust-b")
	e.ocp1.waitRefusal(t, regexp.MustCompile(`^refused connection from 192\.168\.201\.1:\d+: `+
		`certificate signed by unknown authority "kubevirt-ca@openshift-cnv \(ocp7\)"; import its CA into ConfigMap kubevirt-external-ca$`))
	e.ocp7.waitLog(t, regexp.MustCompile(`refused this cluster's certificate .*: import this cluster's CA \(ConfigMap kubevirt-ca, key ca-bundle\) into the peer's ConfigMap kubevirt-external-ca`))

	scImportCA(t, e.ocp7, e.ocp1)
	imported := time.Now()
	e.waitExchanged(t, e.startPair(t, "trust-c"))
	t.Logf("first exchange %s after the CA import, without a restart", time.Since(imported).Round(time.Millisecond))

	for _, c := range []*scCluster{e.ocp7, e.ocp1} {
		c.logs.requireNoSecrets(t, c.name, "PRIVATE KEY", c.token)
	}
}

// testExchange: each side's VMI gets the peer's half, the VMIMs the
// address, and the target's completion reaches the source.
func (e *scEnv) testExchange(t *testing.T) {
	began := time.Now()
	p := e.startPair(t, "exchange")
	e.waitExchanged(t, p)
	t.Logf("both halves exchanged %s after the VMIMs were created", time.Since(began).Round(time.Millisecond))
	for _, side := range []scSide{p.source, p.target} {
		m := side.cluster.vmim(t, side.vmim.Name)
		if !scSameAddresses(m.Status.SynchronizationAddresses, side.cluster.address) {
			t.Errorf("%s: VMIM %s status.synchronizationAddresses = %q, want [%s]", side.cluster.name, m.Name, m.Status.SynchronizationAddresses, side.cluster.address)
		}
	}

	completedAt := time.Now()
	p.target.cluster.writeStatus(t, p.target.vmi.Name, func(status *kubevirtv1.VirtualMachineInstanceStatus) {
		status.MigrationState.Completed = true
		status.MigrationState.EndTimestamp = scPtr(metav1.NewTime(completedAt.Truncate(time.Second)))
	})
	scWait(t, "the source to learn the target completed", 20*time.Second, func() (bool, string) {
		state := p.source.cluster.vmi(t, p.source.vmi.Name).Status.MigrationState
		return state.Completed, fmt.Sprintf("source migrationState: %s", scJSON(state))
	})
	t.Logf("the target's completion reached the source in %s", time.Since(completedAt).Round(time.Millisecond))
}

// testCancel: deleting the target's VMIM aborts the source's side.
func (e *scEnv) testCancel(t *testing.T) {
	p := e.startPair(t, "cancel")
	e.waitExchanged(t, p)
	deleted := time.Now()
	if err := p.target.cluster.admin.Delete(context.Background(), p.target.vmim); err != nil {
		t.Fatal(err)
	}
	scWait(t, "the source's side to be aborted", 20*time.Second, func() (bool, string) {
		state := p.source.cluster.vmi(t, p.source.vmi.Name).Status.MigrationState
		return state.AbortRequested && state.FailureReason == synccontroller.CancelledByPeerReason, "source migrationState: " + scJSON(state)
	})
	t.Logf("the cancel reached the source in %s", time.Since(deleted).Round(time.Millisecond))
	p.source.cluster.waitEvent(t, p.source.cluster.workloads, p.source.vmim.Name, "CancelledByPeer", regexp.MustCompile(`the peer cluster cancelled migration`))
}

// testFailover: the standby replica takes the Lease when the leader stops,
// serves at the same address and pushes.
func (e *scEnv) testFailover(t *testing.T) {
	c := e.ocp7
	leader := c.leaseHolder(t)
	stopped := time.Now()
	c.replicas[0].stop(t) // started first and waited for: the leader
	var next string
	scWait(t, "another replica to take the lease", 30*time.Second, func() (bool, string) {
		next = c.leaseHolder(t)
		return next != "" && next != leader, "holder " + next
	})
	tookOver := time.Since(stopped)
	e.waitExchanged(t, e.startPair(t, "failover"))
	t.Logf("lease passed from %s to %s in %s; first exchange through the new leader %s after the old one stopped",
		leader, next, tookOver.Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
}

// testSilentPeer: with the target's controller gone, the source's side
// fails at the deadline, saying whom it waited for.
func (e *scEnv) testSilentPeer(t *testing.T) {
	p := e.startPair(t, "silent")
	e.waitExchanged(t, p)
	for _, r := range e.ocp1.replicas {
		r.stop(t)
	}
	stopped := time.Now()
	var reason string
	scWait(t, "the source's side to fail", scDeadline+20*time.Second, func() (bool, string) {
		state := p.source.cluster.vmi(t, p.source.vmi.Name).Status.MigrationState
		reason = state.FailureReason
		return state.Failed, "source migrationState: " + scJSON(state)
	})
	elapsed := time.Since(stopped)
	t.Logf("failed %s after the peer stopped (deadline %s): %s", elapsed.Round(time.Millisecond), scDeadline, reason)
	if !strings.Contains(reason, "synchronization controller at "+e.ocp1.address) {
		t.Errorf("the reason %q does not name the peer %s", reason, e.ocp1.address)
	}
	if elapsed > scDeadline+5*time.Second {
		t.Errorf("failed %s after the peer stopped; the deadline is %s", elapsed, scDeadline)
	}
	p.source.cluster.waitEvent(t, p.source.cluster.workloads, p.source.vmim.Name, "SynchronizationPeerSilent", regexp.MustCompile(regexp.QuoteMeta(e.ocp1.address)))
}

// scPair is one decentralized migration: a source side on ocp7 and a
// target side on ocp1 with the same migration ID.
type scPair struct {
	id             string
	source, target scSide
}

type scSide struct {
	cluster *scCluster
	vmi     *kubevirtv1.VirtualMachineInstance
	vmim    *kubevirtv1.VirtualMachineInstanceMigration
}

// startPair makes the VMIs as the agents would report them (a running
// source, a receiver waiting for sync), then the target VMIM and the source
// VMIM, in the toolkit's order.
func (e *scEnv) startPair(t *testing.T, base string) scPair {
	name := fmt.Sprintf("%s-%04x", base, rand.Uint32N(1<<16))
	p := scPair{id: name + "-id"}
	p.source = scSide{cluster: e.ocp7, vmi: e.ocp7.createVMI(t, name, scRunningSource())}
	p.target = scSide{cluster: e.ocp1, vmi: e.ocp1.createVMI(t, name, scWaitingTarget())}
	p.target.vmim = e.ocp1.createVMIM(t, name+"-in", name, func(spec *kubevirtv1.VirtualMachineInstanceMigrationSpec) {
		spec.Receive = &kubevirtv1.VirtualMachineInstanceMigrationTarget{MigrationID: p.id}
	})
	p.source.vmim = e.ocp7.createVMIM(t, name+"-out", name, func(spec *kubevirtv1.VirtualMachineInstanceMigrationSpec) {
		spec.SendTo = &kubevirtv1.VirtualMachineInstanceMigrationSource{MigrationID: p.id, ConnectURL: e.ocp1.address}
	})
	return p
}

var scHostModel = map[string]string{"cpu-model-migration.node.kubevirt.io/Haswell": "true"}

func scRunningSource() kubevirtv1.VirtualMachineInstanceStatus {
	return kubevirtv1.VirtualMachineInstanceStatus{
		Phase: kubevirtv1.Running, NodeName: "ocp7-worker-0",
		MigrationState: &kubevirtv1.VirtualMachineInstanceMigrationState{
			SourceNode:  "ocp7-worker-0",
			SourceState: &kubevirtv1.VirtualMachineInstanceMigrationSourceState{NodeSelectors: scHostModel},
		},
	}
}

// scWaitingTarget: the target's node agent writes the flat fields only;
// the controller derives targetState from them.
func scWaitingTarget() kubevirtv1.VirtualMachineInstanceStatus {
	ready := metav1.NewTime(time.Now().Truncate(time.Second))
	return kubevirtv1.VirtualMachineInstanceStatus{
		Phase: kubevirtv1.WaitingForSync, NodeName: "ocp1-worker-0",
		MigrationState: &kubevirtv1.VirtualMachineInstanceMigrationState{
			TargetNode: "ocp1-worker-0", TargetNodeAddress: scTargetNodeAddress,
			TargetDirectMigrationNodePorts: map[string]int{"49152": 0, "49153": 1},
			TargetNodeDomainDetected:       true, TargetNodeDomainReadyTimestamp: &ready,
		},
	}
}

// waitExchanged waits until each side's VMI holds the other's half.
func (e *scEnv) waitExchanged(t *testing.T, p scPair) {
	t.Helper()
	wantSource := scCommonHalf(p.source)
	scWait(t, "ocp1's VMI "+p.target.vmi.Name+" to hold the source's half", 30*time.Second, func() (bool, string) {
		state := p.target.cluster.vmi(t, p.target.vmi.Name).Status.MigrationState
		if state == nil || state.SourceState == nil {
			return false, "no sourceState"
		}
		want := kubevirtv1.VirtualMachineInstanceMigrationSourceState{VirtualMachineInstanceCommonMigrationState: wantSource, NodeSelectors: scHostModel}
		return equality.Semantic.DeepEqual(*state.SourceState, want), fmt.Sprintf("sourceState %s, want %s", scJSON(state.SourceState), scJSON(want))
	})
	wantTarget := kubevirtv1.VirtualMachineInstanceMigrationTargetState{
		VirtualMachineInstanceCommonMigrationState: scCommonHalf(p.target),
		NodeAddress:              scPtr(scTargetNodeAddress),
		DirectMigrationNodePorts: map[string]int{"49152": 0, "49153": 1},
		DomainDetected:           true,
		DomainReadyTimestamp:     p.target.vmi.Status.MigrationState.TargetNodeDomainReadyTimestamp,
	}
	scWait(t, "ocp7's VMI "+p.source.vmi.Name+" to hold the target's half", 30*time.Second, func() (bool, string) {
		state := p.source.cluster.vmi(t, p.source.vmi.Name).Status.MigrationState
		if state == nil || state.TargetState == nil {
			return false, "no targetState"
		}
		flat := state.TargetNode == "ocp1-worker-0" && state.TargetNodeAddress == scTargetNodeAddress &&
			state.TargetNodeDomainDetected && len(state.TargetDirectMigrationNodePorts) == 2
		return flat && equality.Semantic.DeepEqual(*state.TargetState, wantTarget), fmt.Sprintf("migrationState %s, want targetState %s and the flat target fields", scJSON(state), scJSON(wantTarget))
	})
}

// scCommonHalf is what a side's half must say: its node, its VMIM, its
// controller's address and its VMI.
func scCommonHalf(side scSide) kubevirtv1.VirtualMachineInstanceCommonMigrationState {
	return kubevirtv1.VirtualMachineInstanceCommonMigrationState{
		Node:                      side.vmi.Status.NodeName,
		MigrationUID:              side.vmim.UID,
		SyncAddress:               scPtr(side.cluster.address),
		VirtualMachineInstanceUID: scPtr(side.vmi.UID),
		DomainName:                scPtr(side.vmi.Name),
		DomainNamespace:           scPtr(side.vmi.Namespace),
	}
}

func (c *scCluster) createVMI(t *testing.T, name string, status kubevirtv1.VirtualMachineInstanceStatus) *kubevirtv1.VirtualMachineInstance {
	memory := resource.MustParse("64Mi")
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.workloads},
		Spec:       kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Memory: &kubevirtv1.Memory{Guest: &memory}}},
	}
	if err := c.admin.Create(context.Background(), vmi); err != nil {
		t.Fatal(err)
	}
	vmi.Status = status
	if err := c.admin.Status().Update(context.Background(), vmi); err != nil {
		t.Fatal(err)
	}
	return vmi
}

func (c *scCluster) createVMIM(t *testing.T, name, vmiName string, side func(*kubevirtv1.VirtualMachineInstanceMigrationSpec)) *kubevirtv1.VirtualMachineInstanceMigration {
	m := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.workloads},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: vmiName},
	}
	side(&m.Spec)
	if err := c.admin.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (c *scCluster) vmi(t *testing.T, name string) *kubevirtv1.VirtualMachineInstance {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: c.workloads, Name: name}, vmi); err != nil {
		t.Fatal(err)
	}
	return vmi
}

func (c *scCluster) vmim(t *testing.T, name string) *kubevirtv1.VirtualMachineInstanceMigration {
	m := &kubevirtv1.VirtualMachineInstanceMigration{}
	if err := c.admin.Get(context.Background(), client.ObjectKey{Namespace: c.workloads, Name: name}, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// writeStatus changes a VMI's status as its node agent would, with a
// merge patch so that the controller's writes are kept.
func (c *scCluster) writeStatus(t *testing.T, name string, change func(*kubevirtv1.VirtualMachineInstanceStatus)) {
	vmi := c.vmi(t, name)
	updated := vmi.DeepCopy()
	change(&updated.Status)
	if err := c.admin.Status().Patch(context.Background(), updated, client.MergeFrom(vmi)); err != nil {
		t.Fatal(err)
	}
}

// importCA appends from's CA bundle to to's ConfigMap kubevirt-external-ca,
// the seed's manual step.
func scImportCA(t *testing.T, from, to *scCluster) {
	ctx := context.Background()
	source := &corev1.ConfigMap{}
	if err := from.admin.Get(ctx, client.ObjectKey{Namespace: virtNamespace, Name: install.CABundleConfigMap}, source); err != nil {
		t.Fatal(err)
	}
	external := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: virtNamespace, Name: install.ExternalCAConfigMap}}
	err := to.admin.Get(ctx, client.ObjectKeyFromObject(external), external)
	switch {
	case kerrors.IsNotFound(err):
		external.Data = map[string]string{install.CABundleKey: source.Data[install.CABundleKey]}
		err = to.admin.Create(ctx, external)
	case err == nil:
		external.Data[install.CABundleKey] += source.Data[install.CABundleKey]
		err = to.admin.Update(ctx, external)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// waitRefusal waits for the refusal's log line and its Warning event on
// the KubeVirt CR.
func (c *scCluster) waitRefusal(t *testing.T, line *regexp.Regexp) {
	t.Helper()
	c.waitLog(t, line)
	c.waitEvent(t, virtNamespace, install.KubeVirtName, "SynchronizationPeerRefused", line)
}

func (c *scCluster) waitLog(t *testing.T, line *regexp.Regexp) {
	t.Helper()
	scWait(t, fmt.Sprintf("%s's controller to log %s", c.name, line), 30*time.Second, func() (bool, string) {
		found, logged := c.logs.find(line)
		if logged {
			t.Logf("%s logged: %s", c.name, found)
		}
		return logged, "not logged yet"
	})
}

// waitEvent waits for a Warning event about the named object.
func (c *scCluster) waitEvent(t *testing.T, namespace, regarding, reason string, note *regexp.Regexp) {
	t.Helper()
	scWait(t, fmt.Sprintf("%s: a %s event on %s/%s", c.name, reason, namespace, regarding), 30*time.Second, func() (bool, string) {
		events, err := c.clientset.EventsV1().Events(namespace).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, event := range events.Items {
			if event.Regarding.Name == regarding && event.Reason == reason && event.Type == corev1.EventTypeWarning && note.MatchString(event.Note) {
				return true, ""
			}
			seen = append(seen, event.Reason+": "+event.Note)
		}
		return false, fmt.Sprintf("events: %q", seen)
	})
}

func scWait(t *testing.T, what string, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	err := kube.Poll(context.Background(), 100*time.Millisecond, timeout, what, func(context.Context) (bool, string, error) {
		done, state := check()
		return done, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func scSameAddresses(got []string, want string) bool {
	return len(got) == 1 && got[0] == want
}

func scJSON(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

func scPtr[T any](v T) *T { return &v }

func scDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// scLogs collects the controllers' log lines (JSON), to look for lines and
// to show them when the test fails.
type scLogs struct {
	mu    sync.Mutex
	lines []scLogLine
}

type scLogLine struct{ replica, raw, msg string }

func (l *scLogs) logger(replica string) logr.Logger {
	return funcr.NewJSON(func(obj string) {
		// Records are structured: the message, and the error it is about
		// as an attribute; the checks read them as one line.
		var entry struct {
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		_ = json.Unmarshal([]byte(obj), &entry)
		msg := entry.Msg
		if entry.Error != "" {
			msg += ": " + entry.Error
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, scLogLine{replica: replica, raw: obj, msg: msg})
	}, funcr.Options{})
}

// find returns the first message re matches.
func (l *scLogs) find(re *regexp.Regexp) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if re.MatchString(line.msg) {
			return line.msg, true
		}
	}
	return "", false
}

func (l *scLogs) requireNoSecrets(t *testing.T, cluster string, secrets ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		for _, secret := range secrets {
			if secret != "" && strings.Contains(line.raw, secret) {
				t.Errorf("%s's controller logged a secret (%.12s...): %.200s", cluster, secret, line.raw)
			}
		}
	}
}

// dumpIfFailed shows the last lines, which say what the controllers did.
func (l *scLogs) dumpIfFailed(t *testing.T, cluster string) {
	if !t.Failed() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines[max(0, len(l.lines)-300):]
	for _, line := range lines {
		t.Logf("%s %s: %s", cluster, line.replica, line.raw)
	}
}
