package convergence

import (
	"strings"
	"testing"
	"time"
)

const mibps = 1 << 20

// run feeds a steady migration to a predictor: a link of linkMiBps, a guest
// dirtying dirtyMiBps (scaled down by the throttle the predictor asked
// for, as a CPU-bound guest's would be), one pass per second after a first
// pass of 2 s, sampled every 250 ms, until the predictor acts on something
// other than Throttle or 12 passes went by. It returns every non-Continue
// verdict.
func run(t *testing.T, policy Policy, linkMiBps, dirtyMiBps float64, remainingMiB int64) []Verdict {
	t.Helper()
	p := New(policy)
	var out []Verdict
	var sent int64
	throttle := 0
	for tick := 0; tick < 4*14; tick++ {
		elapsed := time.Duration(tick) * 250 * time.Millisecond
		pass := int64(1)
		if elapsed >= 2*time.Second {
			pass = 2 + int64((elapsed-2*time.Second)/time.Second)
		}
		if tick > 0 {
			sent += int64(linkMiBps * mibps / 4)
		}
		dirty := dirtyMiBps * (1 - float64(throttle)/100)
		v := p.Observe(Sample{Elapsed: elapsed, Pass: pass, TransferredBytes: sent, RemainingBytes: remainingMiB * mibps,
			DirtyBytesPerSecond: int64(dirty * mibps), ThrottlePercent: throttle})
		if v.Action == Continue {
			continue
		}
		out = append(out, v)
		if v.Action != Throttle {
			break
		}
		throttle = v.ThrottlePercent
	}
	return out
}

func TestPredictorDecisions(t *testing.T) {
	downtime := 300 * time.Millisecond
	cases := []struct {
		name                 string
		policy               Policy
		link, dirty          float64
		remaining            int64
		want                 []Action
		reasonHas            string
		firstThrottleAtLeast int
		decidedByPassAtMost  int64
	}{
		{name: "idle guest converges", policy: Policy{DowntimeLimit: downtime}, link: 16, dirty: 0.5, remaining: 8},
		{name: "moderate dirtying converges", policy: Policy{DowntimeLimit: downtime}, link: 32, dirty: 8, remaining: 20},
		{name: "dirtying near the link speed, nothing allowed: abort",
			policy: Policy{DowntimeLimit: downtime}, link: 16, dirty: 15.2, remaining: 30,
			want:                []Action{Abort},
			reasonHas:           "guest dirties 15.2 MiB/s, link moves 16.0 MiB/s: pre-copy cannot converge under 300ms downtime; allow post-copy or auto-converge in a MigrationPolicy",
			decidedByPassAtMost: DecisionPass},
		{name: "dirtying faster than the link, post-copy allowed",
			policy: Policy{DowntimeLimit: downtime, AllowPostCopy: true}, link: 16, dirty: 20, remaining: 30,
			want: []Action{PostCopy}, reasonHas: "switching to post-copy (allowPostCopy)", decidedByPassAtMost: DecisionPass},
		{name: "auto-converge allowed: throttle at once, enough to converge",
			policy: Policy{DowntimeLimit: downtime, AllowAutoConverge: true}, link: 16, dirty: 15.2, remaining: 30,
			want: []Action{Throttle}, reasonHas: "throttling the guest's vCPUs to", firstThrottleAtLeast: 48, decidedByPassAtMost: DecisionPass},
		{name: "both allowed and time enough: throttle before post-copy",
			policy: Policy{DowntimeLimit: downtime, AllowAutoConverge: true, AllowPostCopy: true, Budget: 150 * time.Second}, link: 16, dirty: 15.2, remaining: 30,
			want: []Action{Throttle}},
		{name: "both allowed but throttled pre-copy would miss the deadline: post-copy",
			policy: Policy{DowntimeLimit: downtime, AllowAutoConverge: true, AllowPostCopy: true, Budget: 5 * time.Second}, link: 16, dirty: 15.2, remaining: 60,
			want: []Action{PostCopy}, reasonHas: "nor in time with its vCPUs throttled to"},
		{name: "deadline passed while converging slowly: abort with the fix",
			policy: Policy{DowntimeLimit: downtime, Budget: 4 * time.Second}, link: 16, dirty: 8, remaining: 60,
			want: []Action{Abort}, reasonHas: "allow post-copy or auto-converge in a MigrationPolicy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := run(t, c.policy, c.link, c.dirty, c.remaining)
			var actions []Action
			for _, v := range got {
				actions = append(actions, v.Action)
			}
			if strings.Join(toStrings(actions), ",") != strings.Join(toStrings(c.want), ",") {
				t.Fatalf("actions %v, want %v (verdicts %+v)", actions, c.want, got)
			}
			if len(got) == 0 {
				return
			}
			first := got[0]
			if c.reasonHas != "" && !strings.Contains(first.Reason, c.reasonHas) {
				t.Errorf("reason %q lacks %q", first.Reason, c.reasonHas)
			}
			if first.ThrottlePercent < c.firstThrottleAtLeast {
				t.Errorf("throttle %d%%, want at least %d%%", first.ThrottlePercent, c.firstThrottleAtLeast)
			}
			if c.decidedByPassAtMost > 0 && first.Pass > c.decidedByPassAtMost {
				t.Errorf("decided at pass %d, want by pass %d", first.Pass, c.decidedByPassAtMost)
			}
		})
	}
}

// The same guest without post-copy allowed is throttled to the maximum and
// then left to QEMU: a throttled guest may still find a pass that fits,
// and the completion timeout bounds the wait.
func TestThrottleThatDoesNotHelpIsLeftToTheCompletionTimeout(t *testing.T) {
	p := New(Policy{DowntimeLimit: 300 * time.Millisecond, AllowAutoConverge: true, Budget: time.Hour})
	var sent int64
	throttle := 0
	for tick := 0; tick < 4*60; tick++ {
		elapsed := time.Duration(tick) * 250 * time.Millisecond
		sent += 4 * mibps
		v := p.Observe(Sample{Elapsed: elapsed, Pass: 1 + int64(elapsed/time.Second), TransferredBytes: sent, RemainingBytes: 40 * mibps,
			DirtyBytesPerSecond: 17 * mibps, ThrottlePercent: throttle})
		switch v.Action {
		case Throttle:
			throttle = v.ThrottlePercent
		case Continue:
		default:
			t.Fatalf("%s at pass %d: with auto-converge allowed cclm does not end a migration early", v.Action, v.Pass)
		}
	}
	if throttle != MaxThrottlePercent {
		t.Errorf("throttle %d%%, want it raised to %d%%", throttle, MaxThrottlePercent)
	}
}

// A guest whose dirtying does not slow down when throttled (say, a device
// writing its memory) is throttled further, and once the throttle is at
// its maximum, post-copy takes over if allowed.
func TestThrottleThatDoesNotHelpEndsInPostCopy(t *testing.T) {
	p := New(Policy{DowntimeLimit: 300 * time.Millisecond, AllowAutoConverge: true, AllowPostCopy: true})
	var sent int64
	throttle := 0
	var actions []Action
	for tick := 0; tick < 4*40 && (len(actions) == 0 || actions[len(actions)-1] == Throttle); tick++ {
		elapsed := time.Duration(tick) * 250 * time.Millisecond
		pass := 1 + int64(elapsed/time.Second)
		sent += 4 * mibps
		v := p.Observe(Sample{Elapsed: elapsed, Pass: pass, TransferredBytes: sent, RemainingBytes: 40 * mibps,
			DirtyBytesPerSecond: 17 * mibps, ThrottlePercent: throttle})
		if v.Action == Throttle {
			throttle = v.ThrottlePercent
		}
		if v.Action != Continue {
			actions = append(actions, v.Action)
		}
	}
	if len(actions) < 2 || actions[0] != Throttle || actions[len(actions)-1] != PostCopy {
		t.Fatalf("actions %v: want throttles, then post-copy", actions)
	}
}

func TestNothingIsDecidedBeforeTheFiguresAreTrusted(t *testing.T) {
	p := New(Policy{DowntimeLimit: 300 * time.Millisecond})
	for tick := 0; tick < 20; tick++ {
		v := p.Observe(Sample{Elapsed: time.Duration(tick) * 250 * time.Millisecond, Pass: 1, TransferredBytes: int64(tick) * 4 * mibps,
			RemainingBytes: 100 * mibps, DirtyBytesPerSecond: 100 * mibps})
		if v.Action != Continue {
			t.Fatalf("decided %s in the first pass: the dirtying of a whole pass is needed", v.Action)
		}
		v = New(Policy{DowntimeLimit: time.Second}).Observe(Sample{Pass: 5, RemainingBytes: 100 * mibps})
		if v.Action != Continue {
			t.Fatalf("decided %s without a throughput or a dirty rate", v.Action)
		}
	}
}

func TestPredictPreCopy(t *testing.T) {
	cases := []struct {
		remainingMiB int64
		dirty, link  float64
		wantOK       bool
		wantPasses   int
	}{
		{remainingMiB: 4, dirty: 10, link: 16, wantOK: true, wantPasses: 0}, // fits in 300 ms already
		{remainingMiB: 96, dirty: 8, link: 16, wantOK: true, wantPasses: 5}, // halves each pass: 96→48→24→12→6→3 ≤ 4.8
		{remainingMiB: 96, dirty: 16, link: 16, wantOK: false},              // never shrinks
		{remainingMiB: 96, dirty: 0, link: 16, wantOK: true, wantPasses: 1}, // one pass sends it all
		{remainingMiB: 96, dirty: 1, link: 0, wantOK: false},                // nothing moves
	}
	for _, c := range cases {
		passes, _, ok := PredictPreCopy(c.remainingMiB*mibps, c.dirty*mibps, c.link*mibps, 300*time.Millisecond)
		if ok != c.wantOK || (ok && passes != c.wantPasses) {
			t.Errorf("PredictPreCopy(%d MiB, dirty %v, link %v) = %d passes, ok %v; want %d, %v", c.remainingMiB, c.dirty, c.link, passes, ok, c.wantPasses, c.wantOK)
		}
	}
}

func TestCompletionBudget(t *testing.T) {
	if got := CompletionBudget(150, 128<<20); got != 150*time.Second {
		t.Errorf("a 128 MiB guest counts as 1 GiB: %s", got)
	}
	if got := CompletionBudget(150, 3<<29); got != 225*time.Second {
		t.Errorf("1.5 GiB: %s, want 225s", got)
	}
}

func toStrings(actions []Action) []string {
	out := make([]string, len(actions))
	for i, a := range actions {
		out[i] = string(a)
	}
	return out
}
