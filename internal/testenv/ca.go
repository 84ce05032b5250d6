package testenv

import (
	"testing"

	"github.com/cclm-io/cclm/internal/pki"
)

// CAPEM is the certificate of a new CA named name, PEM-encoded.
func CAPEM(t testing.TB, name string) string {
	t.Helper()
	ca, err := pki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(ca.CertPEM())
}
