package controlplane_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/internal/procutil"
	"github.com/cclm-io/cclm/internal/testenv"
)

// recoveryTimeout bounds a component's way back, from its kill to the API
// answering again; the fault suite waits as long.
const recoveryTimeout = 60 * time.Second

// TestKilledComponentsComeBack kills kube-apiserver, then etcd, with SIGKILL
// as the fault suite does, and checks that each is restarted: the API is
// down for a while, then answers again with what it held (etcd's data
// directory outlives etcd), from a new process.
func TestKilledComponentsComeBack(t *testing.T) {
	testenv.RequireE2E(t)
	testenv.RequireKubeBinaries(t)
	dir := t.TempDir()
	var restarted restartLog
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := controlplane.Start(ctx, controlplane.Options{
		Name: "restarts", Dir: dir, BinDir: testenv.BinDir(), Logf: t.Logf, OnRestart: restarted.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAndCheckNothingRestarts(t, c, dir) })
	config, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	// Short requests: a probe of a dead API must fail fast, not hang.
	config.Timeout = 2 * time.Second
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "survivor", Namespace: "default"}, Data: map[string]string{"k": "v"}}
	if _, err := clientset.CoreV1().ConfigMaps("default").Create(ctx, want, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, component := range []string{controlplane.KubeAPIServer, controlplane.Etcd} {
		t.Run(component, func(t *testing.T) {
			killAndAwaitRecovery(t, c, clientset, component, &restarted)
		})
	}
}

func killAndAwaitRecovery(t *testing.T, c *controlplane.Cluster, clientset kubernetes.Interface, component string, restarted *restartLog) {
	getConfigMap := func() (*corev1.ConfigMap, error) {
		return clientset.CoreV1().ConfigMaps("default").Get(context.Background(), "survivor", metav1.GetOptions{})
	}
	killed := pidOf(t, c, component)
	restartsBefore := restarted.count(component)
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	// Down for RestartDelay: the cluster says so, and a client gets no answer.
	await(t, 2*time.Second, "Healthy to report the kill", func() (bool, string) {
		err := c.Healthy()
		return err != nil && strings.Contains(err.Error(), component), "healthy"
	})
	if _, err := getConfigMap(); err == nil {
		t.Fatalf("the API answered %s after %s was killed", time.Since(began).Round(time.Millisecond), component)
	} else {
		t.Logf("%s after the kill the API fails: %v", time.Since(began).Round(time.Millisecond), err)
	}
	await(t, recoveryTimeout, "the API back with the ConfigMap", func() (bool, string) {
		got, err := getConfigMap()
		if err != nil {
			return false, err.Error()
		}
		return got.Data["k"] == "v", "data " + strconv.Quote(got.Data["k"])
	})
	t.Logf("%s killed: the API answered again after %s", component, time.Since(began).Round(100*time.Millisecond))
	now := pidOf(t, c, component)
	if now == killed || !procutil.Alive(now) {
		t.Errorf("%s is pid %d (alive %v) after the restart, was %d", component, now, procutil.Alive(now), killed)
	}
	if got := restarted.count(component); got != restartsBefore+1 {
		t.Errorf("OnRestart told of %d restarts of %s, want 1", got-restartsBefore, component)
	}
	// kube-controller-manager exits when it loses the API (its leader
	// election fails) and is restarted in turn: the cluster is healthy
	// once that restart too is through.
	var health error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if health = c.Healthy(); health == nil {
			break
		}
	}
	if health != nil {
		t.Errorf("not Healthy 30 s after the recovery: %v", health)
	}
}

// stopAndCheckNothingRestarts stops the cluster twice and checks that no
// process of it runs, then or a restart delay later.
func stopAndCheckNothingRestarts(t *testing.T, c *controlplane.Cluster, dir string) {
	c.Stop()
	c.Stop()
	time.Sleep(controlplane.DefaultRestartDelay + time.Second)
	if pids := processesMentioning(dir); len(pids) > 0 {
		t.Errorf("processes %v of the cluster run after Stop", pids)
	}
}

type restartLog struct {
	mu     sync.Mutex
	counts map[string]int
}

func (r *restartLog) add(component string, _ int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	r.counts[component]++
}

func (r *restartLog) count(component string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[component]
}

func pidOf(t *testing.T, c *controlplane.Cluster, component string) int {
	t.Helper()
	pid, ok := c.ProcessPid(component)
	if !ok {
		t.Fatalf("no %s in %v", component, c.ProcessPids())
	}
	return pid
}

func await(t *testing.T, timeout time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s: %s", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) && procutil.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
