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
package memcat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"fxsh/store"
)

// ErrClosed is returned after Close. It wraps store.ErrUnavailable.
var ErrClosed = fmt.Errorf("memcat: closed: %w", store.ErrUnavailable)

// Catalog is an in-memory store.Catalog, safe for concurrent use.
type Catalog struct {
	ttl time.Duration // <= 0: registrations never expire
	now func() time.Time

	mu      sync.RWMutex // guards every field below
	closed  bool
	servers map[string]*server
	exp     expiry              // live servers by deadline (ttl > 0)
	byKey   map[entryKey]uint32 // entry slot by name and hash
	entries []entry             // by slot; free slots have live == false
	free    []uint32            // free slots, reused first
	idx     index
	types   map[string]string // interned type words
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
	msec        int64 // modification time, Unix seconds ...
	mnsec       int32 // ... and nanoseconds
	live        bool
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

// Register records srv and replaces its file list. Registered and LastSeen
// are set to now; Files is the number of distinct files. A role of ""
// means store.RoleServer.
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
	for i, f := range files {
		h, err := parseHash(f.Hash)
		if err != nil {
			return fmt.Errorf("register %s: file %q: %w", srv.Addr, f.Name, err)
		}
		hashes[i] = h
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	now := c.now()
	c.expireLocked(now)
	s := c.servers[srv.Addr]
	if s == nil {
		s = &server{heapIdx: -1}
		c.servers[srv.Addr] = s
	}
	old := s.slots
	addr := srv.Addr
	s.Server = srv
	s.Registered, s.LastSeen = now, now

	// Add the new list first, so entries kept across the replacement are
	// never dropped from the index and put back.
	slots := make([]uint32, 0, len(files))
	for i, f := range files {
		slot := c.entrySlot(f, hashes[i])
		e := &c.entries[slot]
		if j, found := slices.BinarySearch(e.servers, addr); !found {
			e.servers = slices.Insert(e.servers, j, addr)
		}
		slots = append(slots, slot)
	}
	slices.Sort(slots)
	slots = slices.Compact(slots)
	for _, slot := range old {
		if _, keep := slices.BinarySearch(slots, slot); !keep {
			c.dropServer(slot, addr)
		}
	}
	s.slots = slices.Clip(slots)
	s.Files = len(slots)
	c.touch(s, now)
	return nil
}

// entrySlot returns the slot of f's entry, making it if needed.
func (c *Catalog) entrySlot(f store.File, h [32]byte) uint32 {
	k := entryKey{f.Name, h}
	if slot, ok := c.byKey[k]; ok {
		return slot
	}
	typ, ok := c.types[f.Type]
	if !ok {
		typ = strings.Clone(f.Type)
		c.types[typ] = typ
	}
	e := entry{name: f.Name, lower: strings.ToLower(f.Name), hash: h, size: f.Size, typ: typ,
		msec: f.MTime.Unix(), mnsec: int32(f.MTime.Nanosecond()), live: true}
	var slot uint32
	if n := len(c.free); n > 0 {
		slot = c.free[n-1]
		c.free = c.free[:n-1]
		c.entries[slot] = e
	} else {
		slot = uint32(len(c.entries))
		c.entries = append(c.entries, e)
	}
	c.byKey[k] = slot
	c.idx.add(e.lower, slot)
	return slot
}

// dropServer removes addr from an entry and the entry when none is left.
func (c *Catalog) dropServer(slot uint32, addr string) {
	e := &c.entries[slot]
	if j, found := slices.BinarySearch(e.servers, addr); found {
		e.servers = slices.Delete(e.servers, j, j+1)
	}
	if len(e.servers) > 0 {
		return
	}
	c.idx.remove(e.lower, slot)
	delete(c.byKey, entryKey{e.name, e.hash})
	c.entries[slot] = entry{}
	c.free = append(c.free, slot)
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
	s := c.servers[addr]
	if s == nil {
		return fmt.Errorf("heartbeat %s: %w", addr, store.ErrNotFound)
	}
	c.touch(s, now)
	return nil
}

// Unregister removes a server and its files.
func (c *Catalog) Unregister(ctx context.Context, addr string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.expireLocked(c.now())
	s := c.servers[addr]
	if s == nil {
		return fmt.Errorf("unregister %s: %w", addr, store.ErrNotFound)
	}
	c.removeServer(s)
	return nil
}

// expireLocked removes the registrations whose deadline has passed.
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
	var lists []*postings
	ok := true
	if !all {
		lists, ok = c.idx.lookup(globLiterals(glob))
	}
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
	sortEntries(out)
	return out, nil
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
	c.servers, c.byKey, c.entries, c.free, c.exp = nil, nil, nil, nil, nil
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
