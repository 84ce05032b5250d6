package labtest

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cclm-io/cclm/internal/install"
)

// ExchangeCAs makes each of two clusters trust the other's CA for
// synchronization: the peer's CA bundle added, once, to the ConfigMap
// kubevirt-external-ca, the upstream guide's manual step.
func (l *Lab) ExchangeCAs(t testing.TB, a, b string) {
	t.Helper()
	l.trust(t, a, b)
	l.trust(t, b, a)
}

// trust adds peer's CA bundle to cluster's kubevirt-external-ca.
func (l *Lab) trust(t testing.TB, cluster, peer string) {
	t.Helper()
	var bundle corev1.ConfigMap
	if !l.Get(t, peer, VirtNamespace, install.CABundleConfigMap, &bundle) {
		t.Fatalf("%s has no ConfigMap %s", peer, install.CABundleConfigMap)
	}
	peerCA := bundle.Data[install.CABundleKey]
	external := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: VirtNamespace, Name: install.ExternalCAConfigMap}}
	CreateOrUpdate(t, l.Client(t, cluster), external, func() {
		if strings.Contains(external.Data[install.CABundleKey], strings.TrimSpace(peerCA)) {
			return
		}
		if external.Data == nil {
			external.Data = map[string]string{}
		}
		external.Data[install.CABundleKey] += peerCA
	})
}
