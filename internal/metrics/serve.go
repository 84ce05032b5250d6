// Package metrics serves a component's Prometheus metrics and health as
// KubeVirt's components do: /metrics, /healthz and /readyz over HTTPS on one
// address, each request authenticated (TokenReview) and authorized
// (SubjectAccessReview: get on the path, a non-resource URL) through the
// component's API server. It also holds the collectors of cclm's migration
// metrics, under upstream KubeVirt's names.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Off is the address that serves nothing.
const Off = "0"

// ServerOptions are the controller-runtime metrics server options that
// serve on addr ("" or Off: nothing), over TLS with a self-signed
// certificate (as kube-controller-manager's), every path behind the API
// server's authentication and authorization.
func ServerOptions(addr string) metricsserver.Options {
	if addr == "" || addr == Off {
		return metricsserver.Options{BindAddress: Off}
	}
	return metricsserver.Options{
		BindAddress:    addr,
		SecureServing:  true,
		FilterProvider: filters.WithAuthenticationAndAuthorization,
		ExtraHandlers:  map[string]http.Handler{"/healthz": alive, "/readyz": alive},
	}
}

// alive answers ok: the process serves, which is what a probe of it asks.
var alive = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
})

// ServingRules are what a component's account needs to guard its metrics:
// to ask the API server who a caller is and what it may do.
var ServingRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
	{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
}

// ReaderRules are what a scraper (Prometheus' account) needs to read every
// component's metrics and health.
var ReaderRules = []rbacv1.PolicyRule{
	{NonResourceURLs: []string{"/metrics", "/healthz", "/readyz"}, Verbs: []string{"get"}},
}

// Fixed is a collector of samples made elsewhere (by a pure function
// such as MigrationSamples), for prometheus' testutil.
type Fixed []prometheus.Metric

// Describe sends the samples' descriptors.
func (f Fixed) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }

// Collect sends the samples.
func (f Fixed) Collect(ch chan<- prometheus.Metric) {
	for _, m := range f {
		ch <- m
	}
}
