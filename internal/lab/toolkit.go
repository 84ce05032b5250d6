package lab

import (
	"context"
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/procutil"
	"github.com/cclm-io/cclm/internal/toolkit"
)

// ToolkitControllerName is the lab component that runs the migration
// toolkit (upstream's Deployment name).
const ToolkitControllerName = toolkit.LeaderElectionID

// ToolkitNamespace is the toolkit's namespace, the seed's.
const ToolkitNamespace = toolkit.DefaultNamespace

// toolkitClusters are the clusters of the lab that run the toolkit: the
// target ocp1 of the OpenShift guide's two, every cluster of three or
// more, so that VMs can move between any two.
func toolkitClusters(clusters []string) []string {
	if len(clusters) == 2 {
		return clusters[1:]
	}
	return clusters
}

// startToolkit sets up the migration toolkit on a target cluster as the
// seed's reader does (namespace openshift-mtv, ForkliftController
// forklift-controller with feature_ocp_live_migration "true"), installs
// the toolkit's account, and runs `cclm toolkit` as that account. Its
// preflight dials sync addresses from the sync controllers' namespaces.
// One replica, so no leader election: a killed toolkit's successor acts
// at once instead of waiting out the dead one's Lease.
func (n *labNodes) startToolkit(ctx context.Context, self string, opts Options, cluster *controlplane.Cluster) error {
	admin, err := cluster.RESTConfig()
	if err != nil {
		return err
	}
	applier, err := kube.NewApplier(admin)
	if err != nil {
		return err
	}
	err = applier.Apply(ctx,
		&corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ToolkitNamespace},
		},
		&forkliftv1beta1.ForkliftController{
			TypeMeta:   metav1.TypeMeta{APIVersion: forkliftv1beta1.GroupVersion.String(), Kind: "ForkliftController"},
			ObjectMeta: metav1.ObjectMeta{Name: toolkit.ForkliftControllerName, Namespace: ToolkitNamespace},
			Spec:       forkliftv1beta1.ForkliftControllerSpec{FeatureOCPLiveMigration: "true"},
		})
	if err != nil {
		return fmt.Errorf("%s: toolkit namespace and ForkliftController: %w", cluster.Name, err)
	}
	kubeconfig, err := componentKubeconfig(ctx, admin, cluster, ToolkitNamespace, toolkit.Component, "toolkit")
	if err != nil {
		return err
	}
	metricsAddr, metricsURL, err := metricsAddress()
	if err != nil {
		return err
	}
	spec := procutil.Spec{
		Name: cluster.Name + "/" + ToolkitControllerName,
		Path: self,
		Args: []string{"toolkit",
			"--kubeconfig", kubeconfig,
			"--namespace", ToolkitNamespace,
			"--virt-namespace", opts.VirtNamespace,
			"--cluster-name", cluster.Name,
			"--leader-elect=false",
			"--lab-id", n.id,
			"--metrics-address", metricsAddr,
		},
		LogPath: filepath.Join(cluster.Dir, "logs", ToolkitControllerName+".log"),
	}
	return n.add(spec, ComponentState{Name: ToolkitControllerName, Kind: KindController, Cluster: cluster.Name, MetricsURL: metricsURL})
}
