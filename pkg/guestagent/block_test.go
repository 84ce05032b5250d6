package guestagent

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

func encoded(h BlockHeader) []byte {
	b := make([]byte, BlockSize)
	EncodeBlock(b, h)
	return b
}

func TestBlockRoundTrip(t *testing.T) {
	h := BlockHeader{Generation: 3, Index: 5, Blocks: 8, Seed: 99}
	got, err := CheckBlock(encoded(h), 5, 8)
	if err != nil {
		t.Fatal(err)
	}
	h.Seq = BlockSeq(3, 5, 8)
	if got != h {
		t.Fatalf("decoded %+v, want %+v", got, h)
	}
	if h.Seq != 2*8+5+1 {
		t.Fatalf("seq %d", h.Seq)
	}
}

func TestBlockPayloadsDiffer(t *testing.T) {
	base := BlockHeader{Generation: 1, Index: 0, Blocks: 8}
	variants := []BlockHeader{
		{Generation: 2, Index: 0, Blocks: 8},
		{Generation: 1, Index: 1, Blocks: 8},
		{Generation: 1, Index: 0, Blocks: 8, Seed: 1},
	}
	for _, v := range variants {
		if bytes.Equal(encoded(base)[blockHeaderSize:], encoded(v)[blockHeaderSize:]) {
			t.Errorf("payload of %+v equals that of %+v", v, base)
		}
	}
}

func TestCheckBlockRejects(t *testing.T) {
	good := func() []byte { return encoded(BlockHeader{Generation: 2, Index: 3, Blocks: 8, Seed: 1}) }
	resealed := func(b []byte) []byte { // valid checksum over a forged block
		binary.LittleEndian.PutUint32(b[blockCRCOffset:], blockCRC(b))
		return b
	}
	tests := []struct {
		name, want string
		block      []byte
		index      int64
		blocks     int64
	}{
		{"zeroes", "no block magic", make([]byte, BlockSize), 3, 8},
		{"payload byte flipped", "checksum mismatch", func() []byte { b := good(); b[1000] ^= 1; return b }(), 3, 8},
		{"header byte flipped", "checksum mismatch", func() []byte { b := good(); b[9] ^= 1; return b }(), 3, 8},
		{"misdirected", "misdirected write", good(), 4, 8},
		{"other region size", "region of 8 blocks", good(), 3, 16},
		{"forged seed", "payload differs", func() []byte { b := good(); b[40] ^= 1; return resealed(b) }(), 3, 8},
		{"forged seq", "does not match generation", func() []byte { b := good(); b[16] ^= 1; return resealed(b) }(), 3, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CheckBlock(tt.block, tt.index, tt.blocks)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBlockRequiredGeneration(t *testing.T) {
	const blocks = 4
	tests := []struct {
		index  int64
		ackSeq uint64
		want   uint64
	}{
		{0, 0, 0}, // nothing acknowledged
		{0, 1, 1}, // generation 1, block 0 is write 1
		{1, 1, 0}, // block 1 not reached yet
		{3, 4, 1},
		{0, 5, 2}, // generation 2 started
		{1, 5, 1},
		{3, 8, 2},
		{3, 9, 2},
		{0, 9, 3},
	}
	for _, tt := range tests {
		if got := BlockRequiredGeneration(tt.index, blocks, tt.ackSeq); got != tt.want {
			t.Errorf("BlockRequiredGeneration(%d, %d, %d) = %d, want %d", tt.index, blocks, tt.ackSeq, got, tt.want)
		}
	}
}

func TestNextGeneration(t *testing.T) {
	if g := NextGeneration(make([]byte, BlockSize)); g != 1 {
		t.Errorf("blank disk: %d, want 1", g)
	}
	if g := NextGeneration(encoded(BlockHeader{Generation: 7, Blocks: 16})); g != 8 {
		t.Errorf("after generation 7: %d, want 8", g)
	}
}

// region builds an image of blocks blocks, block i of generation gens[i]
// (0: left zero).
func region(blocks int64, gens []uint64) []byte {
	img := make([]byte, blocks*BlockSize)
	for i, g := range gens {
		if g != 0 {
			EncodeBlock(img[int64(i)*BlockSize:], BlockHeader{Generation: g, Index: int64(i), Blocks: blocks})
		}
	}
	return img
}

func verify(t *testing.T, img []byte, blocks int64, ack *Ack) DiskVerifyResult {
	t.Helper()
	r, err := VerifyReader(bytes.NewReader(img), blocks, ack)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerifierStrict(t *testing.T) {
	img := region(4, []uint64{2, 2, 2, 2})
	r := verify(t, img, 4, nil)
	sum := sha256.Sum256(img)
	if !r.OK || r.Generation != 2 || r.MinGeneration != 2 || r.Blocks != 4 || r.Digest != hex.EncodeToString(sum[:]) {
		t.Fatalf("intact region: %+v", r)
	}
	r = verify(t, region(4, []uint64{2, 2, 1, 0}), 4, nil)
	if r.OK || r.FirstBadBlock == nil || *r.FirstBadBlock != 2 || r.BadBlocks != 2 {
		t.Fatalf("mixed region: %+v", r)
	}
	if !strings.Contains(r.Reason, "block 2: generation 1") {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestVerifierShortRead(t *testing.T) {
	img := region(4, []uint64{1, 1, 1, 1})
	r, err := VerifyReader(bytes.NewReader(img[:2*BlockSize]), 4, nil)
	if err == nil || r.OK {
		t.Fatalf("short image accepted: %+v, %v", r, err)
	}
}

// TestVerifierAck plays a continuous writer over 4 blocks starting at
// generation 2 on a disk that held generation 1 of another region size.
func TestVerifierAck(t *testing.T) {
	const blocks = 4
	ack := &Ack{StartGeneration: 2, Seq: BlockSeq(3, 1, blocks)} // acked up to gen 3 block 1
	stale := make([]byte, BlockSize)
	EncodeBlock(stale, BlockHeader{Generation: 1, Index: 0, Blocks: 99})

	onDisk := region(blocks, []uint64{3, 3, 2, 2})
	if r := verify(t, onDisk, blocks, ack); !r.OK || r.Generation != 3 || r.MinGeneration != 2 {
		t.Errorf("exactly the acknowledged writes: %+v", r)
	}
	if r := verify(t, region(blocks, []uint64{3, 3, 3, 2}), blocks, ack); !r.OK {
		t.Errorf("an unacknowledged write that landed must be fine: %+v", r)
	}
	lost := region(blocks, []uint64{3, 2, 2, 2})
	if r := verify(t, lost, blocks, ack); r.OK || *r.FirstBadBlock != 1 || !strings.Contains(r.Reason, "lost write") {
		t.Errorf("lost write not found: %+v", r)
	}

	early := &Ack{StartGeneration: 2, Seq: BlockSeq(2, 1, blocks)} // first pass, blocks 0-1 only
	partial := region(blocks, []uint64{2, 2, 0, 0})
	copy(partial[3*BlockSize:], stale)
	r := verify(t, partial, blocks, early)
	if !r.OK || r.UncheckedBlocks != 2 {
		t.Errorf("blocks the run never acknowledged must not be checked: %+v", r)
	}
}
