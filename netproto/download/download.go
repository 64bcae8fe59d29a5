// Package download is the client's download role: it fetches one catalog
// entry over the UDP chunk protocol (netproto/transfer) into a resumable
// partial file (store/partfile), checks the whole file's content hash and gives it
// its final name. A cancelled or failed download keeps its partial file and
// state, so the next Get of the same entry asks only for the missing chunks.
package download

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
	"github.com/fxshell/fxsh/store/tree"
)

// Request is one download.
type Request struct {
	Entry     store.Entry // name, size, hash and the servers holding it
	Dir       string      // download folder; the file never lands outside it
	As        string      // the name to save under ("" = Entry.Name), e.g. where Entry.Name is not valid on this system
	Overwrite bool        // replace an existing file of that name
	ChunkSize int         // 0: chosen from the sources (transfer.ChooseChunkSize)
	Key       string      // shared secret ("" = open network)

	SourceTimeout time.Duration // how long a silent source is retried (0: transfer's default)
	Impair        *transfer.Impair
	Counters      *transfer.Counters
	Trace         func(transfer.Event)
	Capture       func(dir transfer.Direction, local, peer netip.AddrPort, b []byte) // see transfer.ClientConfig
	TraceActive   func() bool                                                        // see transfer.ClientConfig
	Progress      func(transfer.Progress)
	// Started, if set, is told how much was already there (resume).
	Started func(resumedBytes int64, chunkSize int)
	// Groups, if set, records the 64 KiB groups checked against the
	// file's tree as they pass (a seeding server offers them). It must
	// be tree.NewHave(Entry.Size).
	Groups *tree.Have
	// Opened, if set, is called with the partial file once it is open
	// and the tree known (tr nil: the file is checked whole at the end),
	// before any chunk is fetched: a seeding server reads checked groups
	// from it.
	Opened func(part *partfile.Part, tr *tree.Tree)
	// Peers, if set, returns the partial sources of the file (other
	// downloaders, from the master); it is asked every PeerPoll while
	// the file downloads with a tree, and the fetch takes them on.
	Peers func(ctx context.Context) ([]transfer.Peer, error)
	// WholeFile checks the file whole at the end instead of group by
	// group against its tree (as before verified streaming; for
	// comparison).
	WholeFile bool
	// Suspects, if set, remembers the sources whose bytes failed the
	// whole-file check: later downloads of the same content leave them
	// out while other servers offer it (the shell keeps one per process).
	Suspects *Suspects
}

// PeerPoll is how often a download asks for new partial sources.
const PeerPoll = 300 * time.Millisecond

// Result says what a download did.
type Result struct {
	Path    string // the final file, relative to Dir
	Bytes   int64  // bytes received by this run
	Resumed int64  // bytes that were already there
	Elapsed time.Duration
	Fetch   transfer.Result
	// Suspects are the sources whose bytes failed the whole-file check
	// (then the download was retried once without them), or that an
	// earlier download remembered and this one left out.
	Suspects []string
	// Restarted: the whole-file check failed after a resume with no
	// other server to turn to, so the download started over once.
	Restarted bool
}

// SuspectError is a download whose whole-file check failed: the bytes of
// Suspects (the sources that delivered any) are not the file. Nothing is
// left under the final name and the partial file is gone.
type SuspectError struct {
	Suspects []string
	Err      error // wraps partfile.ErrHashMismatch
}

func (e *SuspectError) Error() string {
	return fmt.Sprintf("%v; suspect: %s (get NAME@HOST:PORT from another server)", e.Err, strings.Join(e.Suspects, ", "))
}

func (e *SuspectError) Unwrap() error { return e.Err }

// MaxSuspectHashes bounds what a Suspects remembers: the contents whose
// check failed, each with at most MaxSuspectsPerHash sources (a lying peer
// cannot make a client hold more than this).
const (
	MaxSuspectHashes   = 1024
	MaxSuspectsPerHash = 64
)

// Suspects remembers, per content hash, the sources whose bytes failed the
// whole-file check. The zero value is not usable: use NewSuspects. It is
// safe for concurrent use.
type Suspects struct {
	mu sync.Mutex
	m  map[string]map[string]bool
}

// NewSuspects returns an empty Suspects.
func NewSuspects() *Suspects { return &Suspects{m: map[string]map[string]bool{}} }

// Add records addrs as suspects for hash.
func (s *Suspects) Add(hash string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.m[hash]
	if set == nil {
		if len(s.m) >= MaxSuspectHashes {
			for h := range s.m { // forget one: the cap matters, not which
				delete(s.m, h)
				break
			}
		}
		set = map[string]bool{}
		s.m[hash] = set
	}
	for _, a := range addrs {
		if len(set) < MaxSuspectsPerHash {
			set[a] = true
		}
	}
}

// Filter returns servers without the suspects of hash, and the suspects
// left out; when every server is a suspect it returns them all (a suspect
// is better than nothing; the check still guards the file).
func (s *Suspects) Filter(hash string, servers []string) (keep, avoided []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.m[hash]
	for _, a := range servers {
		if set[a] {
			avoided = append(avoided, a)
		} else {
			keep = append(keep, a)
		}
	}
	if len(keep) == 0 {
		return servers, nil
	}
	return keep, avoided
}

// Get runs a download to the end. On failure or cancellation the partial
// file stays for a later resume, except after a failed whole-file check:
// then the partial state is discarded, the sources that delivered bytes
// are remembered as suspects (req.Suspects) and the download is retried
// once, from scratch, without them — or, when there is no other server
// and the failed run had resumed bytes from an earlier one (which may be
// what was wrong), once with the same servers. A second failure is a
// *SuspectError naming the sources.
func Get(ctx context.Context, req Request) (Result, error) {
	e := req.Entry
	if len(e.Servers) == 0 {
		return Result{}, errors.New("no server offers it")
	}
	servers, avoided := e.Servers, []string(nil)
	if req.Suspects != nil {
		servers, avoided = req.Suspects.Filter(e.Hash, e.Servers)
	}
	res, err := get(ctx, req, servers)
	res.Suspects = avoided
	if !errors.Is(err, partfile.ErrHashMismatch) {
		return res, err
	}
	took := contributors(res.Fetch)
	// Which servers to try again, once each set: those that gave no
	// bytes; else, after a resume (the resumed bytes may be what was
	// wrong), the same ones from scratch; else, when several mixed their
	// bytes, each alone (at most MaxSoloRetries), so that the one whose
	// file checks out is told from the liars.
	var tries [][]string
	solo, restarted := false, false
	switch retry := without(servers, took); {
	case len(retry) > 0:
		tries = [][]string{retry}
		if req.Suspects != nil && res.Resumed == 0 {
			req.Suspects.Add(e.Hash, took...)
		}
	case res.Resumed > 0:
		tries, restarted = [][]string{servers}, true
	case len(took) > 1:
		solo = true
		for _, a := range took[:min(len(took), MaxSoloRetries)] {
			tries = append(tries, []string{a})
		}
	}
	failed := took
	for _, t := range tries {
		if ctx.Err() != nil {
			break
		}
		res2, err2 := get(ctx, req, t)
		res2.Resumed = res.Resumed
		res2.Restarted = restarted
		if !errors.Is(err2, partfile.ErrHashMismatch) {
			switch {
			case solo && err2 == nil:
				res2.Suspects = append(avoided, without(took, t)...)
				if req.Suspects != nil {
					req.Suspects.Add(e.Hash, without(took, t)...)
				}
			case !restarted:
				res2.Suspects = append(avoided, took...)
			}
			return res2, err2
		}
		res, err = res2, err2
		c := contributors(res2.Fetch)
		if solo && req.Suspects != nil {
			req.Suspects.Add(e.Hash, c...) // it failed alone: its bytes are not the file
		}
		failed = append(failed, without(c, failed)...)
	}
	return res, &SuspectError{Suspects: failed, Err: err}
}

// MaxSoloRetries bounds the sources tried alone after a failed whole-file
// check of bytes mixed from several (each try is a whole download).
const MaxSoloRetries = 3

// contributors are the sources that delivered bytes in a fetch.
func contributors(fr transfer.Result) []string {
	var out []string
	for _, s := range fr.Sources {
		if s.Bytes > 0 {
			out = append(out, s.Addr)
		}
	}
	return out
}

// without returns the servers not in drop.
func without(servers, drop []string) []string {
	var out []string
	for _, s := range servers {
		if !slices.Contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

// get is one attempt of Get from servers.
func get(ctx context.Context, req Request, servers []string) (Result, error) {
	e := req.Entry
	e.Servers = servers
	req.Entry = e
	chunk := req.ChunkSize
	if chunk == 0 {
		chunk = transfer.ChooseChunkSize(e.Servers)
	}
	start := time.Now()
	tr, err := optionalTree(ctx, req, chunk)
	if err != nil {
		return Result{}, err
	}
	local := e.Name
	if req.As != "" {
		local = req.As
	}
	part, err := partfile.Open(req.Dir, local, e.Size, e.Hash, chunk, req.Overwrite)
	if err != nil {
		return Result{}, err
	}
	if tr != nil {
		part.CheckedByTree()
	}
	if req.Opened != nil {
		req.Opened(part, tr)
	}
	_, resumed := part.Count()
	if req.Started != nil {
		req.Started(resumed, part.ChunkSize())
	}
	res := Result{Path: local, Resumed: resumed}
	fr, err := fetchInto(ctx, req, part, tr)
	res.Fetch = fr
	res.Bytes = fr.Bytes
	if err != nil {
		if cerr := part.Close(); cerr != nil {
			err = fmt.Errorf("%w (and saving the partial file: %v)", err, cerr)
		}
		return res, err
	}
	if err := part.Finish(ctx); err != nil {
		if !errors.Is(err, partfile.ErrHashMismatch) {
			part.Close()
		}
		return res, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// optionalTree fetches the file's tree for verified streaming; nil when the
// file is too small to need one, the user asked for the whole-file check,
// or no source gave a tree (a server without trees, a push from an older
// fxsh): then the file is checked whole at the end, as before verified
// streaming. Only a cancelled ctx is an error.
func optionalTree(ctx context.Context, req Request, chunk int) (*tree.Tree, error) {
	if !tree.Checkable(req.Entry.Size) || req.WholeFile {
		return nil, nil
	}
	tr, err := FetchTree(ctx, req, chunk)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, nil
	}
	return tr, nil
}

// fetchInto runs the UDP transfer of req's file into part from its
// servers, on a socket of its own, polling for peers when the file is
// checked by tr.
func fetchInto(ctx context.Context, req Request, part *partfile.Part, tr *tree.Tree) (transfer.Result, error) {
	e := req.Entry
	conn, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return transfer.Result{}, fmt.Errorf("opening a udp socket: %w", err)
	}
	defer conn.Close()
	var peers chan []transfer.Peer
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	if tr != nil && req.Peers != nil {
		peers = make(chan []transfer.Peer, 1)
		go pollPeers(pollCtx, req.Peers, peers)
	}
	return transfer.Fetch(ctx, conn, transfer.Request{
		Hash: e.Hash, Size: e.Size, ChunkSize: part.ChunkSize(), Sources: e.Servers,
	}, part, transfer.ClientConfig{
		Key:           transfer.UDPKey(req.Key),
		SourceTimeout: req.SourceTimeout,
		Impair:        req.Impair,
		Counters:      req.Counters,
		Trace:         req.Trace,
		Capture:       req.Capture,
		TraceActive:   req.TraceActive,
		Progress:      req.Progress,
		Tree:          tr,
		Groups:        req.Groups,
		Peers:         peers,
	})
}

// FetchTree fetches the tree of req's file (store/tree) from its servers
// and checks that it leads to the content hash. The tree is small (32 bytes
// per 64 KiB) and checked whole, so one lying server cannot poison it: when
// the tree from all servers together does not check, each is asked alone
// and the first good tree wins.
func FetchTree(ctx context.Context, req Request, chunkSize int) (*tree.Tree, error) {
	e := req.Entry
	sum, err := store.ParseHash(e.Hash)
	if err != nil {
		return nil, err
	}
	try := func(sources []string) (*tree.Tree, error) {
		conn, err := net.ListenPacket("udp", ":0")
		if err != nil {
			return nil, fmt.Errorf("opening a udp socket: %w", err)
		}
		defer conn.Close()
		sink := newMemSink(tree.Bytes(e.Size), chunkSize)
		_, err = transfer.Fetch(ctx, conn, transfer.Request{
			Hash: e.Hash, Size: tree.Bytes(e.Size), ChunkSize: chunkSize, Sources: sources, Tree: true,
		}, sink, transfer.ClientConfig{
			Key:           transfer.UDPKey(req.Key),
			SourceTimeout: req.SourceTimeout,
			Impair:        req.Impair,
			Counters:      req.Counters,
			Trace:         req.Trace,
		})
		if err != nil {
			return nil, err
		}
		t, err := tree.ParseTree(sink.b, e.Size)
		if err == nil {
			err = t.Verify(e.Size, sum)
		}
		return t, err
	}
	t, err := try(e.Servers)
	if err == nil || len(e.Servers) == 1 || !errors.Is(err, tree.ErrBadTree) {
		if err != nil {
			return nil, fmt.Errorf("fetching the file's tree: %w", err)
		}
		return t, nil
	}
	var errs []error
	for _, s := range e.Servers {
		t, err := try([]string{s})
		if err == nil {
			return t, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s, err))
	}
	return nil, fmt.Errorf("fetching the file's tree: %w", errors.Join(errs...))
}

// memSink holds a small object (a tree) in memory.
type memSink struct {
	b         []byte
	have      []bool
	chunkSize int
}

func newMemSink(size int64, chunkSize int) *memSink {
	n := (size + int64(chunkSize) - 1) / int64(chunkSize)
	return &memSink{b: make([]byte, size), have: make([]bool, n), chunkSize: chunkSize}
}

func (m *memSink) Have(i int) bool { return i >= 0 && i < len(m.have) && m.have[i] }

func (m *memSink) WriteChunk(i int, data []byte) error {
	if i < 0 || i >= len(m.have) {
		return fmt.Errorf("chunk %d of %d", i, len(m.have))
	}
	copy(m.b[i*m.chunkSize:], data)
	m.have[i] = true
	return nil
}

// pollPeers asks for partial sources every PeerPoll and hands the news to
// the fetch (the newest list replaces one it has not taken yet).
func pollPeers(ctx context.Context, ask func(context.Context) ([]transfer.Peer, error), out chan []transfer.Peer) {
	t := time.NewTicker(PeerPoll)
	defer t.Stop()
	for {
		if ps, err := ask(ctx); err == nil && len(ps) > 0 {
			select {
			case <-out:
			default:
			}
			out <- ps
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
