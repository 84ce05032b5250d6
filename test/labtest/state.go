package labtest

import (
	"testing"

	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/internal/lab"
)

// State is what the lab's supervisor publishes: its clusters and
// components, with their current pids (the supervisor restarts what
// dies, with a new pid).
func (l *Lab) State(t testing.TB) lab.State {
	t.Helper()
	state, err := lab.ReadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return *state
}

// Component is the lab's record of the node agent or controller that
// matches; what names it for the failure if none does.
func (l *Lab) Component(t testing.TB, match func(lab.ComponentState) bool, what string) lab.ComponentState {
	t.Helper()
	for _, c := range l.State(t).Components {
		if match(c) {
			return c
		}
	}
	t.Fatalf("%s is not in the lab's state", what)
	return lab.ComponentState{}
}

// NodeAgents are the lab's node agents.
func (l *Lab) NodeAgents(t testing.TB) []lab.ComponentState {
	t.Helper()
	var nodes []lab.ComponentState
	for _, c := range l.State(t).Components {
		if c.Kind == lab.KindNode {
			nodes = append(nodes, c)
		}
	}
	return nodes
}

// NodeAgentPid is the pid of a node's agent now.
func (l *Lab) NodeAgentPid(t testing.TB, node string) int {
	t.Helper()
	return l.Component(t, func(c lab.ComponentState) bool { return c.Kind == lab.KindNode && c.Name == node }, "node agent "+node).Pid
}

// ControllerPid is the pid of a cluster's controller (virt-controller,
// virt-synchronization-controller, ...) now.
func (l *Lab) ControllerPid(t testing.TB, cluster, name string) int {
	t.Helper()
	return l.Component(t, func(c lab.ComponentState) bool {
		return c.Kind == lab.KindController && c.Cluster == cluster && c.Name == name
	}, cluster+"'s "+name).Pid
}

// APIServerPid is the pid of a cluster's kube-apiserver now.
func (l *Lab) APIServerPid(t testing.TB, cluster string) int {
	t.Helper()
	state := l.State(t)
	pid, err := state.ControlPlanePid(cluster, controlplane.KubeAPIServer)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
