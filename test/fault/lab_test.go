package fault

import (
	"testing"
	"time"

	"github.com/cclm-io/cclm/test/labtest"
)

// theLab is the lab the cases share, or the lab in CCLM_E2E_LAB_DIR,
// kept. The suite kills kube-apiservers: its reads of a cluster's API
// wait out their restart.
var theLab = labtest.Shared{Patience: apiServerOutage}

// apiServerOutage is how long the suite waits for a cluster's API: a
// killed kube-apiserver is restarted after a few seconds and needs a few
// more to serve.
const apiServerOutage = 90 * time.Second

// labEnv is the shared lab with the fault suite's own strikes and checks.
type labEnv struct{ *labtest.Lab }

func sharedLab(t testing.TB) *labEnv {
	t.Helper()
	return &labEnv{theLab.Lab(t)}
}
