package etcdcat

import (
	"container/heap"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/google/btree"

	"fxsh/store"
)

// index is the search index over the files of live registrations: one entry
// per distinct (name, hash), with every server that offers it. Entries sit in
// a B-tree ordered by name then hash (for listing and for ordered scans) and
// in trigram posting lists (so a search for a rare word does not scan every
// entry). The index is not safe for concurrent use: Catalog guards it.
type index struct {
	byAddr  map[string][]store.File // what set recorded for each server
	entries map[entryKey]*entry
	ordered *btree.BTreeG[*entry]

	// byID maps an entry ID to its entry, nil once the entry is gone. IDs
	// only grow, so posting lists stay sorted by appending; removed IDs stay
	// in the posting lists (skipped at query time) until compact rebuilds
	// them once more than half of byID is dead.
	byID  []*entry
	dead  int
	grams map[uint32][]uint32
}

type entryKey struct{ name, hash string }

type entry struct {
	id    uint32
	name  string
	hash  string
	lower string   // strings.ToLower(name), what searches match
	srcs  []source // one per server, sorted by addr
}

type source struct {
	addr string
	file store.File
}

// denseFraction: when every word of a query has a trigram found in more than
// 1/denseFraction of the entries, matches are likely dense, and a scan in
// name order that stops after max matches beats intersecting long lists.
const denseFraction = 8

// compactMin is the fewest dead IDs worth a rebuild of the posting lists.
const compactMin = 1024

func newIndex() *index {
	return &index{
		byAddr:  make(map[string][]store.File),
		entries: make(map[entryKey]*entry),
		ordered: btree.NewG(32, entryLess),
		grams:   make(map[uint32][]uint32),
	}
}

func entryLess(a, b *entry) bool {
	if a.name != b.name {
		return a.name < b.name
	}
	return a.hash < b.hash
}

// len reports the number of distinct entries.
func (x *index) len() int { return len(x.entries) }

// set records that addr offers exactly files, replacing what it offered.
func (x *index) set(addr string, files []store.File) {
	// Add first, so that entries kept across the replacement are not
	// dropped and made again.
	for _, f := range files {
		x.add(addr, f)
	}
	keep := make(map[entryKey]struct{}, len(files))
	for _, f := range files {
		keep[entryKey{f.Name, f.Hash}] = struct{}{}
	}
	for _, f := range x.byAddr[addr] {
		if _, ok := keep[entryKey{f.Name, f.Hash}]; !ok {
			x.remove(addr, f)
		}
	}
	x.byAddr[addr] = files
}

// drop records that addr offers nothing.
func (x *index) drop(addr string) {
	for _, f := range x.byAddr[addr] {
		x.remove(addr, f)
	}
	delete(x.byAddr, addr)
}

// add records that addr offers f.
func (x *index) add(addr string, f store.File) {
	k := entryKey{f.Name, f.Hash}
	e := x.entries[k]
	if e == nil {
		e = &entry{id: uint32(len(x.byID)), name: f.Name, hash: f.Hash, lower: strings.ToLower(f.Name)}
		x.entries[k] = e
		x.byID = append(x.byID, e)
		x.ordered.ReplaceOrInsert(e)
		forEachGram(e.lower, func(g uint32) { x.grams[g] = append(x.grams[g], e.id) })
	}
	i, found := slices.BinarySearchFunc(e.srcs, addr, func(s source, a string) int { return strings.Compare(s.addr, a) })
	if found {
		e.srcs[i].file = f
		return
	}
	e.srcs = slices.Insert(e.srcs, i, source{addr, f})
}

// remove records that addr no longer offers f.
func (x *index) remove(addr string, f store.File) {
	k := entryKey{f.Name, f.Hash}
	e := x.entries[k]
	if e == nil {
		return
	}
	i, found := slices.BinarySearchFunc(e.srcs, addr, func(s source, a string) int { return strings.Compare(s.addr, a) })
	if !found {
		return
	}
	e.srcs = slices.Delete(e.srcs, i, i+1)
	if len(e.srcs) > 0 {
		return
	}
	delete(x.entries, k)
	x.ordered.Delete(e)
	x.byID[e.id] = nil
	x.dead++
	if x.dead >= compactMin && x.dead > len(x.byID)/2 {
		x.compact()
	}
}

// compact renumbers the live entries and rebuilds the posting lists.
func (x *index) compact() {
	x.byID = x.byID[:0:0]
	x.dead = 0
	x.grams = make(map[uint32][]uint32, len(x.grams))
	x.ordered.Ascend(func(e *entry) bool {
		e.id = uint32(len(x.byID))
		x.byID = append(x.byID, e)
		forEachGram(e.lower, func(g uint32) { x.grams[g] = append(x.grams[g], e.id) })
		return true
	})
}

// forEachGram calls fn once for each distinct byte trigram of s.
func forEachGram(s string, fn func(uint32)) {
	if len(s) < 3 {
		return
	}
	seen := make(map[uint32]struct{}, len(s))
	for i := 0; i+3 <= len(s); i++ {
		g := gramAt(s, i)
		if _, dup := seen[g]; dup {
			continue
		}
		seen[g] = struct{}{}
		fn(g)
	}
}

func gramAt(s string, i int) uint32 {
	return uint32(s[i])<<16 | uint32(s[i+1])<<8 | uint32(s[i+2])
}

func (e *entry) toEntry() store.Entry {
	out := store.Entry{File: e.srcs[0].file, Servers: make([]string, len(e.srcs))}
	for i, s := range e.srcs {
		out.Servers[i] = s.addr
	}
	return out
}

func matchesAll(lower string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(lower, w) {
			return false
		}
	}
	return true
}

// files lists the entries whose name matches glob ("" or "*" for all), in
// name order. The literal part of the glob before its first
// metacharacter bounds the range scanned.
func (x *index) files(glob string) ([]store.Entry, error) {
	if _, err := path.Match(glob, ""); err != nil {
		return nil, err
	}
	var out []store.Entry
	if glob == "" || glob == "*" {
		out = make([]store.Entry, 0, len(x.entries))
		x.ordered.Ascend(func(e *entry) bool {
			out = append(out, e.toEntry())
			return true
		})
		return out, nil
	}
	lit := glob
	if i := strings.IndexAny(glob, `*?[\`); i >= 0 {
		lit = glob[:i]
	}
	x.ordered.AscendGreaterOrEqual(&entry{name: lit}, func(e *entry) bool {
		if !strings.HasPrefix(e.name, lit) {
			return false
		}
		if ok, _ := path.Match(glob, e.name); ok {
			out = append(out, e.toEntry())
		}
		return true
	})
	return out, nil
}

// search returns at most max entries whose lower-cased name contains every
// word (already lower-cased), in name order. No words match everything.
func (x *index) search(words []string, max int) []store.Entry {
	if max <= 0 || len(x.entries) == 0 {
		return nil
	}
	// The shortest posting list over all trigrams of all words bounds the
	// candidates.
	var best []uint32
	haveGram := false
	for _, w := range words {
		for i := 0; i+3 <= len(w); i++ {
			list := x.grams[gramAt(w, i)]
			if len(list) == 0 {
				return nil // a trigram no entry has: nothing matches
			}
			if !haveGram || len(list) < len(best) {
				best, haveGram = list, true
			}
		}
	}
	if !haveGram || len(best) > len(x.byID)/denseFraction {
		return x.scan(words, max)
	}
	h := &entryHeap{max: max}
	for _, id := range best {
		e := x.byID[id]
		if e == nil || !matchesAll(e.lower, words) {
			continue
		}
		h.offer(e)
	}
	return h.sorted()
}

// scan walks the entries in name order and stops after max matches.
func (x *index) scan(words []string, max int) []store.Entry {
	var out []store.Entry
	x.ordered.Ascend(func(e *entry) bool {
		if matchesAll(e.lower, words) {
			out = append(out, e.toEntry())
		}
		return len(out) < max
	})
	return out
}

// entryHeap keeps the max smallest entries offered: a max-heap on name then
// hash, so the root is the first to drop.
type entryHeap struct {
	max int
	es  []*entry
}

func (h *entryHeap) Len() int           { return len(h.es) }
func (h *entryHeap) Less(i, j int) bool { return entryLess(h.es[j], h.es[i]) }
func (h *entryHeap) Swap(i, j int)      { h.es[i], h.es[j] = h.es[j], h.es[i] }
func (h *entryHeap) Push(v any)         { h.es = append(h.es, v.(*entry)) }
func (h *entryHeap) Pop() any {
	e := h.es[len(h.es)-1]
	h.es = h.es[:len(h.es)-1]
	return e
}

func (h *entryHeap) offer(e *entry) {
	if len(h.es) < h.max {
		heap.Push(h, e)
		return
	}
	if entryLess(e, h.es[0]) {
		h.es[0] = e
		heap.Fix(h, 0)
	}
}

func (h *entryHeap) sorted() []store.Entry {
	sort.Slice(h.es, func(i, j int) bool { return entryLess(h.es[i], h.es[j]) })
	out := make([]store.Entry, len(h.es))
	for i, e := range h.es {
		out[i] = e.toEntry()
	}
	return out
}
