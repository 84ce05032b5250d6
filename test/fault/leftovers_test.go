package fault

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/internal/nodeagent/vmiruntime"
	"github.com/cclm-io/cclm/internal/scheduling"
	"github.com/cclm-io/cclm/test/labtest"
)

// What a node holds for a VM, each of which a fault could strand: the
// VMI's run directory (QMP, agent and migration sockets, TLS material),
// its taps on the node's VM bridge, its volumes' files. Each must belong to
// an object the node's cluster still has.

// owned is what the objects of one cluster account for, per node.
type owned struct {
	runDirs map[string]bool // VMI UID prefixes (the node agent's run directory names)
	taps    map[string]bool
	volumes map[string]map[string]bool // node → volume file names
}

func (l *labEnv) ownedBy(t *testing.T, cluster string) owned {
	t.Helper()
	o := owned{runDirs: map[string]bool{}, taps: map[string]bool{}, volumes: map[string]map[string]bool{}}
	var vmis kubevirtv1.VirtualMachineInstanceList
	l.List(t, cluster, &vmis)
	for _, vmi := range vmis.Items {
		o.runDirs[string(vmi.UID)[:min(13, len(vmi.UID))]] = true
		for _, iface := range vmi.Spec.Domain.Devices.Interfaces {
			o.taps[vmiruntime.TapName(vmi.UID, iface.Name)] = true
		}
	}
	var pvs corev1.PersistentVolumeList
	l.List(t, cluster, &pvs)
	for _, pv := range pvs.Items {
		node := pv.Annotations[scheduling.StorageNodeAnnotation]
		if o.volumes[node] == nil {
			o.volumes[node] = map[string]bool{}
		}
		o.volumes[node][pv.Name+".img"] = true
	}
	return o
}

// leftovers lists what the lab's nodes hold that no object of their
// cluster owns: run directories, taps, volume files.
func (l *labEnv) leftovers(t *testing.T) []string {
	t.Helper()
	var found []string
	byCluster := map[string]owned{}
	for _, node := range l.NodeAgents(t) {
		o, ok := byCluster[node.Cluster]
		if !ok {
			o = l.ownedBy(t, node.Cluster)
			byCluster[node.Cluster] = o
		}
		for _, dir := range entries(t, node.RunDir) {
			if !o.runDirs[dir] {
				found = append(found, fmt.Sprintf("%s: run directory %s of no VMI", node.Name, filepath.Join(node.RunDir, dir)))
			}
		}
		for _, tap := range l.taps(t, node.Name) {
			if !o.taps[tap] {
				found = append(found, fmt.Sprintf("%s: tap %s of no VMI", node.Name, tap))
			}
		}
		for _, file := range entries(t, l.storageDir(node.Cluster, node.Name)) {
			if !o.volumes[node.Name][file] {
				found = append(found, fmt.Sprintf("%s: volume file %s of no PersistentVolume", node.Name, file))
			}
		}
	}
	return found
}

// assertNothingLeft waits (cleaning up is asynchronous) until no node
// holds anything its cluster does not account for.
func (l *labEnv) assertNothingLeft(t *testing.T) {
	t.Helper()
	labtest.WaitEvery(t, "nothing left on the nodes that no object owns", 500*time.Millisecond, 2*time.Minute, func() (bool, string) {
		found := l.leftovers(t)
		return len(found) == 0, strings.Join(found, "; ")
	})
}

// storageDir is where a lab node keeps its volumes' files.
func (l *labEnv) storageDir(cluster, node string) string {
	return filepath.Join(l.Dir, "clusters", cluster, "nodes", node, "storage")
}

func (l *labEnv) taps(t *testing.T, node string) []string {
	t.Helper()
	ns, err := netlab.OpenNode(lab.ID(l.Dir), node)
	if err != nil {
		t.Fatal(err)
	}
	links, err := ns.Links()
	if err != nil {
		t.Fatal(err)
	}
	var taps []string
	for _, link := range links {
		if link.Type == "tap" || link.Type == "tun" {
			taps = append(taps, link.Name)
		}
	}
	return taps
}

// entries are a directory's entry names; none if it does not exist.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}
