package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"time"
)

// MigrationRole says which side of a migration an Instance is.
type MigrationRole string

// The two sides.
const (
	RoleSource MigrationRole = "source"
	RoleTarget MigrationRole = "target"
)

// MigrationParams tune a live migration (KubeVirt's migration settings,
// expressed as QEMU capabilities and parameters).
type MigrationParams struct {
	// Multifd sends pre-copy memory over MultifdChannels parallel
	// connections (each one TLS-authenticated like the main stream), and
	// leaves the detection of zero pages to those channels' threads
	// (zero-page-detection "multifd"). Not used with PostCopy: QEMU 10.0
	// refuses the pair ("Postcopy is not yet compatible with multifd";
	// 10.1 lifts that), and KubeVirt does not combine them either; nor
	// with a bandwidth limit, which it does not honour (multifd()).
	Multifd         bool
	MultifdChannels int // 0 means DefaultMultifdChannels
	// AutoConverge throttles the guest's vCPUs when memory is dirtied faster
	// than it is sent, starting at CPUThrottleInitial percent and adding
	// CPUThrottleIncrement per iteration (0 means 20 and 10).
	AutoConverge         bool
	CPUThrottleInitial   int
	CPUThrottleIncrement int
	// PostCopy allows switching to post-copy (StartPostcopy); both sides
	// need it. The target then needs userfaultfd. It comes with
	// postcopy-preempt: the pages the running target faults on travel on
	// their own channel, ahead of the background stream, which keeps the
	// guest's stalls after the switch short.
	PostCopy bool
	// DowntimeLimit is the longest pause QEMU aims for at switchover; 0
	// means DefaultDowntimeLimit.
	DowntimeLimit time.Duration
	// BandwidthBytesPerSecond caps the migration stream; 0 means unlimited
	// (QEMU's own default is 128 MiB/s, so it is set explicitly).
	BandwidthBytesPerSecond int64
	// TLS encrypts the stream with the instance's TLS credentials
	// (AddTLSCredentials: client on the source, server on the target).
	TLS bool
	// TLSHostname is the name the source expects in the target's
	// certificate; empty means the host of the migration URI.
	TLSHostname string
	// PauseBeforeSwitchover (source) stops the migration in status
	// "pre-switchover" with the guest paused, before the device state is
	// sent, so that disk mirrors can be completed (CompleteMirrors) before
	// ContinueMigration. Set it whenever disks are mirrored.
	PauseBeforeSwitchover bool
}

// Defaults, as in KubeVirt (which uses 8 multifd channels; 2 suit small
// hosts better).
const (
	DefaultMultifdChannels      = 2
	DefaultCPUThrottleInitial   = 20
	DefaultCPUThrottleIncrement = 10
	DefaultDowntimeLimit        = 300 * time.Millisecond
	// UnlimitedBandwidth is the max-bandwidth set for "unlimited": libvirt's
	// maximum, INT64_MAX rounded down to whole MiB/s.
	UnlimitedBandwidth int64 = (math.MaxInt64 >> 20) << 20
)

// DefaultMigrationParams are KubeVirt's defaults: multifd, no auto-converge,
// no post-copy, 300 ms downtime, unlimited bandwidth, no TLS.
//
// Multifd needs QEMU 9.0 (MinimumVersion): QEMU 7.2 (Debian 12's) lost
// dirty pages over multifd between passes, which corrupted guests.
func DefaultMigrationParams() MigrationParams {
	return MigrationParams{Multifd: true, MultifdChannels: DefaultMultifdChannels}
}

// MigrationCapability is one entry of migrate-set-capabilities.
type MigrationCapability struct {
	Capability string `json:"capability"`
	State      bool   `json:"state"`
}

// migrationCapabilities lists every capability cclm manages, each set
// explicitly, so that a reconfigured instance keeps nothing from before.
// Capabilities that change the stream format (multifd, postcopy-ram) must
// match on both sides; the others are the source's business.
func (p MigrationParams) migrationCapabilities(role MigrationRole, withUUID bool) []MigrationCapability {
	source := role == RoleSource
	return []MigrationCapability{
		{"events", true},
		{"multifd", p.multifd()},
		{"postcopy-ram", p.PostCopy},
		{"postcopy-preempt", p.PostCopy},
		{"auto-converge", source && p.AutoConverge},
		{"pause-before-switchover", source && p.PauseBeforeSwitchover},
		// The source sends its UUID and the target refuses another VM's.
		{"validate-uuid", withUUID},
	}
}

// migrationParameters is the argument of migrate-set-parameters.
func (p MigrationParams) migrationParameters(role MigrationRole) map[string]any {
	params := map[string]any{
		"multifd-channels":    orDefault(p.MultifdChannels, DefaultMultifdChannels),
		"zero-page-detection": zeroPageDetection(p.multifd()),
		"tls-creds":           "", // "" turns TLS off
	}
	if p.TLS {
		params["tls-creds"] = tlsCredsID(tlsEndpointFor(role))
	}
	if role == RoleTarget {
		return params
	}
	bandwidth := p.BandwidthBytesPerSecond
	if bandwidth <= 0 {
		bandwidth = UnlimitedBandwidth
	}
	params["max-bandwidth"] = bandwidth
	params["downtime-limit"] = p.Downtime().Milliseconds()
	params["cpu-throttle-initial"] = orDefault(p.CPUThrottleInitial, DefaultCPUThrottleInitial)
	params["cpu-throttle-increment"] = orDefault(p.CPUThrottleIncrement, DefaultCPUThrottleIncrement)
	params["tls-hostname"] = p.TLSHostname
	return params
}

// Downtime is the longest switchover pause QEMU aims for: DowntimeLimit,
// else DefaultDowntimeLimit.
func (p MigrationParams) Downtime() time.Duration {
	return orDefault(p.DowntimeLimit, DefaultDowntimeLimit)
}

// multifd tells whether the stream uses multifd channels: asked for, no
// post-copy (see Multifd), and no bandwidth limit: QEMU 10.0's max-bandwidth
// does not hold the multifd channels back (cclm measured 14 MiB/s through
// a 2 MiB/s limit; KubeVirt's own tests turn multifd off for the same
// reason, QEMU issue 3364), and a limit that does not limit is worse than
// one stream.
func (p MigrationParams) multifd() bool {
	return p.Multifd && !p.PostCopy && p.BandwidthBytesPerSecond <= 0
}

// zeroPageDetection is where QEMU looks for zero pages: in the multifd
// channels' threads when there are some (in parallel, and off the main
// migration thread), else in the migration thread ("legacy").
func zeroPageDetection(multifd bool) string {
	if multifd {
		return "multifd"
	}
	return "legacy"
}

// ConfigureMigration sets the migration capabilities and parameters for
// this side of a migration. Call it on both sides before MigrateIncoming
// and Migrate, with the same params; with TLS, after AddTLSCredentials.
func (in *Instance) ConfigureMigration(ctx context.Context, role MigrationRole, p MigrationParams) error {
	if role != RoleSource && role != RoleTarget {
		return fmt.Errorf("configure migration: unknown role %q", role)
	}
	caps := p.migrationCapabilities(role, in.dom.UUID != "")
	if err := in.SetMigrationCapabilities(ctx, caps); err != nil {
		return err
	}
	return in.SetMigrationParameters(ctx, p.migrationParameters(role))
}

// SetMigrationCapabilities runs migrate-set-capabilities.
func (in *Instance) SetMigrationCapabilities(ctx context.Context, caps []MigrationCapability) error {
	err := in.Execute(ctx, "migrate-set-capabilities", map[string]any{"capabilities": caps}, nil)
	if err != nil {
		return fmt.Errorf("setting migration capabilities %v on %s: %w", caps, in.dom.Name, err)
	}
	return nil
}

// SetMigrationParameters runs migrate-set-parameters.
func (in *Instance) SetMigrationParameters(ctx context.Context, params map[string]any) error {
	if err := in.Execute(ctx, "migrate-set-parameters", params, nil); err != nil {
		return fmt.Errorf("setting migration parameters on %s: %w", in.dom.Name, err)
	}
	return nil
}

// MigrationURI is QEMU's URI for a TCP migration stream to addr
// ("host:port", IPv6 hosts in brackets).
func MigrationURI(addr string) string { return "tcp:" + addr }

// MigrateIncoming opens the target's listener (migrate-incoming) on a URI
// from MigrationURI, and returns the address it listens on (useful with
// port 0).
func (in *Instance) MigrateIncoming(ctx context.Context, uri string) (string, error) {
	if err := in.Execute(ctx, "migrate-incoming", map[string]any{"uri": uri}, nil); err != nil {
		return "", fmt.Errorf("%s: listening for the migration on %s: %w", in.dom.Name, uri, err)
	}
	var answer struct {
		SocketAddress []struct {
			Type string `json:"type"`
			Host string `json:"host"`
			Port string `json:"port"`
		} `json:"socket-address"`
	}
	if err := in.Execute(ctx, "query-migrate", nil, &answer); err != nil {
		return "", err
	}
	for _, a := range answer.SocketAddress {
		if a.Type == "inet" {
			return net.JoinHostPort(a.Host, a.Port), nil
		}
	}
	return "", fmt.Errorf("%s: migrate-incoming on %s: QEMU reports no TCP listener", in.dom.Name, uri)
}

// Migrate starts the outgoing migration to uri; follow it with
// WaitMigration or QueryMigrate.
func (in *Instance) Migrate(ctx context.Context, uri string) error {
	in.sending.Store(true)
	if err := in.Execute(ctx, "migrate", map[string]any{"uri": uri}, nil); err != nil {
		return fmt.Errorf("%s: starting migration to %s: %w", in.dom.Name, uri, err)
	}
	return nil
}

// ContinueMigration lets a migration paused in "pre-switchover" (see
// PauseBeforeSwitchover) send the device state and complete.
func (in *Instance) ContinueMigration(ctx context.Context) error {
	if err := in.Execute(ctx, "migrate-continue", map[string]any{"state": string(MigrationPreSwitchover)}, nil); err != nil {
		return fmt.Errorf("%s: continuing the migration after pre-switchover: %w", in.dom.Name, err)
	}
	// migrate-continue only wakes the migration thread: until that thread
	// runs, query-migrate still says pre-switchover, and a WaitMigration
	// right after would take the old pause for a new one.
	_, err := in.waitMigrationStatus(ctx, "continuing the migration", nil, func(s MigrationStatus) bool {
		return s != MigrationPreSwitchover
	})
	var ended *MigrationError
	if err != nil && !errors.As(err, &ended) {
		return err
	}
	return nil
}

// StartPostcopy switches a running migration to post-copy: the target runs
// from now on and pulls the remaining pages. Both sides must have been
// configured with PostCopy; from here on, cancelling loses the VM.
func (in *Instance) StartPostcopy(ctx context.Context) error {
	if err := in.Execute(ctx, "migrate-start-postcopy", nil, nil); err != nil {
		return fmt.Errorf("%s: switching to post-copy: %w", in.dom.Name, err)
	}
	return nil
}

// RaiseThrottle makes auto-converge throttle the guest's vCPUs to percent
// at its next step: QEMU throttles at a dirty sync after two passes that
// dirtied more than half of what they sent, starting at
// cpu-throttle-initial and adding cpu-throttle-increment each time. Both
// are set so that the next step lands on percent whether or not throttling
// has begun (current is the throttle now). The migration must have been
// started with AutoConverge.
func (in *Instance) RaiseThrottle(ctx context.Context, percent, current int) error {
	percent = min(max(percent, 1), 99)
	params := map[string]any{
		"cpu-throttle-initial":   percent,
		"cpu-throttle-increment": min(max(percent-current, 1), 99),
	}
	return in.SetMigrationParameters(ctx, params)
}

// AnnounceSelf makes the guest's NICs announce their MACs (RARP, like
// after a real migration), so that switches learn the VM's new port. QEMU
// does this itself after an incoming migration; an explicit round costs
// nothing and also covers a target resumed later.
func (in *Instance) AnnounceSelf(ctx context.Context) error {
	args := map[string]any{"initial": 50, "max": 550, "rounds": 5, "step": 100}
	if err := in.Execute(ctx, "announce-self", args, nil); err != nil {
		return fmt.Errorf("%s: announce-self: %w", in.dom.Name, err)
	}
	return nil
}

// MigrationStatus is QEMU's MigrationStatus.
type MigrationStatus string

// The statuses cclm acts on (QEMU has a few more).
const (
	MigrationNone          MigrationStatus = "none"
	MigrationSetup         MigrationStatus = "setup"
	MigrationActive        MigrationStatus = "active"
	MigrationPostcopy      MigrationStatus = "postcopy-active"
	MigrationPostcopyPause MigrationStatus = "postcopy-paused"
	MigrationPreSwitchover MigrationStatus = "pre-switchover"
	MigrationDevice        MigrationStatus = "device"
	MigrationCompleted     MigrationStatus = "completed"
	MigrationFailed        MigrationStatus = "failed"
	MigrationCancelling    MigrationStatus = "cancelling"
	MigrationCancelled     MigrationStatus = "cancelled"
)

// Finished tells whether the migration has ended, well or not.
func (s MigrationStatus) Finished() bool {
	return s == MigrationCompleted || s == MigrationFailed || s == MigrationCancelled
}

// MigrationProgress is query-migrate's answer, typed. Byte counts are of
// guest RAM; times are as QEMU measured them.
type MigrationProgress struct {
	Status           MigrationStatus
	TotalBytes       int64 // guest RAM to migrate
	TransferredBytes int64 // sent so far, over all channels
	RemainingBytes   int64 // still dirty
	// DirtyPagesRate is the rate the guest dirtied pages at during the last
	// iteration (pages/s); DirtyBytesRate is the same in bytes/s.
	DirtyPagesRate int64
	DirtyBytesRate int64
	PageSize       int64
	// Iteration counts the passes over dirty memory (dirty-sync-count).
	Iteration        int64
	DuplicatePages   int64 // pages sent as "all zero"
	NormalPages      int64
	MultifdBytes     int64
	PostcopyRequests int64
	// Mbps is the throughput QEMU measured, in megabits per second.
	Mbps             float64
	ExpectedDowntime time.Duration // while active: QEMU's estimate
	Downtime         time.Duration // once completed: the actual pause
	SetupTime        time.Duration
	TotalTime        time.Duration
	// CPUThrottlePercent is auto-converge's current throttle.
	CPUThrottlePercent int
	Error              string // why it failed
	// TimesFromEvents tells that TotalTime and Downtime were measured from
	// QMP event timestamps, QEMU having reported 0 (see migrationClock).
	TimesFromEvents bool
}

// queryMigrateAnswer mirrors QEMU's MigrationInfo, for the fields kept.
type queryMigrateAnswer struct {
	Status           MigrationStatus `json:"status"`
	TotalTime        int64           `json:"total-time"`
	ExpectedDowntime int64           `json:"expected-downtime"`
	Downtime         int64           `json:"downtime"`
	SetupTime        int64           `json:"setup-time"`
	CPUThrottle      int             `json:"cpu-throttle-percentage"`
	ErrorDesc        string          `json:"error-desc"`
	RAM              *struct {
		Transferred      int64   `json:"transferred"`
		Remaining        int64   `json:"remaining"`
		Total            int64   `json:"total"`
		Duplicate        int64   `json:"duplicate"`
		Normal           int64   `json:"normal"`
		DirtyPagesRate   int64   `json:"dirty-pages-rate"`
		Mbps             float64 `json:"mbps"`
		DirtySyncCount   int64   `json:"dirty-sync-count"`
		PostcopyRequests int64   `json:"postcopy-requests"`
		PageSize         int64   `json:"page-size"`
		MultifdBytes     int64   `json:"multifd-bytes"`
	} `json:"ram"`
}

// ParseMigrationInfo turns the "return" value of query-migrate into a
// MigrationProgress. QEMU leaves out what does not apply yet (no "ram"
// before setup ends, no "downtime" before completion): those stay zero.
func ParseMigrationInfo(raw []byte) (MigrationProgress, error) {
	var a queryMigrateAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return MigrationProgress{}, fmt.Errorf("decoding query-migrate answer: %w", err)
	}
	if a.Status == "" {
		a.Status = MigrationNone // an empty answer: no migration ever started
	}
	p := MigrationProgress{
		Status:             a.Status,
		ExpectedDowntime:   time.Duration(a.ExpectedDowntime) * time.Millisecond,
		Downtime:           time.Duration(a.Downtime) * time.Millisecond,
		SetupTime:          time.Duration(a.SetupTime) * time.Millisecond,
		TotalTime:          time.Duration(a.TotalTime) * time.Millisecond,
		CPUThrottlePercent: a.CPUThrottle,
		Error:              a.ErrorDesc,
		PageSize:           4096,
	}
	if r := a.RAM; r != nil {
		p.TotalBytes, p.TransferredBytes, p.RemainingBytes = r.Total, r.Transferred, r.Remaining
		if r.PageSize > 0 {
			p.PageSize = r.PageSize
		}
		p.DirtyPagesRate, p.DirtyBytesRate = r.DirtyPagesRate, r.DirtyPagesRate*p.PageSize
		p.Iteration, p.DuplicatePages, p.NormalPages = r.DirtySyncCount, r.Duplicate, r.Normal
		p.MultifdBytes, p.PostcopyRequests, p.Mbps = r.MultifdBytes, r.PostcopyRequests, r.Mbps
	}
	return p, nil
}

// QueryMigrate returns the progress of the current (or last) migration,
// outgoing on a source, incoming on a target.
func (in *Instance) QueryMigrate(ctx context.Context) (MigrationProgress, error) {
	var raw json.RawMessage
	if err := in.Execute(ctx, "query-migrate", nil, &raw); err != nil {
		return MigrationProgress{}, err
	}
	p, err := ParseMigrationInfo(raw)
	if err != nil {
		return p, err
	}
	in.clock.fillTimes(&p)
	return p, nil
}

// migrationClock times the last outgoing migration from QMP events. QEMU
// 7.2 reports total-time and downtime as 0 for a migration that paused in
// pre-switchover; the events' timestamps give both: setup to completion,
// and the guest's STOP to completion (which includes completing the disk
// mirrors, as it should: the guest is paused meanwhile).
type migrationClock struct {
	mu                      sync.Mutex
	setupAt, stopAt, doneAt time.Time
}

func (c *migrationClock) observe(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case e.Name == "MIGRATION" && e.Str("status") == string(MigrationSetup):
		c.setupAt, c.stopAt, c.doneAt = e.Time, time.Time{}, time.Time{}
	case e.Name == "MIGRATION" && e.Str("status") == string(MigrationCompleted):
		c.doneAt = e.Time
	case e.Name == "STOP" && !c.setupAt.IsZero() && c.stopAt.IsZero() && c.doneAt.IsZero():
		c.stopAt = e.Time
	}
}

// fillTimes sets the times QEMU left at 0 on a completed migration.
func (c *migrationClock) fillTimes(p *MigrationProgress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.Status != MigrationCompleted || c.doneAt.IsZero() {
		return
	}
	if p.TotalTime == 0 && !c.setupAt.IsZero() {
		p.TotalTime, p.TimesFromEvents = c.doneAt.Sub(c.setupAt), true
	}
	if p.Downtime == 0 && !c.stopAt.IsZero() {
		p.Downtime, p.TimesFromEvents = c.doneAt.Sub(c.stopAt), true
	}
}

// MigrationError is a migration that ended without completing.
type MigrationError struct {
	Domain   string
	Progress MigrationProgress
}

func (e *MigrationError) Error() string {
	desc := e.Progress.Error
	if desc == "" {
		desc = "no reason given; see the QEMU logs of both sides"
	}
	return fmt.Sprintf("migration of %s %s: %s", e.Domain, e.Progress.Status, desc)
}

// migrationPollInterval is how often waits poll query-migrate; MIGRATION
// events wake them earlier.
const migrationPollInterval = 100 * time.Millisecond

// WaitMigration follows an outgoing migration until it completes, fails,
// is cancelled, or pauses in "pre-switchover", calling onProgress (if not
// nil) with every poll. A failed or cancelled migration is a
// *MigrationError; the last progress is returned either way.
func (in *Instance) WaitMigration(ctx context.Context, onProgress func(MigrationProgress)) (MigrationProgress, error) {
	return in.waitMigrationStatus(ctx, "outgoing migration", onProgress, func(s MigrationStatus) bool {
		return s.Finished() || s == MigrationPreSwitchover || s == MigrationPostcopyPause
	})
}

// WaitIncoming waits on the target until the VM may be resumed here: the
// incoming migration completed, or switched to post-copy (status
// "postcopy-active": the target must then run at once, pulling the pages
// it still lacks from the source, which must stay up until its own
// migration status is "completed"). A failed incoming migration is an
// error (QEMU 7.2 then exits).
func (in *Instance) WaitIncoming(ctx context.Context) (MigrationProgress, error) {
	return in.waitMigrationStatus(ctx, "incoming migration", nil, func(s MigrationStatus) bool {
		return s.Finished() || s == MigrationPostcopy
	})
}

func (in *Instance) waitMigrationStatus(ctx context.Context, what string, onProgress func(MigrationProgress), done func(MigrationStatus) bool) (MigrationProgress, error) {
	events, unsubscribe := in.Events()
	defer unsubscribe()
	tick := time.NewTicker(migrationPollInterval)
	defer tick.Stop()
	for {
		p, err := in.QueryMigrate(ctx)
		if err != nil {
			return p, fmt.Errorf("%s of %s: %w", what, in.dom.Name, err)
		}
		if onProgress != nil {
			onProgress(p)
		}
		if done(p.Status) {
			switch p.Status {
			case MigrationFailed, MigrationCancelled, MigrationPostcopyPause:
				return p, &MigrationError{Domain: in.dom.Name, Progress: p}
			}
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("%s of %s still %s after the deadline (%d of %d bytes sent, iteration %d): %w",
				what, in.dom.Name, p.Status, p.TransferredBytes, p.TotalBytes, p.Iteration, ctx.Err())
		case <-in.proc.exited:
			return p, fmt.Errorf("%s of %s: QEMU exited (%s)", what, in.dom.Name, in.proc.describeExit())
		case <-events:
		case <-tick.C:
		}
	}
}

// ErrMigrationCompleted is returned by CancelMigration when the migration
// had already completed: the source is paused ("postmigrate") and the
// target holds the VM. Resume the source only if the target was never
// resumed, and kill the target first.
var ErrMigrationCompleted = errors.New("the migration had already completed")

// CancelMigration stops an outgoing migration and the disk mirrors of
// mirroredDisks, dropping their NBD connections, so that the source runs
// on as before (QEMU resumes a source it paused for the migration). The
// caller then kills the target.
func (in *Instance) CancelMigration(ctx context.Context, mirroredDisks []string) error {
	if !in.sending.Load() && !in.adopted {
		// No migration was started from this QEMU: query-migrate may show
		// the incoming migration that brought the VM here as "completed",
		// which is not this one's outcome. Only the mirrors run.
		return in.CancelMirrors(ctx, mirroredDisks)
	}
	var errs []error
	if err := in.Execute(ctx, "migrate_cancel", nil, nil); err != nil {
		errs = append(errs, fmt.Errorf("%s: migrate_cancel: %w", in.dom.Name, err))
	}
	if err := in.CancelMirrors(ctx, mirroredDisks); err != nil {
		errs = append(errs, err)
	}
	p, err := in.waitMigrationStatus(ctx, "cancelling migration", nil, func(s MigrationStatus) bool {
		return s.Finished() || s == MigrationNone
	})
	var ended *MigrationError
	switch {
	case p.Status == MigrationCompleted:
		errs = append(errs, fmt.Errorf("cancel migration of %s: %w", in.dom.Name, ErrMigrationCompleted))
	case err != nil && !errors.As(err, &ended):
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
