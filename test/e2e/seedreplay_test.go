package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	connectconfig "github.com/cclm-io/cclm/config/connect"
	"github.com/cclm-io/cclm/examples/openshift"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/internal/toolkit"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

// TestSeedReplay follows the OpenShift guide step by step on a lab of its
// own started without the migration network, with bin/kubectl for oc and
// the guide's YAML files from examples/openshift, as README.md's
// "Following the OpenShift guide with its own files" walks them: the NNCP
// that makes br-2001 on every worker, the NADs, the HyperConverged
// changes, the checks the guide makes with oc get/debug/exec; then what
// the issue adds: a policy naming a port that does not exist is Degraded
// and rolled back, the HyperConverged CR drives the KubeVirt CR, and a VM
// crosses from ocp7 to ocp1 over the network built this way. The
// cross-cluster step is the kubectl one (VMIMs with sendTo/receive), as in
// TestCrossClusterLiveMigration. Last come the guide's toolkit steps: the
// ForkliftController, the token on ocp7 and the Provider on ocp1 (the
// toolkit's Plan/Migration steps are the toolkit's tests').
func TestSeedReplay(t *testing.T) {
	testenv.RequireLab(t)
	began := time.Now()
	r := &replay{t: t, examples: testenv.OpenShiftExamples(), l: replayLab(t)}
	t.Logf("lab up --without-migration-network: %s", time.Since(began).Round(100*time.Millisecond))

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"WorkersWithoutTheMigrationNetwork", r.workersWithoutTheNetwork},
		{"NodeNetworkConfigurationPolicy", r.applyNNCP},
		{"NetworkAttachmentDefinitions", r.applyNADs},
		{"HyperConverged", r.instantiateHyperConverged},
		{"SyncControllersAndMigration0", r.checkMigrationNetwork},
		{"PolicyWithAMissingPortIsRolledBack", r.failingPolicy},
		{"HyperConvergedDrivesKubeVirt", r.hyperConvergedDrivesKubeVirt},
		{"CrossClusterMigration", r.crossClusterMigration},
		{"ForkliftController", r.instantiateToolkit},
		{"ProviderToken", r.providerToken},
		{"Provider", r.provider},
	}
	for _, step := range steps {
		stepBegan := time.Now()
		ok := t.Run(step.name, step.run)
		t.Logf("%s: %s", step.name, time.Since(stepBegan).Round(100*time.Millisecond))
		if !ok {
			t.Fatalf("step %s failed; the later steps build on it", step.name)
		}
	}
	t.Logf("seed replay: %s in all", time.Since(began).Round(100*time.Millisecond))
}

// replay is the state the steps share.
type replay struct {
	t        *testing.T
	examples string // examples/openshift, the guide's files
	l        *labEnv
	token    string // the Provider's token, from ProviderToken
}

// The OpenShift guide's names.
const (
	seedPolicy       = "br-2001-via-enp2s0"
	seedBridge       = "br-2001"
	seedUplink       = "enp2s0"
	seedNAD          = "livemigration-network"
	seedHCO          = "kubevirt-hyperconverged"
	replayNamespace  = "seed-replay"
	replayVM         = "seed-traveller"
	failingPolicy    = "br-2003-via-enp9s0"
	replayBandwidth  = "256Mi"
	replayLabTimeout = 5 * time.Minute
)

// replayLab starts a lab of the test's own without the migration network
// and takes it down at the end.
func replayLab(t *testing.T) *labEnv {
	t.Helper()
	return ownLab(t, replayLabTimeout, "--without-migration-network")
}

// nodes is `cclm lab nodes -o json`.
func (r *replay) nodes(t testing.TB) *lab.NodesReport {
	t.Helper()
	return labNodes(t, r.l.Dir)
}

// labNodes is `cclm lab nodes --dir DIR -o json`.
func labNodes(t testing.TB, dir string) *lab.NodesReport {
	t.Helper()
	stdout, stderr, err := labtest.RunCCLM(t, 30*time.Second, "lab", "nodes", "--dir", dir, "-o", "json")
	if err != nil {
		t.Fatalf("lab nodes: %v\n%s", err, stderr)
	}
	var report lab.NodesReport
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("lab nodes -o json printed something else than JSON: %v\n%s", err, stdout)
	}
	return &report
}

// debug is the lab's `oc debug node/NODE -- CMD`: the command in the
// node's network namespace.
func debug(t testing.TB, netns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", netns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec %s %v: %v\n%s", netns, args, err, out)
	}
	return string(out)
}

// workers is `oc get nodes -l node-role.kubernetes.io/worker -o name`.
func (r *replay) workers(t testing.TB, cluster string) []string {
	t.Helper()
	out := r.l.MustKubectl(t, cluster, "", "get", "nodes", "-l", "node-role.kubernetes.io/worker", "-o", "name")
	var names []string
	for _, line := range strings.Fields(out) {
		names = append(names, strings.TrimPrefix(line, "node/"))
	}
	if len(names) == 0 {
		t.Fatalf("%s has no node labelled node-role.kubernetes.io/worker", cluster)
	}
	return names
}

// netnsOf is a node's namespace from `cclm lab nodes`.
func netnsOf(t testing.TB, report *lab.NodesReport, node string) string {
	t.Helper()
	for _, n := range report.Nodes {
		if n.Name == node {
			return n.Netns
		}
	}
	t.Fatalf("lab nodes does not list %s", node)
	return ""
}

// workersWithoutTheNetwork: the workers are labelled as the seed's and
// have their uplink enp2s0 (the page's "little helper": `oc debug` each
// worker and grep enp), but no br-2001, no migration0; the KubeVirt CR
// names no migration network and no sync controller serves.
func (r *replay) workersWithoutTheNetwork(t *testing.T) {
	report := r.nodes(t)
	for _, cluster := range lab.DefaultClusters {
		for _, node := range r.workers(t, cluster) {
			links := debug(t, netnsOf(t, report, node), "ip", "-br", "l")
			var enp []string
			for _, line := range strings.Split(links, "\n") {
				if strings.Contains(line, "enp") {
					enp = append(enp, line)
				}
			}
			t.Logf("# node/%s\n%s", node, strings.Join(enp, "\n"))
			if len(enp) != 1 || !strings.HasPrefix(enp[0], seedUplink) {
				t.Errorf("%s: want one uplink %s, got %q", node, seedUplink, enp)
			}
			if strings.Contains(links, seedBridge) || strings.Contains(links, "migration0") {
				t.Errorf("%s has the migration network before the page built it:\n%s", node, links)
			}
		}
		config := r.l.MustKubectl(t, cluster, "", "get", "kubevirt", "kubevirt", "-n", virtNamespace, "-o", "jsonpath={.spec.configuration}")
		if strings.Contains(config, seedNAD) || strings.Contains(config, kubevirtv1.DecentralizedLiveMigrationGate) {
			t.Errorf("%s: the KubeVirt CR has the seed's settings already: %s", cluster, config)
		}
	}
	for _, s := range report.SyncControllers {
		if !s.Alive || len(s.SynchronizationAddresses) > 0 {
			t.Errorf("%s's sync controller should be running and waiting for its network: %+v", s.Cluster, s)
		}
	}
}

// applyNNCP: "Apply this to OCP1 and OCP7": oc apply -f
// coe-bridge-via-enp2s0.yaml; then the policy is Available, every worker's
// enactment is, and every worker has br-2001 with port enp2s0.
func (r *replay) applyNNCP(t *testing.T) {
	file := filepath.Join(r.examples, openshift.NNCPFile)
	for _, cluster := range lab.DefaultClusters {
		r.l.MustKubectl(t, cluster, "", "apply", "-f", file)
	}
	for _, cluster := range lab.DefaultClusters {
		r.l.MustKubectl(t, cluster, "", "wait", "nncp/"+seedPolicy, "--for=condition=Available", "--timeout=90s")
		t.Logf("%s:\n%s", cluster, r.l.MustKubectl(t, cluster, "", "get", "nncp,nnce"))
		var enactments nmstatev1.NodeNetworkConfigurationEnactmentList
		if err := json.Unmarshal([]byte(r.l.MustKubectl(t, cluster, "", "get", "nnce", "-o", "json")), &enactments); err != nil {
			t.Fatal(err)
		}
		for _, node := range r.workers(t, cluster) {
			name := nmstatev1.EnactmentName(node, seedPolicy)
			i := slices.IndexFunc(enactments.Items, func(e nmstatev1.NodeNetworkConfigurationEnactment) bool { return e.Name == name })
			if i < 0 || !enactments.Items[i].Status.Conditions.IsTrue(nmstatev1.EnactmentAvailable) {
				t.Errorf("%s: enactment %s is not Available: %+v", cluster, name, enactments.Items)
			}
		}
	}
	for _, node := range r.nodes(t).Nodes {
		bridge := slices.IndexFunc(node.Bridges, func(b lab.BridgeReport) bool { return b.Name == seedBridge })
		if bridge < 0 || !slices.Equal(node.Bridges[bridge].Ports, []string{seedUplink}) {
			t.Errorf("%s: want %s with port %s, got bridges %+v", node.Name, seedBridge, seedUplink, node.Bridges)
		}
		if node.Migration0 != nil {
			t.Errorf("%s has migration0 before the NAD and the HyperConverged change: %+v", node.Name, node.Migration0)
		}
	}
}

// applyNADs: "Apply this to OCP1": ocp1.net-attach-def.yaml; "Apply this
// to OCP7": ocp7.net-attach-def.yaml. (The page's isar-2001 NAD goes to
// the cluster hosting the two clusters' VMs, which the lab replaces with
// its fabric.)
func (r *replay) applyNADs(t *testing.T) {
	for _, cluster := range lab.DefaultClusters {
		r.l.MustKubectl(t, cluster, "", "apply", "-f", filepath.Join(r.examples, openshift.MigrationNADFile(cluster)))
		r.l.MustKubectl(t, cluster, "", "get", "net-attach-def", seedNAD, "-n", virtNamespace)
	}
}

// instantiateHyperConverged: "Instantiate with following changes:
// spec.liveMigrationConfig.network: livemigration-network,
// spec.featureGates.decentralizedLiveMigration: true" on both clusters,
// as hyperconverged.yaml (applied over the lab's HyperConverged CR, which
// has no settings, as the operator's installation leaves it); the KubeVirt
// CR follows.
func (r *replay) instantiateHyperConverged(t *testing.T) {
	for _, cluster := range lab.DefaultClusters {
		r.l.MustKubectl(t, cluster, "", "apply", "-f", filepath.Join(r.examples, openshift.HyperConvergedFile))
	}
	for _, cluster := range lab.DefaultClusters {
		labtest.WaitEvery(t, cluster+"'s KubeVirt CR to follow the HyperConverged CR", 250*time.Millisecond, 30*time.Second, func() (bool, string) {
			config := r.l.MustKubectl(t, cluster, "", "get", "kubevirt", "kubevirt", "-n", virtNamespace, "-o", "jsonpath={.spec.configuration}")
			var c kubevirtv1.KubeVirtConfiguration
			if err := json.Unmarshal([]byte(config), &c); err != nil {
				t.Fatal(err)
			}
			kv := &kubevirtv1.KubeVirt{Spec: kubevirtv1.KubeVirtSpec{Configuration: c}}
			ok := c.MigrationConfiguration != nil && c.MigrationConfiguration.Network == seedNAD && kv.IsFeatureGateEnabled(kubevirtv1.DecentralizedLiveMigrationGate)
			return ok, config
		})
	}
}

// guideHalves are the halves of 192.168.201.0/24 the OpenShift guide's
// NADs give its clusters (each excludes the other's).
var guideHalves = map[string]netip.Prefix{
	"ocp7": netip.MustParsePrefix("192.168.201.0/25"),
	"ocp1": netip.MustParsePrefix("192.168.201.128/25"),
}

// checkMigrationNetwork: "Wait until virt-synchronization-controller pods
// are running" (here: serving, their address in the KubeVirt CR's status)
// and "Check the virt-handler migration network configuration" (here:
// `cclm lab nodes`, and the page's `ip -4 -br a show dev migration0` in
// each node): every worker's migration0 is up on br-2001 with an address
// of its cluster's half of 192.168.201.0/24.
func (r *replay) checkMigrationNetwork(t *testing.T) {
	var report *lab.NodesReport
	labtest.WaitEvery(t, "both sync controllers to serve and every node to have migration0", time.Second, 90*time.Second, func() (bool, string) {
		report = r.nodes(t)
		var missing []string
		for _, s := range report.SyncControllers {
			if len(s.SynchronizationAddresses) == 0 {
				missing = append(missing, s.Cluster+"'s sync controller")
			}
		}
		for _, n := range report.Nodes {
			if n.Migration0 == nil || n.MigrationAddress == "" {
				missing = append(missing, n.Name)
			}
		}
		return len(missing) == 0, "waiting for " + strings.Join(missing, ", ")
	})
	for _, s := range report.SyncControllers {
		t.Logf("%s: %s in %s serves at %v", s.Cluster, s.Name, s.Netns, s.SynchronizationAddresses)
		for _, address := range s.SynchronizationAddresses {
			if hostPort, err := netip.ParseAddrPort(address); err != nil || !guideHalves[s.Cluster].Contains(hostPort.Addr()) {
				t.Errorf("%s: sync address %s is not in %s", s.Cluster, address, guideHalves[s.Cluster])
			}
		}
	}
	for _, n := range report.Nodes {
		shown := debug(t, n.Netns, "ip", "-4", "-br", "a", "show", "dev", "migration0")
		t.Logf("%s %s", n.Name, strings.TrimSpace(shown))
		address, err := netip.ParsePrefix(n.MigrationAddress)
		switch {
		case err != nil || !guideHalves[n.Cluster].Contains(address.Addr()):
			t.Errorf("%s: migration address %q is not in %s, its cluster's half of the seed's range", n.Name, n.MigrationAddress, guideHalves[n.Cluster])
		case n.Migration0.Parent != seedBridge || n.Migration0.State != "UP" || !strings.Contains(shown, n.MigrationAddress):
			t.Errorf("%s: migration0 %+v, ip shows %q", n.Name, n.Migration0, shown)
		case n.Problem != "":
			t.Errorf("%s: %s", n.Name, n.Problem)
		}
	}
}

// failingPolicy: a policy whose second bridge names a port the nodes do
// not have is Degraded with the reason on every worker, and each node's
// links are as before (its first bridge, made before the failure, is
// rolled back).
func (r *replay) failingPolicy(t *testing.T) {
	const cluster = sourceCluster
	report := r.nodes(t)
	workers := r.workers(t, cluster)
	before := map[string]string{}
	for _, node := range workers {
		before[node] = linkSnapshot(t, netnsOf(t, report, node))
	}
	policy := fmt.Sprintf(`apiVersion: nmstate.io/v1
kind: NodeNetworkConfigurationPolicy
metadata:
  name: %s
spec:
  nodeSelector:
    node-role.kubernetes.io/worker: ""
  desiredState:
    interfaces:
    - name: br-2002
      type: linux-bridge
      state: up
      ipv4:
        enabled: true
        address:
        - ip: 10.20.0.1
          prefix-length: 24
    - name: br-2003
      type: linux-bridge
      state: up
      bridge:
        options:
          stp:
            enabled: false
        port:
        - name: enp9s0
`, failingPolicy)
	r.l.MustKubectl(t, cluster, policy, "apply", "-f", "-")
	defer r.l.MustKubectl(t, cluster, "", "delete", "nncp", failingPolicy)
	r.l.MustKubectl(t, cluster, "", "wait", "nncp/"+failingPolicy, "--for=condition=Degraded", "--timeout=60s")
	message := r.l.MustKubectl(t, cluster, "", "get", "nncp", failingPolicy, "-o", `jsonpath={.status.conditions[?(@.type=="Degraded")].message}`)
	reason := r.l.MustKubectl(t, cluster, "", "get", "nncp", failingPolicy, "-o", `jsonpath={.status.conditions[?(@.type=="Degraded")].reason}`)
	t.Logf("Degraded (%s): %s", reason, message)
	if reason != "FailedToConfigure" || !strings.Contains(message, fmt.Sprintf("%d/%d nodes failed to configure", len(workers), len(workers))) ||
		!strings.Contains(message, `port "enp9s0" of linux-bridge "br-2003" does not exist`) || !strings.Contains(message, "rolled back") {
		t.Errorf("the policy's Degraded condition should give the reason per node: %s %q", reason, message)
	}
	for _, node := range workers {
		name := nmstatev1.EnactmentName(node, failingPolicy)
		failing := r.l.MustKubectl(t, cluster, "", "get", "nnce", name, "-o", `jsonpath={.status.conditions[?(@.type=="Failing")].status}`)
		if failing != "True" {
			t.Errorf("enactment %s: Failing=%q", name, failing)
		}
		if after := linkSnapshot(t, netnsOf(t, report, node)); after != before[node] {
			t.Errorf("%s's networking changed:\nbefore:\n%s\nafter:\n%s", node, before[node], after)
		}
	}
	if available := r.l.MustKubectl(t, cluster, "", "get", "nncp", seedPolicy, "-o", `jsonpath={.status.conditions[?(@.type=="Available")].status}`); available != "True" {
		t.Errorf("the seed's policy is no longer Available: %q", available)
	}
}

// linkSnapshot is a node's links and addresses, sorted, for comparing.
func linkSnapshot(t testing.TB, netns string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(debug(t, netns, "ip", "-br", "a")+debug(t, netns, "ip", "-br", "l")), "\n")
	for i, line := range lines {
		lines[i] = strings.Join(strings.Fields(line), " ")
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// hyperConvergedDrivesKubeVirt: a live-migration setting changed on the
// HyperConverged CR reaches the KubeVirt CR, and an edit of a field the
// HyperConverged CR sets, made on the KubeVirt CR, is reverted.
func (r *replay) hyperConvergedDrivesKubeVirt(t *testing.T) {
	const cluster = sourceCluster
	r.l.MustKubectl(t, cluster, "", "patch", "hyperconverged", seedHCO, "-n", virtNamespace, "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"liveMigrationConfig":{"bandwidthPerMigration":%q}}}`, replayBandwidth))
	want := resource.MustParse(replayBandwidth)
	labtest.WaitEvery(t, "the KubeVirt CR to take the HyperConverged CR's bandwidthPerMigration", 250*time.Millisecond, 30*time.Second, func() (bool, string) {
		got := r.l.MustKubectl(t, cluster, "", "get", "kubevirt", "kubevirt", "-n", virtNamespace, "-o", "jsonpath={.spec.configuration.migrations.bandwidthPerMigration}")
		q, err := resource.ParseQuantity(got)
		return err == nil && q.Cmp(want) == 0, "bandwidthPerMigration " + got
	})
	r.l.MustKubectl(t, cluster, "", "patch", "kubevirt", "kubevirt", "-n", virtNamespace, "--type=merge",
		"-p", `{"spec":{"configuration":{"migrations":{"network":"edited-by-hand"}}}}`)
	labtest.WaitEvery(t, "the hand edit of migrations.network to be reverted", 250*time.Millisecond, 30*time.Second, func() (bool, string) {
		got := r.l.MustKubectl(t, cluster, "", "get", "kubevirt", "kubevirt", "-n", virtNamespace, "-o", "jsonpath={.spec.configuration.migrations.network}")
		return got == seedNAD, "network " + got
	})
	status := r.l.MustKubectl(t, cluster, "", "get", "hyperconverged", seedHCO, "-n", virtNamespace, "-o", `jsonpath={.status.conditions[?(@.type=="Available")].status}`)
	if status != "True" {
		t.Errorf("HyperConverged Available=%q", status)
	}
}

// crossClusterMigration: after the CA exchange (the seed's trust step),
// a VM with a data disk moves from ocp7 to ocp1 over the migration
// network just built: the same boot, its disk intact, and the migration
// ran with the HyperConverged CR's bandwidth limit.
func (r *replay) crossClusterMigration(t *testing.T) {
	l := r.l
	l.ExchangeCAs(t, sourceCluster, targetCluster)
	spec := vmSpec{name: replayVM, namespace: replayNamespace, memory: "128Mi", dataDisk: "64Mi"}
	l.createVM(t, sourceCluster, spec)
	booted := l.WaitGuestReady(t, sourceCluster, spec.namespace, spec.name, 2*time.Minute)
	var written guestagent.DiskWriteResult
	l.GuestCall(t, sourceCluster, spec.namespace, spec.name, guestagent.CmdDiskWrite, guestagent.DiskArgs{Disk: "datadisk"}, &written)
	var vmi *kubevirtv1.VirtualMachineInstance
	labtest.WaitFor(t, "the source VMI to report its NIC's MAC", 30*time.Second, func() (bool, string) {
		vmi = l.VMI(t, sourceCluster, spec.namespace, spec.name)
		return vmiShowsRunningGuest(vmi), fmt.Sprintf("%+v", vmi.Status.Interfaces)
	})
	a := &attempt{
		namespace:   replayNamespace,
		migrationID: fmt.Sprintf("%s-%d", replayVM, time.Now().Unix()),
		sourceVMIM:  replayVM + "-send",
		targetVMIM:  replayVM + "-receive",
	}
	l.prepareReceiver(t, targetCluster, spec, vmi.Status.Interfaces[0].MAC, a, 250*time.Millisecond)
	began := time.Now()
	l.CreateVMIM(t, sourceCluster, spec.namespace, a.sourceVMIM, spec.name, a.sendTo)
	source := l.WaitVMIMFinal(t, sourceCluster, spec.namespace, a.sourceVMIM, 3*time.Minute)
	target := l.WaitVMIMFinal(t, targetCluster, a.namespace, a.targetVMIM, time.Minute)
	for _, vmim := range []*kubevirtv1.VirtualMachineInstanceMigration{source, target} {
		if vmim.Status.Phase != kubevirtv1.MigrationSucceeded {
			t.Fatalf("VMIM %s/%s ended %s%s\nocp7:\n%s\nocp1:\n%s", vmim.Namespace, vmim.Name, vmim.Status.Phase, vmimReason(vmim),
				l.Describe(t, sourceCluster, spec.namespace), l.Describe(t, targetCluster, a.namespace))
		}
	}
	t.Logf("%s moved from %s to %s in %s%s", spec.name, vmi.Status.NodeName, target.Status.MigrationState.TargetNode,
		time.Since(began).Round(time.Millisecond), progressSummary(source))
	after := l.WaitGuestReady(t, targetCluster, a.namespace, spec.name, time.Minute)
	if after.BootID != booted.BootID {
		t.Fatalf("the guest rebooted: %s -> %s", booted.BootID, after.BootID)
	}
	var verified guestagent.DiskVerifyResult
	l.GuestCall(t, targetCluster, a.namespace, spec.name, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk"}, &verified)
	if !verified.OK || verified.Digest != written.Digest {
		t.Fatalf("the data disk on ocp1: %+v; written on ocp7 with digest %s", verified, written.Digest)
	}
	config := source.Status.MigrationState.MigrationConfiguration
	if config == nil || config.BandwidthPerMigration == nil || config.BandwidthPerMigration.Cmp(resource.MustParse(replayBandwidth)) != 0 {
		t.Errorf("the migration should have run with the HyperConverged CR's bandwidthPerMigration %s: %+v", replayBandwidth, config)
	}
}

// instantiateToolkit: "Migration toolkit for Virtualization on OCP1:
// Instantiate with following change: spec.feature_ocp_live_migration:
// 'true'", as forkliftcontroller.yaml (the lab's toolkit made the
// ForkliftController already; applying the guide's file over it keeps the
// flag on).
func (r *replay) instantiateToolkit(t *testing.T) {
	r.l.MustKubectl(t, targetCluster, "", "apply", "-f", filepath.Join(r.examples, openshift.ForkliftControllerFile))
	flag := r.l.MustKubectl(t, targetCluster, "", "get", "forkliftcontrollers", toolkit.ForkliftControllerName, "-n", lab.ToolkitNamespace,
		"-o", "jsonpath={.spec.feature_ocp_live_migration}")
	if flag != "true" {
		t.Errorf("ForkliftController %s/%s: feature_ocp_live_migration %q, want \"true\"", lab.ToolkitNamespace, toolkit.ForkliftControllerName, flag)
	}
}

// providerToken: "Create service account and token at OCP7", the guide's
// commands: the ClusterRole from clusterrole.yaml, namespace openshift-mtv,
// ServiceAccount cclm, its ClusterRoleBinding and token Secret; then "Get
// the token" with the guide's go-template.
func (r *replay) providerToken(t *testing.T) {
	l := r.l
	l.MustKubectl(t, sourceCluster, "", "apply", "-f", filepath.Join(r.examples, openshift.ClusterRoleFile))
	l.MustKubectl(t, sourceCluster, "", "create", "namespace", lab.ToolkitNamespace)
	l.MustKubectl(t, sourceCluster, "", "create", "serviceaccount", "cclm", "-n", lab.ToolkitNamespace)
	l.MustKubectl(t, sourceCluster, "", "create", "clusterrolebinding", "cclm", "--clusterrole="+connectconfig.ClusterRoleName,
		"--serviceaccount="+lab.ToolkitNamespace+":cclm")
	l.MustKubectl(t, sourceCluster, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: cclm
  namespace: %s
  annotations:
    kubernetes.io/service-account.name: cclm
type: kubernetes.io/service-account-token
`, lab.ToolkitNamespace), "apply", "-f", "-")
	// The token controller fills the Secret shortly after; the guide's
	// go-template fails on a Secret without data.token.
	labtest.WaitFor(t, "the token controller to fill Secret cclm on "+sourceCluster, time.Minute, func() (bool, string) {
		stdout, stderr, err := l.Kubectl(t, sourceCluster, "", "get", "secret", "cclm", "-n", lab.ToolkitNamespace, "-o", "jsonpath={.data.token}")
		return err == nil && stdout != "", stderr
	})
	r.token = strings.TrimSpace(l.MustKubectl(t, sourceCluster, "", "get", "secret", "cclm", "-n", lab.ToolkitNamespace,
		"-o", `go-template={{ .data.token | base64decode}}{{"\n"}}`))
	if r.token == "" {
		t.Fatal("the guide's go-template printed no token")
	}
}

// provider: "Add provider ocp7 to OCP1" (the guide does it in the
// console): the Secret ocp7-token with the token and ocp7's API server CA
// from the kubeconfig, the Provider ocp7 with that API server's URL, and
// the host Provider (upstream's operator makes that one itself); both
// become Ready, so the token reaches ocp7 and may read its VMs.
func (r *replay) provider(t *testing.T) {
	l := r.l
	caFile := filepath.Join(t.TempDir(), sourceCluster+"-ca.crt")
	ca := r.kubeconfigCluster(t, "certificate-authority-data")
	pem, err := base64.StdEncoding.DecodeString(ca)
	if err != nil {
		t.Fatalf("%s's certificate-authority-data: %v", sourceCluster, err)
	}
	if err := os.WriteFile(caFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := sourceCluster + "-token"
	l.MustKubectl(t, targetCluster, "", "create", "secret", "generic", secret, "-n", lab.ToolkitNamespace,
		"--from-literal="+forkliftv1beta1.SecretToken+"="+r.token, "--from-file="+forkliftv1beta1.SecretCACert+"="+caFile)
	l.MustKubectl(t, targetCluster, fmt.Sprintf(`apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  type: openshift
  url: %[3]s
  secret: {name: %[4]s, namespace: %[2]s}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata: {name: host, namespace: %[2]s}
spec:
  type: openshift
`, sourceCluster, lab.ToolkitNamespace, r.kubeconfigCluster(t, "server"), secret), "apply", "-f", "-")
	for _, name := range []string{sourceCluster, "host"} {
		l.MustKubectl(t, targetCluster, "", "wait", "providers/"+name, "-n", lab.ToolkitNamespace, "--for=condition=Ready", "--timeout=60s")
	}
	t.Logf("%s:\n%s", targetCluster, l.MustKubectl(t, targetCluster, "", "get", "providers", "-n", lab.ToolkitNamespace))
}

// kubeconfigCluster is a field of the source cluster's entry in the lab's
// kubeconfig, as `kubectl config view --raw -o jsonpath=...` prints it.
func (r *replay) kubeconfigCluster(t *testing.T, field string) string {
	t.Helper()
	jsonPath := fmt.Sprintf(`jsonpath={.clusters[?(@.name=="%s")].cluster.%s}`, sourceCluster, field)
	stdout, stderr, err := labtest.RunKubectl(t, "", "--kubeconfig", r.l.Kubeconfig, "config", "view", "--raw", "-o", jsonPath)
	if err != nil || stdout == "" {
		t.Fatalf("kubectl config view: cluster %s has no %s: %v\n%s", sourceCluster, field, err, stderr)
	}
	return stdout
}
