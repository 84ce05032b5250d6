// Package guestagent holds the wire protocol between the host and the cclm
// guest agent (guest/agent), newline-delimited JSON over the virtio-serial
// port PortName, and a host-side client for it; guest/README.md documents
// the protocol. Both ends compile against these types, so the package uses
// the standard library only (the agent is a static binary).
package guestagent

import "encoding/json"

// PortName is the virtio-serial port name the agent listens on.
const PortName = "org.cclm.agent.0"

// EchoPort is the TCP port of the guest's echo service on the VM network.
// Each line received is answered as "N BOOTID LINE", N counting lines per
// connection from 1, so a client can tell it still talks to the same boot
// and that no line was lost.
const EchoPort = 7777

// ProtocolVersion changes when a command or field changes meaning.
const ProtocolVersion = 1

// Command names.
const (
	CmdInfo       = "info"
	CmdDirty      = "dirty"
	CmdDiskWrite  = "disk-write"
	CmdDiskVerify = "disk-verify"
	// CmdDiskFiles reads the files of an ISO 9660 disk (a secret,
	// configMap or sysprep volume): what the guest would mount.
	CmdDiskFiles = "disk-files"
	// CmdShutdown asks the guest to power off at once (disks synced): the
	// graceful stop the node agent tries before ACPI and before a kill, as
	// virt-launcher uses the QEMU guest agent.
	CmdShutdown = "shutdown"
)

// Request is one line from the host.
type Request struct {
	ID   uint64          `json:"id"`
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is one line from the agent. Exactly one of Result and Error is
// set. ID 0 answers a line that could not be parsed at all.
type Response struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Info is the result of CmdInfo.
type Info struct {
	// BootID is /proc/sys/kernel/random/boot_id: it changes on every boot,
	// and survives live migration unchanged.
	BootID        string  `json:"bootID"`
	UptimeSeconds float64 `json:"uptimeSeconds"`
	// Heartbeat is incremented every 100 ms by the agent; it stops while
	// the VM is paused, so its progress measures guest run time.
	Heartbeat uint64 `json:"heartbeat"`
	// HeartbeatUnixNano is the guest clock at the last heartbeat tick.
	HeartbeatUnixNano int64       `json:"heartbeatUnixNano"`
	MemoryBytes       uint64      `json:"memoryBytes"`
	Hostname          string      `json:"hostname"`
	Interfaces        []Interface `json:"interfaces"`
	AgentVersion      string      `json:"agentVersion"`
	// AgentRestarts counts how often init restarted the agent in this
	// boot. Heartbeat and the workloads start over with each agent, so
	// compare Heartbeat readings only while this stays the same.
	AgentRestarts   int         `json:"agentRestarts"`
	ProtocolVersion int         `json:"protocolVersion"`
	Dirty           DirtyStatus `json:"dirty"`
	// Disks lists the continuous disk writers, running or stopped, by
	// device name.
	Disks []DiskStatus `json:"disks,omitempty"`
	// EchoConnections is the number of open TCP echo sessions.
	EchoConnections int `json:"echoConnections"`
}

// Interface is one guest network interface (loopback excluded).
type Interface struct {
	Name string   `json:"name"`
	MAC  string   `json:"mac"`
	IPv4 []string `json:"ipv4"` // CIDR notation, e.g. 10.0.2.15/24
	Up   bool     `json:"up"`
}

// DirtyArgs starts (RateMiBps > 0) or stops (RateMiBps == 0) the
// memory-dirtying workload. Starting replaces a running workload.
type DirtyArgs struct {
	RateMiBps       float64 `json:"rateMiBps"`
	WorkingSetMiB   int     `json:"workingSetMiB"`
	DurationSeconds float64 `json:"durationSeconds"` // 0: until stopped
}

// DirtyStatus is the result of CmdDirty and the Dirty field of Info.
type DirtyStatus struct {
	Running         bool    `json:"running"`
	RateMiBps       float64 `json:"rateMiBps"`
	WorkingSetMiB   int     `json:"workingSetMiB"`
	DurationSeconds float64 `json:"durationSeconds"`
	// DirtiedMiB counts the memory written so far by this workload (one
	// write per 4 KiB page, so it is the amount of memory dirtied).
	DirtiedMiB       float64 `json:"dirtiedMiB"`
	StartedUnixNano  int64   `json:"startedUnixNano,omitempty"`
	StoppedUnixNano  int64   `json:"stoppedUnixNano,omitempty"`
	AchievedMiBps    float64 `json:"achievedMiBps"`
	WorkingSetPages  int     `json:"workingSetPages"`
	LastErrorMessage string  `json:"lastError,omitempty"`
}

// DiskArgs are the arguments of CmdDiskWrite and CmdDiskVerify.
//
// Disk names the block device: "vdb", "/dev/vdb", or the serial QEMU gave
// it (-device virtio-blk-pci,serial=data), as read from
// /sys/block/*/serial. SizeMiB is the region used from the start of the
// device; 0 means the whole device.
type DiskArgs struct {
	Disk    string `json:"disk"`
	SizeMiB int    `json:"sizeMiB,omitempty"`
	// Seed selects the payload pattern (disk-write; disk-verify reads the
	// seed from each block).
	Seed uint64 `json:"seed,omitempty"`

	// Continuous (disk-write) starts a background writer that rewrites the
	// region pass after pass, each pass with the next generation, and
	// returns at once. Progress, including the last acknowledged write, is
	// in Info.Disks.
	Continuous bool `json:"continuous,omitempty"`
	// RateMiBps limits the continuous writer; 0 means as fast as possible.
	RateMiBps float64 `json:"rateMiBps,omitempty"`
	// Stop (disk-write) stops the continuous writer on Disk and returns
	// its final status.
	Stop bool `json:"stop,omitempty"`

	// Ack (disk-verify) switches verification to the no-lost-write rule
	// for a region a continuous writer was writing (see Ack). Without it,
	// verification is strict: every block intact and of one generation,
	// as a one-shot disk-write leaves the region.
	Ack *Ack `json:"ack,omitempty"`
}

// Ack names the writes a continuous writer had acknowledged at some moment:
// those of the run that began at StartGeneration with a Seq up to Seq
// (BlockSeq numbers every write). Taken before a fault (DiskStatus.Ack),
// it is what must still be on the disk after it: each block the run had
// written must hold at least the generation of the last acknowledged write
// to it (BlockRequiredGeneration), or a newer one that landed unacknowledged.
// Blocks the run had not acknowledged a write to yet are not checked.
type Ack struct {
	StartGeneration uint64 `json:"startGeneration"`
	Seq             uint64 `json:"seq"`
}

// DiskWriteResult is the result of a one-shot CmdDiskWrite.
type DiskWriteResult struct {
	Device     string `json:"device"`
	Blocks     int64  `json:"blocks"`
	Generation uint64 `json:"generation"`
	// LastSeq is the Seq of the last block written (see BlockSeq).
	LastSeq uint64 `json:"lastSeq"`
	// Digest is the hex SHA-256 of the whole region as written: the same
	// value DiskVerify and a host-side read of the disk image give.
	Digest  string  `json:"digest"`
	Seconds float64 `json:"seconds"`
	// Direct tells whether O_DIRECT was used (otherwise fdatasync alone
	// makes the data durable).
	Direct bool `json:"direct"`
}

// DiskVerifyResult is the result of CmdDiskVerify.
type DiskVerifyResult struct {
	Device string `json:"device"`
	Blocks int64  `json:"blocks"`
	// Generation is the highest generation found; MinGeneration the lowest.
	Generation    uint64 `json:"generation"`
	MinGeneration uint64 `json:"minGeneration"`
	OK            bool   `json:"ok"`
	// FirstBadBlock is the index of the first block that failed, with
	// Reason saying why; BadBlocks counts them all.
	FirstBadBlock *int64 `json:"firstBadBlock,omitempty"`
	BadBlocks     int64  `json:"badBlocks"`
	// UncheckedBlocks counts the blocks an Ack did not cover.
	UncheckedBlocks int64   `json:"uncheckedBlocks,omitempty"`
	Reason          string  `json:"reason,omitempty"`
	Digest          string  `json:"digest"`
	Seconds         float64 `json:"seconds"`
}

// DiskStatus describes a continuous disk writer (result of a continuous
// CmdDiskWrite, and an element of Info.Disks).
type DiskStatus struct {
	Device  string `json:"device"`
	Running bool   `json:"running"`
	Blocks  int64  `json:"blocks"`
	SizeMiB int    `json:"sizeMiB"`
	// StartGeneration is the generation of the first pass.
	StartGeneration uint64 `json:"startGeneration"`
	// AckSeq is the Seq of the last write known durable (written with
	// O_DIRECT and followed by fdatasync). Capture Ack() before a fault
	// and verify with it afterwards (DiskArgs.Ack, VerifyReader).
	AckSeq        uint64  `json:"ackSeq"`
	AckGeneration uint64  `json:"ackGeneration"`
	AckBlock      int64   `json:"ackBlock"`
	WrittenMiB    float64 `json:"writtenMiB"`
	RateMiBps     float64 `json:"rateMiBps"`
	Error         string  `json:"error,omitempty"`
}

// Ack returns the acknowledged writes as of this status.
func (s DiskStatus) Ack() Ack {
	return Ack{StartGeneration: s.StartGeneration, Seq: s.AckSeq}
}

// DiskFilesArgs are the arguments of CmdDiskFiles: the disk, by device
// name or serial, as in DiskArgs.
type DiskFilesArgs struct {
	Disk string `json:"disk"`
}

// DiskFilesResult is what CmdDiskFiles read: the volume label and every
// file of the image's root directory (at most MaxDiskFileBytes each).
type DiskFilesResult struct {
	Label string            `json:"label"`
	Files map[string]string `json:"files"`
}

// MaxDiskFileBytes bounds a file CmdDiskFiles returns.
const MaxDiskFileBytes = 64 << 10
