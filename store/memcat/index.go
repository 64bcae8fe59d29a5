package memcat

import (
	"slices"
)

// index maps each 2- and 3-byte gram of the lower-cased names to the
// slots of the entries holding it. A word of three bytes or more is looked
// up by its trigrams, a two-byte word by itself; a one-byte word narrows
// nothing (indexing single bytes would cost a third of the index for
// queries that match nearly everything), so a query made only of those is
// answered by a scan that stops at the max-th hit. Grams are bytes of
// UTF-8, so any script works; a candidate is always checked against the
// name, since holding every gram of a word does not mean holding the word.
type index struct {
	grams map[uint32]*postings
	tmp   []uint32 // gram scratch for add and remove (under the write lock)
}

func newIndex() index {
	return index{grams: map[uint32]*postings{}}
}

// gram packs s[i:i+n] (n is 2 or 3) with its length so that "ab" and
// "ab\x00" differ.
func gram(s string, i, n int) uint32 {
	g := uint32(n) << 24
	for j := 0; j < n; j++ {
		g |= uint32(s[i+j]) << (8 * (2 - j))
	}
	return g
}

// gramsOf appends the 2- and 3-grams of s to dst, repeats included:
// adding and removing are idempotent, and cheaper than sorting them out.
func gramsOf(dst []uint32, s string) []uint32 {
	for i := range len(s) {
		for n := 2; n <= 3 && i+n <= len(s); n++ {
			dst = append(dst, gram(s, i, n))
		}
	}
	return dst
}

// queryGrams appends the grams that a name containing w must hold.
func queryGrams(dst []uint32, w string) []uint32 {
	switch len(w) {
	case 0, 1:
		return dst
	case 2:
		return append(dst, gram(w, 0, 2))
	}
	for i := 0; i+3 <= len(w); i++ {
		dst = append(dst, gram(w, i, 3))
	}
	return dst
}

// add indexes slot under the grams of lower and returns how many it did.
func (x *index) add(lower string, slot uint32) int {
	x.tmp = gramsOf(x.tmp[:0], lower)
	for _, g := range x.tmp {
		p := x.grams[g]
		if p == nil {
			p = &postings{}
			x.grams[g] = p
		}
		p.add(slot)
	}
	return len(x.tmp)
}

// remove unindexes slot from the grams of lower and returns how many.
func (x *index) remove(lower string, slot uint32) int {
	x.tmp = gramsOf(x.tmp[:0], lower)
	for _, g := range x.tmp {
		if p := x.grams[g]; p != nil {
			p.remove(slot)
			if p.n == 0 {
				delete(x.grams, g)
			}
		}
	}
	return len(x.tmp)
}

// lookup returns the posting lists of the grams of words. ok is false when
// some gram is in no name, so nothing can match; no lists and ok mean the
// words narrow nothing (no words).
func (x *index) lookup(words []string) (lists []*postings, ok bool) {
	var gs []uint32
	for _, w := range words {
		if w != "" {
			gs = queryGrams(gs, w)
		}
	}
	slices.Sort(gs)
	gs = slices.Compact(gs)
	for _, g := range gs {
		p := x.grams[g]
		if p == nil {
			return nil, false
		}
		lists = append(lists, p)
	}
	return lists, true
}
