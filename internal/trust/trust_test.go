package trust_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/cclm-io/cclm/internal/testenv"
	"github.com/cclm-io/cclm/internal/trust"
)

func TestMergeBundlesAddsOnlyWhatIsMissing(t *testing.T) {
	a, b, c := testenv.CAPEM(t, "a"), testenv.CAPEM(t, "b"), testenv.CAPEM(t, "c")
	merged, n, err := trust.MergeBundles("", a)
	if err != nil || n != 1 || merged != a {
		t.Fatalf("into an empty bundle: n=%d err=%v\n%s", n, err, merged)
	}
	merged, n, err = trust.MergeBundles(a+b, a)
	if err != nil || n != 0 || merged != a+b {
		t.Fatalf("nothing to add must leave the text as it is: n=%d err=%v", n, err)
	}
	// The same certificate with other line endings or comments around it
	// is still the same certificate.
	merged, n, err = trust.MergeBundles("# ours\n"+a, strings.ReplaceAll(a, "\n", "\r\n")+b+b)
	if err != nil || n != 1 {
		t.Fatalf("want b added once, got n=%d err=%v", n, err)
	}
	blocks, _ := trust.ParseBundle(merged)
	if len(blocks) != 2 || !strings.HasPrefix(merged, a) {
		t.Fatalf("want a then b, got %d blocks:\n%s", len(blocks), merged)
	}
	merged, n, _ = trust.MergeBundles(merged, c+a)
	if blocks, _ := trust.ParseBundle(merged); n != 1 || len(blocks) != 3 {
		t.Fatalf("want c added: n=%d blocks=%d", n, len(blocks))
	}
	if _, _, err := trust.MergeBundles("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", a); err == nil {
		t.Fatal("a key in a CA bundle must be refused")
	}
	if _, _, err := trust.MergeBundles(a[:len(a)/2], b); err == nil {
		t.Fatal("a damaged bundle must be refused")
	}
}

func TestImportPeerCA(t *testing.T) {
	ctx := context.Background()
	ours, peer, other := testenv.CAPEM(t, "ours"), testenv.CAPEM(t, "peer"), testenv.CAPEM(t, "other")
	c := fake.NewClientBuilder().Build()
	external := func() string {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: trust.ExternalCAConfigMap}, &cm); err != nil {
			t.Fatal(err)
		}
		return cm.Data[trust.BundleKey]
	}

	got, err := trust.ImportPeerCA(ctx, c, "ns", peer)
	if err != nil || got != (trust.Import{Created: true, Added: 1}) || external() != peer {
		t.Fatalf("into no ConfigMap: %+v, %v\n%s", got, err, external())
	}
	got, err = trust.ImportPeerCA(ctx, c, "ns", peer)
	if err != nil || got != (trust.Import{}) || external() != peer {
		t.Fatalf("again: want nothing done, got %+v, %v", got, err)
	}
	// A CA someone else imported stays, before the new one.
	replaced := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: trust.ExternalCAConfigMap}}
	if err := c.Delete(ctx, replaced); err != nil {
		t.Fatal(err)
	}
	replaced.Data = map[string]string{trust.BundleKey: other}
	if err := c.Create(ctx, replaced); err != nil {
		t.Fatal(err)
	}
	got, err = trust.ImportPeerCA(ctx, c, "ns", peer+other)
	if err != nil || got.Added != 1 || !strings.HasPrefix(external(), other) || !strings.Contains(external(), strings.TrimSpace(peer)) {
		t.Fatalf("next to another CA: %+v, %v\n%s", got, err, external())
	}
	if _, err := trust.ImportPeerCA(ctx, c, "ns", "not a certificate"); err == nil {
		t.Fatal("a bundle without certificates must be refused")
	}

	for _, tc := range []struct {
		name            string
		own, ext, peers string
		want            int
	}{
		{"the same CA (one cluster)", ours, "", ours, 0},
		{"imported before", ours, other + peer, peer, 0},
		{"not yet", ours, other, peer, 1},
		{"nothing imported at all", ours, "", peer + other, 2},
	} {
		if n, err := trust.Missing(tc.own, tc.ext, tc.peers); err != nil || n != tc.want {
			t.Errorf("trust.Missing, %s: %d, %v; want %d", tc.name, n, err, tc.want)
		}
	}
}
