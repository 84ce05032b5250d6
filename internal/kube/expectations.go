package kube

import (
	"context"
	"sync"
	"time"
)

// Expectations hold a controller's writes that its cache has not shown
// yet, as kube-controller-manager's ControllerExpectations do. A
// controller that makes each decision from its cache (one migration slot
// more or less, one placement more) must not make the next one before the
// cache shows the last: instead of blocking its worker until it does, it
// records the write with Expect and, while Pending says so, requeues its
// requests. A write the cache has not shown within the timeout is given
// up on, with a log line, as a lost event would otherwise stall the
// controller for good.
type Expectations struct {
	timeout time.Duration
	mu      sync.Mutex
	pending map[string]expectation
}

type expectation struct {
	shown func(context.Context) bool
	since time.Time
}

// NewExpectations gives up on a write after timeout.
func NewExpectations(timeout time.Duration) *Expectations {
	return &Expectations{timeout: timeout, pending: map[string]expectation{}}
}

// Expect records a write of the object named key; shown tells whether the
// cache shows it (or something newer, or that the object is gone).
func (e *Expectations) Expect(key string, shown func(context.Context) bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending[key] = expectation{shown: shown, since: time.Now()}
}

// Pending drops the writes the cache shows now, and those given up on
// (calling gaveUp with their key), and tells whether any remain.
func (e *Expectations) Pending(ctx context.Context, gaveUp func(key string)) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for key, x := range e.pending {
		switch {
		case x.shown(ctx):
			delete(e.pending, key)
		case time.Since(x.since) > e.timeout:
			delete(e.pending, key)
			if gaveUp != nil {
				gaveUp(key)
			}
		}
	}
	return len(e.pending) > 0
}

// ExpectationsRetry is how soon a request held back by a pending write is
// looked at again: a cache usually shows a write within milliseconds.
const ExpectationsRetry = 20 * time.Millisecond
