package transfer

import (
	"cmp"
	"slices"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// The claim scheduler: which source is asked for which chunks.
//
// A download's missing chunks start in a pool of spans (SpanBytes each, at
// most MaxSpanChunks). A source holds claims on up to SpansPerSource spans
// it has not yet delivered past, so it always has one span to send and one
// queued behind it. When the pool runs dry, an idle source takes over every
// claim of a stalled source (one that has said nothing for 8 RTTs), or else
// the upper half of the largest claim another source still works on (the
// end game), so a slow or dead source holds nobody up. A failed source
// gives its claims back to the front of the pool. What a source is asked
// for goes out as at most chunk.MaxRequestRanges ranges (ranges).
//
// swarm is pure bookkeeping over the fetch's chunk bitmap: no sockets, no
// clock of its own (times come in as arguments), so swarm_test.go tests it
// with tables. The fetcher owns the bitmap, sets a chunk's bit when it is
// stored and then tells the swarm (delivered); it calls every method with
// its own mutex held.

// claim is a range of chunks [lo, hi) given to one source; next is the
// first chunk in it that may still be missing.
type claim struct{ lo, hi, next int }

// worker is one source's part of the schedule; the fetcher's source embeds
// it. Guarded, like the source, by fetcher.mu.
type worker struct {
	claims     []claim // chunk ranges this source is asked for (ascending by lo)
	highest    int     // highest chunk this source delivered; -1: none yet
	moreAt     int     // when the last REQUEST was cut at MaxRequestRanges: ask for the rest once a chunk in [moreAt, moreEnd) arrives; -1 otherwise
	moreEnd    int
	needUpdate bool // the claims changed since the last REQUEST: send one
	gone       bool // the source failed: it takes no work and nobody steals from it

	// A peer (a partial source, peers.go) serves only the groups it has
	// checked; has is their bitmap (a bit per 64 KiB group). An origin
	// (a file server with the whole file) has has == nil.
	peer bool
	has  []uint64

	// nothingAt is sw.gen+1 when take last found nothing for this source
	// (0: never): refill skips the pool until sw.gen moves.
	nothingAt uint64

	// For stall detection: a source holding work that has delivered
	// nothing for max(8*srtt, minStallTime) since max(started, lastData)
	// loses its claims to an idle source.
	started  time.Duration // when the source was first asked for work
	lastData time.Duration // when its last DATA arrived
	srtt     time.Duration // its smoothed RTT (InitialRTT until measured)
}

func newWorker() worker { return worker{highest: -1, moreAt: -1, srtt: InitialRTT} }

// stalled reports whether w holds work but has not delivered for a while.
func (w *worker) stalled(now time.Duration) bool {
	return len(w.claims) > 0 && now-max(w.lastData, w.started) > max(8*w.srtt, minStallTime)
}

// passedClaim reports whether a chunk at i, after w's highest was prev,
// takes the source past the end of one of its claims.
func (w *worker) passedClaim(prev, i int) bool {
	for _, c := range w.claims {
		if prev < c.hi-1 && i >= c.hi-1 {
			return true
		}
	}
	return false
}

// swarm hands the missing chunks of one download out to its sources.
type swarm struct {
	geo      geometry           // chunk and group sizes (peers.go)
	swarming bool               // peers may join: claims go rarest first, origins take small ones (peers.go)
	have     *chunk.ChunkBitmap // the fetch's: a set bit is a stored chunk
	spanLen  int                // chunks in a span of the pool
	pool     []claim            // missing chunks nobody is asked for, ascending, at most spanLen each
	workers  []*worker          // every source's, in source order (steal looks at the others)
	// gen counts the changes that can give a source work it could not
	// take before: the pool changed (claims given back, taken, cut), a
	// peer's groups or a source's liveness changed. A source whose take
	// found nothing at gen is not asked again until gen moves (refill):
	// the control loop refills idle sources every tick, and with 30
	// peers a take scans up to MaxPickClaims claims against every source
	// (holders) — 12 % of a classroom's CPU went there for nothing.
	gen uint64
}

// newSwarm cuts the chunks missing from have into a pool of spans of
// spanLen chunks (a span starts at its first missing chunk).
func newSwarm(have *chunk.ChunkBitmap, spanLen int) *swarm {
	sw := &swarm{have: have, spanLen: spanLen}
	n := have.Len()
	for lo := 0; lo < n; lo += spanLen {
		hi := min(lo+spanLen, n)
		if i := have.NextMissing(lo); i < hi {
			sw.pool = append(sw.pool, claim{i, hi, i})
		}
	}
	return sw
}

// add makes w one of the sources the swarm schedules.
func (sw *swarm) add(w *worker) {
	sw.workers = append(sw.workers, w)
	sw.gen++ // holders change
}

// drop takes w out of the schedule (its source failed) and gives its
// claims back to the front of the pool.
func (sw *swarm) drop(w *worker) {
	w.gone = true
	sw.gen++ // holders change
	sw.giveBack(w.claims)
	w.claims = nil
}

// giveBack returns claims to the front of the pool.
func (sw *swarm) giveBack(cs []claim) {
	var back []claim
	for _, c := range cs {
		if c.next = sw.have.NextMissing(c.next); c.next < c.hi {
			back = append(back, c)
		}
	}
	sw.pool = append(back, sw.pool...)
	sw.gen++
}

// hasWork reports whether w is asked for a chunk still missing, dropping
// the claims that are complete.
func (sw *swarm) hasWork(w *worker) bool {
	kept := w.claims[:0]
	for _, c := range w.claims {
		if c.next = sw.have.NextMissing(c.next); c.next < c.hi {
			kept = append(kept, c)
		}
	}
	w.claims = kept
	return len(kept) > 0
}

// delivered records that w's source delivered chunk i, which the fetcher
// has just stored (its bit is set), and tops w up when it is running out
// of work.
func (sw *swarm) delivered(w *worker, i int, now time.Duration) {
	passed := w.passedClaim(w.highest, i)
	w.highest = max(w.highest, i)
	if w.moreAt >= 0 && i >= w.moreAt && i < w.moreEnd {
		w.moreAt = -1
		w.needUpdate = true // the rest of a wish list that did not fit one REQUEST
	}
	if passed || len(w.claims) > 0 && (i >= w.claims[0].next || i >= w.claims[len(w.claims)-1].lo) && !sw.hasWork(w) || len(w.claims) < SpansPerSource {
		sw.refill(w, now)
	}
}

// refill tops w up to SpansPerSource claims from the pool. With the pool
// empty, an idle source takes over the claims of a stalled source, or else
// the upper half of the largest claim another source still works on (the
// end game), so a slow or dead source holds nobody up.
func (sw *swarm) refill(w *worker, now time.Duration) {
	if w.gone {
		return
	}
	busy := sw.hasWork(w)
	changed := false
	// A claim the source has delivered past the end of holds only holes,
	// which its retransmissions fill: it does not count, so the source
	// never runs dry while the last holes of a claim are repaired (under
	// loss that takes a round trip or two).
	open := 0
	for _, c := range w.claims {
		if c.hi > w.highest+1 {
			open++
		}
	}
	want := SpansPerSource
	if sw.swarming && !w.peer {
		want = 1 // an origin's claims are small and spread at once (peers.go)
	}
	for open < want && len(w.claims) < 2*SpansPerSource && len(sw.pool) > 0 && w.nothingAt != sw.gen+1 {
		c, ok := sw.take(w)
		if !ok {
			w.nothingAt = sw.gen + 1
			break
		}
		if c.next = sw.have.NextMissing(c.next); c.next < c.hi {
			w.claims = append(w.claims, c)
			open++
			changed = true
		}
	}
	if !busy && !changed && sw.hasAll(w) {
		// With peers in the schedule an origin does not split their
		// claims before the end game (its uplink would carry those
		// bytes twice); it still takes over a stalled source's.
		changed = sw.steal(w, now, w.peer || !sw.peers() || len(sw.pool) == 0)
	}
	if changed {
		slices.SortFunc(w.claims, func(a, b claim) int { return cmp.Compare(a.lo, b.lo) })
		w.needUpdate = true
	}
}

// steal gives the idle w work held by another source: all of a stalled
// source's claims, or else the upper half (by missing chunks) of the
// largest claim, if that has at least 2*MinSteal missing chunks.
func (sw *swarm) steal(w *worker, now time.Duration, split bool) bool {
	var victim *worker
	vi, most := -1, 0
	for _, o := range sw.workers {
		if o == w || o.gone || !sw.hasWork(o) {
			continue
		}
		if o.stalled(now) {
			w.claims = append(w.claims, o.claims...)
			o.claims = nil
			o.needUpdate = true
			return true
		}
		for i, c := range o.claims {
			if n := sw.missingIn(c); n > most {
				victim, vi, most = o, i, n
			}
		}
	}
	if victim == nil || most < 2*MinSteal || !split {
		return false
	}
	c := &victim.claims[vi]
	// Split so that each side keeps about half the missing chunks.
	mid, seen := c.hi, 0
	for i := sw.have.NextMissing(c.next); i < c.hi; i = sw.have.NextMissing(i + 1) {
		if seen++; seen > most/2 {
			mid = i
			break
		}
	}
	w.claims = append(w.claims, claim{mid, c.hi, mid})
	c.hi = mid
	victim.needUpdate = true
	return true
}

// missingIn counts the missing chunks of c, up to MaxSpanChunks.
func (sw *swarm) missingIn(c claim) int {
	n := 0
	for i := sw.have.NextMissing(c.next); i < c.hi && n < MaxSpanChunks; i = sw.have.NextMissing(i + 1) {
		n++
	}
	return n
}

// ranges lists the missing chunks of w's claims as at most
// MaxRequestRanges runs. When they do not fit (many holes: heavy loss),
// the unsent tail of each claim — the missing run that ends the claim,
// past the highest chunk this source delivered — is listed whole, and the
// holes below take the ranges left, lowest first; w.moreAt is set half way
// through those, to ask for the rest once the source gets there. So holes
// never starve a source of new work.
func (sw *swarm) ranges(w *worker) []chunk.Range {
	w.moreAt = -1
	if rs, ok := sw.runs(w, nil, chunk.MaxRequestRanges, nil); ok {
		return rs
	}
	tails := make([]int, len(w.claims)) // where each claim's tail starts
	var rs []chunk.Range
	for k, c := range w.claims {
		lo := sw.have.NextMissing(max(c.next, w.highest+1))
		for j := sw.have.NextSet(lo); j < c.hi; j = sw.have.NextSet(lo) {
			lo = sw.have.NextMissing(j) // held chunks above the frontier (a resumed file): the tail starts past them
		}
		tails[k] = min(lo, c.hi)
		if lo < c.hi {
			rs = append(rs, chunk.Range{First: uint32(lo), Count: uint32(c.hi - lo)})
		}
	}
	holes, _ := sw.runs(w, make([]chunk.Range, 0, chunk.MaxRequestRanges), chunk.MaxRequestRanges-len(rs), tails)
	if len(holes) > 0 {
		// Half way through the holes listed: new chunks past them do
		// not count, only the holes' retransmissions.
		w.moreAt = int(holes[len(holes)/2].First)
		w.moreEnd = int(holes[len(holes)-1].End())
	}
	rs = append(holes, rs...)
	slices.SortFunc(rs, func(a, b chunk.Range) int { return cmp.Compare(a.First, b.First) })
	return rs
}

// runs appends to rs the missing runs of w's claims (of claim k, those
// below ends[k] when ends is not nil), at most limit of them; ok is false
// if they did not all fit.
func (sw *swarm) runs(w *worker, rs []chunk.Range, limit int, ends []int) ([]chunk.Range, bool) {
	for k, c := range w.claims {
		hi := c.hi
		if ends != nil {
			hi = ends[k]
		}
		for i := sw.have.NextMissing(c.next); i < hi; {
			j := min(sw.have.NextSet(i), hi)
			if len(rs) >= limit {
				return rs, false
			}
			rs = append(rs, chunk.Range{First: uint32(i), Count: uint32(j - i)})
			i = sw.have.NextMissing(j)
		}
	}
	return rs, true
}

// reclaim makes chunks [lo, hi) wanted again (the fetcher cleared their
// bits: their group failed its tree check). Claims are disjoint, so a live
// claim that holds some of them goes back to them (its source gets a new
// REQUEST), and the rest go to the front of the pool as new claims.
func (sw *swarm) reclaim(lo, hi int) {
	var covered [][2]int
	touch := func(c *claim) bool {
		if c.lo >= hi || lo >= c.hi {
			return false
		}
		covered = append(covered, [2]int{max(lo, c.lo), min(hi, c.hi)})
		if n := max(lo, c.lo); n < c.next {
			c.next = n
			return true
		}
		return false
	}
	for _, w := range sw.workers {
		for i := range w.claims {
			if touch(&w.claims[i]) {
				w.needUpdate = true
			}
		}
	}
	for i := range sw.pool {
		touch(&sw.pool[i])
	}
	slices.SortFunc(covered, func(a, b [2]int) int { return cmp.Compare(a[0], b[0]) })
	var fresh []claim
	at := lo
	for _, sp := range covered {
		if sp[0] > at {
			fresh = append(fresh, claim{at, sp[0], at})
		}
		at = max(at, sp[1])
	}
	if at < hi {
		fresh = append(fresh, claim{at, hi, at})
	}
	sw.pool = append(fresh, sw.pool...)
	sw.gen++
}
