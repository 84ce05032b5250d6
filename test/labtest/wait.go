package labtest

import (
	"context"
	"testing"
	"time"

	"github.com/cclm-io/cclm/internal/kube"
)

// pollInterval is how often WaitFor checks: often enough that a wait
// ends soon after its condition holds, seldom enough to leave the API
// servers of a two-core lab alone.
const pollInterval = 250 * time.Millisecond

// WaitFor checks every pollInterval until check holds, and fails the test
// with what, and check's last word, after timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	WaitEvery(t, what, pollInterval, timeout, check)
}

// WaitEvery is WaitFor at another interval.
func WaitEvery(t testing.TB, what string, interval, timeout time.Duration, check func() (bool, string)) {
	t.Helper()
	if err := Poll(interval, timeout, what, check); err != nil {
		t.Fatal(err)
	}
}

// Poll checks every interval until check holds and returns nil, or an
// error naming what and check's last word after timeout: for callers that
// add to the error.
func Poll(interval, timeout time.Duration, what string, check func() (bool, string)) error {
	return kube.Poll(context.Background(), interval, timeout, what, func(context.Context) (bool, string, error) {
		ok, state := check()
		return ok, state, nil
	})
}
