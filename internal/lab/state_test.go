package lab

import (
	"bytes"
	"errors"
	"log"
	"slices"
	"strings"
	"testing"

	"github.com/cclm-io/cclm/internal/controlplane"
)

func twoClusters() *State {
	cluster := func(name string, base int) ClusterState {
		return ClusterState{Name: name, Pids: []int{base, base + 1, base + 2}, Processes: []ProcessState{
			{controlplane.Etcd, base}, {controlplane.KubeAPIServer, base + 1}, {controlplane.KubeControllerManager, base + 2},
		}}
	}
	return &State{Clusters: []ClusterState{cluster("ocp7", 100), cluster("ocp1", 200)}}
}

func TestSetControlPlanePidChangesOneProcessOfOneCluster(t *testing.T) {
	cases := []struct {
		cluster, component string
		wantOCP7, wantOCP1 []int
	}{
		{"ocp7", controlplane.KubeAPIServer, []int{100, 999, 102}, []int{200, 201, 202}},
		{"ocp1", controlplane.Etcd, []int{100, 101, 102}, []int{999, 201, 202}},
		{"ocp1", controlplane.KubeControllerManager, []int{100, 101, 102}, []int{200, 201, 999}},
		{"ocp9", controlplane.Etcd, []int{100, 101, 102}, []int{200, 201, 202}},
		{"ocp7", "kube-scheduler", []int{100, 101, 102}, []int{200, 201, 202}},
	}
	for _, tc := range cases {
		state := twoClusters()
		state.setControlPlanePid(tc.cluster, tc.component, 999)
		for i, want := range [][]int{tc.wantOCP7, tc.wantOCP1} {
			c := state.Clusters[i]
			if !slices.Equal(c.Pids, want) || !slices.Equal(processPids(c.Processes), want) {
				t.Errorf("%s %s restarted: %s has pids %v and processes %v, want %v", tc.cluster, tc.component, c.Name, c.Pids, c.Processes, want)
			}
		}
	}
}

func TestControlPlanePidNamesWhatIsMissing(t *testing.T) {
	state := twoClusters()
	if pid, err := state.ControlPlanePid("ocp1", controlplane.KubeAPIServer); pid != 201 || err != nil {
		t.Fatalf("ocp1 kube-apiserver: %d, %v", pid, err)
	}
	for _, tc := range []struct{ cluster, component, mention string }{
		{"ocp9", controlplane.KubeAPIServer, "no cluster ocp9"},
		{"ocp7", "kube-scheduler", "no kube-scheduler process"},
	} {
		if _, err := state.ControlPlanePid(tc.cluster, tc.component); err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s %s: error %v should say %q", tc.cluster, tc.component, err, tc.mention)
		}
	}
}

func TestPublisherRewritesStateJSONOnEachUpdateOncePublished(t *testing.T) {
	dir := t.TempDir()
	publisher := &statePublisher{p: paths{dir: dir}, logger: log.New(&bytes.Buffer{}, "", 0)}
	publisher.update(func(s *State) { t.Fatal("update before publish changed a state") })
	if _, err := ReadState(dir); err == nil {
		t.Fatal("state.json exists before publish")
	}
	if err := publisher.publish(twoClusters); err != nil {
		t.Fatal(err)
	}
	publisher.update(func(s *State) { s.setControlPlanePid("ocp7", controlplane.KubeAPIServer, 4242) })
	state, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := state.ControlPlanePid("ocp7", controlplane.KubeAPIServer); pid != 4242 || err != nil {
		t.Fatalf("state.json after the restart: kube-apiserver %d, %v; pids %v", pid, err, state.Clusters[0].Pids)
	}
}

func TestHealthChangeLogsDegradedAndRecoveredOnce(t *testing.T) {
	killed := errors.New("ocp7/kube-apiserver: signal: killed")
	etcdKilled := errors.New("ocp7/etcd: signal: killed")
	steps := []struct {
		health error
		want   string // "" when nothing is to be logged
	}{
		{nil, ""},
		{killed, "ocp7: control plane degraded: ocp7/kube-apiserver: signal: killed"},
		{killed, ""},
		{nil, "ocp7: control plane healthy again"},
		{nil, ""},
		{killed, "ocp7: control plane degraded: ocp7/kube-apiserver: signal: killed"},
		{etcdKilled, "ocp7: control plane degraded: ocp7/etcd: signal: killed"},
		{nil, "ocp7: control plane healthy again"},
	}
	problems := map[string]string{}
	for i, step := range steps {
		line, changed := healthChange(problems, "ocp7", step.health)
		if changed != (step.want != "") || line != step.want {
			t.Errorf("step %d (%v): logged %q (changed %v), want %q", i, step.health, line, changed, step.want)
		}
	}
	if line, changed := healthChange(problems, "ocp1", nil); changed {
		t.Errorf("a healthy cluster seen first logged %q", line)
	}
}
