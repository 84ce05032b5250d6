package testenv

import (
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cclm-io/cclm/internal/scheme"
)

// RESTConfig is the config of context contextName in the kubeconfig file,
// with room for a test's bursts of requests (client-go's default of 5 QPS
// would make waits slow and flaky).
func RESTConfig(t testing.TB, kubeconfig, contextName string) *rest.Config {
	t.Helper()
	config, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: contextName},
	).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	config.QPS, config.Burst = 100, 200
	return config
}

// KubeClient is a client of context contextName in the kubeconfig file
// that knows cclm's API types.
func KubeClient(t testing.TB, kubeconfig, contextName string) client.Client {
	t.Helper()
	c, err := client.New(RESTConfig(t, kubeconfig, contextName), client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
