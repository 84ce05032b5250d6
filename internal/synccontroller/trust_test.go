package synccontroller

import (
	"strings"
	"testing"

	"github.com/cclm-io/cclm/internal/pki"
)

func TestParseBundleKeepsCAsOnly(t *testing.T) {
	ocp7, _ := pki.NewCA("kubevirt-ca@openshift-cnv")
	ocp1, _ := pki.NewCA("kubevirt-ca@openshift-cnv")
	leaf, _ := ocp7.Issue(pki.CertRequest{CommonName: "leaf", Client: true})
	key, _ := leaf.KeyPEM()
	bundle := strings.Join([]string{
		string(ocp7.CertPEM()),
		"not PEM at all\n",
		string(leaf.CertPEM()), // not a CA
		string(key),            // not a certificate
		string(ocp1.CertPEM()),
		string(ocp7.CertPEM()), // a duplicate
		"-----BEGIN CERTIFICATE-----\nbm90IERFUg==\n-----END CERTIFICATE-----\n",
	}, "")
	cas, invalid := parseBundle(bundle)
	if len(cas) != 2 || !cas[0].Equal(ocp7.Cert) || !cas[1].Equal(ocp1.Cert) {
		t.Errorf("got %d CAs, want ocp7's and ocp1's", len(cas))
	}
	if invalid != 3 {
		t.Errorf("%d blocks counted invalid, want 3 (a leaf, a key, garbage)", invalid)
	}
	if cas, invalid := parseBundle(""); len(cas) != 0 || invalid != 0 {
		t.Errorf("an empty bundle: %d CAs, %d invalid", len(cas), invalid)
	}
}
