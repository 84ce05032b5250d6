package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/procutil"
	"github.com/cclm-io/cclm/internal/qemu"
	"github.com/cclm-io/cclm/internal/testenv"
)

// TestShutdownLeavesNoGoroutine runs a node agent in this process against
// a real control plane, in a network namespace of its own, with a guest
// running, then cancels its context: Run must return promptly, leave no
// goroutine of its own behind, and leave the guest's QEMU running (a
// restarted agent adopts it).
func TestShutdownLeavesNoGoroutine(t *testing.T) {
	testenv.RequireE2E(t)
	testenv.RequireRoot(t, "the node agent runs its guests in a network namespace")
	testenv.RequireKubeBinaries(t)
	testenv.RequireGuestImage(t)
	testenv.RequireBinary(t, qemu.DefaultBinary)

	var clusters testenv.Clusters
	t.Cleanup(clusters.Stop)
	cluster := clusters.Get(t, "agent")
	restConfig := testenv.RESTConfig(t, cluster.AdminKubeconfig, cluster.Name)
	kube := testenv.KubeClient(t, cluster.AdminKubeconfig, cluster.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := install.CRDs(ctx, restConfig); err != nil {
		t.Fatal(err)
	}
	host := labNode(t)
	runDir := filepath.Join("/run/cclm-test", fmt.Sprint(os.Getpid()))
	t.Cleanup(func() { killGuests(t, runDir); _ = os.RemoveAll(runDir) })

	// What runs before the agent (the control plane's supervisors, the
	// test framework, client-go's process-wide goroutines) is not its own.
	before := goleak.IgnoreCurrent()
	agentCtx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	ended := make(chan error, 1)
	go func() {
		ended <- Run(agentCtx, restConfig, Options{
			NodeName: host.Name, LabID: host.LabID, StorageDir: t.TempDir(), RunDir: runDir,
			GuestDir: filepath.Join(testenv.BinDir(), "guest"), VMBridge: netlab.VMBridge,
			CPUs: 2, Memory: resource.MustParse("2Gi"), Storage: resource.MustParse("1Gi"),
			VirtNamespace: "kubevirt", Accel: qemu.AccelChooseTCG, MetricsAddress: "0",
			Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		})
	}()

	vmi := startGuest(ctx, t, kube, host.Name)
	waitForGuestAgent(ctx, t, kube, vmi, ended)

	began := time.Now()
	stopAgent()
	select {
	case err := <-ended:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Run ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run has not returned 30 s after its context was cancelled")
	}
	t.Logf("Run returned %v after its context was cancelled", time.Since(began).Round(time.Millisecond))
	goleak.VerifyNone(t, before,
		// Idle keep-alive connections of client-go's shared transports
		// belong to the process, not to the agent; they close with the
		// API server's idle timeout.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
	)
	if pids := guestPids(t, runDir); len(pids) != 1 {
		t.Fatalf("the guest's QEMU must outlive the agent: found %d running", len(pids))
	}
}

// labNode makes a lab of one node, removed when the test ends.
func labNode(t *testing.T) *netlab.Node {
	t.Helper()
	labID := fmt.Sprintf("ag%d", os.Getpid()%100000)
	fabric, err := netlab.CreateFabric(labID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fabric.Destroy(); err != nil {
			t.Error(err)
		}
	})
	node, err := fabric.AddNode("agent-node")
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// startGuest creates a VMI of the built-in guest on the node, as the virt
// controller would after scheduling it there.
func startGuest(ctx context.Context, t *testing.T, kube client.Client, node string) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	memory := resource.MustParse("128Mi")
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "leak-check", Namespace: metav1.NamespaceDefault, Labels: map[string]string{kubevirtv1.NodeNameLabel: node}},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Domain: kubevirtv1.DomainSpec{
				Memory:  &kubevirtv1.Memory{Guest: &memory},
				Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{{Name: "root"}}},
			},
			Volumes: []kubevirtv1.Volume{{Name: "root", ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "cclm/guest"}}},
		},
	}
	if err := kube.Create(ctx, vmi); err != nil {
		t.Fatal(err)
	}
	vmi.Status.NodeName = node
	vmi.Status.Phase = kubevirtv1.Scheduled
	if err := kube.Status().Update(ctx, vmi); err != nil {
		t.Fatal(err)
	}
	return vmi
}

// waitForGuestAgent waits until the VMI is Running with its guest agent
// connected: the agent then holds every kind of goroutine a guest gives it.
func waitForGuestAgent(ctx context.Context, t *testing.T, kube client.Client, vmi *kubevirtv1.VirtualMachineInstance, ended <-chan error) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-ended:
			return false, fmt.Errorf("Run ended early: %w", err)
		default:
		}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(vmi), vmi); err != nil {
			return false, nil
		}
		for _, c := range vmi.Status.Conditions {
			if c.Type == kubevirtv1.VirtualMachineInstanceAgentConnected && c.Status == corev1.ConditionTrue {
				return vmi.Status.Phase == kubevirtv1.Running, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("VMI %s: phase %s, conditions %+v: %v", vmi.Name, vmi.Status.Phase, vmi.Status.Conditions, err)
	}
}

// guestPids are the QEMUs running from runDir's VMI directories.
func guestPids(t *testing.T, runDir string) []int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(runDir, "*", "qemu.pid"))
	var pids []int
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err == nil && procutil.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killGuests ends the QEMUs the agent left running.
func killGuests(t *testing.T, runDir string) {
	for _, pid := range guestPids(t, runDir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
