package memcat

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPostingsAgainstMap drives postings and a map through the same random
// adds and removes, dense and sparse, and compares contents and intersections.
func TestPostingsAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const span = 3 << 16 // three containers
	var ps [3]postings
	var ref [3]map[uint32]bool
	for i := range ref {
		ref[i] = map[uint32]bool{}
	}
	check := func(step int) {
		for i := range ps {
			if ps[i].n != len(ref[i]) {
				t.Fatalf("step %d list %d: n = %d, want %d", step, i, ps[i].n, len(ref[i]))
			}
			var got []uint32
			ps[i].each(func(x uint32) bool { got = append(got, x); return true })
			if !slices.IsSorted(got) || len(got) != len(ref[i]) {
				t.Fatalf("step %d list %d: each gave %d values (sorted=%v), want %d", step, i, len(got), slices.IsSorted(got), len(ref[i]))
			}
			for _, x := range got {
				if !ref[i][x] {
					t.Fatalf("step %d list %d: has %d, reference does not", step, i, x)
				}
			}
		}
		var want []uint32
		for x := range ref[0] {
			if ref[1][x] && ref[2][x] {
				want = append(want, x)
			}
		}
		slices.Sort(want)
		var got []uint32
		intersect([]*postings{&ps[0], &ps[1], &ps[2]}, make([]uint64, words), func(x uint32) bool {
			got = append(got, x)
			return true
		})
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: intersect gave %d values, want %d", step, len(got), len(want))
		}
	}
	// Phases: fill densely (bitmaps), thin out (back to arrays), refill.
	for step, phase := range []struct{ adds, removes int }{{30000, 1000}, {1000, 28000}, {20000, 5000}, {0, 40000}} {
		for range phase.adds {
			i, x := rng.IntN(3), uint32(rng.IntN(span))
			if rng.IntN(4) == 0 {
				x = uint32(rng.IntN(span / 64)) // a dense corner shared by all lists
			}
			ps[i].add(x)
			ref[i][x] = true
		}
		for range phase.removes {
			i, x := rng.IntN(3), uint32(rng.IntN(span))
			if rng.IntN(2) == 0 {
				x = uint32(rng.IntN(span / 64))
			}
			ps[i].remove(x)
			delete(ref[i], x)
		}
		check(step)
	}
}

func TestIntersectStops(t *testing.T) {
	var a, b postings
	for x := range uint32(10000) {
		a.add(x)
		b.add(x * 2)
	}
	n := 0
	intersect([]*postings{&a, &b}, make([]uint64, words), func(uint32) bool { n++; return n < 7 })
	if n != 7 {
		t.Errorf("intersect went on after false: %d calls", n)
	}
	if !a.contains(9999) || a.contains(10000) || b.contains(3) {
		t.Error("contains is wrong")
	}
}
