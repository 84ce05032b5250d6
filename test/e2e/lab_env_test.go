package e2e

import (
	"context"
	"os"
	"path/filepath"
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
	"github.com/cclm-io/cclm/pkg/guestagent"
)

// labEnv is a whole lab (`cclm lab up`): both clusters, their controllers
// and node agents, the lab networks. The VM tests of this package share
// one; TestMain takes it down.
type labEnv struct {
	dir        string
	kubeconfig string
}

var (
	sharedLabOnce sync.Once
	sharedLabEnv  *labEnv
	sharedLabErr  string
)

func sharedLab(t testing.TB) *labEnv {
	t.Helper()
	testenv.RequireLab(t)
	sharedLabOnce.Do(func() {
		// CCLM_E2E_LAB_DIR keeps the lab (and its logs) after the run, for
		// debugging: the tests use the lab in that directory, starting it
		// if needed, and never stop it.
		dir, keep := os.LookupEnv("CCLM_E2E_LAB_DIR")
		var err error
		if !keep {
			dir, err = os.MkdirTemp("", "cclm-lab-")
		}
		if err != nil {
			sharedLabErr = err.Error()
			return
		}
		began := time.Now()
		_, stderr, err := runCCLM(t, 5*time.Minute, "lab", "up", "--dir", dir, "--bin-dir", testenv.BinDir(), "--boot-timeout", sharedLabBootTimeout.String())
		if err != nil {
			sharedLabErr = "lab up: " + err.Error() + "\n" + stderr
			return
		}
		t.Logf("shared lab up in %s", time.Since(began).Round(100*time.Millisecond))
		sharedLabEnv = &labEnv{dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig")}
		if !keep {
			labsToStop = append(labsToStop, dir)
		}
	})
	if sharedLabEnv == nil {
		t.Fatalf("shared lab: %s", sharedLabErr)
	}
	return sharedLabEnv
}

// ownLab starts a lab of the test's own (`cclm lab up` with args) and
// takes it down at the end.
func ownLab(t *testing.T, timeout time.Duration, args ...string) *labEnv {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		if _, stderr, err := runCCLM(t, 2*time.Minute, "lab", "down", "--dir", dir); err != nil {
			t.Errorf("lab down: %v\n%s", err, stderr)
		}
	})
	up := append([]string{"lab", "up", "--dir", dir, "--bin-dir", testenv.BinDir()}, args...)
	if _, stderr, err := runCCLM(t, timeout, up...); err != nil {
		t.Fatalf("lab up %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return &labEnv{dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig")}
}

// labsToStop are brought down by TestMain.
var labsToStop []string

func stopLabs() {
	for _, dir := range labsToStop {
		if path := cclmPath; path != "" {
			_ = runBinary(path, "lab", "down", "--dir", dir)
		}
		_ = os.RemoveAll(dir)
	}
}

func (l *labEnv) restConfig(t testing.TB, contextName string) *rest.Config {
	t.Helper()
	return testenv.RESTConfig(t, l.kubeconfig, contextName)
}

func (l *labEnv) client(t testing.TB, contextName string) client.Client {
	t.Helper()
	return testenv.KubeClient(t, l.kubeconfig, contextName)
}

// kubectl runs bin/kubectl against a lab context.
func (l *labEnv) kubectl(t testing.TB, contextName, stdin string, args ...string) (string, string, error) {
	t.Helper()
	return runKubectl(t, stdin, append([]string{"--kubeconfig", l.kubeconfig, "--context", contextName}, args...)...)
}

func (l *labEnv) mustKubectl(t testing.TB, contextName, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, err := l.kubectl(t, contextName, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl --context %s %s: %v\n%s", contextName, strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// guestInfo asks a VM's guest agent through its node agent's API, as
// `cclm guest VM info` does.
func (l *labEnv) guestInfo(t testing.TB, contextName, namespace, name string) (*guestagent.Info, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	api, err := nodeapi.DialVMI(ctx, l.restConfig(t, contextName), namespace, name)
	if err != nil {
		return nil, err
	}
	var info guestagent.Info
	if err := api.Guest(ctx, guestagent.CmdInfo, nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// guestCall runs a guest agent command through the node agent.
func (l *labEnv) guestCall(t testing.TB, contextName, namespace, name, cmd string, args, result any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api, err := nodeapi.DialVMI(ctx, l.restConfig(t, contextName), namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Guest(ctx, cmd, args, result); err != nil {
		t.Fatalf("guest %s on %s/%s: %v", cmd, namespace, name, err)
	}
}

// waitGuestReady waits until the VM runs and its guest agent answers.
func (l *labEnv) waitGuestReady(t testing.TB, contextName, namespace, name string, timeout time.Duration) *guestagent.Info {
	t.Helper()
	var info *guestagent.Info
	err := kube.Poll(context.Background(), 250*time.Millisecond, timeout, "VM "+namespace+"/"+name+" to run with its guest agent answering",
		func(ctx context.Context) (bool, string, error) {
			var err error
			info, err = l.guestInfo(t, contextName, namespace, name)
			if err != nil {
				return false, err.Error(), nil
			}
			// An agent that just started has not ticked yet: its heartbeat
			// reading has no time to compare later readings with.
			return info.HeartbeatUnixNano > 0, "the guest agent's heartbeat has not ticked yet", nil
		})
	if err != nil {
		t.Fatalf("%v\n%s%s", err, l.describe(t, contextName, namespace), l.consoleTail(t, contextName, namespace, name))
	}
	return info
}

// consoleTail is the end of what a VMI's guest printed on its serial
// console (a kernel oops shows there), for failure messages.
func (l *labEnv) consoleTail(t testing.TB, contextName, namespace, name string) string {
	vmi := l.vmi(t, contextName, namespace, name)
	if vmi == nil || len(vmi.UID) < 13 {
		return ""
	}
	logs, _ := filepath.Glob(filepath.Join("/run/cclm", lab.ID(l.dir), "*", string(vmi.UID)[:13], "console.log"))
	if len(logs) == 0 {
		return "\n(no console log of the VMI found)"
	}
	data, err := os.ReadFile(logs[0])
	if err != nil {
		return ""
	}
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return "\nthe guest's console (" + logs[0] + "), last lines:\n" + string(data)
}

// vmi reads a VMI; nil when it does not exist.
func (l *labEnv) vmi(t testing.TB, contextName, namespace, name string) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	var vmi kubevirtv1.VirtualMachineInstance
	err := l.client(t, contextName).Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &vmi)
	if err != nil {
		if client.IgnoreNotFound(err) == nil {
			return nil
		}
		t.Fatal(err)
	}
	return &vmi
}

// describe gathers what a failing VM test needs to be understood.
func (l *labEnv) describe(t testing.TB, contextName, namespace string) string {
	out, _, _ := l.kubectl(t, contextName, "", "get", "vm,vmi,dv,pvc,pv,events", "-n", namespace, "-o", "wide")
	return out
}
