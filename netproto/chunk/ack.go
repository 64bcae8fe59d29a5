package chunk

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Ack is the payload of an ACK: what the receiver holds, and how fast to go.
//
//	0   4  cumulative: the receiver holds every chunk of the file below this
//	4   4  base: the receiver holds every chunk it asked this sender for below
//	       this (the highest in-order chunk of this transfer, plus one)
//	8   8  largest packet number received on this transfer
//	16  4  ack delay: µs between receiving that packet and sending this ACK
//	20  4  receive window: chunks the sender may have in flight (1..MaxWindow)
//	24  2  bitmap length in bits, N (0..MaxAckBits)
//	26  ⌈N/8⌉ bitmap: bit k (byte k/8, bit k%8, least significant first)
//	       set = chunk base+k received; unused high bits of the last byte 0
//
// The cumulative point is file-wide, so a sender skips chunks the receiver
// got from other sources (swarm); base is per transfer, so a sender whose
// chunks are interleaved with other sources' still sees its own in-order
// progress.
type Ack struct {
	Cumulative uint32
	Base       uint32
	Largest    uint64
	Delay      uint32 // µs
	Window     uint32
	NBits      uint16
	Bits       []byte // aliases the parsed bytes
}

const ackFixed = 26

// Validate checks a's bitmap and window.
func (a *Ack) Validate() error {
	if a.NBits > MaxAckBits {
		return fmt.Errorf("chunk: ack: bitmap of %d bits (max %d)", a.NBits, MaxAckBits)
	}
	if len(a.Bits) != (int(a.NBits)+7)/8 {
		return fmt.Errorf("chunk: ack: %d bitmap bytes for %d bits", len(a.Bits), a.NBits)
	}
	if r := a.NBits % 8; r != 0 && a.Bits[len(a.Bits)-1]>>r != 0 {
		return fmt.Errorf("chunk: ack: bits set past the bitmap's end")
	}
	if uint64(a.Base)+uint64(a.NBits) > MaxChunks {
		return fmt.Errorf("chunk: ack: bitmap runs past the last chunk index")
	}
	if a.Window == 0 || a.Window > MaxWindow {
		return fmt.Errorf("chunk: ack: window %d outside [1, %d]", a.Window, MaxWindow)
	}
	return nil
}

// Bit reports whether the bitmap marks chunk i as received. Chunks outside
// [Base, Base+NBits) report false.
func (a *Ack) Bit(i uint32) bool {
	if i < a.Base {
		return false
	}
	k := uint64(i) - uint64(a.Base)
	if k >= uint64(a.NBits) || int(k/8) >= len(a.Bits) {
		return false
	}
	return a.Bits[k/8]&(1<<(k%8)) != 0
}

// ForEach calls fn for every chunk the bitmap marks, in ascending order.
func (a *Ack) ForEach(fn func(i uint32)) {
	n := int(a.NBits)
	for bi, v := range a.Bits {
		for v != 0 {
			k := bi*8 + bits.TrailingZeros8(v)
			if k >= n {
				return
			}
			fn(a.Base + uint32(k))
			v &= v - 1
		}
	}
}

// AppendAck appends a's encoding.
func AppendAck(b []byte, a *Ack) []byte {
	b = binary.BigEndian.AppendUint32(b, a.Cumulative)
	b = binary.BigEndian.AppendUint32(b, a.Base)
	b = binary.BigEndian.AppendUint64(b, a.Largest)
	b = binary.BigEndian.AppendUint32(b, a.Delay)
	b = binary.BigEndian.AppendUint32(b, a.Window)
	b = binary.BigEndian.AppendUint16(b, a.NBits)
	return append(b, a.Bits...)
}

// ParseAck decodes and validates an ACK payload. It does not allocate.
func ParseAck(b []byte) (Ack, int, error) {
	if len(b) < ackFixed {
		return Ack{}, 0, errTruncated
	}
	a := Ack{
		Cumulative: binary.BigEndian.Uint32(b),
		Base:       binary.BigEndian.Uint32(b[4:]),
		Largest:    binary.BigEndian.Uint64(b[8:]),
		Delay:      binary.BigEndian.Uint32(b[16:]),
		Window:     binary.BigEndian.Uint32(b[20:]),
		NBits:      binary.BigEndian.Uint16(b[24:]),
	}
	if a.NBits > MaxAckBits {
		return Ack{}, 0, fmt.Errorf("chunk: ack: bitmap of %d bits (max %d)", a.NBits, MaxAckBits)
	}
	n := ackFixed + (int(a.NBits)+7)/8
	if len(b) < n {
		return Ack{}, 0, errTruncated
	}
	a.Bits = b[ackFixed:n:n]
	if err := a.Validate(); err != nil {
		return Ack{}, 0, err
	}
	return a, n, nil
}

// ChunkBitmap is a fixed-size set of chunk indexes [0, Len()). The zero
// value is an empty bitmap of length 0. It is not safe for concurrent use.
type ChunkBitmap struct {
	n     int
	count int
	words []uint64
}

// NewChunkBitmap returns an empty bitmap for n chunks (n < 0 counts as 0).
// It allocates n/8 bytes: callers size it from their own file, never from a
// peer's claim.
func NewChunkBitmap(n int) *ChunkBitmap {
	if n < 0 {
		n = 0
	}
	return &ChunkBitmap{n: n, words: make([]uint64, (n+63)/64)}
}

// Len is the number of chunks the bitmap covers.
func (m *ChunkBitmap) Len() int { return m.n }

// Count is the number of chunks set.
func (m *ChunkBitmap) Count() int { return m.count }

// Full reports whether every chunk is set.
func (m *ChunkBitmap) Full() bool { return m.count == m.n }

// Has reports whether chunk i is set; out-of-range i reports false.
func (m *ChunkBitmap) Has(i int) bool {
	if i < 0 || i >= m.n {
		return false
	}
	return m.words[i>>6]&(1<<(uint(i)&63)) != 0
}

// Set adds chunk i and reports whether it was new. Out-of-range i is ignored.
func (m *ChunkBitmap) Set(i int) bool {
	if i < 0 || i >= m.n {
		return false
	}
	w, bit := i>>6, uint64(1)<<(uint(i)&63)
	if m.words[w]&bit != 0 {
		return false
	}
	m.words[w] |= bit
	m.count++
	return true
}

// Clear removes chunk i and reports whether it was set (a chunk whose bytes
// turned out not to be the file's). Out-of-range i is ignored.
func (m *ChunkBitmap) Clear(i int) bool {
	if i < 0 || i >= m.n {
		return false
	}
	w, bit := i>>6, uint64(1)<<(uint(i)&63)
	if m.words[w]&bit == 0 {
		return false
	}
	m.words[w] &^= bit
	m.count--
	return true
}

// NextMissing returns the first chunk ≥ from that is not set, or Len().
func (m *ChunkBitmap) NextMissing(from int) int {
	if from < 0 {
		from = 0
	}
	if from >= m.n {
		return m.n
	}
	w := from >> 6
	v := ^m.words[w] >> (uint(from) & 63)
	if v != 0 {
		return min(from+bits.TrailingZeros64(v), m.n)
	}
	for w++; w < len(m.words); w++ {
		if v := ^m.words[w]; v != 0 {
			return min(w<<6+bits.TrailingZeros64(v), m.n)
		}
	}
	return m.n
}

// NextSet returns the first chunk ≥ from that is set, or Len().
func (m *ChunkBitmap) NextSet(from int) int {
	if from < 0 {
		from = 0
	}
	if from >= m.n {
		return m.n
	}
	w := from >> 6
	v := m.words[w] >> (uint(from) & 63)
	if v != 0 {
		return from + bits.TrailingZeros64(v)
	}
	for w++; w < len(m.words); w++ {
		if v := m.words[w]; v != 0 {
			return w<<6 + bits.TrailingZeros64(v)
		}
	}
	return m.n
}

// word64 returns the 64 bits starting at chunk i (bits past Len are 0).
func (m *ChunkBitmap) word64(i int) uint64 {
	w, s := i>>6, uint(i)&63
	var v uint64
	if w < len(m.words) {
		v = m.words[w] >> s
	}
	if s != 0 && w+1 < len(m.words) {
		v |= m.words[w+1] << (64 - s)
	}
	return v
}

// AppendBits appends the bits for chunks [base, base+nbits) packed as an
// Ack bitmap (least significant bit first, unused high bits zero). nbits is
// clamped to [0, MaxAckBits]; chunks past Len are 0.
func (m *ChunkBitmap) AppendBits(b []byte, base, nbits int) []byte {
	nbits = max(0, min(nbits, MaxAckBits))
	if base < 0 {
		base = 0
	}
	nbytes := (nbits + 7) / 8
	for k := 0; k < nbytes; k += 8 {
		v := m.word64(base + k*8)
		left := nbytes - k
		if left >= 8 {
			b = binary.LittleEndian.AppendUint64(b, v)
			continue
		}
		for j := 0; j < left; j++ {
			b = append(b, byte(v>>(8*j)))
		}
	}
	if r := nbits % 8; r != 0 {
		b[len(b)-1] &= byte(1)<<r - 1
	}
	return b
}
