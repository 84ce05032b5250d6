package procutil

import (
	"context"
	"time"
)

// Supervisor restarts a process from its Spec each time it ends, after
// Delay, for as long as its context lasts: what the kubelet does for a
// pod's containers. It keeps no count and gives up on nothing; a process
// that cannot start is tried again after Delay.
type Supervisor struct {
	Spec  Spec
	Delay time.Duration
	// What names the process in Logf's messages; empty means Spec.Name.
	What string
	// Logf, if set, is told of each end and of each failed restart.
	Logf func(format string, args ...any)
	// Restarted, if set, is given each new process as soon as it runs.
	Restarted func(*Process)
}

// Run supervises process, which was started from s.Spec, until ctx ends.
// Once ctx has ended Run starts nothing more, so a caller that cancels ctx
// and waits for Run to return may then stop the last process it was given.
func (s Supervisor) Run(ctx context.Context, process *Process) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-process.Exited():
		}
		s.logf("%s ended (%v); restarting it in %s", s.what(), process.ExitError(), s.Delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.Delay):
		}
		// When the delay and the cancellation end together, select picks
		// either: the cancellation must win.
		if ctx.Err() != nil {
			return
		}
		restarted, err := Start(s.Spec)
		if err != nil {
			// process is still the one that ended: the loop tries again.
			s.logf("%s: restart: %v", s.what(), err)
			continue
		}
		process = restarted
		if s.Restarted != nil {
			s.Restarted(process)
		}
	}
}

func (s Supervisor) what() string {
	if s.What != "" {
		return s.What
	}
	return s.Spec.Name
}

func (s Supervisor) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}
