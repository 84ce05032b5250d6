package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPollSaysWhatItWaitedForAndTheLastState(t *testing.T) {
	err := Poll(context.Background(), time.Millisecond, 20*time.Millisecond, "the VMI to run",
		func(context.Context) (bool, string, error) { return false, "phase Scheduling", nil })
	if err == nil || !strings.Contains(err.Error(), "the VMI to run") || !strings.Contains(err.Error(), "phase Scheduling") {
		t.Fatalf("error %v should name the wait and the last state", err)
	}
}

func TestPollStopsOnDoneOrError(t *testing.T) {
	calls := 0
	err := Poll(context.Background(), time.Millisecond, time.Second, "x", func(context.Context) (bool, string, error) {
		calls++
		return calls == 3, "", nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err=%v calls=%d", err, calls)
	}
	boom := errors.New("boom")
	err = Poll(context.Background(), time.Millisecond, time.Second, "x", func(context.Context) (bool, string, error) { return false, "", boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err=%v, want boom", err)
	}
}
