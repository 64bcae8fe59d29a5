package transfer

import (
	"math/bits"
	"math/rand/v2"

	"github.com/fxshell/fxsh/store/tree"
)

// Peers: partial sources in the claim schedule ("students serve students").
//
// A download may get, besides its origins (file servers with the whole
// file), peers: other downloaders that serve the 64 KiB groups they have
// checked against the file's tree. A peer's worker carries the bitmap of
// its groups (has), refreshed from the master (ClientConfig.Peers) while
// the download runs; new peers join the schedule as they appear.
//
// Who gets which claim (take):
//   - a peer takes, among the first MaxPickClaims claims of the pool, the
//     rarest one it can serve — the one the fewest other sources hold —
//     cut to the part it holds;
//   - an origin takes a claim that no peer holds (the rarest again), and
//     none while every claim left is held by some peer: peers first, so
//     the origin's uplink carries each group about once;
//   - only a source that holds every group steals at the end (steal).
// A peer that answers "not yet" loses the claims from that chunk on and
// the group's bit (notYet). With peers possible the pool is shuffled, so
// downloaders that start together ask the origin for different spans.

// OriginClaimBytes caps what an origin is asked for at once while peers
// are in the schedule.
const OriginClaimBytes = 256 << 10

// MaxPickClaims bounds the pool claims one take looks at.
const MaxPickClaims = 256

// SwarmSpanBytes is the claim size when peers may join (ClientConfig.Peers):
// small enough that what a downloader holds soon is worth asking for.
const SwarmSpanBytes = 1 << 20

type geometry struct {
	chunkSize int
	size      int64
}

// groups returns the groups that chunks [lo, hi) touch: [g0, g1].
func (g geometry) groups(lo, hi int) (g0, g1 int) {
	off := int64(lo) * int64(g.chunkSize)
	end := min(int64(hi)*int64(g.chunkSize), g.size)
	return int(off / tree.GroupSize), int((end - 1) / tree.GroupSize)
}

func hasGroup(has []uint64, g int) bool {
	return g >= 0 && g/64 < len(has) && has[g/64]&(1<<(g%64)) != 0
}

// holds reports whether w can serve chunks [lo, hi).
func (sw *swarm) holds(w *worker, lo, hi int) bool {
	if !w.peer {
		return true
	}
	g0, g1 := sw.geo.groups(lo, hi)
	for g := g0; g <= g1; g++ {
		if !hasGroup(w.has, g) {
			return false
		}
	}
	return true
}

// heldUpTo returns the end of the run of chunks from lo that w can serve,
// at most hi.
func (sw *swarm) heldUpTo(w *worker, lo, hi int) int {
	if !w.peer {
		return hi
	}
	i := lo
	for i < hi && sw.holds(w, i, i+1) {
		i++
	}
	return i
}

// hasAll reports whether w holds every group (an origin, or a peer done).
func (sw *swarm) hasAll(w *worker) bool {
	if !w.peer {
		return true
	}
	n := tree.Groups(sw.geo.size)
	c := 0
	for _, x := range w.has {
		c += bits.OnesCount64(x)
	}
	return c >= n
}

// holders counts the live sources other than w that can serve the start
// of c; peersOnly leaves the origins out.
func (sw *swarm) holders(w *worker, c claim, peersOnly bool) int {
	n := 0
	for _, o := range sw.workers {
		if o == w || o.gone || peersOnly && !o.peer {
			continue
		}
		if sw.holds(o, c.next, c.next+1) {
			n++
		}
	}
	return n
}

// take removes from the pool the claim w should work on next (cut, for a
// peer, to the part it holds); false if there is none for w.
func (sw *swarm) take(w *worker) (claim, bool) {
	if !sw.swarming {
		c := sw.pool[0]
		sw.pool = sw.pool[1:]
		sw.gen++
		return c, true
	}
	best, bestN := -1, 0
	for i := 0; i < len(sw.pool) && i < MaxPickClaims; i++ {
		c := sw.pool[i]
		if c.next = sw.have.NextMissing(c.next); c.next >= c.hi {
			continue
		}
		if !sw.holds(w, c.next, c.next+1) {
			continue
		}
		n := sw.holders(w, c, !w.peer)
		if !w.peer && n > 0 {
			continue // a peer has it: leave it to the peers
		}
		if best < 0 || n < bestN {
			best, bestN = i, n
			if n == 0 {
				break
			}
		}
	}
	if best < 0 {
		return claim{}, false
	}
	c := sw.pool[best]
	c.next = sw.have.NextMissing(c.next)
	end := sw.heldUpTo(w, c.next, c.hi)
	if !w.peer {
		// The origin's share is cut small: what it sends spreads to the
		// peers within a poll or two, before another downloader asks the
		// origin for the same bytes.
		end = min(end, c.next+max(1, OriginClaimBytes/sw.geo.chunkSize))
	}
	if end < c.hi {
		sw.pool[best] = claim{end, c.hi, end}
		c.hi = end
	} else {
		sw.pool = append(sw.pool[:best], sw.pool[best+1:]...)
	}
	sw.gen++ // the claims take looks at moved up
	return c, true
}

// peers reports whether any live source is a peer.
func (sw *swarm) peers() bool {
	for _, w := range sw.workers {
		if w.peer && !w.gone {
			return true
		}
	}
	return false
}

// setHas replaces peer w's group bitmap (ranges of groups [first, end)).
func (sw *swarm) setHas(w *worker, ranges [][2]int) {
	n := tree.Groups(sw.geo.size)
	has := make([]uint64, (n+63)/64)
	for _, r := range ranges {
		for g := max(r[0], 0); g < r[1] && g < n; g++ {
			has[g/64] |= 1 << (g % 64)
		}
	}
	w.peer, w.has = true, has
	sw.gen++
}

// notYet handles a peer's "not yet" for chunk c: it does not hold that
// group after all; the claims from c on go back to the pool.
func (sw *swarm) notYet(w *worker, c int) {
	g0, g1 := sw.geo.groups(c, c+1)
	for g := g0; g <= g1; g++ {
		if g/64 < len(w.has) {
			w.has[g/64] &^= 1 << (g % 64)
		}
	}
	var kept, back []claim
	for _, cl := range w.claims {
		switch {
		case cl.hi <= c:
			kept = append(kept, cl)
		case cl.lo >= c:
			back = append(back, cl)
		default:
			kept = append(kept, claim{cl.lo, c, cl.next})
			back = append(back, claim{c, cl.hi, max(c, cl.next)})
		}
	}
	w.claims = kept
	w.needUpdate = true
	sw.giveBack(back)
}

// goSwarm switches the schedule to peers (the first one joined): the pool
// is cut into spans of span chunks and put in random order (downloaders
// that start together then ask the origin for different parts), and each
// origin keeps only OriginClaimBytes past where it is, the rest going back
// to the pool. Until then a download runs as with origins alone.
func (sw *swarm) goSwarm(span int) {
	sw.swarming = true
	originChunks := max(1, OriginClaimBytes/sw.geo.chunkSize)
	var back []claim
	for _, w := range sw.workers {
		if w.peer || w.gone {
			continue
		}
		kept := w.claims[:0]
		for _, c := range w.claims {
			from := max(c.next, min(c.hi, w.highest+1))
			end := min(c.hi, from+originChunks)
			if end < c.hi {
				back = append(back, claim{end, c.hi, end})
				w.needUpdate = true
			}
			if c.next < end {
				kept = append(kept, claim{c.lo, end, c.next})
			}
		}
		w.claims = kept
	}
	var cut []claim
	for _, c := range append(back, sw.pool...) {
		for lo := c.next; lo < c.hi; lo += span {
			cut = append(cut, claim{lo, min(lo+span, c.hi), lo})
		}
	}
	sw.pool = cut
	sw.gen++
	rand.Shuffle(len(sw.pool), func(i, j int) { sw.pool[i], sw.pool[j] = sw.pool[j], sw.pool[i] })
}
