package labtest

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/testenv"
)

// VirtNamespace is where the lab installs KubeVirt on every cluster.
const VirtNamespace = "openshift-cnv"

// RESTConfig is the config of one of the lab's clusters.
func (l *Lab) RESTConfig(t testing.TB, cluster string) *rest.Config {
	t.Helper()
	return testenv.RESTConfig(t, l.Kubeconfig, cluster)
}

// Client is a client of one of the lab's clusters that knows cclm's API
// types.
func (l *Lab) Client(t testing.TB, cluster string) client.Client {
	t.Helper()
	return testenv.KubeClient(t, l.Kubeconfig, cluster)
}

// Get reads an object; false when it does not exist.
func (l *Lab) Get(t testing.TB, cluster, namespace, name string, obj client.Object) bool {
	t.Helper()
	var err error
	l.call(t, cluster, func(c client.Client) error {
		err = c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, obj)
		return client.IgnoreNotFound(err)
	})
	return err == nil
}

// List lists objects of a kind.
func (l *Lab) List(t testing.TB, cluster string, list client.ObjectList, opts ...client.ListOption) {
	t.Helper()
	l.call(t, cluster, func(c client.Client) error { return c.List(context.Background(), list, opts...) })
}

// call makes a request of a cluster's API, retrying for the lab's
// patience an API server that does not answer.
func (l *Lab) call(t testing.TB, cluster string, request func(client.Client) error) {
	t.Helper()
	c := l.Client(t, cluster)
	deadline := time.Now().Add(l.patience)
	for {
		err := request(c)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if l.patience > 0 {
				t.Fatalf("%s did not answer for %s: %v", cluster, l.patience, err)
			}
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// VMI reads a VMI; nil when it does not exist.
func (l *Lab) VMI(t testing.TB, cluster, namespace, name string) *kubevirtv1.VirtualMachineInstance {
	t.Helper()
	var vmi kubevirtv1.VirtualMachineInstance
	if !l.Get(t, cluster, namespace, name, &vmi) {
		return nil
	}
	return &vmi
}

// VMIM reads a VMIM; nil when it does not exist.
func (l *Lab) VMIM(t testing.TB, cluster, namespace, name string) *kubevirtv1.VirtualMachineInstanceMigration {
	t.Helper()
	var vmim kubevirtv1.VirtualMachineInstanceMigration
	if !l.Get(t, cluster, namespace, name, &vmim) {
		return nil
	}
	return &vmim
}

// CreateOrUpdate makes obj as set says, whether it exists or not.
func CreateOrUpdate(t testing.TB, c client.Client, obj client.Object, set func()) {
	t.Helper()
	err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
	if client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	set()
	if err != nil {
		err = c.Create(context.Background(), obj)
	} else {
		err = c.Update(context.Background(), obj)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// NewVMIM is a VMIM of vmi, made one half of a cross-cluster migration by
// side (nil for a migration within the cluster).
func NewVMIM(namespace, name, vmi string, side func(*kubevirtv1.VirtualMachineInstanceMigrationSpec)) *kubevirtv1.VirtualMachineInstanceMigration {
	vmim := &kubevirtv1.VirtualMachineInstanceMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: vmi},
	}
	if side != nil {
		side(&vmim.Spec)
	}
	return vmim
}

// CreateVMIM creates NewVMIM's VMIM on a cluster.
func (l *Lab) CreateVMIM(t testing.TB, cluster, namespace, name, vmi string, side func(*kubevirtv1.VirtualMachineInstanceMigrationSpec)) {
	t.Helper()
	if err := l.Client(t, cluster).Create(context.Background(), NewVMIM(namespace, name, vmi, side)); err != nil {
		t.Fatal(err)
	}
}

// WaitVMIMFinal waits until a VMIM is Succeeded or Failed and returns it;
// past timeout the migration hangs, and the test fails with the
// namespace's state.
func (l *Lab) WaitVMIMFinal(t testing.TB, cluster, namespace, name string, timeout time.Duration) *kubevirtv1.VirtualMachineInstanceMigration {
	t.Helper()
	var vmim *kubevirtv1.VirtualMachineInstanceMigration
	err := Poll(pollInterval, timeout, "migration "+name+" on "+cluster+" to end", func() (bool, string) {
		if vmim = l.VMIM(t, cluster, namespace, name); vmim == nil {
			return false, "VMIM gone"
		}
		return vmim.IsFinal(), "phase " + string(vmim.Status.Phase)
	})
	if err != nil {
		t.Fatalf("no outcome within %s (a hang): %v\n%s", timeout, err, l.Describe(t, cluster, namespace))
	}
	return vmim
}
