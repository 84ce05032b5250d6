package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/cclm-io/cclm/pkg/guestagent"
)

const (
	sysBlockDir = "/sys/block"
	// chunkBlocks is how much a one-shot write or a verify moves per
	// system call (1 MiB).
	chunkBlocks = 256
	// continuousBatchBlocks is what the continuous writer writes between
	// two fdatasyncs, i.e. per acknowledgement (64 KiB).
	continuousBatchBlocks = 16
)

// diskManager runs the disk workloads. Each device is used by one
// operation at a time; a continuous writer holds its device until stopped.
type diskManager struct {
	log      *log.Logger
	sysBlock string

	mu      sync.Mutex
	holders map[string]string            // device path -> operation using it
	writers map[string]*continuousWriter // device path -> latest continuous writer
}

func newDiskManager(logger *log.Logger) *diskManager {
	return &diskManager{
		log:      logger,
		sysBlock: sysBlockDir,
		holders:  map[string]string{},
		writers:  map[string]*continuousWriter{},
	}
}

// write is the disk-write command: one-shot, continuous start, or stop.
func (m *diskManager) write(args guestagent.DiskArgs) (any, error) {
	switch {
	case args.Stop:
		return m.stopWriter(args.Disk)
	case args.Continuous:
		return m.startWriter(args)
	default:
		return m.writeOnce(args)
	}
}

// writeOnce writes the whole region with the next generation and returns
// once it is durable: O_DIRECT puts each write on the virtual disk, and the
// final fdatasync makes QEMU flush its image file.
func (m *diskManager) writeOnce(args guestagent.DiskArgs) (guestagent.DiskWriteResult, error) {
	reg, err := m.openRegion(args, "disk-write")
	if err != nil {
		return guestagent.DiskWriteResult{}, err
	}
	defer m.closeRegion(reg)
	start := time.Now()
	generation, err := reg.nextGeneration()
	if err != nil {
		return guestagent.DiskWriteResult{}, err
	}
	digest := sha256.New()
	buf := alignedBuffer(chunkBlocks * guestagent.BlockSize)
	for first := int64(0); first < reg.blocks; first += chunkBlocks {
		chunk := buf[:min(chunkBlocks, reg.blocks-first)*guestagent.BlockSize]
		encodeBlocks(chunk, generation, first, reg.blocks, args.Seed)
		if err := reg.writeAt(chunk, first); err != nil {
			return guestagent.DiskWriteResult{}, err
		}
		digest.Write(chunk)
	}
	if err := reg.sync(); err != nil {
		return guestagent.DiskWriteResult{}, err
	}
	return guestagent.DiskWriteResult{
		Device:     reg.path,
		Blocks:     reg.blocks,
		Generation: generation,
		LastSeq:    guestagent.BlockSeq(generation, reg.blocks-1, reg.blocks),
		Digest:     hex.EncodeToString(digest.Sum(nil)),
		Seconds:    time.Since(start).Seconds(),
		Direct:     reg.direct,
	}, nil
}

// verify is the disk-verify command: read the region back, block by block,
// bypassing the guest page cache, and check it (guestagent.Verifier).
func (m *diskManager) verify(args guestagent.DiskArgs) (guestagent.DiskVerifyResult, error) {
	reg, err := m.openRegion(args, "disk-verify")
	if err != nil {
		return guestagent.DiskVerifyResult{}, err
	}
	defer m.closeRegion(reg)
	start := time.Now()
	verifier := guestagent.NewVerifier(reg.blocks, args.Ack)
	buf := alignedBuffer(chunkBlocks * guestagent.BlockSize)
	for first := int64(0); first < reg.blocks; first += chunkBlocks {
		chunk := buf[:min(chunkBlocks, reg.blocks-first)*guestagent.BlockSize]
		if err := reg.readAt(chunk, first); err != nil {
			return guestagent.DiskVerifyResult{}, err
		}
		for off := 0; off < len(chunk); off += guestagent.BlockSize {
			verifier.Add(chunk[off : off+guestagent.BlockSize])
		}
	}
	result := verifier.Result()
	result.Device = reg.path
	result.Seconds = time.Since(start).Seconds()
	return result, nil
}

// region is the part of a disk a workload uses, opened for it.
type region struct {
	path   string
	file   *os.File
	direct bool // opened with O_DIRECT
	blocks int64
}

// openRegion resolves args.Disk, opens it and claims it for holder.
func (m *diskManager) openRegion(args guestagent.DiskArgs, holder string) (*region, error) {
	path, err := m.resolve(args.Disk)
	if err != nil {
		return nil, err
	}
	if err := m.claim(path, holder); err != nil {
		return nil, err
	}
	reg, err := openRegionFile(path, args.SizeMiB)
	if err != nil {
		m.unclaim(path)
		return nil, err
	}
	return reg, nil
}

func (m *diskManager) closeRegion(reg *region) {
	reg.file.Close()
	m.unclaim(reg.path)
}

func openRegionFile(path string, sizeMiB int) (*region, error) {
	if sizeMiB < 0 {
		return nil, errors.New("sizeMiB must not be negative")
	}
	if err := checkNotMounted(path); err != nil {
		return nil, err
	}
	file, direct, err := openDirect(path)
	if err != nil {
		return nil, err
	}
	size, err := file.Seek(0, io.SeekEnd)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("sizing %s: %w", path, err)
	}
	blocks := size / guestagent.BlockSize
	if sizeMiB > 0 {
		if want := guestagent.BlocksForMiB(sizeMiB); want <= blocks {
			blocks = want
		} else {
			file.Close()
			return nil, fmt.Errorf("%s has %d MiB, less than the %d MiB asked for", path, size/mib, sizeMiB)
		}
	}
	if blocks == 0 {
		file.Close()
		return nil, fmt.Errorf("%s is empty", path)
	}
	return &region{path: path, file: file, direct: direct, blocks: blocks}, nil
}

// openDirect opens path with O_DIRECT, falling back to buffered I/O (plus
// fdatasync) where the file system refuses it, as tmpfs does for the unit
// tests; a virtio disk always takes it.
func openDirect(path string) (*os.File, bool, error) {
	file, err := os.OpenFile(path, os.O_RDWR|syscall.O_DIRECT, 0)
	if err == nil {
		return file, true, nil
	}
	if !errors.Is(err, syscall.EINVAL) {
		return nil, false, err
	}
	file, err = os.OpenFile(path, os.O_RDWR, 0)
	return file, false, err
}

func (r *region) writeAt(chunk []byte, firstBlock int64) error {
	if _, err := r.file.WriteAt(chunk, firstBlock*guestagent.BlockSize); err != nil {
		return fmt.Errorf("writing %s from block %d: %w", r.path, firstBlock, err)
	}
	return nil
}

func (r *region) readAt(chunk []byte, firstBlock int64) error {
	if _, err := r.file.ReadAt(chunk, firstBlock*guestagent.BlockSize); err != nil {
		return fmt.Errorf("reading %s from block %d: %w", r.path, firstBlock, err)
	}
	return nil
}

func (r *region) sync() error {
	if err := syscall.Fdatasync(int(r.file.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", r.path, err)
	}
	return nil
}

// nextGeneration reads block 0 to continue the generation sequence.
func (r *region) nextGeneration() (uint64, error) {
	block0 := alignedBuffer(guestagent.BlockSize)
	if err := r.readAt(block0, 0); err != nil {
		return 0, err
	}
	return guestagent.NextGeneration(block0), nil
}

func encodeBlocks(chunk []byte, generation uint64, first, blocks int64, seed uint64) {
	for off := 0; off < len(chunk); off += guestagent.BlockSize {
		guestagent.EncodeBlock(chunk[off:off+guestagent.BlockSize], guestagent.BlockHeader{
			Generation: generation,
			Index:      first + int64(off/guestagent.BlockSize),
			Blocks:     blocks,
			Seed:       seed,
		})
	}
}

// alignedBuffer returns size bytes aligned for O_DIRECT.
func alignedBuffer(size int) []byte {
	buf := make([]byte, size+guestagent.BlockSize)
	misalign := int(uintptr(unsafe.Pointer(unsafe.SliceData(buf))) & (guestagent.BlockSize - 1))
	shift := (guestagent.BlockSize - misalign) % guestagent.BlockSize
	return buf[shift : shift+size : shift+size]
}

// resolve turns a device name ("vdb", "/dev/vdb") or a disk serial
// ("data", from -device virtio-blk-pci,serial=data) into a path. Absolute
// paths are taken as they are (a file works too, for tests).
func (m *diskManager) resolve(disk string) (string, error) {
	switch {
	case disk == "":
		return "", errors.New(`no disk given: name a device ("vdb") or a disk serial`)
	case strings.HasPrefix(disk, "/"):
		return disk, nil
	}
	if _, err := os.Stat(filepath.Join(m.sysBlock, disk)); err == nil {
		return "/dev/" + disk, nil
	}
	serials := m.diskSerials()
	for dev, serial := range serials {
		if serial == disk {
			return "/dev/" + dev, nil
		}
	}
	return "", fmt.Errorf("no disk with name or serial %q (disks: %s)", disk, describeDisks(serials))
}

// diskSerials maps each block device to its serial ("" if none).
func (m *diskManager) diskSerials() map[string]string {
	serials := map[string]string{}
	devDirs, _ := filepath.Glob(filepath.Join(m.sysBlock, "*"))
	for _, dir := range devDirs {
		serial, _ := os.ReadFile(filepath.Join(dir, "serial"))
		serials[filepath.Base(dir)] = strings.TrimSpace(string(serial))
	}
	return serials
}

func describeDisks(serials map[string]string) string {
	var names []string
	for dev, serial := range serials {
		names = append(names, fmt.Sprintf("%s (serial %q)", dev, serial))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// checkNotMounted refuses a device that carries a mounted file system: the
// workloads overwrite it raw.
func checkNotMounted(path string) error {
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		source, _, _ := strings.Cut(line, " ")
		if source == path || (strings.HasPrefix(source, path) && strings.HasPrefix(path, "/dev/")) {
			return fmt.Errorf("%s is mounted (%s); refusing to overwrite it", path, source)
		}
	}
	return nil
}

func (m *diskManager) claim(path, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if current, busy := m.holders[path]; busy {
		hint := ""
		if current == continuousHolder {
			hint = `; stop it first with disk-write {"stop":true}`
		}
		return fmt.Errorf("%s is in use by %s%s", path, current, hint)
	}
	m.holders[path] = holder
	return nil
}

func (m *diskManager) unclaim(path string) {
	m.mu.Lock()
	delete(m.holders, path)
	m.mu.Unlock()
}

// continuousHolder names the continuous writer in "in use" errors.
const continuousHolder = "the continuous writer"

// startWriter starts a continuous writer; it runs until stopped or until a
// write fails.
func (m *diskManager) startWriter(args guestagent.DiskArgs) (guestagent.DiskStatus, error) {
	if args.RateMiBps < 0 {
		return guestagent.DiskStatus{}, errors.New("rateMiBps must not be negative")
	}
	reg, err := m.openRegion(args, continuousHolder)
	if err != nil {
		return guestagent.DiskStatus{}, err
	}
	generation, err := reg.nextGeneration()
	if err != nil {
		m.closeRegion(reg)
		return guestagent.DiskStatus{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &continuousWriter{
		reg: reg, seed: args.Seed, rateMiBps: args.RateMiBps, startGeneration: generation,
		cancel: cancel, done: make(chan struct{}), running: true,
	}
	m.mu.Lock()
	m.writers[reg.path] = w
	m.mu.Unlock()
	go func() {
		// Release the device before reporting done, so that a verify
		// right after stopWriter finds it free.
		defer close(w.done)
		defer m.closeRegion(reg)
		w.loop(ctx)
	}()
	m.log.Printf("continuous writer on %s: %d blocks from generation %d", reg.path, reg.blocks, generation)
	return w.status(), nil
}

func (m *diskManager) stopWriter(disk string) (guestagent.DiskStatus, error) {
	path, err := m.resolve(disk)
	if err != nil {
		return guestagent.DiskStatus{}, err
	}
	m.mu.Lock()
	w := m.writers[path]
	m.mu.Unlock()
	if w == nil {
		return guestagent.DiskStatus{}, fmt.Errorf("no continuous writer was started on %s", path)
	}
	w.stop()
	m.log.Printf("continuous writer on %s stopped at seq %d", path, w.status().AckSeq)
	return w.status(), nil
}

func (m *diskManager) writerStatuses() []guestagent.DiskStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var statuses []guestagent.DiskStatus
	for _, w := range m.writers {
		statuses = append(statuses, w.status())
	}
	sort.Slice(statuses, func(i, j int) bool { return statuses[i].Device < statuses[j].Device })
	return statuses
}

// continuousWriter rewrites its region pass after pass, generation after
// generation, in batches; after each batch's fdatasync returns, the batch
// is acknowledged: DiskStatus.Ack says which writes must survive a fault.
type continuousWriter struct {
	reg             *region
	seed            uint64
	rateMiBps       float64
	startGeneration uint64
	cancel          context.CancelFunc
	done            chan struct{}

	mu       sync.Mutex
	running  bool
	ackSeq   uint64
	ackGen   uint64
	ackBlock int64
	written  int64 // bytes
	err      string
}

func (w *continuousWriter) loop(ctx context.Context) {
	defer w.finish()
	buf := alignedBuffer(continuousBatchBlocks * guestagent.BlockSize)
	blocks := w.reg.blocks
	generation, next := w.startGeneration, int64(0)
	start := time.Now()
	var written int64
	for ctx.Err() == nil {
		batch := buf[:min(continuousBatchBlocks, blocks-next)*guestagent.BlockSize]
		encodeBlocks(batch, generation, next, blocks, w.seed)
		if err := w.writeDurably(batch, next); err != nil {
			w.fail(err)
			return
		}
		last := next + int64(len(batch)/guestagent.BlockSize) - 1
		written += int64(len(batch))
		w.acknowledge(generation, last, written)
		if next = last + 1; next == blocks {
			generation, next = generation+1, 0
		}
		w.pace(ctx, start, written)
	}
}

func (w *continuousWriter) writeDurably(batch []byte, first int64) error {
	if err := w.reg.writeAt(batch, first); err != nil {
		return err
	}
	return w.reg.sync()
}

// pace sleeps until written bytes are due at the requested rate.
func (w *continuousWriter) pace(ctx context.Context, start time.Time, written int64) {
	if w.rateMiBps <= 0 {
		return
	}
	due := start.Add(time.Duration(float64(written) / (w.rateMiBps * mib) * float64(time.Second)))
	if wait := time.Until(due); wait > 0 {
		sleepCtx(ctx, wait)
	}
}

func (w *continuousWriter) acknowledge(generation uint64, block, written int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ackSeq = guestagent.BlockSeq(generation, block, w.reg.blocks)
	w.ackGen, w.ackBlock, w.written = generation, block, written
}

func (w *continuousWriter) fail(err error) {
	w.mu.Lock()
	w.err = err.Error()
	w.mu.Unlock()
}

func (w *continuousWriter) finish() {
	w.mu.Lock()
	w.running = false
	w.mu.Unlock()
}

func (w *continuousWriter) stop() {
	w.cancel()
	<-w.done
}

func (w *continuousWriter) status() guestagent.DiskStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return guestagent.DiskStatus{
		Device:          w.reg.path,
		Running:         w.running,
		Blocks:          w.reg.blocks,
		SizeMiB:         int(w.reg.blocks * guestagent.BlockSize / mib),
		StartGeneration: w.startGeneration,
		AckSeq:          w.ackSeq,
		AckGeneration:   w.ackGen,
		AckBlock:        w.ackBlock,
		WrittenMiB:      float64(w.written) / mib,
		RateMiBps:       w.rateMiBps,
		Error:           w.err,
	}
}
