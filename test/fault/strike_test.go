package fault

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/lab"
	"github.com/cclm-io/cclm/internal/netlab"
	"github.com/cclm-io/cclm/test/labtest"
)

// The faults that are not a process killed: the link, the storage, the
// trust. Each takes something away from the lab the way an operator or a
// failing machine would, and gives it back.

// cutMigrationLink takes a node's uplink to the migration network down
// for a while, then brings it up again: a pulled cable, or a switch port
// that flaps.
func (l *labEnv) cutMigrationLink(t *testing.T, node string, downFor time.Duration) {
	t.Helper()
	ns, err := netlab.OpenNode(lab.ID(l.Dir), node)
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.LinkDown(netlab.MigrationUplink); err != nil {
		t.Fatal(err)
	}
	up := func() {
		if err := ns.LinkUp(netlab.MigrationUplink); err != nil {
			t.Errorf("restore the migration link of %s: %v", node, err)
		}
	}
	defer up()
	time.Sleep(downFor)
}

// removePeerCA takes the peer's CA out of a cluster's
// kubevirt-external-ca: that cluster no longer trusts the peer's
// synchronization controller or QEMU. exchangeCAs puts it back.
func (l *labEnv) removePeerCA(t *testing.T, peer, cluster string) {
	t.Helper()
	var bundle, external corev1.ConfigMap
	if !l.Get(t, peer, labtest.VirtNamespace, install.CABundleConfigMap, &bundle) || !l.Get(t, cluster, labtest.VirtNamespace, install.ExternalCAConfigMap, &external) {
		t.Fatalf("the CA ConfigMaps of %s and %s are missing", peer, cluster)
	}
	peerCA := strings.TrimSpace(bundle.Data[install.CABundleKey])
	if !strings.Contains(external.Data[install.CABundleKey], peerCA) {
		t.Fatalf("%s's %s does not hold %s's CA", cluster, install.ExternalCAConfigMap, peer)
	}
	external.Data[install.CABundleKey] = strings.Replace(external.Data[install.CABundleKey], peerCA, "", 1)
	if err := l.Client(t, cluster).Update(context.Background(), &external); err != nil {
		t.Fatal(err)
	}
}

// fillStorage puts every node of a cluster's volume directory on a
// filesystem with fullStorageSize of room (a tmpfs mounted over it): a new
// volume file can be made (sparse), but writing more than that into it
// fails with ENOSPC, as on a full disk. The undo unmounts it; the files
// the mount hid are back, those made in it are gone.
func (l *labEnv) fillStorage(t *testing.T, cluster string) func() {
	t.Helper()
	var mounted []string
	undo := func() {
		for _, dir := range mounted {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount the full storage at %s: %v", dir, err)
			}
		}
		mounted = nil
	}
	for _, node := range l.NodeAgents(t) {
		if node.Cluster != cluster {
			continue
		}
		dir := l.storageDir(cluster, node.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("cclm-full-storage", dir, "tmpfs", 0, "size="+fullStorageSize+",mode=0755"); err != nil {
			undo()
			t.Fatalf("mount a full filesystem on %s: %v", dir, err)
		}
		mounted = append(mounted, dir)
	}
	t.Cleanup(undo)
	return undo
}

// deleteNamespace deletes a namespace, as a user cleans up after a
// migration, and waits until it is gone.
func (l *labEnv) deleteNamespace(t *testing.T, at where) {
	t.Helper()
	c := l.Client(t, at.cluster)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: at.namespace}}
	if err := c.Delete(context.Background(), ns); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	labtest.WaitEvery(t, fmt.Sprintf("namespace %s on %s to be gone", at.namespace, at.cluster), 500*time.Millisecond, 3*time.Minute, func() (bool, string) {
		var current corev1.Namespace
		if !l.Get(t, at.cluster, "", at.namespace, &current) {
			return true, ""
		}
		return false, fmt.Sprintf("%s; %s", current.Status.Phase, conditions(current.Status.Conditions))
	})
}

func conditions(list []corev1.NamespaceCondition) string {
	var parts []string
	for _, c := range list {
		if c.Status == corev1.ConditionTrue {
			parts = append(parts, string(c.Type)+": "+c.Message)
		}
	}
	return strings.Join(parts, "; ")
}
