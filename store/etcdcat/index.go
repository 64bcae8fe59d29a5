package etcdcat

import (
	"path"
	"slices"
	"strings"

	"github.com/google/btree"

	"github.com/fxshell/fxsh/store"
)

// index is the search index over the files of live registrations: one entry
// per distinct (name, hash), with every server that offers it. Entries sit in
// a B-tree ordered by name then hash (for listing) and in posting lists, one
// for every 1-, 2- and 3-byte gram of the lower-cased names (so a search
// intersects the lists of its words' grams and checks only the candidates
// left, never scanning every entry). The index is not safe for concurrent
// use: Catalog guards it.
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
	tmp   []uint32 // scratch for gramsOf
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
		x.addGrams(e)
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
		x.addGrams(e)
		return true
	})
}

func (x *index) addGrams(e *entry) {
	x.tmp = gramsOf(x.tmp[:0], e.lower)
	for _, g := range x.tmp {
		x.grams[g] = append(x.grams[g], e.id)
	}
}

// gram packs s[i:i+n] (n <= 3) with its length, so that "a", "a\x00" and
// "a\x00\x00" differ.
func gram(s string, i, n int) uint32 {
	g := uint32(n) << 24
	for j := range n {
		g |= uint32(s[i+j]) << (8 * (2 - j))
	}
	return g
}

// gramsOf appends the distinct 1-, 2- and 3-byte grams of s to dst.
func gramsOf(dst []uint32, s string) []uint32 {
	for i := range len(s) {
		for n := 1; n <= 3 && i+n <= len(s); n++ {
			dst = append(dst, gram(s, i, n))
		}
	}
	slices.Sort(dst)
	return slices.Compact(dst)
}

// queryGrams appends the grams every name containing w holds: its trigrams,
// or w itself when shorter.
func queryGrams(dst []uint32, w string) []uint32 {
	if len(w) < 3 {
		return append(dst, gram(w, 0, len(w)))
	}
	for i := 0; i+3 <= len(w); i++ {
		dst = append(dst, gram(w, i, 3))
	}
	return dst
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

// under returns at most max entries whose name starts with prefix and that
// sort after the cursor, in order: a walk of the ordered tree from the
// later of the two.
func (x *index) under(prefix string, after store.Cursor, limit int) []store.Entry {
	var out []store.Entry
	if limit <= 0 {
		return nil
	}
	x.ordered.AscendGreaterOrEqual(&entry{name: max(prefix, after.Name)}, func(e *entry) bool {
		if !strings.HasPrefix(e.name, prefix) {
			return false
		}
		if after.After(e.name, e.hash) {
			out = append(out, e.toEntry())
		}
		return len(out) < limit
	})
	return out
}

// search returns at most max entries whose lower-cased name contains every
// word (already lower-cased), sorted by name then hash; no words match
// everything. As in memcat, when more than max match, which ones are
// returned is unspecified: the search stops at the max-th hit instead of
// ranking every match.
func (x *index) search(words []string, max int) []store.Entry {
	if max <= 0 || len(x.entries) == 0 {
		return nil
	}
	if len(words) == 0 {
		return x.scan(words, max)
	}
	var gs []uint32
	for _, w := range words {
		gs = queryGrams(gs, w)
	}
	slices.Sort(gs)
	gs = slices.Compact(gs)
	lists := make([][]uint32, len(gs))
	for i, g := range gs {
		if lists[i] = x.grams[g]; len(lists[i]) == 0 {
			return nil // a gram no entry has: nothing matches
		}
	}
	slices.SortFunc(lists, func(a, b []uint32) int { return len(a) - len(b) })
	var hits []*entry
	intersect(lists, func(id uint32) bool {
		if e := x.byID[id]; e != nil && matchesAll(e.lower, words) {
			hits = append(hits, e)
		}
		return len(hits) < max
	})
	slices.SortFunc(hits, func(a, b *entry) int {
		if a.name != b.name {
			return strings.Compare(a.name, b.name)
		}
		return strings.Compare(a.hash, b.hash)
	})
	out := make([]store.Entry, len(hits))
	for i, e := range hits {
		out[i] = e.toEntry()
	}
	return out
}

// intersect calls visit for each ID in every list (lists sorted by ID, the
// shortest first), in ID order, until visit returns false. Each longer list
// is searched by galloping from where the last search ended, so the cost
// follows the shortest list, not the longest.
func intersect(lists [][]uint32, visit func(uint32) bool) {
	pos := make([]int, len(lists))
next:
	for _, id := range lists[0] {
		for i := 1; i < len(lists); i++ {
			l := lists[i]
			p := pos[i]
			step := 1
			for p+step < len(l) && l[p+step] < id {
				p += step
				step *= 2
			}
			hi := min(p+step, len(l)-1)
			j, _ := slices.BinarySearch(l[p:hi+1], id)
			p += j
			pos[i] = p
			if p == len(l) {
				return
			}
			if l[p] != id {
				continue next
			}
		}
		if !visit(id) {
			return
		}
	}
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
