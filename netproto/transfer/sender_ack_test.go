package transfer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// TestForEachNewlyAcked: against a ring with some chunks already held as
// acknowledged, the walk reports exactly the marked chunks that are not,
// whatever the bitmap's base and length (the ring wraps; the last word is
// partial).
func TestForEachNewlyAcked(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ringSize := range []int{64, 128, 8192} {
		for trial := range 200 {
			tr := &transfer{ring: make([]sentRec, ringSize), mask: uint32(ringSize - 1), ackedBits: make([]uint64, ringSize/64)}
			base := uint32(rng.IntN(100000))
			nbits := rng.IntN(min(ringSize, chunk.MaxAckBits) + 1)
			have := chunk.NewChunkBitmap(int(base) + nbits + 64)
			var want []uint32
			for k := range nbits {
				c := base + uint32(k)
				if rng.IntN(3) == 0 {
					continue // a hole
				}
				have.Set(int(c))
				if rng.IntN(2) == 0 { // acknowledged by an earlier ACK
					tr.ring[c&tr.mask] = sentRec{chunk: c, state: recAcked}
					tr.ackedBits[(c&tr.mask)>>6] |= 1 << (c & 63)
					continue
				}
				want = append(want, c)
			}
			bits := have.AppendBits(nil, int(base), nbits)
			a, _, err := chunk.ParseAck(chunk.AppendAck(nil, &chunk.Ack{Base: base, Window: 1, NBits: uint16(nbits), Bits: bits}))
			if err != nil {
				t.Fatal(err)
			}
			var got []uint32
			tr.forEachNewlyAcked(&a, func(c uint32) { got = append(got, c) })
			if !slices.Equal(got, want) {
				t.Fatalf("ring %d trial %d (base %d, %d bits): got %v, want %v", ringSize, trial, base, nbits, got, want)
			}
		}
	}
}
