// Package scheme is the runtime.Scheme every cclm component and client
// uses: Kubernetes' built-in types plus all of cclm's API groups.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	cdiv1beta1 "github.com/cclm-io/cclm/api/cdi/v1beta1"
	cniv1 "github.com/cclm-io/cclm/api/cni/v1"
	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	hcov1beta1 "github.com/cclm-io/cclm/api/hco/v1beta1"
	instancetypev1beta1 "github.com/cclm-io/cclm/api/instancetype/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	migrationsv1alpha1 "github.com/cclm-io/cclm/api/migrations/v1alpha1"
	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	whereaboutsv1alpha1 "github.com/cclm-io/cclm/api/whereabouts/v1alpha1"
)

// Scheme knows every type cclm reads or writes.
var Scheme = runtime.NewScheme()

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		kubevirtv1.AddToScheme,
		migrationsv1alpha1.AddToScheme,
		cdiv1beta1.AddToScheme,
		cniv1.AddToScheme,
		forkliftv1beta1.AddToScheme,
		whereaboutsv1alpha1.AddToScheme,
		nmstatev1.AddToScheme,
		hcov1beta1.AddToScheme,
		instancetypev1beta1.AddToScheme,
	} {
		utilruntime.Must(add(Scheme))
	}
}
