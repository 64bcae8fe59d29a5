package tree

import (
	"math/bits"
	"sync"
)

// Have is the set of checked groups of one file, shared by the download
// that checks them and the server that offers them to other peers (only
// checked groups are ever served). Safe for concurrent use.
type Have struct {
	n int

	mu    sync.RWMutex // guards the fields below
	words []uint64
	count int
	gen   uint64 // bumped by every change, so an advertiser sends only news
}

// NewHave returns an empty set for a file of size bytes.
func NewHave(size int64) *Have {
	n := Groups(size)
	return &Have{n: n, words: make([]uint64, (n+63)/64)}
}

// Len is the number of groups of the file.
func (h *Have) Len() int { return h.n }

// Set marks group g checked.
func (h *Have) Set(g int) {
	if g < 0 || g >= h.n {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if w, b := g/64, uint64(1)<<(g%64); h.words[w]&b == 0 {
		h.words[w] |= b
		h.count++
		h.gen++
	}
}

// Clear unmarks group g (its data was dropped).
func (h *Have) Clear(g int) {
	if g < 0 || g >= h.n {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if w, b := g/64, uint64(1)<<(g%64); h.words[w]&b != 0 {
		h.words[w] &^= b
		h.count--
		h.gen++
	}
}

// SetAll marks every group (a complete, checked file).
func (h *Have) SetAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.words {
		h.words[i] = ^uint64(0)
	}
	if r := h.n % 64; r != 0 {
		h.words[len(h.words)-1] = 1<<r - 1
	}
	if h.count != h.n {
		h.count = h.n
		h.gen++
	}
}

// Has reports whether group g is checked.
func (h *Have) Has(g int) bool {
	if g < 0 || g >= h.n {
		return false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.words[g/64]&(1<<(g%64)) != 0
}

// HasRange reports whether every group overlapping bytes [off, end) is
// checked.
func (h *Have) HasRange(off, end int64) bool {
	if off < 0 || end <= off {
		return end == off && off >= 0
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for g := int(off / GroupSize); int64(g)*GroupSize < end; g++ {
		if g >= h.n || h.words[g/64]&(1<<(g%64)) == 0 {
			return false
		}
	}
	return true
}

// Count returns how many groups are checked and the change generation.
func (h *Have) Count() (count int, gen uint64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.count, h.gen
}

// Full reports whether every group is checked.
func (h *Have) Full() bool {
	c, _ := h.Count()
	return c == h.n
}

// AppendBits appends nbits bits from group first (bit k, LSB first, is
// group first+k), as the chunk protocol's bitmaps do.
func (h *Have) AppendBits(b []byte, first, nbits int) []byte {
	h.mu.RLock()
	defer h.mu.RUnlock()
	start := len(b)
	b = append(b, make([]byte, (nbits+7)/8)...)
	for k := 0; k < nbits; k++ {
		g := first + k
		if g < h.n && h.words[g/64]&(1<<(g%64)) != 0 {
			b[start+k/8] |= 1 << (k % 8)
		}
	}
	return b
}

// Missing returns the unchecked groups below n (at most max of them).
func (h *Have) Missing(max int) []int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []int
	for w, x := range h.words {
		x = ^x
		for x != 0 && len(out) < max {
			g := w*64 + bits.TrailingZeros64(x)
			if g >= h.n {
				return out
			}
			out = append(out, g)
			x &= x - 1
		}
	}
	return out
}
