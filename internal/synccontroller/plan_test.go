package synccontroller

import (
	"strings"
	"testing"
	"time"
)

var (
	testTiming = timing{deadline: 60 * time.Second, heartbeat: 20 * time.Second, callTimeout: 30 * time.Second}
	t0         = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
)

func at(seconds int) time.Time { return t0.Add(time.Duration(seconds) * time.Second) }

func TestPlanPush(t *testing.T) {
	const peer = "192.168.201.128:9185"
	pushedAt10 := contact{role: roleSource, since: t0, heardAt: at(10), lastPushAt: at(10), lastPushedDigest: "d1"}
	for _, tc := range []struct {
		name    string
		in      pushInput
		contact contact
		want    pushPlan
		reason  string // substring of want.failReason
	}{{
		name:    "first sight: push at once",
		in:      pushInput{now: t0, peerAddress: peer, digest: "d1"},
		contact: contact{role: roleSource, since: t0},
		want:    pushPlan{push: true, callTimeout: 30 * time.Second, recheckAfter: 20 * time.Second},
	}, {
		name:    "unchanged within the heartbeat: wait for it",
		in:      pushInput{now: at(15), peerAddress: peer, digest: "d1"},
		contact: pushedAt10,
		want:    pushPlan{callTimeout: 30 * time.Second, recheckAfter: 15 * time.Second},
	}, {
		name:    "changed: push",
		in:      pushInput{now: at(15), peerAddress: peer, digest: "d2"},
		contact: pushedAt10,
		want:    pushPlan{push: true, callTimeout: 30 * time.Second, recheckAfter: 20 * time.Second},
	}, {
		name:    "unchanged for a heartbeat: push again",
		in:      pushInput{now: at(30), peerAddress: peer, digest: "d1"},
		contact: pushedAt10,
		want:    pushPlan{push: true, callTimeout: 30 * time.Second, recheckAfter: 20 * time.Second},
	}, {
		name:    "silent peer near the deadline: the call gets only what is left",
		in:      pushInput{now: at(65), peerAddress: peer, digest: "d1"},
		contact: pushedAt10,
		want:    pushPlan{push: true, callTimeout: 5 * time.Second, recheckAfter: 5 * time.Second},
	}, {
		name:    "silent peer at the deadline: fail, naming the peer and the last error",
		in:      pushInput{now: at(70), peerAddress: peer, digest: "d1"},
		contact: contact{role: roleSource, since: t0, heardAt: at(10), lastError: "connection refused"},
		reason:  "no contact with the target cluster's synchronization controller at 192.168.201.128:9185 for 1m0s (last contact 2026-11-25T10:00:10Z); last error: connection refused",
	}, {
		name:    "never reached",
		in:      pushInput{now: at(60), peerAddress: peer, digest: "d1"},
		contact: contact{role: roleTarget, since: t0},
		reason:  "no contact with the source cluster's synchronization controller at 192.168.201.128:9185 for 1m0s (never reached)",
	}, {
		name:    "target before the source called: nothing to push, the deadline runs",
		in:      pushInput{now: at(20), digest: "d1", ownAddress: "192.168.201.128:9185"},
		contact: contact{role: roleTarget, since: t0},
		want:    pushPlan{callTimeout: 30 * time.Second, recheckAfter: 40 * time.Second},
	}, {
		name:    "target never called: fail, naming this side's address",
		in:      pushInput{now: at(61), digest: "d1", ownAddress: "192.168.201.128:9185"},
		contact: contact{role: roleTarget, since: t0},
		reason:  "did not call this cluster's at 192.168.201.128:9185 within 1m0s",
	}, {
		name:    "over: no deadline, the final status is pushed once",
		in:      pushInput{now: at(200), over: true, peerAddress: peer, digest: "final"},
		contact: contact{role: roleSource, since: t0, overSince: at(190), lastPushedDigest: "d1"},
		want:    pushPlan{push: true, callTimeout: 30 * time.Second},
	}, {
		name:    "over and pushed: nothing more, no heartbeat",
		in:      pushInput{now: at(300), over: true, peerAddress: peer, digest: "final"},
		contact: contact{role: roleSource, since: t0, overSince: at(190), lastPushedDigest: "final", lastPushAt: at(191)},
		want:    pushPlan{callTimeout: 30 * time.Second},
	}, {
		name:    "over, and the peer did not take the final status for a deadline: give up",
		in:      pushInput{now: at(251), over: true, peerAddress: peer, digest: "final"},
		contact: contact{role: roleSource, since: t0, overSince: at(190), lastPushedDigest: "d1"},
		want:    pushPlan{callTimeout: 30 * time.Second},
	}, {
		name:    "aborted here: cancel the peer once",
		in:      pushInput{now: at(5), over: true, abortRequested: true, peerAddress: peer, digest: "d1"},
		contact: contact{role: roleSource, since: t0, overSince: at(5), lastPushedDigest: "d1"},
		want:    pushPlan{sendCancel: true, callTimeout: 30 * time.Second},
	}, {
		name:    "aborted because the peer cancelled: no cancel back",
		in:      pushInput{now: at(5), over: true, abortRequested: true, cancelledByPeer: true, peerAddress: peer, digest: "d1"},
		contact: contact{role: roleSource, since: t0, overSince: at(5), lastPushedDigest: "d1"},
		want:    pushPlan{callTimeout: 30 * time.Second},
	}, {
		name:    "cancel sent already",
		in:      pushInput{now: at(5), over: true, abortRequested: true, peerAddress: peer, digest: "d1"},
		contact: contact{role: roleSource, since: t0, overSince: at(5), lastPushedDigest: "d1", cancelSent: true},
		want:    pushPlan{callTimeout: 30 * time.Second},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := planPush(tc.in, &tc.contact, testTiming)
			if tc.reason != "" {
				if !strings.Contains(got.failReason, tc.reason) {
					t.Errorf("failReason = %q, want it to contain %q", got.failReason, tc.reason)
				}
				got.failReason = ""
			}
			if got != tc.want {
				t.Errorf("planPush = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRetryAfterBacksOffWithinTheDeadline(t *testing.T) {
	for _, tc := range []struct {
		failures      int
		untilDeadline time.Duration
		want          time.Duration
	}{
		{1, time.Minute, 500 * time.Millisecond},
		{2, time.Minute, time.Second},
		{4, time.Minute, 4 * time.Second},
		{5, time.Minute, 8 * time.Second},
		{50, time.Minute, 8 * time.Second},
		{5, 3 * time.Second, 3 * time.Second},
		{5, -time.Second, 100 * time.Millisecond},
	} {
		if got := retryAfter(tc.failures, tc.untilDeadline); got != tc.want {
			t.Errorf("retryAfter(%d, %s) = %s, want %s", tc.failures, tc.untilDeadline, got, tc.want)
		}
	}
}
