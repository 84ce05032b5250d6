package fault

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/nodeagent/nodeapi"
	"github.com/cclm-io/cclm/internal/testenv"
)

// The lab helpers of this package are the few of test/e2e's that the
// fault suite needs (that package's are unexported _test code), kept
// small: one lab per run, shared by the cases, or the lab in
// CCLM_E2E_LAB_DIR, kept.

type labEnv struct {
	dir, kubeconfig, cclm string
}

var (
	labOnce    sync.Once
	theLab     *labEnv
	labErr     string
	labsToStop []string
)

func sharedLab(t testing.TB) *labEnv {
	t.Helper()
	testenv.RequireLab(t)
	labOnce.Do(func() {
		bin, err := os.MkdirTemp("", "cclm-fault-bin-")
		if err != nil {
			labErr = err.Error()
			return
		}
		cclm := filepath.Join(bin, "cclm")
		build := exec.Command("go", "build", "-o", cclm, "./cmd/cclm")
		build.Dir = testenv.RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			labErr = fmt.Sprintf("go build ./cmd/cclm: %v\n%s", err, out)
			return
		}
		dir, keep := os.LookupEnv("CCLM_E2E_LAB_DIR")
		if !keep {
			if dir, err = os.MkdirTemp("", "cclm-fault-lab-"); err != nil {
				labErr = err.Error()
				return
			}
		}
		began := time.Now()
		if out, err := run(5*time.Minute, cclm, "lab", "up", "--dir", dir, "--bin-dir", testenv.BinDir()); err != nil {
			labErr = "lab up: " + err.Error() + "\n" + out
			return
		}
		t.Logf("lab up in %s (%s)", time.Since(began).Round(100*time.Millisecond), dir)
		theLab = &labEnv{dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig"), cclm: cclm}
		if !keep {
			labsToStop = append(labsToStop, dir)
		}
	})
	if theLab == nil {
		t.Fatalf("lab: %s", labErr)
	}
	return theLab
}

func stopLabs() {
	for _, dir := range labsToStop {
		if theLab != nil {
			_, _ = run(2*time.Minute, theLab.cclm, "lab", "down", "--dir", dir)
		}
		_ = os.RemoveAll(dir)
	}
}

// run runs a command to its end and returns its combined output.
func run(timeout time.Duration, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (l *labEnv) restConfig(t testing.TB, cluster string) *rest.Config {
	t.Helper()
	return testenv.RESTConfig(t, l.kubeconfig, cluster)
}

func (l *labEnv) client(t testing.TB, cluster string) client.Client {
	t.Helper()
	return testenv.KubeClient(t, l.kubeconfig, cluster)
}

func (l *labEnv) kubectl(t testing.TB, cluster, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(testenv.BinDir(), "kubectl"), append([]string{"--kubeconfig", l.kubeconfig, "--context", cluster}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl --context %s %s: %v\n%s", cluster, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// describe is what a failure needs to be understood.
func (l *labEnv) describe(t testing.TB, cluster, namespace string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.BinDir(), "kubectl"), "--kubeconfig", l.kubeconfig, "--context", cluster,
		"get", "vm,vmi,vmim,events", "-n", namespace, "-o", "wide")
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// get reads an object; false when it does not exist.
func (l *labEnv) get(t testing.TB, cluster, namespace, name string, obj client.Object) bool {
	t.Helper()
	var err error
	l.call(t, cluster, func(c client.Client) error {
		err = c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, obj)
		return client.IgnoreNotFound(err)
	})
	return err == nil
}

// list lists objects of a kind in every namespace.
func (l *labEnv) list(t testing.TB, cluster string, list client.ObjectList) {
	t.Helper()
	l.call(t, cluster, func(c client.Client) error { return c.List(context.Background(), list) })
}

// call calls a cluster's API until it answers: an API server that does
// not is waited for (apiServerOutage), as the suite kills them.
func (l *labEnv) call(t testing.TB, cluster string, request func(client.Client) error) {
	t.Helper()
	c := l.client(t, cluster)
	deadline := time.Now().Add(apiServerOutage)
	for {
		err := request(c)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer for %s: %v", cluster, apiServerOutage, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// apiServerOutage is how long the suite waits for a cluster's API: a
// killed kube-apiserver is restarted after a few seconds and needs a few
// more to serve.
const apiServerOutage = 90 * time.Second

func (l *labEnv) vmi(t testing.TB, cluster, namespace, name string) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	var vmi kubevirtv1.VirtualMachineInstance
	if !l.get(t, cluster, namespace, name, &vmi) {
		return nil
	}
	return &vmi
}

func (l *labEnv) vmim(t testing.TB, cluster, namespace, name string) *kubevirtv1.VirtualMachineInstanceMigration {
	t.Helper()
	var vmim kubevirtv1.VirtualMachineInstanceMigration
	if !l.get(t, cluster, namespace, name, &vmim) {
		return nil
	}
	return &vmim
}

// guest runs a guest agent command through the VMI's node agent.
func (l *labEnv) guest(t testing.TB, cluster, namespace, name, cmd string, args, result any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api, err := nodeapi.DialVMI(ctx, l.restConfig(t, cluster), namespace, name)
	if err != nil {
		return err
	}
	return api.Guest(ctx, cmd, args, result)
}

// waitFor polls check every interval until it holds or timeout passes.
func waitFor(t testing.TB, what string, interval, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	err := kube.Poll(context.Background(), interval, timeout, what, func(context.Context) (bool, string, error) {
		ok, state := check()
		return ok, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// component is the lab's record of a node agent or controller.
func (l *labEnv) component(t testing.TB, match func(lab.ComponentState) bool, what string) lab.ComponentState {
	t.Helper()
	for _, c := range l.state(t).Components {
		if match(c) {
			return c
		}
	}
	t.Fatalf("%s is not in the lab's state", what)
	return lab.ComponentState{}
}

// state is what the lab's supervisor publishes: its clusters and
// components, with their current pids.
func (l *labEnv) state(t testing.TB) lab.State {
	t.Helper()
	state, err := lab.ReadState(l.dir)
	if err != nil {
		t.Fatal(err)
	}
	return *state
}

func (l *labEnv) nodeAgentPid(t testing.TB, node string) int {
	t.Helper()
	return l.component(t, func(c lab.ComponentState) bool { return c.Kind == lab.KindNode && c.Name == node }, "node agent "+node).Pid
}

func (l *labEnv) controllerPid(t testing.TB, cluster, name string) int {
	t.Helper()
	return l.component(t, func(c lab.ComponentState) bool {
		return c.Kind == lab.KindController && c.Cluster == cluster && c.Name == name
	}, cluster+"'s "+name).Pid
}

// qemuPids lists the QEMU processes of the host whose domain name
// (namespace_name) matches: the truth about where a VM runs, whichever
// lab cluster's node it runs on.
func qemuPids(match func(domain string) bool) map[int]string {
	pids := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("qemu-system")) {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			// -name guest=NAMESPACE_NAME,...
			if rest, ok := strings.CutPrefix(arg, "guest="); ok {
				domain, _, _ := strings.Cut(rest, ",")
				if match(domain) {
					pids[pid] = domain
				}
			}
		}
	}
	return pids
}
