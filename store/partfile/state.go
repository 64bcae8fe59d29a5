package partfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"

	"github.com/fxshell/fxsh/store"
)

// The state file, all integers big-endian:
//
//	offset size
//	0      4    magic "FXST"
//	4      1    version (StateVersion)
//	5      3    reserved, zero
//	8      8    file size in bytes
//	16     4    chunk size in bytes
//	20     32   content hash of the whole file (store.Sum: BLAKE3)
//	52     4    chunk count: ceil(size / chunk size)
//	56     B    bitmap, B = ceil(count / 8): bit i%8 of byte i/8 is chunk i;
//	            the unused bits of the last byte are zero
//	56+B   4    CRC-32C of all the bytes before
//
// A chunk's bit is set only once its data has been synced to disk.
const (
	stateMagic = "FXST"
	// StateVersion is the state file format version. Version 2: the hash
	// is BLAKE3 (version 1 held SHA-256; such a state is discarded).
	StateVersion = 2
	// StateHeaderLen is the size of a state file without its bitmap.
	StateHeaderLen = 56 + 4
	// MaxStateLen is the largest state file (MaxChunks bits of bitmap).
	MaxStateLen = StateHeaderLen + MaxChunks/8
)

// Chunk limits.
const (
	// MinChunkSize and MaxChunkSize bound the chunk size.
	MinChunkSize = 256
	MaxChunkSize = 64 << 20
	// MaxChunks caps the chunks of one file: a 16 MiB bitmap, rewritten
	// at each checkpoint. It allows 150 GiB in 1200-byte chunks; larger
	// files need larger chunks.
	MaxChunks = 1 << 27
	// MaxSize is the largest file size.
	MaxSize = 1 << 50
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// State is what a state file records about a download.
type State struct {
	Size      int64
	ChunkSize int
	Hash      store.Sum
	Have      []byte // bitmap of NumChunks bits, see the format above
}

// NumChunks returns how many chunks the file has: 0 for an empty file.
func (s State) NumChunks() int { return numChunks(s.Size, s.ChunkSize) }

func numChunks(size int64, chunkSize int) int {
	if chunkSize <= 0 || size <= 0 {
		return 0
	}
	n := (size + int64(chunkSize) - 1) / int64(chunkSize)
	if n > MaxChunks {
		return MaxChunks + 1
	}
	return int(n)
}

// Validate reports whether s is within the limits and its bitmap matches
// its size and chunk size.
func (s State) Validate() error {
	switch {
	case s.Size < 0 || s.Size > MaxSize:
		return fmt.Errorf("size %d out of range", s.Size)
	case s.ChunkSize < MinChunkSize || s.ChunkSize > MaxChunkSize:
		return fmt.Errorf("chunk size %d out of range [%d, %d]", s.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	n := s.NumChunks()
	if n > MaxChunks {
		return fmt.Errorf("more than %d chunks", MaxChunks)
	}
	if len(s.Have) != bitmapLen(n) {
		return fmt.Errorf("bitmap of %d bytes for %d chunks", len(s.Have), n)
	}
	if n%8 != 0 && s.Have[len(s.Have)-1]>>(n%8) != 0 {
		return errors.New("bits set past the last chunk")
	}
	return nil
}

// AppendState appends the encoding of s to b. s should be valid
// (Validate); a bitmap of the wrong length is cut or padded with zeros.
func AppendState(b []byte, s State) []byte {
	start := len(b)
	b = append(b, stateMagic...)
	b = append(b, StateVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Size))
	b = binary.BigEndian.AppendUint32(b, uint32(s.ChunkSize))
	b = append(b, s.Hash[:]...)
	n := s.NumChunks()
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	bl := bitmapLen(n)
	have := s.Have[:min(len(s.Have), bl)]
	b = append(b, have...)
	for range bl - len(have) {
		b = append(b, 0)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crc32c))
}

// ParseState decodes a state file from the start of b and validates it.
// It returns the state and the number of bytes it used.
func ParseState(b []byte) (State, int, error) {
	var s State
	if len(b) < StateHeaderLen {
		return s, 0, fmt.Errorf("state of %d bytes, shorter than %d", len(b), StateHeaderLen)
	}
	if string(b[:4]) != stateMagic {
		return s, 0, fmt.Errorf("bad magic %q", b[:4])
	}
	if b[4] != StateVersion {
		return s, 0, fmt.Errorf("state version %d, want %d", b[4], StateVersion)
	}
	if b[5]|b[6]|b[7] != 0 {
		return s, 0, errors.New("reserved bytes not zero")
	}
	size := binary.BigEndian.Uint64(b[8:])
	if size > MaxSize {
		return s, 0, fmt.Errorf("size %d out of range", size)
	}
	s.Size = int64(size)
	s.ChunkSize = int(binary.BigEndian.Uint32(b[16:]))
	copy(s.Hash[:], b[20:52])
	count := binary.BigEndian.Uint32(b[52:])
	if count > MaxChunks {
		return s, 0, fmt.Errorf("chunk count %d over %d", count, MaxChunks)
	}
	bl := bitmapLen(int(count))
	end := 56 + bl + 4
	if len(b) < end {
		return s, 0, fmt.Errorf("state of %d bytes, want %d", len(b), end)
	}
	if got, want := binary.BigEndian.Uint32(b[end-4:]), crc32.Checksum(b[:end-4], crc32c); got != want {
		return s, 0, fmt.Errorf("checksum %08x, want %08x", got, want)
	}
	s.Have = append([]byte(nil), b[56:56+bl]...)
	if err := s.Validate(); err != nil {
		return s, 0, err
	}
	if s.NumChunks() != int(count) {
		return s, 0, fmt.Errorf("chunk count %d, want %d", count, s.NumChunks())
	}
	return s, end, nil
}

// bitmap is a set of chunk indexes.
type bitmap []byte

func bitmapLen(n int) int { return (n + 7) / 8 }

func (m bitmap) get(i int) bool { return m[i/8]&(1<<(i%8)) != 0 }
func (m bitmap) set(i int)      { m[i/8] |= 1 << (i % 8) }
func (m bitmap) clear(i int)    { m[i/8] &^= 1 << (i % 8) }

func (m bitmap) count() int {
	c := 0
	for _, x := range m {
		c += bits.OnesCount8(x)
	}
	return c
}

// firstMissing returns the lowest index at or after from that is not in m,
// or n when there is none.
func (m bitmap) firstMissing(from, n int) int {
	i := from
	for i < n && i%8 != 0 && m.get(i) {
		i++
	}
	for i+8 <= n && m[i/8] == 0xff {
		i += 8
	}
	for i < n && m.get(i) {
		i++
	}
	return i
}
