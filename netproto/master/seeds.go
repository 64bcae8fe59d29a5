package master

import (
	"net"
	"sort"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/tree"
)

// Partial sources ("students serve students"). A shell downloading a file
// offers the 64 KiB groups it has checked against the file's tree, and
// after it finishes, the whole file, while it runs. It tells the master
// with SEED, on its own connection whatever its role:
//
//	C: SEED hash=blake3:… size=BYTES addr=HOST:PORT have=HAVE-LIST
//	S: OK hash=blake3:… addr=10.0.0.5:40123
//	C: UNSEED hash=blake3:…
//	S: OK hash=blake3:…
//	C: SOURCES hash=blake3:…
//	S: FOUND n=2
//	S: S addr=10.0.0.5:40123 have=0-1023,1100-1200
//	S: S addr=10.0.0.6:40551 have=all
//	S: END                      (or NOT FOUND)
//
// A SEED replaces that connection's entry for the hash (as REGISTER
// replaces a list: the master never holds half a change); the source sends
// it again as its groups grow (at most every SeedEvery) and at least every
// SeedRefresh (which also keeps its connection alive). Entries end with
// UNSEED or the connection. addr is the UDP address the source serves on;
// its host must be empty, unspecified or the connection's own IP, so no
// one can point downloaders at a third party. SOURCES lists the other
// connections' entries for a hash, newest first, at most MaxSourcesReply.
const (
	verbSeed    = "SEED"
	verbUnseed  = "UNSEED"
	verbSources = "SOURCES"

	// MaxSeedsPerConn caps the hashes one connection offers as a partial
	// source (a shell runs a handful of downloads at once).
	MaxSeedsPerConn = 16
	// MaxSeedsPerHash caps the partial sources the master keeps for one
	// hash: a class of 30 fits many times; more are refused (ERR 507).
	MaxSeedsPerHash = 256
	// MaxSeedHashes caps the hashes with partial sources per master.
	MaxSeedHashes = 65536
	// MaxSourcesReply caps the sources one SOURCES answer lists (the
	// client's own cap, transfer.MaxSources, is 64 with the full servers).
	MaxSourcesReply = 32
)

type seedEntry struct {
	ss   *session
	addr string
	have string
	seq  uint64
}

// seedTable is the partial sources by hash. Guarded by Server.mu.
type seedTable struct {
	byHash map[string]map[*session]*seedEntry
	seq    uint64
}

func (ss *session) seed(m line.Msg) error {
	hash := m.Value("hash")
	if !store.ValidHash(hash) {
		return ss.sendErr(line.Errorf(line.CodeSyntax, "SEED: bad hash %q", hash))
	}
	size, err := m.Int("size")
	if err != nil || size < 0 || size > 1<<50 {
		return ss.sendErr(line.Errorf(line.CodeSyntax, "SEED needs size=BYTES"))
	}
	if _, err := line.ParseHave(m.Value("have"), tree.Groups(size)); err != nil {
		return ss.sendErr(line.Errorf(line.CodeSyntax, "SEED: %v", err))
	}
	addr, err := ss.registrationAddr(m.Value("addr"))
	if err != nil {
		return ss.sendErr(line.Errorf(line.CodeSyntax, "SEED: %v", err))
	}
	host, _, _ := net.SplitHostPort(addr)
	peer, _, _ := net.SplitHostPort(ss.remote)
	if hip, pip := net.ParseIP(host), net.ParseIP(peer); hip == nil || pip == nil || !hip.Equal(pip) {
		return ss.sendErr(line.Errorf(line.CodeState, "SEED: addr %s is not this connection's address (%s)", addr, peer))
	}
	s := ss.s
	s.mu.Lock()
	t := &s.seeds
	if t.byHash == nil {
		t.byHash = map[string]map[*session]*seedEntry{}
	}
	srcs := t.byHash[hash]
	_, known := srcs[ss]
	switch {
	case !known && len(ss.seeded) >= MaxSeedsPerConn:
		s.mu.Unlock()
		return ss.sendErr(line.Errorf(line.CodeState, "SEED: %d files offered already on this connection", MaxSeedsPerConn))
	case !known && len(srcs) >= MaxSeedsPerHash, srcs == nil && len(t.byHash) >= MaxSeedHashes:
		s.mu.Unlock()
		return ss.sendErr(line.Errorf(507, "SEED: too many partial sources here; try later"))
	}
	if srcs == nil {
		srcs = map[*session]*seedEntry{}
		t.byHash[hash] = srcs
	}
	t.seq++
	e := srcs[ss]
	if e == nil {
		e = &seedEntry{ss: ss, seq: t.seq}
		srcs[ss] = e
	}
	e.addr, e.have = addr, m.Value("have")
	if ss.seeded == nil {
		ss.seeded = map[string]bool{}
	}
	ss.seeded[hash] = true
	s.mu.Unlock()
	return ss.send(line.NewMsg(line.VerbOK).With("hash", hash).With("addr", addr))
}

func (ss *session) unseed(m line.Msg) error {
	hash := m.Value("hash")
	if !store.ValidHash(hash) {
		return ss.sendErr(line.Errorf(line.CodeSyntax, "UNSEED: bad hash %q", hash))
	}
	ss.s.mu.Lock()
	ss.s.seeds.drop(ss, hash)
	delete(ss.seeded, hash)
	ss.s.mu.Unlock()
	return ss.send(line.NewMsg(line.VerbOK).With("hash", hash))
}

// drop removes ss's entry for hash. Called with Server.mu held.
func (t *seedTable) drop(ss *session, hash string) {
	if srcs := t.byHash[hash]; srcs != nil {
		delete(srcs, ss)
		if len(srcs) == 0 {
			delete(t.byHash, hash)
		}
	}
}

// dropSeeds removes every entry of ss (its connection ends).
func (ss *session) dropSeeds() {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	for h := range ss.seeded {
		ss.s.seeds.drop(ss, h)
	}
	ss.seeded = nil
}

func (ss *session) sources(m line.Msg) error {
	hash := m.Value("hash")
	if !store.ValidHash(hash) {
		return ss.sendErr(line.Errorf(line.CodeSyntax, "SOURCES: bad hash %q", hash))
	}
	ss.s.mu.Lock()
	var es []seedEntry
	for o, e := range ss.s.seeds.byHash[hash] {
		if o != ss {
			es = append(es, *e)
		}
	}
	ss.s.mu.Unlock()
	if len(es) == 0 {
		return ss.send(line.NewMsg(line.VerbNot, "FOUND"))
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq > es[j].seq })
	es = es[:min(len(es), MaxSourcesReply)]
	msgs := []line.Msg{line.NewMsg(line.VerbFound).WithInt("n", int64(len(es)))}
	for _, e := range es {
		msgs = append(msgs, line.NewMsg("S").With("addr", e.addr).With("have", e.have))
	}
	return ss.send(append(msgs, line.NewMsg(line.VerbEnd))...)
}
