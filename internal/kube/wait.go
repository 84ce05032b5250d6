package kube

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Poll calls check every interval until it reports done, returns an error, or
// timeout passes. On timeout the error says what was awaited and the last
// state check reported, so that no wait ends in a bare "timed out".
func Poll(ctx context.Context, interval, timeout time.Duration, what string, check func(context.Context) (done bool, state string, err error)) error {
	lastState := "not checked yet"
	var checkErr error
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		done, state, err := check(ctx)
		if state != "" {
			lastState = state
		}
		checkErr = err
		return done, err
	})
	switch {
	case err == nil:
		return nil
	case checkErr != nil:
		return fmt.Errorf("waiting for %s: %w", what, checkErr)
	}
	return fmt.Errorf("gave up waiting for %s after %s: %s", what, timeout, lastState)
}
