package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/test/labtest"
)

// Two lab up/down cycles in a row: each brings up ocp7 and ocp1 with
// KubeVirt installed, a second up changes nothing, and down leaves no
// process, port or lock behind.
func TestLabUpDownCyclesLeaveNothingBehind(t *testing.T) {
	testenv.RequireLab(t)
	dir := t.TempDir()
	binDir := testenv.BinDir()
	t.Cleanup(func() { _, _, _ = labtest.RunCCLM(t, 2*time.Minute, "lab", "down", "--dir", dir) })

	for cycle := 1; cycle <= 2; cycle++ {
		began := time.Now()
		// The second cycle forces TCG, as `--accel tcg` would on a host
		// whose KVM the probe cannot judge.
		accel := map[int]string{1: "auto", 2: "tcg"}[cycle]
		_, stderr, err := labtest.RunCCLM(t, 5*time.Minute, "lab", "up", "--dir", dir, "--bin-dir", binDir, "--accel", accel)
		if err != nil {
			t.Fatalf("cycle %d: lab up: %v\n%s", cycle, err, stderr)
		}
		t.Logf("cycle %d: lab up took %s", cycle, time.Since(began).Round(100*time.Millisecond))

		status := labStatus(t, dir)
		if !status.Running || !status.Ready || len(status.Clusters) != 2 {
			t.Fatalf("cycle %d: lab status after up: %+v", cycle, status)
		}
		for _, c := range status.Clusters {
			if !c.APIReady || c.ProcessesAlive != c.Processes {
				t.Fatalf("cycle %d: cluster %s not healthy: %+v", cycle, c.Name, c)
			}
		}
		requireSyncControllers(t, dir, status, lab.DefaultClusters)
		requireNodeQEMUs(t, status, accel)
		kubeconfig := filepath.Join(dir, "kubeconfig")
		for _, context := range lab.DefaultClusters {
			out, err := exec.Command(filepath.Join(binDir, "kubectl"), "--kubeconfig", kubeconfig, "--context", context,
				"get", "kubevirts", "-n", "openshift-cnv", "-o", "jsonpath={.items[0].spec.configuration.developerConfiguration.featureGates}").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "DecentralizedLiveMigration") {
				t.Fatalf("cycle %d: context %s: KubeVirt CR with the gate expected: %v %s", cycle, context, err, out)
			}
		}

		_, stderr, err = labtest.RunCCLM(t, time.Minute, "lab", "up", "--dir", dir, "--bin-dir", binDir)
		if err != nil || !strings.Contains(stderr, "already running") {
			t.Fatalf("cycle %d: a second lab up should say the lab already runs: %v\n%s", cycle, err, stderr)
		}
		if again := labStatus(t, dir); again.Pid != status.Pid {
			t.Fatalf("cycle %d: the second lab up replaced the supervisor (%d -> %d)", cycle, status.Pid, again.Pid)
		}

		_, stderr, err = labtest.RunCCLM(t, 2*time.Minute, "lab", "down", "--dir", dir)
		if err != nil {
			t.Fatalf("cycle %d: lab down: %v\n%s", cycle, err, stderr)
		}
		assertNothingLeft(t, dir, status)
	}
}

// requireNodeQEMUs checks that `cclm lab status` shows every node agent's
// QEMU, no older than cclm's minimum, and its accelerator and why it was
// chosen.
func requireNodeQEMUs(t *testing.T, status *lab.Status, asked string) {
	t.Helper()
	nodes := 0
	for _, c := range status.Components {
		if c.Kind != lab.KindNode {
			continue
		}
		nodes++
		if v, err := qemu.ParseVersion("QEMU emulator version " + c.QEMUVersion); err != nil || !v.AtLeast(qemu.MinimumVersion) {
			t.Errorf("lab status: node %s shows QEMU %q; want %d.%d or newer", c.Name, c.QEMUVersion, qemu.MinimumVersion.Major, qemu.MinimumVersion.Minor)
		}
		if c.Accel != "kvm" && c.Accel != "tcg" || c.AccelReason == "" {
			t.Errorf("lab status: node %s shows accelerator %q (%q); want kvm or tcg and why", c.Name, c.Accel, c.AccelReason)
		}
		if asked == "tcg" && (c.Accel != "tcg" || !strings.Contains(c.AccelReason, "chosen")) {
			t.Errorf("lab up --accel tcg: node %s runs %s (%s)", c.Name, c.Accel, c.AccelReason)
		}
		if _, err := os.Stat("/dev/kvm"); asked == "auto" && os.IsNotExist(err) && !strings.Contains(c.AccelReason, "KVM unavailable") {
			t.Errorf("lab up --accel auto without /dev/kvm: node %s says %s: %s", c.Name, c.Accel, c.AccelReason)
		}
	}
	if nodes == 0 {
		t.Error("lab status lists no node agents")
	}
}

// requireSyncControllers checks what a ready lab promises for cross-cluster
// migration: each cluster's KubeVirt CR publishes its synchronization
// controller's address, in the cluster's block of the migration range
// (its half, with the guide's two clusters), and `cclm lab status` shows
// the controllers and their addresses.
func requireSyncControllers(t *testing.T, dir string, status *lab.Status, clusters []string) {
	t.Helper()
	env := labtest.At(dir)
	syncRanges, err := lab.MigrationBlocks(clusters)
	if err != nil {
		t.Fatal(err)
	}
	published := map[string][]string{}
	for _, name := range clusters {
		kv := &kubevirtv1.KubeVirt{}
		if err := env.Client(t, name).Get(context.Background(), client.ObjectKey{Namespace: "openshift-cnv", Name: install.KubeVirtName}, kv); err != nil {
			t.Fatal(err)
		}
		addresses := kv.Status.SynchronizationAddresses
		if len(addresses) == 0 {
			t.Fatalf("%s: KubeVirt status.synchronizationAddresses is empty after lab up", name)
		}
		for _, address := range addresses {
			hostPort, err := netip.ParseAddrPort(address)
			if err != nil || !syncRanges[name].Contains(hostPort.Addr()) {
				t.Errorf("%s: synchronization address %q is not in %s, the cluster's block of the migration range (%v)", name, address, syncRanges[name], err)
			}
		}
		published[name] = addresses
		t.Logf("%s: synchronization controller at %v", name, addresses)
	}
	for _, c := range status.Clusters {
		if !slices.Equal(c.SynchronizationAddresses, published[c.Name]) {
			t.Errorf("lab status shows %s's synchronization addresses %v, the KubeVirt CR %v", c.Name, c.SynchronizationAddresses, published[c.Name])
		}
	}
	for _, name := range clusters {
		found := slices.ContainsFunc(status.Components, func(c lab.ComponentStatus) bool {
			return c.Cluster == name && c.Kind == lab.KindController && c.Name == lab.SyncControllerName && c.Alive
		})
		if !found {
			t.Errorf("lab status -o json lists no live %s of %s: %+v", lab.SyncControllerName, name, status.Components)
		}
	}
	text, stderr, err := labtest.RunCCLM(t, 30*time.Second, "lab", "status", "--dir", dir)
	if err != nil {
		t.Fatalf("lab status: %v\n%s", err, stderr)
	}
	for _, name := range clusters {
		if !regexp.MustCompile(`(?m)^` + name + ` +controller +` + lab.SyncControllerName + ` +\d+ +true\b`).MatchString(text) {
			t.Errorf("lab status does not show %s's live %s:\n%s", name, lab.SyncControllerName, text)
		}
		for _, address := range published[name] {
			if !regexp.MustCompile(`(?m)^` + name + ` .*` + regexp.QuoteMeta(address)).MatchString(text) {
				t.Errorf("lab status does not show %s's synchronization address %s:\n%s", name, address, text)
			}
		}
	}
}

func labStatus(t *testing.T, dir string) *lab.Status {
	t.Helper()
	stdout, stderr, err := labtest.RunCCLM(t, 30*time.Second, "lab", "status", "--dir", dir, "-o", "json")
	if err != nil {
		t.Fatalf("lab status: %v\n%s", err, stderr)
	}
	var status lab.Status
	if err := json.Unmarshal([]byte(stdout), &status); err != nil {
		t.Fatalf("lab status -o json printed something else than JSON: %v\n%s", err, stdout)
	}
	return &status
}

// assertNothingLeft checks that no process mentions the lab directory, no
// port the lab used is still bound, and the lock is free.
func assertNothingLeft(t *testing.T, dir string, status *lab.Status) {
	t.Helper()
	if procs := labtest.ProcessesMentioning(dir); len(procs) > 0 {
		t.Fatalf("processes left after lab down: %v", procs)
	}
	for _, c := range status.Clusters {
		for _, port := range c.Ports {
			listener, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				t.Fatalf("port %d of %s still bound after lab down: %v", port, c.Name, err)
			}
			listener.Close()
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lab.lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("lab.lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("lab.lock still held after lab down: %v", err)
	}
	_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "kubeconfig")); !os.IsNotExist(err) {
		t.Fatalf("kubeconfig of a stopped lab still there: %v", err)
	}
	// The nodes' namespaces, the synchronization controllers' and the
	// fabric's: cclm.<lab ID>[.<node>] in /run/netns.
	namespaces, _ := filepath.Glob(filepath.Join("/run/netns", "cclm."+lab.ID(dir)+"*"))
	if len(namespaces) > 0 {
		t.Fatalf("network namespaces left after lab down: %v", namespaces)
	}
}
