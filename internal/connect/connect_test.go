package connect

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/install"
	"github.com/cclm-io/cclm/internal/scheme"
	"github.com/cclm-io/cclm/internal/testenv"
)

func TestDefaultStoragePairs(t *testing.T) {
	class := func(name string, isDefault bool) storagev1.StorageClass {
		c := storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if isDefault {
			c.Annotations = map[string]string{defaultClassAnnotation: "true"}
		}
		return c
	}
	pairs := DefaultStoragePairs([]string{"ssd", "cclm-local", "nfs", "ssd"}, []storagev1.StorageClass{class("cclm-local", true), class("ssd", false)})
	got := map[string]string{}
	for _, p := range pairs {
		got[p.Source.Name] = p.Destination.StorageClass
	}
	want := map[string]string{"cclm-local": "cclm-local", "nfs": "cclm-local", "ssd": "ssd"}
	if len(got) != len(want) || len(pairs) != 3 {
		t.Fatalf("got %v, want %v", pairs, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s maps to %q, want %q", k, got[k], v)
		}
	}
	if pairs[0].Source.Name != "cclm-local" || pairs[2].Source.Name != "ssd" {
		t.Fatalf("pairs not sorted by source: %v", pairs)
	}
	// Without a default class, a class the target lacks stays unmapped.
	if pairs := DefaultStoragePairs([]string{"nfs"}, []storagev1.StorageClass{class("ssd", false)}); len(pairs) != 0 || pairs == nil {
		t.Fatalf("want an empty, non-nil map, got %#v", pairs)
	}
}

func TestDefaultNetworkPairs(t *testing.T) {
	vm := kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "db"}, Spec: kubevirtv1.VirtualMachineSpec{
		Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{Spec: kubevirtv1.VirtualMachineInstanceSpec{Networks: []kubevirtv1.Network{
			{Name: "default", Pod: &kubevirtv1.PodNetwork{}},
			{Name: "storage", Multus: &kubevirtv1.MultusNetwork{NetworkName: "storage-net"}},
			{Name: "other", Multus: &kubevirtv1.MultusNetwork{NetworkName: "infra/vlan10"}},
			{Name: "missing", Multus: &kubevirtv1.MultusNetwork{NetworkName: "nowhere"}},
		}}},
	}}
	pairs := DefaultNetworkPairs([]kubevirtv1.VirtualMachine{vm, vm}, map[string]bool{"apps/storage-net": true, "infra/vlan10": true})
	if len(pairs) != 3 {
		t.Fatalf("want pod and two multus pairs, got %+v", pairs)
	}
	if pairs[0].Source.Type != "pod" || pairs[0].Destination.Type != "pod" {
		t.Fatalf("first pair must be pod -> pod: %+v", pairs[0])
	}
	if p := pairs[1]; p.Source.Namespace != "apps" || p.Source.Name != "storage-net" || p.Destination.Type != "multus" || p.Destination.Namespace != "apps" {
		t.Fatalf("a NAD without namespace is in the VM's: %+v", p)
	}
	if p := pairs[2]; p.Source.Namespace != "infra" || p.Destination.Name != "vlan10" {
		t.Fatalf("namespace/name: %+v", p)
	}
}

func TestMergePairsKeepsTheUsersChoices(t *testing.T) {
	existing := []forkliftv1beta1.StoragePair{{Source: forkliftv1beta1.Ref{Name: "ssd"}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: "fast"}}}
	defaults := []forkliftv1beta1.StoragePair{
		{Source: forkliftv1beta1.Ref{Name: "nfs"}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: "nfs"}},
		{Source: forkliftv1beta1.Ref{Name: "ssd"}, Destination: forkliftv1beta1.DestinationStorage{StorageClass: "ssd"}},
	}
	merged := MergeStoragePairs(existing, defaults)
	if len(merged) != 2 || merged[0].Destination.StorageClass != "fast" || merged[1].Source.Name != "nfs" {
		t.Fatalf("got %+v", merged)
	}
	network := MergeNetworkPairs(
		[]forkliftv1beta1.NetworkPair{{Source: forkliftv1beta1.Ref{Type: "pod"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "ignored"}}},
		[]forkliftv1beta1.NetworkPair{{Source: forkliftv1beta1.Ref{Type: "pod"}, Destination: forkliftv1beta1.DestinationNetwork{Type: "pod"}}})
	if len(network) != 1 || network[0].Destination.Type != "ignored" {
		t.Fatalf("got %+v", network)
	}
}

func TestProviderSecretData(t *testing.T) {
	data, err := providerSecretData(&rest.Config{Host: "https://x", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("CA")}}, "tok")
	if err != nil || string(data["token"]) != "tok" || string(data["ca.crt"]) != "CA" || len(data) != 2 {
		t.Fatalf("got %v %v", data, err)
	}
	data, _ = providerSecretData(&rest.Config{Host: "https://x", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, "tok")
	if string(data["insecureSkipVerify"]) != "true" || len(data) != 2 {
		t.Fatalf("got %v", data)
	}
	if _, err := providerSecretData(&rest.Config{TLSClientConfig: rest.TLSClientConfig{CAFile: "/nonexistent/ca.crt"}}, "tok"); err == nil {
		t.Fatal("a missing CA file must be an error")
	}
}

// Run against fake clusters: everything made once, a second run changes
// nothing, the CA bundles are exchanged once, the token never shows up in
// what is reported.
func TestRunIsIdempotent(t *testing.T) {
	const token = "secret-token-value"
	sourceCA, targetCA := testenv.CAPEM(t, "ocp7 migration CA"), testenv.CAPEM(t, "ocp1 migration CA")
	caMap := func(pem string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "openshift-cnv", Name: install.CABundleConfigMap}, Data: map[string]string{install.CABundleKey: pem}}
	}
	// The token controller's work, done beforehand.
	tokenSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "openshift-mtv", Name: "cclm", Annotations: map[string]string{corev1.ServiceAccountNameKey: "cclm"}},
		Type:       corev1.SecretTypeServiceAccountToken,
		Data:       map[string][]byte{corev1.ServiceAccountTokenKey: []byte(token)},
	}
	source := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(caMap(sourceCA), tokenSecret).Build()
	target := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(caMap(targetCA)).Build()
	opts := Options{
		Source: Cluster{Name: "ocp7", Config: &rest.Config{Host: "https://127.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("apiserver CA")}}},
		Target: Cluster{Name: "ocp1", Config: &rest.Config{Host: "https://127.0.0.1:7443"}},
	}
	first, err := run1(t, opts, source, target)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Changed() {
		t.Fatal("the first run made nothing")
	}
	second, err := run1(t, opts, source, target)
	if err != nil {
		t.Fatal(err)
	}
	if second.Changed() || len(second.Steps) != len(first.Steps) {
		t.Fatalf("the second run changed something: %+v", second.Steps)
	}
	for _, step := range append(first.Steps, second.Steps...) {
		if strings.Contains(step.Object+step.Detail, token) {
			t.Fatalf("a step shows the token: %+v", step)
		}
	}

	ctx := context.Background()
	var secret corev1.Secret
	if err := target.Get(ctx, client.ObjectKey{Namespace: "openshift-mtv", Name: "ocp7-token"}, &secret); err != nil {
		t.Fatal(err)
	}
	if string(secret.Data["token"]) != token || string(secret.Data["ca.crt"]) != "apiserver CA" {
		t.Fatalf("provider Secret data: %v", secret.Data)
	}
	var provider forkliftv1beta1.Provider
	if err := target.Get(ctx, client.ObjectKey{Namespace: "openshift-mtv", Name: "ocp7"}, &provider); err != nil {
		t.Fatal(err)
	}
	if provider.Spec.URL != "https://127.0.0.1:6443" || provider.Spec.Secret.Name != "ocp7-token" || *provider.Spec.Type != forkliftv1beta1.OpenShift {
		t.Fatalf("provider: %+v", provider.Spec)
	}
	found, err := FindProvider(ctx, target, "openshift-mtv", "ocp7", "")
	if err != nil || found.Name != "ocp7" {
		t.Fatalf("FindProvider: %v %v", found, err)
	}
	var host forkliftv1beta1.Provider
	if err := target.Get(ctx, client.ObjectKey{Namespace: "openshift-mtv", Name: "host"}, &host); err != nil || !host.IsHost() {
		t.Fatalf("host provider: %+v %v", host.Spec, err)
	}
	var binding rbacv1.ClusterRoleBinding
	if err := source.Get(ctx, client.ObjectKey{Name: "cclm"}, &binding); err != nil || binding.RoleRef.Name != "live-migration-role" {
		t.Fatalf("binding: %+v %v", binding, err)
	}
	for _, side := range []struct {
		c    client.Client
		peer string
	}{{source, targetCA}, {target, sourceCA}} {
		var external corev1.ConfigMap
		if err := side.c.Get(ctx, client.ObjectKey{Namespace: "openshift-cnv", Name: install.ExternalCAConfigMap}, &external); err != nil {
			t.Fatal(err)
		}
		if got := external.Data[install.CABundleKey]; got != side.peer {
			t.Fatalf("external CA bundle: want the peer's CA once, got\n%s", got)
		}
	}

	// A provider whose url changed (the source moved) is updated.
	opts.Source.Config.Host = "https://127.0.0.1:6444"
	third, err := run1(t, opts, source, target)
	if err != nil {
		t.Fatal(err)
	}
	var updated []string
	for _, s := range third.Steps {
		if s.Outcome != Unchanged {
			updated = append(updated, s.Object)
		}
	}
	if len(updated) != 1 || updated[0] != "Provider openshift-mtv/ocp7" {
		t.Fatalf("want only the Provider updated, got %v", updated)
	}
}

// run1 is Run with given clients.
func run1(t *testing.T, opts Options, source, target client.Client) (*Result, error) {
	t.Helper()
	opts.defaults()
	return runWith(context.Background(), opts, source, target)
}

func TestProviderVerdict(t *testing.T) {
	p := &forkliftv1beta1.Provider{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	if providerVerdict(p) != nil {
		t.Fatal("no status: no verdict")
	}
	p.Status = forkliftv1beta1.ProviderStatus{ObservedGeneration: 1, Phase: "Ready", Conditions: []forkliftv1beta1.Condition{{Type: "Ready", Status: "True"}}}
	if providerVerdict(p) != nil {
		t.Fatal("a status of an older generation is no verdict")
	}
	p.Status = forkliftv1beta1.ProviderStatus{ObservedGeneration: 2, Phase: "Ready", Conditions: []forkliftv1beta1.Condition{
		{Type: "ConnectionTestSucceeded", Status: "True", Category: "Required", Message: "connected as cclm"},
		{Type: "Ready", Status: "True", Category: "Required", Message: "The provider is ready."},
	}}
	if v := providerVerdict(p); v == nil || !v.Ready || v.Message != "connected as cclm" {
		t.Fatalf("ready: %+v", v)
	}
	p.Status = forkliftv1beta1.ProviderStatus{ObservedGeneration: 2, Phase: "TokenInvalid", Conditions: []forkliftv1beta1.Condition{
		{Type: "TokenInvalid", Status: "True", Category: "Critical", Message: "the API server rejects the token"},
		{Type: "Ready", Status: "False", Category: "Required", Message: "The provider is not ready."},
	}}
	if v := providerVerdict(p); v == nil || v.Ready || v.Phase != "TokenInvalid" || v.Message != "TokenInvalid: the API server rejects the token" {
		t.Fatalf("not ready: %+v", v)
	}
}
