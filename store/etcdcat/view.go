package etcdcat

import (
	"strings"
	"time"

	"github.com/fxshell/fxsh/store"
)

// view is what a master knows of the catalog in etcd, rebuilt from key-value
// changes in revision order. A registration becomes visible when its server
// key appears, with exactly the file keys that carry the same lease; file
// keys seen before their server key (a large list written over several
// transactions) wait in pending. The view is not safe for concurrent use:
// Catalog guards it.
type view struct {
	prefix  string
	servers map[string]*serverState
	pending map[pendingKey]map[string]store.File // escaped name → file
	idx     *index
	dirty   map[string]struct{} // live servers whose files changed since flush
	gone    []pendingKey        // registrations retired since takeGone
	bad     int                 // keys or values under the prefix that could not be parsed
}

type pendingKey struct {
	addr  string
	lease int64
}

type serverState struct {
	srv       store.Server // Files is kept equal to len(files)
	lease     int64
	files     map[string]store.File // escaped name → file, all in idx
	heartbeat time.Time             // last Heartbeat through this catalog
}

func newView(prefix string) *view {
	return &view{
		prefix:  prefix,
		servers: make(map[string]*serverState),
		pending: make(map[pendingKey]map[string]store.File),
		idx:     newIndex(),
		dirty:   make(map[string]struct{}),
	}
}

// put applies a put of key (absolute) with value val attached to lease.
func (v *view) put(key string, val []byte, lease int64) {
	rel, ok := strings.CutPrefix(key, v.prefix)
	if !ok {
		v.bad++
		return
	}
	if addr, ok := parseServerKey(rel); ok {
		rec, n, err := parseServerRecord(val)
		if err != nil || n != len(val) || lease == 0 {
			v.bad++
			v.deleteServer(addr)
			return
		}
		v.putServer(addr, lease, rec)
		return
	}
	if addr, flease, esc, ok := parseFileKey(rel); ok {
		f, n, err := parseFileRecord(val)
		if err != nil || n != len(val) || flease != lease {
			v.bad++
			v.deleteFile(addr, flease, esc)
			return
		}
		v.putFile(addr, flease, esc, f)
		return
	}
	v.bad++
}

// delete applies a delete of key (absolute).
func (v *view) delete(key string) {
	rel, ok := strings.CutPrefix(key, v.prefix)
	if !ok {
		return
	}
	if addr, ok := parseServerKey(rel); ok {
		v.deleteServer(addr)
		return
	}
	if addr, lease, esc, ok := parseFileKey(rel); ok {
		v.deleteFile(addr, lease, esc)
	}
}

func (v *view) putServer(addr string, lease int64, rec serverRecord) {
	st := v.servers[addr]
	if st != nil && st.lease == lease {
		st.srv.Role, st.srv.Name, st.srv.Registered = rec.Role, rec.Name, rec.Registered
		return
	}
	if st != nil {
		v.retire(addr, st)
	}
	files := v.pending[pendingKey{addr, lease}]
	delete(v.pending, pendingKey{addr, lease})
	if files == nil {
		files = make(map[string]store.File)
	}
	v.servers[addr] = &serverState{
		srv: store.Server{
			Addr:       addr,
			Role:       rec.Role,
			Name:       rec.Name,
			Files:      len(files),
			Registered: rec.Registered,
		},
		lease: lease,
		files: files,
	}
	v.dirty[addr] = struct{}{}
}

// flush gives the index the current list of every server whose files
// changed, once per batch of changes: a registration's files come before
// its server key, and a revoked lease deletes all of a registration's keys
// in one revision, so each costs one index update however many keys.
func (v *view) flush() {
	for addr := range v.dirty {
		if st := v.servers[addr]; st != nil {
			list := make([]store.File, 0, len(st.files))
			for _, f := range st.files {
				list = append(list, f)
			}
			v.idx.set(addr, list)
		}
	}
	clear(v.dirty)
}

// retire takes a registration out of the index. Its file keys go back to
// pending, where the deletes that follow its lease's end will find them.
func (v *view) retire(addr string, st *serverState) {
	v.idx.drop(addr)
	delete(v.dirty, addr)
	v.gone = append(v.gone, pendingKey{addr, st.lease})
	if len(st.files) > 0 {
		v.pending[pendingKey{addr, st.lease}] = st.files
	}
	delete(v.servers, addr)
}

func (v *view) deleteServer(addr string) {
	if st := v.servers[addr]; st != nil {
		v.retire(addr, st)
	}
}

func (v *view) putFile(addr string, lease int64, esc string, f store.File) {
	if st := v.servers[addr]; st != nil && st.lease == lease {
		st.files[esc] = f
		st.srv.Files = len(st.files)
		v.dirty[addr] = struct{}{}
		return
	}
	k := pendingKey{addr, lease}
	m := v.pending[k]
	if m == nil {
		m = make(map[string]store.File)
		v.pending[k] = m
	}
	m[esc] = f
}

func (v *view) deleteFile(addr string, lease int64, esc string) {
	if st := v.servers[addr]; st != nil && st.lease == lease {
		if _, ok := st.files[esc]; ok {
			delete(st.files, esc)
			st.srv.Files = len(st.files)
			v.dirty[addr] = struct{}{}
		}
		return
	}
	k := pendingKey{addr, lease}
	if m := v.pending[k]; m != nil {
		delete(m, esc)
		if len(m) == 0 {
			delete(v.pending, k)
		}
	}
}

// pendingFiles counts the file keys waiting for their server key.
func (v *view) pendingFiles() int {
	n := 0
	for _, m := range v.pending {
		n += len(m)
	}
	return n
}

// takeGone returns the registrations retired since the last call.
func (v *view) takeGone() []pendingKey {
	g := v.gone
	v.gone = nil
	return g
}
