package virtcontroller

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
)

// testVMI is a VMI named name in namespace ns, changed by options.
func testVMI(name string, options ...func(*kubevirtv1.VirtualMachineInstance)) *kubevirtv1.VirtualMachineInstance {
	vmi := &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)}}
	for _, option := range options {
		option(vmi)
	}
	return vmi
}
