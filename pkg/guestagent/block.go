package guestagent

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// The disk workload writes self-describing 4 KiB blocks, so that a reader
// (the agent's disk-verify, or the host reading the raw image with
// VerifyReader) can tell for each block whether it is intact, where it
// belongs and which write put it there:
//
//	off  size  field
//	  0     8  magic "CCLMBLK1"
//	  8     8  generation   pass number, >= 1 (little endian, like all below)
//	 16     8  seq          BlockSeq(generation, index, blocks)
//	 24     8  index        block number in the region (catches misdirected writes)
//	 32     8  blocks       region size in blocks (catches a verify with another size)
//	 40     8  seed         payload pattern selector
//	 48    12  zero
//	 60     4  crc32c       Castagnoli CRC of bytes [0,60) and [64,4096)
//	 64  4032  payload      splitmix64 stream of (seed, generation, index)
//
// Writes go through the region in order, pass after pass, so seq is a
// single counter over all writes ever made to the region: write number seq
// put generation g into block i with seq = (g-1)*blocks + i + 1.
const (
	BlockSize        = 4096
	blockHeaderSize  = 64
	blockCRCOffset   = 60
	blockMagic       = "CCLMBLK1"
	blocksPerMiB     = (1 << 20) / BlockSize
	payloadWordCount = (BlockSize - blockHeaderSize) / 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BlockHeader is the decoded header of one block.
type BlockHeader struct {
	Generation uint64
	Seq        uint64
	Index      int64
	Blocks     int64
	Seed       uint64
}

// BlocksForMiB is the number of blocks in a region of sizeMiB.
func BlocksForMiB(sizeMiB int) int64 { return int64(sizeMiB) * blocksPerMiB }

// BlockSeq is the sequence number of the write of generation g to block
// index of a region of blocks blocks.
func BlockSeq(generation uint64, index, blocks int64) uint64 {
	return (generation-1)*uint64(blocks) + uint64(index) + 1
}

// BlockRequiredGeneration is the oldest generation block index may hold
// once every write up to ackSeq has been acknowledged: the generation of
// the last acknowledged write to that block (0: none yet, anything goes).
// A newer generation is fine, it is a later write that also landed.
func BlockRequiredGeneration(index, blocks int64, ackSeq uint64) uint64 {
	firstWrite := uint64(index) + 1 // seq of generation 1's write
	if ackSeq < firstWrite {
		return 0
	}
	return (ackSeq-firstWrite)/uint64(blocks) + 1
}

// EncodeBlock fills dst (BlockSize bytes) with the block described by h.
// h.Seq is derived, not taken from h.
func EncodeBlock(dst []byte, h BlockHeader) {
	_ = dst[BlockSize-1]
	copy(dst[0:8], blockMagic)
	binary.LittleEndian.PutUint64(dst[8:], h.Generation)
	binary.LittleEndian.PutUint64(dst[16:], BlockSeq(h.Generation, h.Index, h.Blocks))
	binary.LittleEndian.PutUint64(dst[24:], uint64(h.Index))
	binary.LittleEndian.PutUint64(dst[32:], uint64(h.Blocks))
	binary.LittleEndian.PutUint64(dst[40:], h.Seed)
	clear(dst[48:blockHeaderSize])
	fillPayload(dst[blockHeaderSize:BlockSize], h)
	binary.LittleEndian.PutUint32(dst[blockCRCOffset:], blockCRC(dst))
}

// DecodeBlockHeader checks magic and checksum and returns the header; it
// does not check where the block sits (see CheckBlock).
func DecodeBlockHeader(src []byte) (BlockHeader, error) {
	if len(src) < BlockSize {
		return BlockHeader{}, fmt.Errorf("short block: %d bytes", len(src))
	}
	if string(src[0:8]) != blockMagic {
		return BlockHeader{}, errors.New("no block magic (never written, or overwritten)")
	}
	if got, want := blockCRC(src), binary.LittleEndian.Uint32(src[blockCRCOffset:]); got != want {
		return BlockHeader{}, fmt.Errorf("checksum mismatch: computed %08x, stored %08x", got, want)
	}
	return BlockHeader{
		Generation: binary.LittleEndian.Uint64(src[8:]),
		Seq:        binary.LittleEndian.Uint64(src[16:]),
		Index:      int64(binary.LittleEndian.Uint64(src[24:])),
		Blocks:     int64(binary.LittleEndian.Uint64(src[32:])),
		Seed:       binary.LittleEndian.Uint64(src[40:]),
	}, nil
}

// CheckBlock decodes src and checks that it is block index of a region of
// blocks blocks, and that its payload is the one its header promises.
func CheckBlock(src []byte, index, blocks int64) (BlockHeader, error) {
	h, err := DecodeBlockHeader(src)
	if err != nil {
		return h, err
	}
	switch {
	case h.Index != index:
		return h, fmt.Errorf("block holds index %d (misdirected write)", h.Index)
	case h.Blocks != blocks:
		return h, fmt.Errorf("block was written for a region of %d blocks, not %d", h.Blocks, blocks)
	case h.Generation == 0:
		return h, errors.New("generation 0")
	case h.Seq != BlockSeq(h.Generation, index, blocks):
		return h, fmt.Errorf("seq %d does not match generation %d", h.Seq, h.Generation)
	}
	var want [BlockSize - blockHeaderSize]byte
	fillPayload(want[:], h)
	if string(want[:]) != string(src[blockHeaderSize:BlockSize]) {
		return h, errors.New("payload differs from the pattern its header names")
	}
	return h, nil
}

// NextGeneration is the generation a new write pass should use given the
// current first block of the region: one more than what is there, so that
// generations keep increasing across passes, runs and reboots.
func NextGeneration(block0 []byte) uint64 {
	h, err := DecodeBlockHeader(block0)
	if err != nil {
		return 1
	}
	return h.Generation + 1
}

func blockCRC(b []byte) uint32 {
	crc := crc32.Update(0, castagnoli, b[:blockCRCOffset])
	return crc32.Update(crc, castagnoli, b[blockHeaderSize:BlockSize])
}

// fillPayload writes the deterministic pattern of (seed, generation, index):
// cheap to generate, different for every write, so a stale or misplaced
// block cannot pass for the right one.
func fillPayload(dst []byte, h BlockHeader) {
	state := h.Seed ^ h.Generation*0x9e3779b97f4a7c15 ^ uint64(h.Index)*0xbf58476d1ce4e5b9
	for i := 0; i < payloadWordCount; i++ {
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(dst[i*8:], z^(z>>31))
	}
}

// Verifier checks the blocks of a region fed to it in order. Without an
// Ack it is strict (all blocks intact and of one generation, as after a
// one-shot disk-write); with one, each block the acknowledged writes
// covered must hold at least the generation of the last of them.
type Verifier struct {
	blocks    int64
	ack       *Ack
	next      int64
	digest    hash.Hash
	strictGen uint64 // generation all blocks must share (strict mode)
	result    DiskVerifyResult
}

// NewVerifier returns a Verifier for a region of blocks blocks; ack nil
// means strict.
func NewVerifier(blocks int64, ack *Ack) *Verifier {
	return &Verifier{blocks: blocks, ack: ack, digest: sha256.New()}
}

// Add checks the next block (BlockSize bytes).
func (v *Verifier) Add(block []byte) {
	index := v.next
	v.next++
	v.digest.Write(block[:BlockSize])
	if v.ack != nil && BlockRequiredGeneration(index, v.blocks, v.ack.Seq) < max(v.ack.StartGeneration, 1) {
		v.result.UncheckedBlocks++ // no acknowledged write of the run reached it
		return
	}
	h, err := CheckBlock(block, index, v.blocks)
	if err == nil {
		err = v.checkGeneration(h)
	}
	if err != nil {
		v.fail(index, err)
		return
	}
	if v.result.MinGeneration == 0 || h.Generation < v.result.MinGeneration {
		v.result.MinGeneration = h.Generation
	}
	v.result.Generation = max(v.result.Generation, h.Generation)
}

func (v *Verifier) checkGeneration(h BlockHeader) error {
	if v.ack == nil {
		if v.strictGen == 0 {
			v.strictGen = h.Generation
		}
		if h.Generation != v.strictGen {
			return fmt.Errorf("generation %d, other blocks have %d (interrupted or mixed write)", h.Generation, v.strictGen)
		}
		return nil
	}
	if need := BlockRequiredGeneration(h.Index, v.blocks, v.ack.Seq); h.Generation < need {
		return fmt.Errorf("generation %d but generation %d was acknowledged (lost write, ack seq %d)", h.Generation, need, v.ack.Seq)
	}
	return nil
}

func (v *Verifier) fail(index int64, err error) {
	v.result.BadBlocks++
	if v.result.FirstBadBlock == nil {
		v.result.FirstBadBlock = &index
		v.result.Reason = fmt.Sprintf("block %d: %v", index, err)
	}
}

// Result returns the verdict so far.
func (v *Verifier) Result() DiskVerifyResult {
	r := v.result
	r.Blocks = v.next
	r.OK = r.BadBlocks == 0 && v.next == v.blocks
	if r.BadBlocks == 0 && v.next != v.blocks {
		r.Reason = fmt.Sprintf("only %d of %d blocks read", v.next, v.blocks)
	}
	r.Digest = hex.EncodeToString(v.digest.Sum(nil))
	return r
}

// VerifyReader verifies a region of blocks blocks read from r, for example
// the raw disk image on the host while the VM is stopped (ack as for
// NewVerifier).
func VerifyReader(r io.Reader, blocks int64, ack *Ack) (DiskVerifyResult, error) {
	v := NewVerifier(blocks, ack)
	buf := make([]byte, 256*BlockSize)
	for remaining := blocks; remaining > 0; {
		n := min(remaining, int64(len(buf)/BlockSize))
		chunk := buf[:n*BlockSize]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return v.Result(), fmt.Errorf("reading block %d: %w", blocks-remaining, err)
		}
		for off := 0; off < len(chunk); off += BlockSize {
			v.Add(chunk[off : off+BlockSize])
		}
		remaining -= n
	}
	return v.Result(), nil
}
