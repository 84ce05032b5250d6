package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/pkg/guestagent"
	"github.com/cclm-io/cclm/test/labtest"
)

// ringClusters are the three clusters of TestThreeClustersAnyToAny, in
// the order the VM goes round.
var ringClusters = []string{"ocp7", "ocp1", "ocp5"}

// A lab of three clusters (`cclm lab up --clusters ocp7,ocp1,ocp5`, one
// node each): `lab status` and `lab nodes` show all three, each
// synchronization controller serves from its own block of the migration
// range, and `cclm connect` succeeds for every ordered pair. Then a VM
// with a written data disk goes round the ring ocp7 → ocp1 → ocp5 → ocp7
// with `cclm migrate`, through the toolkit on each hop's target: after
// every hop it runs on the target with the same boot and the same disk,
// in exactly one QEMU, and the VM it left is Halted (then deleted, as its
// owner would, so that it can come back).
func TestThreeClustersAnyToAny(t *testing.T) {
	testenv.RequireLab(t)
	l := ringLab(t)

	status := labStatus(t, l.Dir)
	var shown []string
	for _, c := range status.Clusters {
		shown = append(shown, c.Name)
	}
	if !slices.Equal(shown, ringClusters) {
		t.Fatalf("lab status shows clusters %v, want %v", shown, ringClusters)
	}
	requireSyncControllers(t, l.Dir, status, ringClusters)
	nodes := labNodes(t, l.Dir)
	for _, cluster := range ringClusters {
		found := slices.ContainsFunc(nodes.Nodes, func(n lab.NodeReport) bool { return n.Cluster == cluster && n.Ready })
		if !found {
			t.Errorf("lab nodes shows no ready node of %s: %+v", cluster, nodes.Nodes)
		}
	}
	text, _, err := labtest.RunCCLM(t, 30*time.Second, "lab", "status", "--dir", l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, cluster := range ringClusters {
		if !strings.Contains(text, cluster+" ") {
			t.Errorf("lab status does not show %s:\n%s", cluster, text)
		}
	}

	for _, source := range ringClusters {
		for _, target := range ringClusters {
			if source == target {
				continue
			}
			began := time.Now()
			doc := l.runConnectPair(t, source, target)
			if !doc.Preflight.OK {
				t.Errorf("connect %s → %s: preflight failed: %v", source, target, failedChecks(doc))
			}
			t.Logf("cclm connect --source %s --target %s: %s", source, target, time.Since(began).Round(100*time.Millisecond))
		}
	}

	spec := vmSpec{name: "traveller", namespace: "ring", memory: "128Mi", dataDisk: "64Mi"}
	for _, cluster := range ringClusters {
		l.EnsureNamespace(t, cluster, spec.namespace)
	}
	l.createVM(t, ringClusters[0], spec)
	g := l.readyGuest(t, ringClusters[0], spec)
	hops := append(slices.Clone(ringClusters), ringClusters[0])
	for i := range len(hops) - 1 {
		source, target := hops[i], hops[i+1]
		began := time.Now()
		doc, stderr, err := l.runMigrateBetween(t, source, target, spec.namespace, spec.name)
		if err != nil || doc.Result != "Succeeded" {
			t.Fatalf("hop %s → %s: cclm migrate: %v, %+v\n%s\n%s:\n%s", source, target, err, doc, stderr, target, l.Describe(t, target, spec.namespace))
		}
		l.assertHopped(t, g, source, target)
		t.Logf("hop %s → %s: %s, downtime %d ms", source, target, time.Since(began).Round(100*time.Millisecond), *doc.VMs[0].DowntimeMs)
	}
}

// ringLab starts the test's own lab of three clusters and takes it down at
// the end.
func ringLab(t *testing.T) *labEnv {
	t.Helper()
	began := time.Now()
	l := ownLab(t, 5*time.Minute, "--clusters", strings.Join(ringClusters, ","), "--nodes", "1", "--boot-timeout", sharedLabBootTimeout.String())
	t.Logf("lab of %v up in %s", ringClusters, time.Since(began).Round(100*time.Millisecond))
	return l
}

// assertHopped: the guest runs on target with its first boot and its
// data, in one QEMU of the whole machine; the VM on source is Halted, and
// is then deleted.
func (l *labEnv) assertHopped(t *testing.T, g *guest, source, target string) {
	t.Helper()
	spec := g.spec
	after := l.WaitGuestReady(t, target, spec.namespace, spec.name, time.Minute)
	if after.BootID != g.booted.BootID {
		t.Fatalf("%s → %s: the guest rebooted: boot %s, now %s", source, target, g.booted.BootID, after.BootID)
	}
	var verified guestagent.DiskVerifyResult
	l.GuestCall(t, target, spec.namespace, spec.name, guestagent.CmdDiskVerify, guestagent.DiskArgs{Disk: "datadisk"}, &verified)
	if !verified.OK || verified.Digest != g.written.Digest {
		t.Fatalf("%s → %s: the data disk: %+v; written with digest %s", source, target, verified, g.written.Digest)
	}
	if pids := labtest.QEMUPids(spec.namespace, spec.name); len(pids) != 1 {
		t.Fatalf("%s → %s: want exactly one QEMU of the VM, found %v", source, target, pids)
	}
	labtest.WaitFor(t, fmt.Sprintf("the VM on %s to be Halted", source), time.Minute, func() (bool, string) {
		strategy := l.MustKubectl(t, source, "", "get", "vm", spec.name, "-n", spec.namespace, "-o", "jsonpath={.spec.runStrategy}")
		return strategy == "Halted", "runStrategy " + strategy
	})
	l.MustKubectl(t, source, "", "delete", "vm", spec.name, "-n", spec.namespace, "--wait=true", "--timeout=60s")
}
