// Package e2e holds cclm's integration tests: real control planes built by
// hack/kube, real QEMU guests, real network namespaces. They run with
// CCLM_E2E=1 (make test does that); CI never skips them.
package e2e

import (
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/cclm-io/cclm/internal/testenv"
)

// clusters are the control planes this package's tests share.
var clusters testenv.Clusters

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	theSharedLab.Stop()
	clusters.Stop()
	os.Exit(code)
}
