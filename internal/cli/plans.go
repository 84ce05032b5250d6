package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/connect"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/toolkit"
)

// toolkitClusterFlags are kubectl's connection flags (cli-runtime's:
// --kubeconfig, --context, --as, --request-timeout, -n, ...) for commands
// that read or change the toolkit's objects on one cluster, the target.
type toolkitClusterFlags struct {
	config        *genericclioptions.ConfigFlags
	allNamespaces bool
}

func (f *toolkitClusterFlags) add(cmd *cobra.Command, allNamespaces bool) {
	f.config = genericclioptions.NewConfigFlags(true)
	f.config.AddFlags(cmd.Flags())
	if allNamespaces {
		cmd.Flags().BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	}
}

// toolkitCluster is the cluster those flags name, connected.
type toolkitCluster struct {
	client    client.WithWatch
	name      string // the context, for messages
	namespace string // "" with --all-namespaces
}

// connect loads the kubeconfig. The namespace is -n, else the context's,
// else the toolkit's (openshift-mtv), where Plans and Migrations live.
func (f *toolkitClusterFlags) connect() (*toolkitCluster, error) {
	loader := f.config.ToRawKubeConfigLoader()
	config, err := f.config.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w (set --kubeconfig or KUBECONFIG and --context; the lab writes .cclm-lab/kubeconfig)", err)
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	c, err := client.NewWithWatch(config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return nil, err
	}
	name, contextHasNamespace := contextName(loader, f.config)
	cluster := &toolkitCluster{client: c, name: name}
	if f.allNamespaces {
		return cluster, nil
	}
	namespace, explicit, err := loader.Namespace()
	if err != nil {
		return nil, err
	}
	if !explicit && !contextHasNamespace {
		namespace = connect.DefaultNamespace
	}
	cluster.namespace = namespace
	return cluster, nil
}

// contextName is the context the flags select, and whether it sets a
// namespace of its own.
func contextName(loader clientcmd.ClientConfig, flags *genericclioptions.ConfigFlags) (name string, hasNamespace bool) {
	raw, err := loader.RawConfig()
	if err != nil {
		return "", false
	}
	name = raw.CurrentContext
	if flags.Context != nil && *flags.Context != "" {
		name = *flags.Context
	}
	context, ok := raw.Contexts[name]
	return name, ok && context.Namespace != ""
}

// key is name in the cluster's namespace; NAMESPACE/NAME names another.
func (c *toolkitCluster) key(name string) client.ObjectKey {
	if namespace, n, found := strings.Cut(name, "/"); found {
		return client.ObjectKey{Namespace: namespace, Name: n}
	}
	return client.ObjectKey{Namespace: c.namespace, Name: name}
}

// planMigrations are the Migrations of plan, oldest first.
func planMigrations(ctx context.Context, c client.Reader, plan *forkliftv1beta1.Plan) ([]forkliftv1beta1.Migration, error) {
	var list forkliftv1beta1.MigrationList
	if err := c.List(ctx, &list, client.InNamespace(plan.Namespace)); err != nil {
		return nil, fmt.Errorf("list the Migrations of Plan %s/%s: %w", plan.Namespace, plan.Name, err)
	}
	var ofPlan []forkliftv1beta1.Migration
	for _, m := range list.Items {
		if m.Spec.Plan.Name == plan.Name && (m.Spec.Plan.Namespace == "" || m.Spec.Plan.Namespace == plan.Namespace) {
			ofPlan = append(ofPlan, m)
		}
	}
	slices.SortStableFunc(ofPlan, func(a, b forkliftv1beta1.Migration) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	return ofPlan, nil
}

// migrationOutcome is the Migration's Succeeded, Failed or Canceled
// condition that is True, else "".
func migrationOutcome(m *forkliftv1beta1.Migration) string {
	if c := toolkit.MigrationOutcome(m); c != nil {
		return c.Type
	}
	return ""
}
