package e2e

import (
	"testing"
	"time"

	"github.com/cclm-io/cclm/test/labtest"
)

// theSharedLab is the lab the VM tests of this package share; TestMain
// takes it down.
var theSharedLab = labtest.Shared{Args: []string{"--boot-timeout", sharedLabBootTimeout.String()}}

// labEnv is a lab with this package's own steps and checks.
type labEnv struct{ *labtest.Lab }

func sharedLab(t testing.TB) *labEnv {
	t.Helper()
	return &labEnv{theSharedLab.Lab(t)}
}

// ownLab starts a lab of the test's own (`cclm lab up` with args) and
// takes it down at the end.
func ownLab(t *testing.T, timeout time.Duration, args ...string) *labEnv {
	t.Helper()
	return &labEnv{labtest.Own(t, timeout, args...)}
}
