package toolkit

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	"github.com/cclm-io/cclm/internal/scheme"
)

// FuzzSourceConfig feeds the toolkit Providers and Secrets as a user
// writes them: reading them must never panic; the errors never quote the
// token; a config it returns carries the Secret's non-empty token, the
// Provider's URL, and TLS verification off only when the Secret says
// insecureSkipVerify "true" (then with no CA).
//
//	go test -fuzz FuzzSourceConfig ./internal/toolkit
func FuzzSourceConfig(f *testing.F) {
	f.Add("https://api.ocp7:6443", "ocp7-token", "", "s3cr3t-token-value", "-----BEGIN CERTIFICATE-----\n", "")
	f.Add("https://api.ocp7:6443", "ocp7-token", "other", "tok", "", "true")
	f.Add("", "ocp7-token", "", "tok", "", "")
	f.Add("https://x", "", "", "tok", "", "")
	f.Add("https://x", "missing", "", "", "", "TRUE")
	f.Fuzz(func(t *testing.T, url, secretName, secretNamespace, token, ca, insecure string) {
		const providerNamespace = "konveyor-forklift"
		provider := &forkliftv1beta1.Provider{
			ObjectMeta: metav1.ObjectMeta{Namespace: providerNamespace, Name: "ocp7"},
			Spec:       forkliftv1beta1.ProviderSpec{URL: url, Secret: corev1.ObjectReference{Name: secretName, Namespace: secretNamespace}},
		}
		namespace := secretNamespace
		if namespace == "" {
			namespace = providerNamespace
		}
		builder := fake.NewClientBuilder().WithScheme(scheme.Scheme)
		if secretName != "" && secretName != "missing" {
			builder = builder.WithObjects(&corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: secretName},
				Data: map[string][]byte{
					forkliftv1beta1.SecretToken:              []byte(token),
					forkliftv1beta1.SecretCACert:             []byte(ca),
					forkliftv1beta1.SecretInsecureSkipVerify: []byte(insecure),
				},
			})
		}
		config, err := SourceConfig(context.Background(), builder.Build(), provider)
		if err != nil {
			quoted := len(token) >= 6 && strings.Contains(err.Error(), token)
			for _, s := range []string{url, secretName, secretNamespace, providerNamespace, "ocp7", forkliftv1beta1.SecretToken} {
				quoted = quoted && !strings.Contains(s, token)
			}
			if quoted {
				t.Fatalf("the error quotes the token: %v", err)
			}
			return
		}
		if config.BearerToken == "" || config.BearerToken != token || config.Host != url || url == "" {
			t.Fatalf("config host %q token %q for provider URL %q token %q", config.Host, config.BearerToken, url, token)
		}
		if config.Insecure != (insecure == "true") || config.Insecure && len(config.CAData) != 0 {
			t.Fatalf("insecure %v with CA %q for insecureSkipVerify %q", config.Insecure, config.CAData, insecure)
		}
	})
}
