package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// StartNBDServer starts the target's NBD server on addr ("host:port"), over
// TLS with the server credentials (AddTLSCredentials) if tls is set. The
// source mirrors the disks into it (ExportDisks says which).
func (in *Instance) StartNBDServer(ctx context.Context, addr string, tls bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("NBD server address %q: %w (want host:port)", addr, err)
	}
	args := map[string]any{
		// nbd-server-start still takes the legacy socket address form.
		"addr": map[string]any{"type": "inet", "data": map[string]any{"host": host, "port": port}},
	}
	if tls {
		args["tls-creds"] = tlsCredsID(TLSServer)
	}
	if err := in.Execute(ctx, "nbd-server-start", args, nil); err != nil {
		return fmt.Errorf("%s: starting the NBD server on %s: %w", in.dom.Name, addr, err)
	}
	return nil
}

// StopNBDServer stops the NBD server and its exports (on the target, once
// the migration completed and before Resume).
func (in *Instance) StopNBDServer(ctx context.Context) error {
	err := in.Execute(ctx, "nbd-server-stop", nil, nil)
	var qmpErr *QMPError
	if errors.As(err, &qmpErr) && strings.Contains(qmpErr.Desc, "NBD server not running") {
		// Stopped already, by an earlier run of the caller (a node agent
		// that restarted while taking over a migrated guest).
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: stopping the NBD server: %w", in.dom.Name, err)
	}
	return nil
}

// ExportDisks exports the named disks on the NBD server, each under its
// disk name. A migration target exports them writable for the mirrors.
// Read-only disks (cloud-init, container disks) are not migrated: the
// target gets them the way the source did.
func (in *Instance) ExportDisks(ctx context.Context, names []string, writable bool) error {
	for _, name := range names {
		if err := in.checkMigratableDisk(name); err != nil {
			return err
		}
		args := map[string]any{
			"type":      "nbd",
			"id":        exportID(name),
			"node-name": diskNodeName(name),
			"name":      name,
			"writable":  writable,
		}
		if err := in.Execute(ctx, "block-export-add", args, nil); err != nil {
			return fmt.Errorf("%s: exporting disk %s over NBD: %w", in.dom.Name, name, err)
		}
	}
	return nil
}

// NBDTarget is the target's NBD server, as the source mirrors into it.
type NBDTarget struct {
	Addr string // host:port of the target's NBD server
	TLS  bool   // use the client credentials (AddTLSCredentials)
	// TLSHostname is the name the target's certificate must carry; empty
	// means the host of Addr.
	TLSHostname string
	// SynchronousWrites mirrors each guest write before completing it
	// (copy-mode write-blocking), so a guest that writes faster than the
	// network still converges, at the cost of write latency.
	SynchronousWrites bool
	// BandwidthBytesPerSecond limits each mirror's background copy; 0
	// means unlimited.
	BandwidthBytesPerSecond int64
}

// nbdClientNode is blockdev-add's argument for the NBD node a mirror
// writes to. detect-zeroes=unmap turns blocks of zeroes the mirror copies
// into NBD write-zeroes requests, which carry no data; discard=unmap (which
// detect-zeroes=unmap requires) lets QEMU zero the target in one request
// before copying only the allocated parts of the source (QEMU 7.2 has no
// "target-is-zero" option to skip even that). Unallocated source areas are
// never read: the mirror asks the block status and writes zeroes instead.
func nbdClientNode(target NBDTarget, disk string) (map[string]any, error) {
	host, port, err := net.SplitHostPort(target.Addr)
	if err != nil {
		return nil, fmt.Errorf("NBD target %q: %w (want host:port)", target.Addr, err)
	}
	node := map[string]any{
		"driver":        "nbd",
		"node-name":     mirrorNodeName(disk),
		"server":        map[string]any{"type": "inet", "host": host, "port": port},
		"export":        disk,
		"detect-zeroes": "unmap",
		"discard":       "unmap",
	}
	if target.TLS {
		node["tls-creds"] = tlsCredsID(TLSClient)
		if target.TLSHostname != "" {
			node["tls-hostname"] = target.TLSHostname
		}
	}
	return node, nil
}

func mirrorArgs(target NBDTarget, disk string) map[string]any {
	args := map[string]any{
		"job-id": mirrorJobID(disk),
		"device": diskNodeName(disk),
		"target": mirrorNodeName(disk),
		"sync":   "full",
	}
	if target.SynchronousWrites {
		args["copy-mode"] = "write-blocking"
	}
	if target.BandwidthBytesPerSecond > 0 {
		args["speed"] = target.BandwidthBytesPerSecond
	}
	return args
}

// MirrorDisks connects to the target's NBD export of each named disk and
// mirrors the whole disk into it (blockdev-mirror sync=full), then waits
// until every mirror is READY: the target holds all data, and the mirrors
// go on copying new writes until CompleteMirrors or CancelMirrors. If any
// mirror fails, those started are cancelled.
func (in *Instance) MirrorDisks(ctx context.Context, target NBDTarget, names []string) error {
	events, unsubscribe := in.Events()
	defer unsubscribe()
	var started []string
	for _, name := range names {
		if err := in.startMirror(ctx, target, name); err != nil {
			in.cancelMirrorsAfterFailure(started)
			return err
		}
		started = append(started, name)
	}
	if err := in.waitMirrorsReady(ctx, names, events); err != nil {
		in.cancelMirrorsAfterFailure(started)
		return err
	}
	return nil
}

// checkMigratableDisk checks that the domain has a writable disk name.
func (in *Instance) checkMigratableDisk(name string) error {
	disk, err := in.dom.disk(name)
	if err != nil {
		return err
	}
	if disk.ReadOnly {
		return fmt.Errorf("%s: disk %s is read-only: it is not mirrored; provide the same content on the target", in.dom.Name, name)
	}
	return nil
}

func (in *Instance) startMirror(ctx context.Context, target NBDTarget, name string) error {
	if err := in.checkMigratableDisk(name); err != nil {
		return err
	}
	node, err := nbdClientNode(target, name)
	if err != nil {
		return err
	}
	if err := in.Execute(ctx, "blockdev-add", node, nil); err != nil {
		return fmt.Errorf("%s: connecting to the NBD export %s at %s: %w (check that the target's NBD server is up, exports the disk, and trusts this node's certificate)", in.dom.Name, name, target.Addr, err)
	}
	if err := in.Execute(ctx, "blockdev-mirror", mirrorArgs(target, name), nil); err != nil {
		in.deleteNode(ctx, mirrorNodeName(name))
		return fmt.Errorf("%s: starting the mirror of disk %s: %w", in.dom.Name, name, err)
	}
	return nil
}

// cancelMirrorsAfterFailure cleans up after a failed MirrorDisks, with a
// deadline of its own: the caller's context may be what ran out.
func (in *Instance) cancelMirrorsAfterFailure(names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = in.CancelMirrors(ctx, names)
}

// BlockJob is one entry of query-block-jobs.
type BlockJob struct {
	ID     string `json:"device"`
	Type   string `json:"type"`
	Status string `json:"status"` // "running", "ready", "concluded", ...
	Ready  bool   `json:"ready"`
	Offset int64  `json:"offset"` // progress: bytes done of Len
	Len    int64  `json:"len"`
	Speed  int64  `json:"speed"`
	Error  string `json:"error"`
}

// BlockJobs lists the block jobs (mirrors are named "mirror-<disk>").
func (in *Instance) BlockJobs(ctx context.Context) ([]BlockJob, error) {
	var jobs []BlockJob
	if err := in.Execute(ctx, "query-block-jobs", nil, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// MirrorJobID is the block job id of the mirror of disk.
func MirrorJobID(disk string) string { return mirrorJobID(disk) }

// jobOutcomes remembers how block jobs ended, from their events: a job
// leaves query-block-jobs when it ends, and only its last event tells
// whether it completed or failed.
type jobOutcomes map[string]error

// errJobCancelled is the outcome of a job that was cancelled before sync.
var errJobCancelled = errors.New("cancelled")

func (o jobOutcomes) record(e Event) {
	id := e.Str("device")
	switch e.Name {
	case "BLOCK_JOB_COMPLETED":
		if msg := e.Str("error"); msg != "" {
			o[id] = errors.New(msg)
		} else {
			o[id] = nil
		}
	case "BLOCK_JOB_CANCELLED":
		o[id] = errJobCancelled
	}
}

func (o jobOutcomes) drain(events <-chan Event) {
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return
			}
			o.record(e)
		default:
			return
		}
	}
}

// waitMirrorsReady waits until the mirror of every named disk is ready.
func (in *Instance) waitMirrorsReady(ctx context.Context, names []string, events <-chan Event) error {
	outcomes := jobOutcomes{}
	return in.pollJobs(ctx, events, outcomes, func(jobs map[string]BlockJob) (bool, error) {
		for _, name := range names {
			job, running := jobs[mirrorJobID(name)]
			switch {
			case !running:
				outcome := outcomeOf(outcomes, mirrorJobID(name))
				return false, fmt.Errorf("%s: mirror of disk %s ended before it was in sync: %v%s", in.dom.Name, name, outcome, mirrorEndHint(outcome))
			case job.Error != "":
				return false, fmt.Errorf("%s: mirror of disk %s failed: %s", in.dom.Name, name, job.Error)
			case !job.Ready:
				return false, nil
			}
		}
		return true, nil
	})
}

// mirrorEndHint says what to do about a mirror that ended early, for the
// causes it can tell.
func mirrorEndHint(outcome error) string {
	switch message := outcome.Error(); {
	case strings.Contains(message, "No space left on device"):
		return " (the target's storage is full: free room on the target node's storage, or migrate to another node)"
	case strings.Contains(message, "size"):
		return " (the target disk must have exactly the source's size)"
	}
	return ""
}

func outcomeOf(outcomes jobOutcomes, id string) error {
	if err, seen := outcomes[id]; seen {
		if err == nil {
			return errors.New("completed")
		}
		return err
	}
	return errors.New("no event said why (see the QEMU log)")
}

// pollJobs calls check with the current jobs on every block job event and
// at least every 200 ms, until check is done or fails.
func (in *Instance) pollJobs(ctx context.Context, events <-chan Event, outcomes jobOutcomes, check func(map[string]BlockJob) (bool, error)) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := in.BlockJobs(ctx)
		if err != nil {
			return err
		}
		outcomes.drain(events) // events up to this listing
		jobs := make(map[string]BlockJob, len(list))
		for _, job := range list {
			jobs[job.ID] = job
		}
		if done, err := check(jobs); done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for the disk mirrors: %w", in.dom.Name, ctx.Err())
		case <-in.proc.exited:
			return fmt.Errorf("%s: QEMU exited during the disk mirrors (%s)", in.dom.Name, in.proc.describeExit())
		case e, ok := <-events:
			if ok {
				outcomes.record(e)
			}
		case <-tick.C:
		}
	}
}

// CompleteMirrors ends the READY mirrors of the named disks so that the
// target keeps a complete copy as of now (block-job-cancel of a ready
// mirror: QEMU copies what is still dirty, then ends the job without
// switching the source to the target), and disconnects from the target's
// NBD server. Call it with the guest paused (migration status
// "pre-switchover"), so that no write can follow.
func (in *Instance) CompleteMirrors(ctx context.Context, names []string) error {
	events, unsubscribe := in.Events()
	defer unsubscribe()
	jobs, err := in.BlockJobs(ctx)
	if err != nil {
		return err
	}
	byID := map[string]BlockJob{}
	for _, job := range jobs {
		byID[job.ID] = job
	}
	for _, name := range names {
		job, ok := byID[mirrorJobID(name)]
		if !ok || !job.Ready {
			// Cancelling a mirror that is not in sync would leave the
			// target's disk incomplete, and still look like success.
			return fmt.Errorf("%s: mirror of disk %s is not in sync (%s): the target's disk would be incomplete; cancel the migration", in.dom.Name, name, describeJob(job, ok))
		}
	}
	for _, name := range names {
		if err := in.Execute(ctx, "block-job-cancel", map[string]any{"device": mirrorJobID(name)}, nil); err != nil {
			return fmt.Errorf("%s: completing the mirror of disk %s: %w", in.dom.Name, name, err)
		}
	}
	outcomes := jobOutcomes{}
	err = in.pollJobs(ctx, events, outcomes, func(jobs map[string]BlockJob) (bool, error) {
		for _, name := range names {
			if _, running := jobs[mirrorJobID(name)]; running {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		if err, seen := outcomes[mirrorJobID(name)]; !seen || err != nil {
			return fmt.Errorf("%s: mirror of disk %s did not complete: %v", in.dom.Name, name, outcomeOf(outcomes, mirrorJobID(name)))
		}
		in.deleteNode(ctx, mirrorNodeName(name))
	}
	return nil
}

func describeJob(job BlockJob, exists bool) string {
	if !exists {
		return "no mirror job"
	}
	return fmt.Sprintf("status %s, %d of %d bytes", job.Status, job.Offset, job.Len)
}

// CancelMirrors abandons the mirrors of the named disks at once
// (block-job-cancel force) and disconnects from the target's NBD server.
// Disks without a mirror are skipped.
func (in *Instance) CancelMirrors(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	events, unsubscribe := in.Events()
	defer unsubscribe()
	var errs []error
	for _, name := range names {
		err := in.Execute(ctx, "block-job-cancel", map[string]any{"device": mirrorJobID(name), "force": true}, nil)
		var qmpErr *QMPError
		if err != nil && !errors.As(err, &qmpErr) { // a QMP error: no such job
			errs = append(errs, fmt.Errorf("%s: cancelling the mirror of disk %s: %w", in.dom.Name, name, err))
		}
	}
	err := in.pollJobs(ctx, events, jobOutcomes{}, func(jobs map[string]BlockJob) (bool, error) {
		for _, name := range names {
			if _, running := jobs[mirrorJobID(name)]; running {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range names {
		in.deleteNode(ctx, mirrorNodeName(name))
	}
	return errors.Join(errs...)
}

// deleteNode removes a block node if it exists (best effort: a node that is
// gone is what the caller wants).
func (in *Instance) deleteNode(ctx context.Context, nodeName string) {
	_ = in.Execute(ctx, "blockdev-del", map[string]any{"node-name": nodeName}, nil)
}

// CreateRawDisk creates a sparse raw disk image of exactly size bytes, as a
// migration target's disk (a mirror needs the source's exact size). It
// refuses to overwrite an existing file.
func CreateRawDisk(path string, size int64) error {
	if size <= 0 || size%512 != 0 {
		return fmt.Errorf("disk %s: size %d is not a positive multiple of 512 bytes", path, size)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("creating disk: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sizing disk %s: %w", path, err)
	}
	return f.Close()
}
