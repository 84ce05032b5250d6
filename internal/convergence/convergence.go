// Package convergence decides early whether a pre-copy live migration can
// converge within the downtime limit and in time for the completion
// deadline. It is a pure state machine: the caller feeds it QEMU's figures
// (Observe) and carries out what it answers (throttle the guest, switch to
// post-copy, abort). The model is in docs/design.md ("Convergence").
package convergence

import (
	"fmt"
	"math"
	"time"
)

// The model's constants.
const (
	// DecisionPass is the dirty-sync count from which the figures are
	// trusted: QEMU syncs once at the start and once after each pass, so
	// from the second sync on it has measured the guest's dirtying over a
	// whole pass (over at least a second: QEMU leaves the rate at 0 after
	// a shorter one, and a rate of 0 decides nothing). Deciding then, not a
	// pass later, is what lets a hopeless migration switch to post-copy
	// before it sent its memory twice.
	DecisionPass = 2
	// MaxPasses is the most passes pre-copy is predicted to need and still
	// counted as converging: at r = 0.9 a 20× reduction takes 29 passes;
	// at r = 0.95 (a guest dirtying 15.2 MiB/s on a 16 MiB/s link) it
	// takes 59, each one at the mercy of a few percent of noise.
	MaxPasses = 30
	// ThrottledRatio is the dirty-to-throughput ratio a throttled guest is
	// brought to: each pass then halves what remains.
	ThrottledRatio = 0.5
	// MinThrottlePercent and MaxThrottlePercent bound the vCPU throttle,
	// as QEMU does (cpu-throttle-initial is 1..99).
	MinThrottlePercent = 20
	MaxThrottlePercent = 99
	// ewmaWeight is the weight of a new throughput window: QEMU's own
	// figure (mbps) is a 100 ms snapshot, so cclm measures over windows of
	// throughputWindow and smooths them.
	ewmaWeight       = 0.5
	throughputWindow = time.Second
)

// Action is what the caller is to do.
type Action string

// The actions.
const (
	// Continue: nothing to do (yet).
	Continue Action = "Continue"
	// Throttle: slow the guest's vCPUs to Verdict.ThrottlePercent
	// (auto-converge) from the next pass on.
	Throttle Action = "Throttle"
	// PostCopy: switch to post-copy now.
	PostCopy Action = "PostCopy"
	// Abort: cancel the migration; Verdict.Reason says why and what to
	// change.
	Abort Action = "Abort"
)

// Policy is what the VM's migration policy allows, and the limits.
type Policy struct {
	// DowntimeLimit is the longest switchover pause pre-copy aims for.
	DowntimeLimit time.Duration
	// Budget is how long the migration may take from its start (the
	// completion timeout; see CompletionBudget). Zero means no deadline.
	Budget time.Duration
	// AllowAutoConverge and AllowPostCopy are the policy's.
	AllowAutoConverge bool
	AllowPostCopy     bool
}

// Sample is one reading of QEMU's figures (query-migrate) during pre-copy.
type Sample struct {
	// Elapsed is the time since the migration started.
	Elapsed time.Duration
	// Pass is QEMU's dirty-sync-count.
	Pass int64
	// TransferredBytes and RemainingBytes are of guest memory.
	TransferredBytes int64
	RemainingBytes   int64
	// DirtyBytesPerSecond is the rate the guest dirtied memory at over
	// QEMU's last measuring period (dirty-pages-rate × page size).
	DirtyBytesPerSecond int64
	// ThrottlePercent is auto-converge's current throttle.
	ThrottlePercent int
}

// Verdict is the predictor's answer to a sample: what to do, at which
// pass, and why.
type Verdict struct {
	Action Action
	// ThrottlePercent is the throttle to apply, with Throttle.
	ThrottlePercent int
	// Pass is the dirty-sync count of the sample decided on.
	Pass int64
	// Reason explains the decision in a user's terms, with the figures
	// (dirty rate, throughput, throttle) and, for Abort, the fix; empty
	// with Continue.
	Reason string
}

// Predictor follows one migration's samples. The zero value is not usable;
// use New.
type Predictor struct {
	policy Policy
	// windowStart opens the current throughput window; throughput is
	// the smoothed rate (bytes/s), 0 until measured.
	windowStart *Sample
	throughput  float64
	// decided is the last action answered (Continue if none), at pass
	// decidedPass; throttle is the last throttle asked for.
	decided     Action
	decidedPass int64
	throttle    int
}

// New returns a predictor for a migration under policy.
func New(policy Policy) *Predictor {
	return &Predictor{policy: policy, decided: Continue}
}

// Observe takes the next sample and says what to do: Continue until the
// figures are trusted and while pre-copy converges; then Throttle (as often
// as a throttled guest still does not converge and the throttle can go
// higher), PostCopy or Abort, each of the last two at most once.
func (p *Predictor) Observe(s Sample) Verdict {
	p.measureThroughput(s)
	verdict := Verdict{Action: Continue, Pass: s.Pass}
	if !p.mayDecide(s) {
		return verdict
	}
	verdict.Action, verdict.ThrottlePercent, verdict.Reason = p.decide(s)
	if verdict.Action != Continue {
		p.decided, p.decidedPass = verdict.Action, s.Pass
	}
	if verdict.Action == Throttle {
		p.throttle = verdict.ThrottlePercent
	}
	return verdict
}

// measureThroughput folds the bytes sent over each window of at least
// throughputWindow into the smoothed throughput.
func (p *Predictor) measureThroughput(s Sample) {
	if s.Pass < 1 {
		return // still setting up: nothing sent yet
	}
	from := p.windowStart
	if from == nil || s.TransferredBytes < from.TransferredBytes {
		p.windowStart = &s
		return
	}
	window := s.Elapsed - from.Elapsed
	if window < throughputWindow {
		return
	}
	p.windowStart = &s
	rate := float64(s.TransferredBytes-from.TransferredBytes) / window.Seconds()
	if p.throughput == 0 {
		p.throughput = rate
		return
	}
	p.throughput = ewmaWeight*rate + (1-ewmaWeight)*p.throughput
}

// throttleSettlePasses is how many passes a throttle takes to show: QEMU
// raises it at a dirty sync after two passes that dirtied too much, and the
// dirty rate it then reports covers a whole pass.
const throttleSettlePasses = 3

// mayDecide tells whether the figures are trusted (from DecisionPass on,
// with the throughput and the dirty rate measured) and whether a decision
// is open: while pre-copy converges, at every sample; after a throttle,
// once the guest ran throttled long enough to show its new dirty rate.
func (p *Predictor) mayDecide(s Sample) bool {
	if s.Pass < DecisionPass || p.throughput <= 0 || s.DirtyBytesPerSecond <= 0 {
		return false
	}
	switch p.decided {
	case Continue:
		return true
	case Throttle:
		return s.Pass >= p.decidedPass+throttleSettlePasses && s.ThrottlePercent >= p.throttle
	default:
		return false // post-copy or abort: nothing left to decide
	}
}

// decide acts on figures that say pre-copy cannot converge. With
// auto-converge allowed it never aborts: a throttled guest runs in short
// bursts, and pre-copy often finds a pass that fits between two of them,
// which no average dirty rate shows; the completion timeout stays its
// bound. Post-copy, where allowed, takes over when even throttled
// pre-copy will not make it in time.
func (p *Predictor) decide(s Sample) (Action, int, string) {
	dirty, link := float64(s.DirtyBytesPerSecond), p.throughput
	left := p.timeLeft(s)
	if converges(s.RemainingBytes, dirty, link, p.policy.DowntimeLimit, left) {
		return Continue, 0, ""
	}
	figures := fmt.Sprintf("guest dirties %s/s, link moves %s/s", mib(dirty), mib(link))
	if s.ThrottlePercent > 0 {
		figures = fmt.Sprintf("guest dirties %s/s with its vCPUs throttled to %d%%, link moves %s/s", mib(dirty), s.ThrottlePercent, mib(link))
	}
	cannot := fmt.Sprintf("%s: pre-copy cannot converge under %s downtime", figures, p.policy.DowntimeLimit)
	throttle := 0
	if p.policy.AllowAutoConverge && s.ThrottlePercent < MaxThrottlePercent {
		// Throttling by t leaves (1-t) of the guest's vCPU time, and of
		// its dirtying.
		unthrottled := dirty / (1 - float64(s.ThrottlePercent)/100)
		throttle = neededThrottle(unthrottled, link, s.ThrottlePercent)
		throttled := unthrottled * (1 - float64(throttle)/100)
		if converges(s.RemainingBytes, throttled, link, p.policy.DowntimeLimit, left) || !p.policy.AllowPostCopy {
			return Throttle, throttle, fmt.Sprintf("%s; throttling the guest's vCPUs to %d%% (allowAutoConverge)", cannot, throttle)
		}
		cannot = fmt.Sprintf("%s, nor in time with its vCPUs throttled to %d%%", cannot, throttle)
	}
	switch {
	case p.policy.AllowPostCopy:
		return PostCopy, 0, cannot + "; switching to post-copy (allowPostCopy)"
	case p.policy.AllowAutoConverge:
		return Continue, 0, "" // throttled to the maximum: the completion timeout decides
	}
	return Abort, 0, cannot + "; allow post-copy or auto-converge in a MigrationPolicy"
}

// timeLeft is the time until the completion deadline; +Inf without one.
func (p *Predictor) timeLeft(s Sample) time.Duration {
	if p.policy.Budget <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return p.policy.Budget - s.Elapsed
}

// converges tells whether pre-copy, starting with remaining bytes dirty,
// brings them under the downtime limit within MaxPasses and in time.
func converges(remaining int64, dirty, link float64, downtime, left time.Duration) bool {
	passes, duration, ok := PredictPreCopy(remaining, dirty, link, downtime)
	return ok && passes <= MaxPasses && duration <= left
}

// PredictPreCopy predicts how many more passes pre-copy needs, and how
// long they take, before what remains fits in the downtime limit; ok is
// false when it never does (the guest dirties as fast as the link sends).
func PredictPreCopy(remaining int64, dirty, link float64, downtime time.Duration) (passes int, duration time.Duration, ok bool) {
	if link <= 0 {
		return 0, 0, false
	}
	threshold := link * downtime.Seconds()
	left := float64(remaining)
	if left <= threshold {
		return 0, seconds(left / link), true
	}
	ratio := dirty / link
	if ratio >= 1 {
		return 0, 0, false
	}
	if ratio <= 0 {
		return 1, seconds(left / link), true
	}
	n := math.Ceil(math.Log(threshold/left) / math.Log(ratio))
	total := left / link * (1 - math.Pow(ratio, n)) / (1 - ratio)
	return int(n), seconds(total), true
}

// neededThrottle is the vCPU throttle that brings a guest dirtying
// unthrottled bytes/s to ThrottledRatio of the link: at least 10 points
// above the current one and MinThrottlePercent, at most
// MaxThrottlePercent.
func neededThrottle(unthrottled, link float64, current int) int {
	need := MinThrottlePercent
	if unthrottled > 0 {
		need = int(math.Ceil(100 * (1 - ThrottledRatio*link/unthrottled)))
	}
	return min(max(need, current+10, MinThrottlePercent), MaxThrottlePercent)
}

// CompletionBudget is upstream's acceptable completion time:
// completionTimeoutPerGiB seconds per GiB of what moves (guest memory plus
// the disks cclm copies), counting at least 1 GiB so that a small guest
// still gets a sensible budget (upstream's integer division would give a
// 128Mi guest no time at all).
func CompletionBudget(perGiB, bytes int64) time.Duration {
	const gib = int64(1) << 30
	secs := math.Ceil(float64(perGiB) * float64(max(bytes, gib)) / float64(gib))
	return time.Duration(secs) * time.Second
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func mib(bytesPerSecond float64) string {
	return fmt.Sprintf("%.1f MiB", bytesPerSecond/(1<<20))
}
