package kube

import (
	"context"
	"fmt"
	"time"
)

// Poll calls check every interval until it reports done, returns an error, or
// timeout passes. On timeout the error says what was awaited and the last
// state check reported, so that no wait ends in a bare "timed out".
func Poll(ctx context.Context, interval, timeout time.Duration, what string, check func(context.Context) (done bool, state string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	lastState := "not checked yet"
	for {
		done, state, err := check(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		if state != "" {
			lastState = state
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s after %s: %s", what, timeout, lastState)
		case <-ticker.C:
		}
	}
}
