package master

import (
	"fmt"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
)

// Bounds on what all the connections of one master may make its catalog
// hold together (MaxFiles bounds one registration, MaxConns the sessions;
// without these, 1 000 sessions x 10 000 files could pin tens of GiB).
//
// Measured with memcat on the 2-core, 24 GiB test machine
// (BenchmarkCatalogFootprint, live heap after GC): an entry costs 205 B
// with classroom names (37 bytes on average; 1 000 000 entries take about
// 1 GiB of RSS with the garbage of building them) and up to 630 B with
// short random names, whose grams are all different; each further byte of
// name costs 4.6 B (random ASCII) to 10.2 B (random 2- and 3-byte UTF-8,
// the worst) of names and index. The limits keep the catalog's live heap
// under about 5 GiB in the worst case, so that with the garbage
// collector's headroom (up to twice the live heap) a master stays under
// half of the machine:
//
//	MaxCatalogFiles     x 630 B   = 2.4 GiB
//	MaxCatalogNameBytes x 10.2 B  = 2.6 GiB
//
// The issue-3 benchmark network (10 000 servers x 100 files, 40 MB of
// names) fits four times over. A registration that would go over either
// is refused with ERR 507; one that does not grow (a rescan of the same
// share, a peer coming back) is always taken, so the peers registered
// when the catalog filled keep working.
//
// With several masters on one shared catalog, each bounds what its own
// connections register.
const (
	// MaxCatalogFiles bounds the files registered on one master, summed
	// over its connections.
	MaxCatalogFiles = 4_000_000
	// MaxCatalogNameBytes bounds the bytes of the names of those files.
	MaxCatalogNameBytes = 256 << 20
)

// load is what a registration costs the catalog.
type load struct {
	files, names int64
}

func loadOf(files []store.File) load {
	l := load{files: int64(len(files))}
	for _, f := range files {
		l.names += int64(len(f.Name))
	}
	return l
}

func (a load) add(b load) load { return load{a.files + b.files, a.names + b.names} }
func (a load) sub(b load) load { return load{a.files - b.files, a.names - b.names} }

// growth is how much a exceeds b, in each measure (zero where it does not).
func (a load) growth(b load) load {
	return load{max(0, a.files-b.files), max(0, a.names-b.names)}
}

// catalogBudget accounts the load of every registration a master holds,
// by address. Guarded by Server.mu.
//
// A registration is reserved before the catalog call and committed after
// it, so that registrations in flight at once cannot all pass the check
// and together overshoot: their growth is counted as pending meanwhile.
type catalogBudget struct {
	limit   load
	used    load            // committed registrations
	pending load            // growth of the registrations in flight
	byAddr  map[string]load // committed load by registration address
}

func newCatalogBudget(limit load) catalogBudget {
	return catalogBudget{limit: limit, byAddr: map[string]load{}}
}

// reserve checks that the registration at addr may become l, prev (if not
// "") being the address the same connection registered before and is
// leaving. If it fits, prev's load is released and the growth returned
// for commit or cancel; else the error for the peer.
func (b *catalogBudget) reserve(addr, prev string, l load) (load, *line.Error) {
	used := b.used
	if prev != "" {
		used = used.sub(b.byAddr[prev])
	}
	g := l.growth(b.byAddr[addr])
	total := used.add(b.pending)
	switch {
	case g.files > 0 && total.files+g.files > b.limit.files:
		return load{}, line.Errorf(line.CodeFull,
			"catalog full: %d of %d files registered here; try later or another master", total.files, b.limit.files)
	case g.names > 0 && total.names+g.names > b.limit.names:
		return load{}, line.Errorf(line.CodeFull,
			"catalog full: %d of %d bytes of names registered here; try later or another master", total.names, b.limit.names)
	}
	if prev != "" {
		b.release(prev)
	}
	b.pending = b.pending.add(g)
	return g, nil
}

// commit records that the registration at addr is now l.
func (b *catalogBudget) commit(addr string, l, growth load) {
	b.pending = b.pending.sub(growth)
	b.used = b.used.sub(b.byAddr[addr]).add(l)
	b.byAddr[addr] = l
}

// cancel forgets a reservation whose registration failed.
func (b *catalogBudget) cancel(growth load) {
	b.pending = b.pending.sub(growth)
}

// release forgets the registration at addr.
func (b *catalogBudget) release(addr string) {
	b.used = b.used.sub(b.byAddr[addr])
	delete(b.byAddr, addr)
}

// String is for test failures.
func (b *catalogBudget) String() string {
	return fmt.Sprintf("used %d files, %d name bytes; pending %d, %d; %d registrations",
		b.used.files, b.used.names, b.pending.files, b.pending.names, len(b.byAddr))
}
