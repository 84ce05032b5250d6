package connect

import (
	"strings"
	"testing"

	forkliftv1beta1 "github.com/cclm-io/cclm/api/forklift/v1beta1"
)

// A new token changes the Provider's annotation (which makes the toolkit
// check it again), the same Secret does not, and the annotation shows
// nothing of the token.
func TestProviderAnnotationFollowsItsSecret(t *testing.T) {
	const token = "eyJhbGciOiJSUzI1NiJ9.secret-part"
	first := secretDigest(map[string][]byte{forkliftv1beta1.SecretToken: []byte(token), forkliftv1beta1.SecretCACert: []byte("ca")})
	same := secretDigest(map[string][]byte{forkliftv1beta1.SecretCACert: []byte("ca"), forkliftv1beta1.SecretToken: []byte(token)})
	renewed := secretDigest(map[string][]byte{forkliftv1beta1.SecretToken: []byte(token + "2"), forkliftv1beta1.SecretCACert: []byte("ca")})
	if first != same || first == renewed {
		t.Fatalf("digests: %s, same Secret %s, new token %s", first, same, renewed)
	}
	if strings.Contains(first, "eyJ") || len(first) != 16 {
		t.Fatalf("digest %q", first)
	}
	openshift := forkliftv1beta1.OpenShift
	spec := forkliftv1beta1.ProviderSpec{Type: &openshift, URL: "https://ocp7:6443"}
	p := &forkliftv1beta1.Provider{Spec: spec}
	if !providerUpdate(spec, first)(p) || p.Annotations[SecretDigestAnnotation] != first {
		t.Fatalf("first connect: %+v", p.Annotations)
	}
	if providerUpdate(spec, first)(p) {
		t.Fatal("connect again with the same Secret changed the Provider")
	}
	if !providerUpdate(spec, renewed)(p) || p.Annotations[SecretDigestAnnotation] != renewed {
		t.Fatalf("connect with a new token: %+v", p.Annotations)
	}
}
