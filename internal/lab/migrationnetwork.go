package lab

import (
	"context"
	"fmt"
	"log"
	"slices"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	hcov1beta1 "github.com/cclm-io/cclm/api/hco/v1beta1"
	nmstatev1 "github.com/cclm-io/cclm/api/nmstate/v1"
	"github.com/cclm-io/cclm/examples/openshift"
	"github.com/cclm-io/cclm/internal/controlplane"
	"github.com/cclm-io/cclm/internal/hco"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/kube"
	"github.com/cclm-io/cclm/internal/migrationcontroller"
	"github.com/cclm-io/cclm/internal/migrationnet"
	"github.com/cclm-io/cclm/internal/nodeagent/nmstate"
)

// The migration network as the OpenShift guide builds it, from the
// cluster's side: the NodeNetworkConfigurationPolicy that makes br-2001
// with port enp2s0 on every worker (the node agents apply it), the NADs,
// and the KubeVirt CR's migrations.network and gate (which the guide sets
// through the HyperConverged CR). By default the lab sets all of it up;
// with Options.WithoutMigrationNetwork it leaves it to a person following
// the guide (the workers then have enp2s0 but no bridge, no NAD exists,
// and neither the HyperConverged nor the KubeVirt CR names a migration
// network or enables the DecentralizedLiveMigration gate).

// SeedNNCPName is the OpenShift guide's NodeNetworkConfigurationPolicy.
const SeedNNCPName = "br-2001-via-enp2s0"

// migrationNetworkTimeout bounds the wait for every node's migration0: the
// agents apply the policy and make the interface within a second or two
// of their start.
const migrationNetworkTimeout = 2 * time.Minute

// seedPolicy decodes the OpenShift guide's policy, strictly: the lab
// applies the file a reader of the guide applies.
func seedPolicy() (*nmstatev1.NodeNetworkConfigurationPolicy, error) {
	policy := &nmstatev1.NodeNetworkConfigurationPolicy{}
	if err := yaml.UnmarshalStrict(openshift.NNCPYAML(), policy); err != nil {
		return nil, fmt.Errorf("examples/openshift/%s: %w", openshift.NNCPFile, err)
	}
	return policy, nil
}

// seedHyperConverged is the HyperConverged CR kubevirt-hyperconverged, as
// the operator's installation leaves it: no settings. The OpenShift
// guide's step ("Instantiate with following changes",
// examples/openshift/hyperconverged.yaml) sets liveMigrationConfig.network
// and featureGates.decentralizedLiveMigration on it, and the virt
// controller then writes them into the KubeVirt CR and keeps them there.
// The lab does not take that step itself even with the migration network:
// it puts the settings on the KubeVirt CR directly, so that they stay the
// KubeVirt CR's own and may be changed there (cclm's tests switch the gate
// off and point the KubeVirt CR at another NAD, which a HyperConverged CR
// setting them would revert, as the operator does).
func seedHyperConverged(opts Options) *hcov1beta1.HyperConverged {
	return &hcov1beta1.HyperConverged{
		TypeMeta:   metav1.TypeMeta{APIVersion: hcov1beta1.GroupVersion.String(), Kind: "HyperConverged"},
		ObjectMeta: metav1.ObjectMeta{Name: hcov1beta1.HyperConvergedName, Namespace: opts.VirtNamespace},
	}
}

// installKubeVirt installs KubeVirt in a cluster of the lab and, unless it
// is left out, the migration network: the KubeVirt CR with the gate and
// migrations.network, the cluster's NAD, the guide's policy, and the
// HyperConverged CR.
func installKubeVirt(ctx context.Context, restConfig *rest.Config, opts Options, cluster string) error {
	kubeVirt := install.KubeVirtOptions{Namespace: opts.VirtNamespace}
	if !opts.WithoutMigrationNetwork {
		kubeVirt.FeatureGates = []string{DecentralizedLiveMigrationGate}
		kubeVirt.MigrationNetwork = MigrationNADName
	}
	if err := install.KubeVirt(ctx, restConfig, kubeVirt); err != nil {
		return fmt.Errorf("%s: install KubeVirt: %w", cluster, err)
	}
	applier, err := kube.NewApplier(restConfig)
	if err != nil {
		return err
	}
	if err := applier.Apply(ctx, seedHyperConverged(opts)); err != nil {
		return fmt.Errorf("%s: HyperConverged CR: %w", cluster, err)
	}
	if opts.WithoutMigrationNetwork {
		return nil
	}
	if err := applyMigrationNAD(ctx, restConfig, opts.ClusterNames(), cluster, opts.VirtNamespace); err != nil {
		return fmt.Errorf("%s: migration network: %w", cluster, err)
	}
	policy, err := seedPolicy()
	if err != nil {
		return err
	}
	policy.TypeMeta = metav1.TypeMeta{APIVersion: nmstatev1.GroupVersion.String(), Kind: "NodeNetworkConfigurationPolicy"}
	if err := applier.Apply(ctx, policy); err != nil {
		return fmt.Errorf("%s: the OpenShift guide's NodeNetworkConfigurationPolicy: %w", cluster, err)
	}
	return nil
}

// describeKubeVirt says what installKubeVirt did, for the lab's log.
func describeKubeVirt(opts Options) string {
	if opts.WithoutMigrationNetwork {
		return fmt.Sprintf("KubeVirt CR %s/%s and HyperConverged CR %s installed without the migration network or the %s gate: build them by following the OpenShift guide with examples/openshift (README.md)",
			opts.VirtNamespace, install.KubeVirtName, hcov1beta1.HyperConvergedName, DecentralizedLiveMigrationGate)
	}
	return fmt.Sprintf("KubeVirt CR %s/%s installed with feature gate %s and migration network %s; NodeNetworkConfigurationPolicy %s, NAD %s and HyperConverged CR %s (no settings of its own) applied",
		opts.VirtNamespace, install.KubeVirtName, DecentralizedLiveMigrationGate, MigrationNADName, SeedNNCPName, MigrationNADName, hcov1beta1.HyperConvergedName)
}

// nodeAgentComponent is the node agent's account with the rights to apply
// NodeNetworkConfigurationPolicies.
func nodeAgentComponent() install.Component {
	component := install.NodeAgent
	component.Rules = append(slices.Clone(component.Rules), nmstate.PolicyRules...)
	return component
}

// virtControllerRules are the rules of the controllers that run in the
// virt controller's process beside it: migrations and HyperConverged.
func virtControllerRules() []rbacv1.PolicyRule {
	return append(slices.Clone(migrationcontroller.PolicyRules), hco.PolicyRules...)
}

// waitForMigrationNetwork waits until every node of every cluster shows
// its migration0 address (Node annotation cclm.io/migration-address): the
// policy made br-2001 and the NAD's macvlan is up, so a ready lab can
// migrate at once. It fails early, with the component's log, if a
// component ends.
func waitForMigrationNetwork(ctx context.Context, clusters []*controlplane.Cluster, perCluster int, nodes *labNodes, logger *log.Logger) error {
	for _, cluster := range clusters {
		clientset, err := adminClientset(cluster)
		if err != nil {
			return err
		}
		var addresses []string
		what := fmt.Sprintf("every node of %s to have migration0 on %s (NodeNetworkConfigurationPolicy %s, NAD %s)", cluster.Name, MigrationBridge, SeedNNCPName, MigrationNADName)
		err = kube.Poll(ctx, 250*time.Millisecond, migrationNetworkTimeout, what, func(ctx context.Context) (bool, string, error) {
			if err := nodes.deadComponent(); err != nil {
				return false, "", err
			}
			list, err := clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			addresses = addresses[:0]
			var missing []string
			for _, node := range list.Items {
				if address := node.Annotations[migrationnet.AnnotationKey]; address != "" {
					addresses = append(addresses, node.Name+"="+address)
				} else {
					missing = append(missing, node.Name)
				}
			}
			done := len(addresses) >= perCluster && len(missing) == 0
			return done, fmt.Sprintf("%d of %d nodes have migration0; without: %s", len(addresses), perCluster, strings.Join(missing, ", ")), nil
		})
		if err != nil {
			return err
		}
		logger.Printf("%s: migration0 on %s", cluster.Name, strings.Join(addresses, ", "))
	}
	return nil
}
