// Package memcat is the in-memory store.Catalog, the master's default.
//
// Catalog keeps servers by address and entries (a name and a content hash)
// in slots; an entry lists every server offering it. Search and Files do not
// scan the catalog: index.go keeps, for every 2- and 3-byte gram of the
// lower-cased names, the set of slots holding it (postings.go, a small
// roaring bitmap), and a query intersects the sets of its grams, smallest
// first, and checks only the candidates left. Registrations expire ttl
// after their last Register or Heartbeat; expiry.go keeps their deadlines
// in a heap, so a query finds the expired ones without a scan.
//
// Indexing is the costly part of a registration (1–3 µs a gram), so it is
// not done in one hold of the write lock: Register reserves the new
// entries unlisted, indexes them in slices (SliceGrams, SliceTime) that
// queries run between, then swaps the server's list in one short pass;
// entries that lose their last server are unlisted at once and unindexed
// later by a sweep, in slices too.
package memcat

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fxshell/fxsh/store"
)

// ErrClosed is returned after Close. It wraps store.ErrUnavailable.
var ErrClosed = fmt.Errorf("memcat: closed: %w", store.ErrUnavailable)

// Catalog is an in-memory store.Catalog, safe for concurrent use.
type Catalog struct {
	ttl time.Duration // <= 0: registrations never expire
	now func() time.Time

	// wmu is held by whoever indexes or unindexes (Register, sweeps), so
	// that one registration's reserved slots and a sweep's dead ones are
	// never touched by another; it is taken before mu, never after.
	wmu sync.Mutex

	mu       sync.RWMutex // guards every field below
	closed   bool
	servers  map[string]*server
	exp      expiry              // live servers by deadline (ttl > 0)
	byKey    map[entryKey]uint32 // entry slot by name and hash, live or reserved
	entries  []entry             // by slot; free, reserved and dead slots have live == false
	free     []uint32            // free slots, reused first
	garbage  []uint32            // dead slots still indexed, for a sweep
	sweeping bool                // a sweep goroutine is started or running
	idx      index
	types    map[string]string // interned type words

	afterSlice func() // test hook: called by Register after each slice, without mu
}

type server struct {
	store.Server
	slots    []uint32 // the entries it offers
	deadline time.Time
	heapIdx  int
}

type entryKey struct {
	name string
	hash [32]byte
}

type entry struct {
	name, lower string // lower aliases name when they are equal
	hash        [32]byte
	size        int64
	typ         string
	msec        int64    // modification time, Unix seconds ...
	mnsec       int32    // ... and nanoseconds
	live        bool     // listed: fully indexed, with servers
	queued      bool     // in Catalog.garbage
	servers     []string // addresses, sorted
}

// Option configures a Catalog.
type Option func(*Catalog)

// WithClock makes the catalog read time from now instead of time.Now, so
// tests can move time by hand.
func WithClock(now func() time.Time) Option {
	return func(c *Catalog) { c.now = now }
}

// New returns an empty catalog whose registrations expire ttl after their
// last Register or Heartbeat; with ttl <= 0 they never expire (for a
// catalog kept as a read index of another one that expires them itself).
func New(ttl time.Duration, opts ...Option) *Catalog {
	c := &Catalog{
		ttl:     ttl,
		now:     time.Now,
		servers: map[string]*server{},
		byKey:   map[entryKey]uint32{},
		idx:     newIndex(),
		types:   map[string]string{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

var _ store.Catalog = (*Catalog)(nil)

func parseHash(h string) ([32]byte, error) {
	sum, err := store.ParseHash(h)
	return [32]byte(sum), err
}

// SliceGrams and SliceTime bound the index work done under the write lock
// at a time: Register indexes new entries, and a sweep unindexes dead
// ones, in slices that stop after about SliceGrams grams or SliceTime,
// whichever comes first (an entry is never split), releasing the lock
// between slices so that queries are held up by one slice, not by a whole
// registration. A 1 KiB name of random UTF-8 has 2 000 grams, at 1–3 µs
// each on the loaded test machine.
const (
	SliceGrams = 1 << 13
	SliceTime  = 5 * time.Millisecond
)

// Register records srv and replaces its file list. Registered and LastSeen
// are set to now; Files is the number of distinct files. A role of ""
// means store.RoleServer.
//
// The write lock is held only briefly: names are lower-cased and hashes
// parsed before taking it; the entries new to the catalog are reserved
// (invisible) in one pass, indexed in slices of SliceGrams with the lock
// released between them, and the new list replaces the old one in a last
// pass that costs a few map and slice operations per file. Queries see the
// server's old list until that pass and its new list after, never a mix.
// Registrations are indexed one at a time (c.wmu). Canceling ctx while the
// entries are being indexed abandons the registration.
//
// Kept whole: the slices, the lock hand-offs and the commit follow the
// locking rules of the package doc in one sequence.
func (c *Catalog) Register(ctx context.Context, srv store.Server, files []store.File) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if srv.Addr == "" {
		return errors.New("register: empty address")
	}
	switch srv.Role {
	case "":
		srv.Role = store.RoleServer
	case store.RoleServer, store.RoleReceiver:
	default:
		return fmt.Errorf("register %s: unknown role %q", srv.Addr, srv.Role)
	}
	hashes := make([][32]byte, len(files))
	lowers := make([]string, len(files))
	for i, f := range files {
		h, err := parseHash(f.Hash)
		if err != nil {
			return fmt.Errorf("register %s: file %q: %w", srv.Addr, f.Name, err)
		}
		hashes[i] = h
		lowers[i] = strings.ToLower(f.Name) // f.Name itself when already lower
	}

	c.wmu.Lock()
	defer c.wmu.Unlock()

	// Reserve: find each file's entry, making the missing ones, not yet live.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.expireLocked(c.now())
	slots := make([]uint32, 0, len(files))
	var fresh []uint32
	for i, f := range files {
		k := entryKey{f.Name, hashes[i]}
		slot, ok := c.byKey[k]
		if !ok {
			slot = c.newEntry(f, hashes[i], lowers[i])
			c.byKey[k] = slot
			fresh = append(fresh, slot)
		}
		slots = append(slots, slot)
	}
	c.mu.Unlock()

	// Index the new entries a slice at a time. Queries skip them (not live)
	// and nothing else indexes, unindexes or reuses a slot meanwhile (wmu).
	for i := 0; i < len(fresh); {
		if err := ctx.Err(); err != nil {
			c.abandon(fresh)
			return err
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		start := time.Now()
		for n := 0; i < len(fresh) && n < SliceGrams && time.Since(start) < SliceTime; i++ {
			n += c.idx.add(c.entries[fresh[i]].lower, fresh[i])
		}
		c.mu.Unlock()
		if c.afterSlice != nil {
			c.afterSlice()
		}
	}

	// Commit: the new list replaces the old one.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	now := c.now()
	c.expireLocked(now)
	addr := srv.Addr
	for _, slot := range slots {
		e := &c.entries[slot]
		if !e.live {
			// New, or queued: an entry whose last server expired since
			// the reservation. Its slot is still indexed (only a sweep,
			// under wmu, unindexes), so it comes back as it was.
			if e.queued {
				c.byKey[entryKey{e.name, e.hash}] = slot
			}
			e.live = true
		}
		if j, found := slices.BinarySearch(e.servers, addr); !found {
			e.servers = slices.Insert(e.servers, j, addr)
		}
	}
	slices.Sort(slots)
	slots = slices.Compact(slots)
	s := c.servers[addr]
	if s == nil {
		s = &server{heapIdx: -1}
		c.servers[addr] = s
	}
	for _, slot := range s.slots {
		if _, keep := slices.BinarySearch(slots, slot); !keep {
			c.dropServer(slot, addr)
		}
	}
	s.Server = srv
	s.Registered = now
	s.slots = slices.Clip(slots)
	s.Files = len(slots)
	c.touch(s, now)
	c.mu.Unlock()
	c.sweep()
	return nil
}

// newEntry puts a new entry, not live and not indexed, in a free slot.
func (c *Catalog) newEntry(f store.File, h [32]byte, lower string) uint32 {
	typ, ok := c.types[f.Type]
	if !ok {
		typ = strings.Clone(f.Type)
		c.types[typ] = typ
	}
	e := entry{name: f.Name, lower: lower, hash: h, size: f.Size, typ: typ,
		msec: f.MTime.Unix(), mnsec: int32(f.MTime.Nanosecond())}
	if n := len(c.free); n > 0 {
		slot := c.free[n-1]
		c.free = c.free[:n-1]
		c.entries[slot] = e
		return slot
	}
	c.entries = append(c.entries, e)
	return uint32(len(c.entries) - 1)
}

// abandon drops the reserved entries of a canceled registration, indexed
// or not (unindexing a gram a slot is not in does nothing). wmu is held.
func (c *Catalog) abandon(fresh []uint32) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	for _, slot := range fresh {
		e := &c.entries[slot]
		delete(c.byKey, entryKey{e.name, e.hash})
		c.queue(slot)
	}
	c.mu.Unlock()
	c.sweep()
}

// dropServer removes addr from an entry, and the entry when none is left:
// it stops being live at once and is unindexed later by a sweep.
func (c *Catalog) dropServer(slot uint32, addr string) {
	e := &c.entries[slot]
	if j, found := slices.BinarySearch(e.servers, addr); found {
		e.servers = slices.Delete(e.servers, j, j+1)
	}
	if len(e.servers) > 0 || !e.live {
		return
	}
	e.live, e.servers = false, nil
	delete(c.byKey, entryKey{e.name, e.hash})
	c.queue(slot)
}

// queue hands a dead slot to the next sweep.
func (c *Catalog) queue(slot uint32) {
	e := &c.entries[slot]
	e.live = false
	if !e.queued {
		e.queued = true
		c.garbage = append(c.garbage, slot)
	}
}

// sweep unindexes and frees the queued slots a slice at a time; a slot
// that came back to life since it was queued is left alone. The caller
// holds wmu and not mu.
func (c *Catalog) sweep() {
	for {
		c.mu.Lock()
		if c.closed || len(c.garbage) == 0 {
			c.sweeping = false
			c.mu.Unlock()
			return
		}
		start := time.Now()
		for n := 0; len(c.garbage) > 0 && n < SliceGrams && time.Since(start) < SliceTime; n++ {
			slot := c.garbage[len(c.garbage)-1]
			c.garbage = c.garbage[:len(c.garbage)-1]
			e := &c.entries[slot]
			e.queued = false
			if e.live {
				continue
			}
			n += c.idx.remove(e.lower, slot)
			c.entries[slot] = entry{}
			c.free = append(c.free, slot)
		}
		c.mu.Unlock()
	}
}

// sweepSoon makes sure queued slots get swept: at once when no
// registration is being indexed, else by a goroutine that waits for it.
// The caller holds mu.
func (c *Catalog) sweepSoon() {
	if len(c.garbage) == 0 || c.sweeping {
		return
	}
	c.sweeping = true
	go func() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.sweep()
	}()
}

func (c *Catalog) removeServer(s *server) {
	for _, slot := range s.slots {
		c.dropServer(slot, s.Addr)
	}
	c.exp.remove(s)
	delete(c.servers, s.Addr)
}

func (c *Catalog) touch(s *server, now time.Time) {
	s.LastSeen = now
	if c.ttl > 0 {
		s.deadline = now.Add(c.ttl)
		c.exp.set(s)
	}
}

// Heartbeat keeps a registration alive for another ttl.
func (c *Catalog) Heartbeat(ctx context.Context, addr string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	now := c.now()
	c.expireLocked(now)
	c.sweepSoon()
	s := c.servers[addr]
	if s == nil {
		return fmt.Errorf("heartbeat %s: %w", addr, store.ErrNotFound)
	}
	c.touch(s, now)
	return nil
}

// Unregister removes a server and its files. They stop being listed at
// once; their index is then swept in slices (see SliceGrams), here when no
// registration is being indexed, else in the background after it.
func (c *Catalog) Unregister(ctx context.Context, addr string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.expireLocked(c.now())
	s := c.servers[addr]
	if s != nil {
		c.removeServer(s)
	}
	c.mu.Unlock()
	c.reclaim()
	if s == nil {
		return fmt.Errorf("unregister %s: %w", addr, store.ErrNotFound)
	}
	return nil
}

// reclaim sweeps the dead slots now, or soon when a registration is being
// indexed. The caller holds neither lock.
func (c *Catalog) reclaim() {
	if c.wmu.TryLock() {
		c.sweep()
		c.wmu.Unlock()
		return
	}
	c.mu.Lock()
	c.sweepSoon()
	c.mu.Unlock()
}

// expireLocked removes the registrations whose deadline has passed; their
// dead entries are queued for a sweep.
func (c *Catalog) expireLocked(now time.Time) {
	for len(c.exp) > 0 && !c.exp[0].deadline.After(now) {
		c.removeServer(c.exp[0])
	}
}

// rlock takes the read lock after removing expired registrations; the
// write lock is taken only when one is due.
func (c *Catalog) rlock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := c.now()
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	if len(c.exp) == 0 || c.exp[0].deadline.After(now) {
		return nil
	}
	c.mu.RUnlock()
	c.mu.Lock()
	c.expireLocked(now)
	c.sweepSoon()
	c.mu.Unlock()
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Servers lists live servers sorted by address.
func (c *Catalog) Servers(ctx context.Context) ([]store.Server, error) {
	if err := c.rlock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	out := make([]store.Server, 0, len(c.servers))
	for _, s := range c.servers {
		out = append(out, s.Server)
	}
	slices.SortFunc(out, func(a, b store.Server) int { return strings.Compare(a.Addr, b.Addr) })
	return out, nil
}

// Files lists the entries whose whole name matches glob (path.Match: '*'
// does not cross '/'); "" and "*" list everything. The glob's literal runs
// pick candidates from the index, so a selective glob reads few entries.
// A malformed glob is an error wrapping path.ErrBadPattern.
func (c *Catalog) Files(ctx context.Context, glob string) ([]store.Entry, error) {
	all := glob == "" || glob == "*"
	if !all {
		if _, err := path.Match(glob, ""); err != nil {
			return nil, fmt.Errorf("glob %q: %w", glob, err)
		}
	}
	if err := c.rlock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	var out []store.Entry
	visit := func(slot uint32) bool {
		e := &c.entries[slot]
		if !e.live {
			return true
		}
		if !all {
			if ok, _ := path.Match(glob, e.name); !ok {
				return true
			}
		}
		out = append(out, e.export())
		return true
	}
	var literals []string
	if !all {
		literals = globLiterals(glob)
	}
	c.visitCandidates(literals, visit)
	sortEntries(out)
	return out, nil
}

// FilesUnder lists at most max entries under the folder prefix that sort
// after the cursor, sorted by name then hash. The prefix narrows the
// candidates through the gram index as a glob's literals do, and only the
// max first of them are kept (a bounded heap), so a page costs one
// comparison per entry under the prefix and the export of max entries, not
// a sort of the folder: paging through 100 000 files took 4.5 s with a
// sort per page (BenchmarkFilesUnderPages).
func (c *Catalog) FilesUnder(ctx context.Context, prefix string, after store.Cursor, max int) ([]store.Entry, error) {
	if err := c.rlock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	if max <= 0 {
		return nil, nil
	}
	page := slotHeap{c: c}
	visit := func(slot uint32) bool {
		e := &c.entries[slot]
		if !e.live || e.name < after.Name || !store.UnderPrefix(e.name, prefix) {
			return true
		}
		if e.name == after.Name && !after.After(e.name, store.Sum(e.hash).String()) {
			return true
		}
		switch {
		case len(page.slots) < max:
			heap.Push(&page, slot)
		case c.before(slot, page.slots[0]):
			page.slots[0] = slot
			heap.Fix(&page, 0)
		}
		return true
	}
	c.visitCandidates([]string{strings.ToLower(prefix)}, visit)
	out := make([]store.Entry, len(page.slots))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = c.entries[heap.Pop(&page).(uint32)].export()
	}
	return out, nil
}

// before reports whether entry a sorts before entry b: by name, then hash.
func (c *Catalog) before(a, b uint32) bool {
	ea, eb := &c.entries[a], &c.entries[b]
	if ea.name != eb.name {
		return ea.name < eb.name
	}
	return bytes.Compare(ea.hash[:], eb.hash[:]) < 0
}

// slotHeap is a max-heap of entry slots by name then hash: its top is the
// last of the entries kept for a page.
type slotHeap struct {
	c     *Catalog
	slots []uint32
}

func (h *slotHeap) Len() int           { return len(h.slots) }
func (h *slotHeap) Less(i, j int) bool { return h.c.before(h.slots[j], h.slots[i]) }
func (h *slotHeap) Swap(i, j int)      { h.slots[i], h.slots[j] = h.slots[j], h.slots[i] }
func (h *slotHeap) Push(x any)         { h.slots = append(h.slots, x.(uint32)) }
func (h *slotHeap) Pop() any {
	x := h.slots[len(h.slots)-1]
	h.slots = h.slots[:len(h.slots)-1]
	return x
}

// visitCandidates calls visit with every slot that may hold a name
// containing each of the literals (lower-cased): those of the gram index's
// posting lists, or every slot when the literals narrow nothing. The
// caller checks each slot itself.
func (c *Catalog) visitCandidates(literals []string, visit func(uint32) bool) {
	lists, ok := c.idx.lookup(literals)
	switch {
	case !ok:
		// A literal gram no name has: nothing matches.
	case len(lists) == 0:
		for slot := range c.entries {
			visit(uint32(slot))
		}
	default:
		intersect(lists, nil, visit)
	}
}

// Search returns at most max entries whose lower-cased name contains every
// lower-cased word of q, sorted by name then hash. When more than max
// match, which ones are returned is unspecified: the search stops at the
// max-th hit instead of ranking every match. An empty q matches everything.
// Words of one byte narrow nothing by themselves (see index), so a query
// made only of those scans until it has max hits.
func (c *Catalog) Search(ctx context.Context, q string, max int) ([]store.Entry, error) {
	words := strings.Fields(strings.ToLower(q))
	slices.Sort(words)
	words = slices.Compact(words)
	if err := c.rlock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	if max <= 0 {
		return nil, nil
	}
	var out []store.Entry
	visit := func(slot uint32) bool {
		e := &c.entries[slot]
		if !e.live {
			return true
		}
		for _, w := range words {
			if !strings.Contains(e.lower, w) {
				return true
			}
		}
		out = append(out, e.export())
		return len(out) < max
	}
	lists, ok := c.idx.lookup(words)
	switch {
	case !ok:
	case len(lists) == 0:
		for slot := range c.entries {
			if !visit(uint32(slot)) {
				break
			}
		}
	default:
		intersect(lists, nil, visit)
	}
	sortEntries(out)
	return out, nil
}

// Close drops the catalog's contents; later calls return ErrClosed.
func (c *Catalog) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.servers, c.byKey, c.entries, c.free, c.garbage, c.exp = nil, nil, nil, nil, nil, nil
	c.idx = index{}
	return nil
}

func (e *entry) export() store.Entry {
	return store.Entry{
		File: store.File{
			Name:  e.name,
			Size:  e.size,
			Type:  e.typ,
			MTime: time.Unix(e.msec, int64(e.mnsec)).UTC(),
			Hash:  store.Sum(e.hash).String(),
		},
		Servers: slices.Clone(e.servers),
	}
}

func sortEntries(es []store.Entry) {
	slices.SortFunc(es, func(a, b store.Entry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
}

// globLiterals returns the literal runs of a valid path.Match pattern:
// the text between '*', '?' and character classes, escapes resolved. Any
// name the pattern matches contains each of them.
func globLiterals(glob string) []string {
	var runs []string
	var cur bytes.Buffer
	flush := func() {
		if cur.Len() > 0 {
			runs = append(runs, strings.ToLower(cur.String()))
			cur.Reset()
		}
	}
	for i := 0; i < len(glob); i++ {
		switch glob[i] {
		case '*', '?':
			flush()
		case '[':
			flush()
			for i++; i < len(glob) && glob[i] != ']'; i++ {
				if glob[i] == '\\' {
					i++
				}
			}
		case '\\':
			if i+1 < len(glob) {
				i++
				cur.WriteByte(glob[i])
			}
		default:
			cur.WriteByte(glob[i])
		}
	}
	flush()
	return runs
}
