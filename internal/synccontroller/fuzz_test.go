package synccontroller

import (
	"encoding/json"
	"encoding/pem"
	"testing"

	kubevirtv1 "github.com/cclm-io/cclm/api/kubevirt/v1"
	"github.com/cclm-io/cclm/internal/pki"
)

// FuzzParseVMIStatus feeds the parser what a peer could send: it must never
// panic, and what it accepts must be safe to apply on either side and
// survive a round trip, since it is written into the local VMI.
//
//	go test -fuzz FuzzParseVMIStatus ./internal/synccontroller
func FuzzParseVMIStatus(f *testing.F) {
	for _, seed := range []*kubevirtv1.VirtualMachineInstanceStatus{sourceVMIStatus(), targetVMIStatusFlat(), {}} {
		data, err := json.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range []string{"", "null", "{}", `{"migrationState":null}`, `{"migrationState":{"targetState":{"nodeAddress":null,"directMigrationNodePorts":{"1":0}}}}`, `{"migrationState":{"failed":true}}`, `[{}]`, `{"phase":`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		status, err := parseVMIStatus(data)
		if err != nil {
			return
		}
		for _, sender := range []role{roleSource, roleTarget} {
			local := targetVMIStatusFlat()
			applyPeerStatus(local, status, sender)
			applyCancel(local)
			encoded, err := json.Marshal(local)
			if err != nil {
				t.Fatalf("the patched status does not encode: %v", err)
			}
			if _, err := parseVMIStatus(encoded); err != nil {
				t.Fatalf("the patched status does not parse back: %v\n%s", err, encoded)
			}
		}
	})
}

// FuzzParseBundle feeds the trust bundle parser what a user could paste
// into ConfigMap kubevirt-external-ca: it must never panic, and it must
// trust only CA certificates, each once, counting every other PEM block as
// invalid.
//
//	go test -fuzz FuzzParseBundle ./internal/synccontroller
func FuzzParseBundle(f *testing.F) {
	ca, err := pki.NewCA("kubevirt-ca@openshift-cnv")
	if err != nil {
		f.Fatal(err)
	}
	leaf, err := ca.Issue(pki.CertRequest{CommonName: "leaf", Client: true})
	if err != nil {
		f.Fatal(err)
	}
	key, err := ca.KeyPEM()
	if err != nil {
		f.Fatal(err)
	}
	caPEM := string(ca.CertPEM())
	f.Add(caPEM)
	f.Add(caPEM + caPEM + string(leaf.CertPEM()))
	f.Add(string(key) + "garbage\n" + caPEM)
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, bundle string) {
		cas, invalid := parseBundle(bundle)
		blocks := 0
		for rest := []byte(bundle); ; blocks++ {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
		}
		if invalid < 0 || len(cas)+invalid > blocks {
			t.Fatalf("%d CAs and %d invalid from %d PEM blocks", len(cas), invalid, blocks)
		}
		for i, cert := range cas {
			if !cert.IsCA {
				t.Fatalf("trusted a certificate that is not a CA: %s", cert.Subject)
			}
			for _, other := range cas[:i] {
				if other.Equal(cert) {
					t.Fatalf("trusted %s twice", cert.Subject)
				}
			}
		}
	})
}
