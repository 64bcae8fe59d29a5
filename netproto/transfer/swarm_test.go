package transfer

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// bitmap returns a bitmap of n chunks with the chunks for which held is
// true set (held nil: none).
func bitmap(n int, held func(i int) bool) *chunk.ChunkBitmap {
	m := chunk.NewChunkBitmap(n)
	for i := 0; i < n && held != nil; i++ {
		if held(i) {
			m.Set(i)
		}
	}
	return m
}

// testSwarm is a swarm over a bitmap of n chunks with k sources.
func testSwarm(n, spanLen int, held func(int) bool, k int) (*swarm, []*worker) {
	sw := newSwarm(bitmap(n, held), spanLen)
	ws := make([]*worker, k)
	for i := range ws {
		w := newWorker()
		ws[i] = &w
		sw.add(ws[i])
	}
	return sw, ws
}

func TestSwarmPool(t *testing.T) {
	tests := []struct {
		name    string
		n, span int
		held    func(int) bool
		want    []claim
	}{
		{"empty file", 0, 4, nil, nil},
		{"one short span", 3, 4, nil, []claim{{0, 3, 0}}},
		{"spans of 4", 10, 4, nil, []claim{{0, 4, 0}, {4, 8, 4}, {8, 10, 8}}},
		{"resumed: a span starts at its first missing chunk", 10, 4, func(i int) bool { return i < 6 }, []claim{{6, 8, 6}, {8, 10, 8}}},
		{"resumed: full spans are left out", 12, 4, func(i int) bool { return i >= 4 && i < 8 || i == 0 }, []claim{{1, 4, 1}, {8, 12, 8}}},
		{"complete", 8, 4, func(int) bool { return true }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw, _ := testSwarm(tt.n, tt.span, tt.held, 0)
			if !reflect.DeepEqual(sw.pool, tt.want) {
				t.Errorf("pool %v, want %v", sw.pool, tt.want)
			}
		})
	}
}

func TestSwarmRefill(t *testing.T) {
	tests := []struct {
		name     string
		highest  int     // what the source delivered so far
		claims   []claim // what it holds before
		wantOpen []claim // what it holds after
		pool     int     // spans left in the pool
	}{
		{"fresh source takes SpansPerSource spans", -1, nil, []claim{{0, 10, 0}, {10, 20, 10}}, 3},
		{"a claim delivered past holds only holes: one more span", 12, []claim{{0, 10, 5}, {10, 20, 13}},
			[]claim{{0, 10, 5}, {10, 20, 13}, {20, 30, 20}}, 2},
		{"at most 2*SpansPerSource claims", 49, []claim{{0, 10, 5}, {10, 20, 13}, {20, 30, 25}, {30, 40, 35}},
			[]claim{{0, 10, 5}, {10, 20, 13}, {20, 30, 25}, {30, 40, 35}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw, ws := testSwarm(50, 10, nil, 1)
			w := ws[0]
			w.highest = tt.highest
			w.claims = append(w.claims, tt.claims...)
			for _, c := range tt.claims { // the pool does not hold what is claimed
				for i, p := range sw.pool {
					if p.lo == c.lo {
						sw.pool = append(sw.pool[:i], sw.pool[i+1:]...)
						break
					}
				}
			}
			sw.refill(w, 0)
			if !reflect.DeepEqual(w.claims, tt.wantOpen) {
				t.Errorf("claims %v, want %v", w.claims, tt.wantOpen)
			}
			if len(sw.pool) != tt.pool {
				t.Errorf("%d spans left in the pool, want %d", len(sw.pool), tt.pool)
			}
		})
	}
}

// TestSwarmSteal: with the pool empty an idle source takes the upper half
// (by missing chunks) of the largest claim another source works on, or
// every claim of a source that has delivered nothing for 8 RTTs (at least
// minStallTime).
func TestSwarmSteal(t *testing.T) {
	const n = 200
	tests := []struct {
		name      string
		held      func(int) bool
		busy      []claim       // the busy source's claims
		lastData  time.Duration // when the busy source last delivered
		now       time.Duration
		wantBusy  []claim
		wantIdle  []claim
		wantMoved bool
	}{
		{"end game: the upper half", nil, []claim{{0, 100, 0}, {100, 200, 100}}, 0, 10 * time.Millisecond,
			[]claim{{0, 50, 0}, {100, 200, 100}}, []claim{{50, 100, 50}}, true},
		{"halves by missing chunks, not by length", func(i int) bool { return i < 80 }, []claim{{0, 100, 0}}, 0, 10 * time.Millisecond,
			[]claim{{0, 90, 80}}, []claim{{90, 100, 90}}, true},
		{"the largest claim is split", func(i int) bool { return i < 100 && i%2 == 0 }, []claim{{0, 100, 0}, {100, 160, 100}}, 0, 10 * time.Millisecond,
			[]claim{{0, 100, 1}, {100, 130, 100}}, []claim{{130, 160, 130}}, true},
		{"too little left to split", func(i int) bool { return i < 100-2*MinSteal+1 }, []claim{{0, 100, 0}}, 0, 10 * time.Millisecond,
			[]claim{{0, 100, 100 - 2*MinSteal + 1}}, nil, false},
		{"a source that delivers nothing loses every claim", nil, []claim{{0, 100, 0}, {100, 200, 100}}, 0, 8*InitialRTT + time.Millisecond,
			nil, []claim{{0, 100, 0}, {100, 200, 100}}, true},
		{"not stalled yet: only half", nil, []claim{{0, 100, 0}}, 0, 8 * InitialRTT,
			[]claim{{0, 50, 0}}, []claim{{50, 100, 50}}, true},
		{"stall counts from the last data", nil, []claim{{0, 100, 0}}, time.Second, time.Second + 8*InitialRTT,
			[]claim{{0, 50, 0}}, []claim{{50, 100, 50}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw, ws := testSwarm(n, 100, tt.held, 2)
			sw.pool = nil
			busy, idle := ws[0], ws[1]
			busy.claims = append(busy.claims, tt.busy...)
			busy.lastData = tt.lastData
			sw.refill(idle, tt.now)
			if !reflect.DeepEqual(busy.claims, tt.wantBusy) && (len(busy.claims) != 0 || len(tt.wantBusy) != 0) {
				t.Errorf("busy source keeps %v, want %v", busy.claims, tt.wantBusy)
			}
			if !reflect.DeepEqual(idle.claims, tt.wantIdle) && (len(idle.claims) != 0 || len(tt.wantIdle) != 0) {
				t.Errorf("idle source takes %v, want %v", idle.claims, tt.wantIdle)
			}
			if busy.needUpdate != tt.wantMoved || idle.needUpdate != tt.wantMoved {
				t.Errorf("needUpdate busy %v, idle %v; want both %v", busy.needUpdate, idle.needUpdate, tt.wantMoved)
			}
		})
	}
}

// TestSwarmGiveBack: a failed source's claims go back to the front of the
// pool (without the chunks that arrived meanwhile), the next source to
// refill takes them first, and nobody steals from or gives to the failed one.
func TestSwarmGiveBack(t *testing.T) {
	sw, ws := testSwarm(60, 10, nil, 2)
	a, b := ws[0], ws[1]
	sw.refill(a, 0)
	sw.refill(b, 0)
	if want := []claim{{0, 10, 0}, {10, 20, 10}}; !reflect.DeepEqual(a.claims, want) {
		t.Fatalf("a holds %v, want %v", a.claims, want)
	}
	for i := 0; i < 4; i++ { // a delivered chunks 0..3 of its first span
		sw.have.Set(i)
		sw.delivered(a, i, 0)
	}
	sw.have.Set(10) // and the first of its second
	sw.delivered(a, 10, 0)
	sw.drop(a)
	if a.claims != nil || !a.gone {
		t.Fatalf("dropped source still holds %v (gone %v)", a.claims, a.gone)
	}
	if want := []claim{{0, 10, 4}, {10, 20, 11}, {40, 50, 40}, {50, 60, 50}}; !reflect.DeepEqual(sw.pool, want) {
		t.Fatalf("pool %v, want %v", sw.pool, want)
	}
	sw.refill(a, 0)
	if len(a.claims) != 0 {
		t.Fatalf("a failed source was given %v", a.claims)
	}
	// b finishes its spans; it takes what a gave back, in order.
	for i := 20; i < 40; i++ {
		sw.have.Set(i)
		sw.delivered(b, i, 0)
	}
	if want := []claim{{0, 10, 4}, {10, 20, 11}}; len(b.claims) < 2 || !reflect.DeepEqual(b.claims[:2], want) {
		t.Fatalf("b holds %v after its own spans, want %v first", b.claims, want)
	}
	// With the pool empty, b steals nothing from a failed source, even one
	// that (wrongly) still held a claim.
	sw.pool = nil
	b.claims = nil
	a.claims = []claim{{50, 60, 50}}
	sw.refill(b, time.Hour)
	if len(b.claims) != 0 {
		t.Fatalf("b took %v from a failed source", b.claims)
	}
}

// TestSwarmDelivered: a source is topped up when it passes the end of a
// claim, and not on every chunk in between.
func TestSwarmDelivered(t *testing.T) {
	sw, ws := testSwarm(40, 10, nil, 1)
	w := ws[0]
	sw.refill(w, 0)
	w.needUpdate = false
	for i := 0; i < 9; i++ {
		sw.have.Set(i)
		sw.delivered(w, i, 0)
	}
	if w.needUpdate || len(w.claims) != 2 {
		t.Fatalf("topped up inside a claim: %v", w.claims)
	}
	sw.have.Set(9)
	sw.delivered(w, 9, 0)
	if want := []claim{{10, 20, 10}, {20, 30, 20}}; !w.needUpdate || !reflect.DeepEqual(w.claims, want) {
		t.Fatalf("after the end of a claim: %v (needUpdate %v), want %v", w.claims, w.needUpdate, want)
	}
	// Passing the end of a claim with a hole in it keeps the claim (for
	// the retransmission) and adds a span.
	w.needUpdate = false
	for i := 10; i < 20; i++ {
		if i != 15 {
			sw.have.Set(i)
			sw.delivered(w, i, 0)
		}
	}
	if want := []claim{{10, 20, 15}, {20, 30, 20}, {30, 40, 30}}; !w.needUpdate || !reflect.DeepEqual(w.claims, want) {
		t.Fatalf("after a claim with a hole: %v (needUpdate %v), want %v", w.claims, w.needUpdate, want)
	}
}

// TestSwarmRanges: what a REQUEST asks a source for, and the cut at
// chunk.MaxRequestRanges ranges.
func TestSwarmRanges(t *testing.T) {
	const limit = chunk.MaxRequestRanges
	tests := []struct {
		name    string
		n       int
		held    func(int) bool
		claims  []claim
		highest int
		want    []chunk.Range // nil: check only the cut
		wantCut bool
	}{
		{"whole claims", 100, nil, []claim{{0, 10, 0}, {50, 60, 50}}, -1,
			[]chunk.Range{{First: 0, Count: 10}, {First: 50, Count: 10}}, false},
		{"holes and the tail", 100, func(i int) bool { return i < 5 && i != 2 }, []claim{{0, 10, 0}}, 4,
			[]chunk.Range{{First: 2, Count: 1}, {First: 5, Count: 5}}, false},
		{"exactly MaxRequestRanges fits", 2 * limit, func(i int) bool { return i%2 == 1 }, []claim{{0, 2 * limit, 0}}, 2*limit - 1,
			nil, false},
		{"one more range is cut", 2*limit + 2, func(i int) bool { return i%2 == 1 }, []claim{{0, 2*limit + 2, 0}}, 2*limit + 1,
			nil, true},
		{"heavy loss: holes cut, tails whole", 10000, func(i int) bool { return i < 1000 && i%3 != 0 || i >= 5000 && i < 5600 && i%2 == 0 },
			[]claim{{0, 4000, 0}, {5000, 9000, 5000}}, 5598, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw, ws := testSwarm(tt.n, MaxSpanChunks, tt.held, 1)
			w := ws[0]
			w.claims, w.highest = tt.claims, tt.highest
			rs := sw.ranges(w)
			if tt.want != nil && !reflect.DeepEqual(rs, tt.want) {
				t.Fatalf("ranges %v, want %v", rs, tt.want)
			}
			if len(rs) > limit {
				t.Fatalf("%d ranges, more than %d", len(rs), limit)
			}
			if cut := w.moreAt >= 0; cut != tt.wantCut {
				t.Fatalf("cut %v (moreAt %d), want %v", cut, w.moreAt, tt.wantCut)
			}
			// Every range is missing, ascending, inside a claim.
			for k, r := range rs {
				if k > 0 && uint64(r.First) < rs[k-1].End() {
					t.Fatalf("range %d %v not after %v", k, r, rs[k-1])
				}
				for i := int(r.First); i < int(r.End()); i++ {
					if sw.have.Has(i) {
						t.Fatalf("range %v asks for held chunk %d", r, i)
					}
				}
			}
			if !tt.wantCut {
				return
			}
			// The tail of each claim past the source's highest chunk is
			// asked for whole, so holes never starve it of new work.
			for _, c := range w.claims {
				lo := sw.have.NextMissing(max(c.next, w.highest+1))
				if lo >= c.hi {
					continue
				}
				if want := (chunk.Range{First: uint32(lo), Count: uint32(c.hi - lo)}); !containsRange(rs, want) {
					t.Errorf("tail %v of claim %v not asked for: %v", want, c, rs)
				}
			}
			if len(rs) != limit {
				t.Errorf("cut REQUEST with %d ranges, want all %d used", len(rs), limit)
			}
			// A chunk half way through the listed holes asks for the rest.
			if w.moreEnd <= w.moreAt {
				t.Fatalf("moreAt %d, moreEnd %d", w.moreAt, w.moreEnd)
			}
			w.needUpdate = false
			sw.have.Set(w.moreAt)
			sw.delivered(w, w.moreAt, 0)
			if !w.needUpdate || w.moreAt != -1 {
				t.Errorf("a chunk at moreAt did not ask for the rest (needUpdate %v, moreAt %d)", w.needUpdate, w.moreAt)
			}
		})
	}
}

func containsRange(rs []chunk.Range, r chunk.Range) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// TestSwarmDrains runs a swarm of three sources to the end without
// sockets: one delivers nothing, one is slow, one fast. Every chunk is
// delivered, and the silent source ends up with no work.
func TestSwarmDrains(t *testing.T) {
	for _, n := range []int{1, 7, 100, 1001} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			sw, ws := testSwarm(n, 16, nil, 3)
			silent, slow, fast := ws[0], ws[1], ws[2]
			now := time.Duration(0)
			for _, w := range ws {
				w.started = now
				sw.refill(w, now)
			}
			for step := 0; !sw.have.Full(); step++ {
				if step > 100*n {
					t.Fatalf("stuck with %d of %d chunks; silent %v slow %v fast %v pool %v", sw.have.Count(), n, silent.claims, slow.claims, fast.claims, sw.pool)
				}
				now += 10 * time.Millisecond
				for _, w := range []*worker{slow, fast, fast, fast} {
					if !sw.hasWork(w) {
						sw.refill(w, now)
						continue
					}
					i := sw.have.NextMissing(w.claims[0].next)
					sw.have.Set(i)
					w.lastData = now
					sw.delivered(w, i, now)
				}
			}
			if sw.hasWork(silent) {
				t.Errorf("silent source still holds %v", silent.claims)
			}
		})
	}
}

// TestSwarmReclaim: chunks dropped after a failed group check are wanted
// again: a live claim that holds them goes back to them (its source gets a
// REQUEST), pool claims likewise, and chunks in no claim (their claims were
// complete and dropped) go to the front of the pool; claims stay disjoint.
func TestSwarmReclaim(t *testing.T) {
	// 16 chunks, spans of 4: w0 holds {0,4} (done up to 3), w1 holds
	// {4,8} (done up to 7); {8,12} and {12,16} are in the pool.
	sw, ws := testSwarm(16, 4, func(i int) bool { return i < 3 || i >= 4 && i < 7 }, 2)
	ws[0].claims = []claim{{0, 4, 3}}
	ws[1].claims = []claim{{4, 8, 7}}
	sw.pool = sw.pool[2:]
	for _, i := range []int{1, 2, 5} {
		sw.have.Clear(i)
	}
	sw.reclaim(1, 6)
	if ws[0].claims[0] != (claim{0, 4, 1}) || !ws[0].needUpdate {
		t.Errorf("w0 %v (update %v), want {0 4 1}", ws[0].claims, ws[0].needUpdate)
	}
	if ws[1].claims[0] != (claim{4, 8, 4}) || !ws[1].needUpdate {
		t.Errorf("w1 %v, want {4 8 4}", ws[1].claims)
	}
	if !reflect.DeepEqual(sw.pool, []claim{{8, 12, 8}, {12, 16, 12}}) {
		t.Errorf("pool %v: nothing new should be there", sw.pool)
	}

	// Completed claims are gone: the chunks go to the pool's front.
	sw2, ws2 := testSwarm(12, 4, func(i int) bool { return i < 8 }, 1)
	ws2[0].claims = nil
	sw2.have.Clear(5)
	sw2.have.Clear(6)
	sw2.reclaim(5, 7)
	if !reflect.DeepEqual(sw2.pool, []claim{{5, 7, 5}, {8, 12, 8}}) {
		t.Errorf("pool %v, want {5 7 5} first", sw2.pool)
	}
	if ws2[0].needUpdate {
		t.Error("a source without claims was touched")
	}
}
