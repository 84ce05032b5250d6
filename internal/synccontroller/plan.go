package synccontroller

import (
	"fmt"
	"time"
)

// The pusher's decisions as a pure function: (what is known of one
// migration, now) -> (fail it, cancel the peer, push, when to look again).

// timing holds the durations the decisions depend on.
type timing struct {
	// deadline is how long the peer may be silent before a migration that
	// is not over fails.
	deadline time.Duration
	// heartbeat is how often an unchanged status is pushed again, so that
	// a live peer never looks silent.
	heartbeat time.Duration
	// callTimeout bounds one call to the peer.
	callTimeout time.Duration
}

// contact is what the leader remembers of one migration. It lives in
// memory only: a new leader starts afresh, which gives each peer a new
// deadline and pushes every status once more (receivers are idempotent).
type contact struct {
	role        role
	migrationID string
	// since is when this leader first saw the migration.
	since time.Time
	// heardAt is the last time the peer called, or a call to it succeeded.
	heardAt time.Time
	// overSince is when the migration was first seen over; zero if not.
	overSince time.Time
	// goneSince is when its VMIM was first seen deleted; zero if not.
	goneSince time.Time

	peerAddress      string
	peerMigrationUID string

	lastPushedDigest string
	lastPushAt       time.Time
	// failures counts the calls in a row that failed; lastError is the
	// latest one's, for the failure reason.
	failures  int
	lastError string

	cancelSent bool
}

// silentSince is when the peer was last heard of, or when waiting began.
func (c *contact) silentSince() time.Time {
	if c.heardAt.After(c.since) {
		return c.heardAt
	}
	return c.since
}

// pushInput is the state of the migration as the pusher observed it.
type pushInput struct {
	now  time.Time
	over bool // completed, failed or aborting
	// peerAddress is where to push; "" while the target has not heard
	// from the source yet.
	peerAddress string
	// digest identifies the status to push.
	digest string
	// abortRequested: the local side aborts; cancelledByPeer: because the
	// peer asked, so it needs no cancel back.
	abortRequested  bool
	cancelledByPeer bool
	// ownAddress is this controller's, for a reason that has no peer
	// address to name.
	ownAddress string
}

// pushPlan is what to do now.
type pushPlan struct {
	// failReason, if set, fails the migration: the peer was silent too long.
	failReason string
	sendCancel bool
	push       bool
	// callTimeout bounds the calls made now.
	callTimeout time.Duration
	// recheckAfter is when to decide again without any change; 0 = only on
	// a change.
	recheckAfter time.Duration
}

// planPush decides what the pusher does for one migration.
func planPush(in pushInput, c *contact, t timing) pushPlan {
	silent := in.now.Sub(c.silentSince())
	if !in.over && silent >= t.deadline {
		return pushPlan{failReason: silenceReason(in, c, t.deadline)}
	}
	plan := pushPlan{callTimeout: t.callTimeout}
	if in.peerAddress == "" {
		// Nowhere to push yet: the target waits for the source's first call.
		if !in.over {
			plan.recheckAfter = t.deadline - silent
		}
		return plan
	}
	plan.sendCancel = in.abortRequested && !in.cancelledByPeer && !c.cancelSent
	changed := in.digest != c.lastPushedDigest
	if in.over {
		// The final status is pushed until it got through or the peer was
		// given a deadline's time to take it; then nobody waits for it.
		plan.push = changed && in.now.Sub(c.overSince) < t.deadline
		return plan
	}
	sincePush := in.now.Sub(c.lastPushAt)
	plan.push = changed || sincePush >= t.heartbeat
	plan.callTimeout = min(t.callTimeout, max(t.deadline-silent, time.Second))
	plan.recheckAfter = min(t.heartbeat, t.deadline-silent)
	if !plan.push {
		plan.recheckAfter = min(t.heartbeat-sincePush, t.deadline-silent)
	}
	return plan
}

// silenceReason says who was silent and since when, so that the failure
// can be told from the VMI alone.
func silenceReason(in pushInput, c *contact, deadline time.Duration) string {
	if in.peerAddress == "" {
		return fmt.Sprintf("the source cluster's synchronization controller did not call this cluster's at %s within %s of waiting: check the source migration's spec.sendTo.connectURL, the migration network and the CAs in kubevirt-external-ca",
			in.ownAddress, deadline)
	}
	what := fmt.Sprintf("no contact with the %s cluster's synchronization controller at %s for %s", c.role.peer(), in.peerAddress, deadline)
	if c.heardAt.IsZero() {
		what += " (never reached)"
	} else {
		what += fmt.Sprintf(" (last contact %s)", c.heardAt.UTC().Format(time.RFC3339))
	}
	if c.lastError != "" {
		what += "; last error: " + c.lastError
	}
	return what
}

// retryAfter is the backoff after calls in a row failed: 0.5 s doubling up
// to 8 s, never past the deadline.
func retryAfter(failures int, untilDeadline time.Duration) time.Duration {
	const base, ceiling = 500 * time.Millisecond, 8 * time.Second
	backoff := ceiling
	if failures < 5 {
		backoff = base << max(failures-1, 0)
	}
	return max(min(backoff, untilDeadline), 100*time.Millisecond)
}
