package install

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/config"
	"github.com/cclm-io/cclm/internal/kube"
)

// KubeVirtName is the name of the KubeVirt CR that cclm installs. OpenShift
// names its own after the HyperConverged CR; cclm accepts any name.
const KubeVirtName = "kubevirt"

// KubeVirtOptions describe a KubeVirt installation.
type KubeVirtOptions struct {
	// Namespace is the virt namespace: KubeVirt CR, NADs, sync controller.
	Namespace string
	// FeatureGates go into spec.configuration.developerConfiguration.
	FeatureGates []string
	// MigrationNetwork names the NAD for spec.configuration.migrations.network.
	MigrationNetwork string
}

// KubeVirt installs the virt namespace, the admission policies that read the
// KubeVirt CR, and the CR itself.
func KubeVirt(ctx context.Context, restConfig *rest.Config, opts KubeVirtOptions) error {
	if opts.Namespace == "" {
		return fmt.Errorf("install: KubeVirtOptions.Namespace is empty; name the virt namespace, e.g. openshift-cnv")
	}
	applier, err := kube.NewApplier(restConfig)
	if err != nil {
		return err
	}
	policies, err := config.AdmissionPolicies(opts.Namespace)
	if err != nil {
		return err
	}
	objects := []runtime.Object{&corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: opts.Namespace},
	}}
	for _, policy := range policies {
		objects = append(objects, policy)
	}
	objects = append(objects, kubeVirtCR(opts))
	return applier.Apply(ctx, objects...)
}

func kubeVirtCR(opts KubeVirtOptions) *kubevirtv1.KubeVirt {
	kv := &kubevirtv1.KubeVirt{
		TypeMeta:   metav1.TypeMeta{APIVersion: kubevirtv1.GroupVersion.String(), Kind: "KubeVirt"},
		ObjectMeta: metav1.ObjectMeta{Name: KubeVirtName, Namespace: opts.Namespace},
	}
	config := &kv.Spec.Configuration
	if len(opts.FeatureGates) > 0 {
		config.DeveloperConfiguration = &kubevirtv1.DeveloperConfiguration{FeatureGates: opts.FeatureGates}
	}
	if opts.MigrationNetwork != "" {
		config.MigrationConfiguration = &kubevirtv1.MigrationConfiguration{Network: opts.MigrationNetwork}
	}
	return kv
}
