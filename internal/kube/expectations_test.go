package kube

import (
	"context"
	"testing"
	"time"
)

func TestExpectationsHoldBackUntilShownOrGivenUp(t *testing.T) {
	ctx := context.Background()
	e := NewExpectations(50 * time.Millisecond)
	shown := false
	e.Expect("a", func(context.Context) bool { return shown })
	var gaveUp []string
	note := func(key string) { gaveUp = append(gaveUp, key) }
	if !e.Pending(ctx, note) {
		t.Fatal("a write the cache does not show must hold the next decision back")
	}
	shown = true
	if e.Pending(ctx, note) || len(gaveUp) != 0 {
		t.Fatalf("a shown write holds nothing back: pending, gave up on %v", gaveUp)
	}

	e.Expect("b", func(context.Context) bool { return false })
	time.Sleep(60 * time.Millisecond) // past the timeout
	if e.Pending(ctx, note) {
		t.Fatal("a write never shown must be given up on after the timeout")
	}
	if len(gaveUp) != 1 || gaveUp[0] != "b" {
		t.Fatalf("gave up on %v, want [b]", gaveUp)
	}
}
