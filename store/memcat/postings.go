package memcat

import (
	"math/bits"
	"slices"
)

// postings is a set of entry slots, kept as a small roaring bitmap: slots
// are split by their high 16 bits into containers that hold the low 16 bits
// either as a sorted array (sparse) or as a 65536-bit bitmap (dense). Adding
// and removing touch one container of at most 8 KiB, so a common gram with a
// million slots costs no more to update than a rare one, and dense lists
// intersect a word (64 slots) at a time.
type postings struct {
	keys  []uint16     // high halves present, sorted
	conts []*container // conts[i] holds the slots whose high half is keys[i]
	n     int          // slots in the set
}

// Container shapes. An array holds at most arrayMax values; a bitmap that
// falls below bitmapMin goes back to an array (the gap avoids flapping).
const (
	arrayMax  = 4096
	bitmapMin = 2048
	words     = 1 << 16 / 64
)

type container struct {
	arr  []uint16 // sorted low halves; nil when bits is set
	bits []uint64 // words of a bitmap, or nil
	n    int
}

func (p *postings) find(key uint16) (int, bool) {
	// Slots are handed out low first, so the last container is the usual
	// one and there are few (one per 65536 slots).
	if n := len(p.keys); n > 0 && p.keys[n-1] <= key {
		return n - 1 + b2i(p.keys[n-1] < key), p.keys[n-1] == key
	}
	i, found := slices.BinarySearch(p.keys, key)
	return i, found
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (p *postings) container(key uint16) *container {
	if i, ok := p.find(key); ok {
		return p.conts[i]
	}
	return nil
}

func (p *postings) add(x uint32) {
	key, low := uint16(x>>16), uint16(x)
	i, ok := p.find(key)
	if !ok {
		p.keys = slices.Insert(p.keys, i, key)
		p.conts = slices.Insert(p.conts, i, &container{})
	}
	if p.conts[i].add(low) {
		p.n++
	}
}

func (p *postings) remove(x uint32) {
	key, low := uint16(x>>16), uint16(x)
	i, ok := p.find(key)
	if !ok || !p.conts[i].remove(low) {
		return
	}
	p.n--
	if p.conts[i].n == 0 {
		p.keys = slices.Delete(p.keys, i, i+1)
		p.conts = slices.Delete(p.conts, i, i+1)
	}
}

func (p *postings) contains(x uint32) bool {
	c := p.container(uint16(x >> 16))
	return c != nil && c.contains(uint16(x))
}

func (c *container) add(v uint16) bool {
	if c.bits != nil {
		w, m := v/64, uint64(1)<<(v%64)
		if c.bits[w]&m != 0 {
			return false
		}
		c.bits[w] |= m
		c.n++
		return true
	}
	if n := len(c.arr); n == 0 || c.arr[n-1] < v {
		c.arr = append(c.arr, v) // the usual case: a new slot is the highest
	} else {
		i, found := slices.BinarySearch(c.arr, v)
		if found {
			return false
		}
		c.arr = slices.Insert(c.arr, i, v)
	}
	c.n++
	if c.n > arrayMax {
		c.bits = make([]uint64, words)
		for _, a := range c.arr {
			c.bits[a/64] |= 1 << (a % 64)
		}
		c.arr = nil
	}
	return true
}

func (c *container) remove(v uint16) bool {
	if c.bits != nil {
		w, m := v/64, uint64(1)<<(v%64)
		if c.bits[w]&m == 0 {
			return false
		}
		c.bits[w] &^= m
		c.n--
		if c.n < bitmapMin {
			c.arr = make([]uint16, 0, c.n)
			c.forEach(func(v uint16) bool { c.arr = append(c.arr, v); return true })
			c.bits = nil
		}
		return true
	}
	i, found := slices.BinarySearch(c.arr, v)
	if !found {
		return false
	}
	c.arr = slices.Delete(c.arr, i, i+1)
	c.n--
	if len(c.arr) == 0 {
		c.arr = nil
	}
	return true
}

func (c *container) contains(v uint16) bool {
	if c.bits != nil {
		return c.bits[v/64]&(1<<(v%64)) != 0
	}
	_, found := slices.BinarySearch(c.arr, v)
	return found
}

// forEach calls fn for each value in increasing order until fn returns false.
func (c *container) forEach(fn func(uint16) bool) bool {
	if c.bits == nil {
		for _, v := range c.arr {
			if !fn(v) {
				return false
			}
		}
		return true
	}
	return forEachBit(c.bits, fn)
}

func forEachBit(ws []uint64, fn func(uint16) bool) bool {
	for w, word := range ws {
		for word != 0 {
			t := bits.TrailingZeros64(word)
			word &= word - 1
			if !fn(uint16(w*64 + t)) {
				return false
			}
		}
	}
	return true
}

// each calls fn for every slot of p in increasing order until fn returns false.
func (p *postings) each(fn func(uint32) bool) {
	for i, c := range p.conts {
		hi := uint32(p.keys[i]) << 16
		if !c.forEach(func(v uint16) bool { return fn(hi | uint32(v)) }) {
			return
		}
	}
}

// intersect calls fn, in increasing order, for every slot present in all of
// lists (at least one), until fn returns false. It walks the smallest list
// and, per container, filters the smallest array through the others or,
// when all are bitmaps, ANDs them a word at a time into scratch (allocated
// when nil: queries run concurrently, so each needs its own).
func intersect(lists []*postings, scratch []uint64, fn func(uint32) bool) {
	slices.SortFunc(lists, func(a, b *postings) int { return a.n - b.n })
	cs := make([]*container, len(lists))
	for ki, key := range lists[0].keys {
		cs[0] = lists[0].conts[ki]
		ok := true
		for j := 1; j < len(lists) && ok; j++ {
			cs[j] = lists[j].container(key)
			ok = cs[j] != nil
		}
		if !ok {
			continue
		}
		hi := uint32(key) << 16
		emit := func(v uint16) bool { return fn(hi | uint32(v)) }
		var arr *container
		for _, c := range cs {
			if c.bits == nil && (arr == nil || c.n < arr.n) {
				arr = c
			}
		}
		if arr != nil {
			for _, v := range arr.arr {
				in := true
				for _, c := range cs {
					if c != arr && !c.contains(v) {
						in = false
						break
					}
				}
				if in && !emit(v) {
					return
				}
			}
			continue
		}
		if scratch == nil {
			scratch = make([]uint64, words)
		}
		copy(scratch, cs[0].bits)
		for _, c := range cs[1:] {
			for w := range scratch {
				scratch[w] &= c.bits[w]
			}
		}
		if !forEachBit(scratch, emit) {
			return
		}
	}
}
