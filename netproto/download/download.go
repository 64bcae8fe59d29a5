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
	Overwrite bool        // replace an existing file of that name
	ChunkSize int         // 0: chosen from the sources (transfer.ChooseChunkSize)
	Key       string      // shared secret ("" = open network)

	SourceTimeout time.Duration // how long a silent source is retried (0: transfer's default)
	Impair        *transfer.Impair
	Counters      *transfer.Counters
	Trace         func(transfer.Event)
	Capture       func(dir transfer.Direction, local, peer netip.AddrPort, b []byte) // see transfer.ClientConfig
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
}

// Result says what a download did.
type Result struct {
	Path    string // the final file, relative to Dir
	Bytes   int64  // bytes received by this run
	Resumed int64  // bytes that were already there
	Elapsed time.Duration
	Fetch   transfer.Result
}

// Get runs a download to the end. On failure or cancellation the partial
// file stays for a later resume, except after a hash mismatch, when it is
// removed so that a retry starts clean.
func Get(ctx context.Context, req Request) (Result, error) {
	e := req.Entry
	if len(e.Servers) == 0 {
		return Result{}, errors.New("no server offers it")
	}
	chunk := req.ChunkSize
	if chunk == 0 {
		chunk = transfer.ChooseChunkSize(e.Servers)
	}
	start := time.Now()
	var tr *tree.Tree
	if tree.Checkable(e.Size) {
		var err error
		if tr, err = FetchTree(ctx, req, chunk); err != nil {
			if ctx.Err() != nil {
				return Result{}, err
			}
			// No source gave a tree (a server without trees, a push from
			// an older fxsh): the file is checked whole at the end, as
			// before verified streaming.
			tr = nil
		}
	}
	part, err := partfile.Open(req.Dir, e.Name, e.Size, e.Hash, chunk, req.Overwrite)
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
	res := Result{Path: e.Name, Resumed: resumed}
	conn, err := net.ListenPacket("udp", ":0")
	if err != nil {
		part.Close()
		return res, fmt.Errorf("opening a udp socket: %w", err)
	}
	fr, err := transfer.Fetch(ctx, conn, transfer.Request{
		Hash: e.Hash, Size: e.Size, ChunkSize: part.ChunkSize(), Sources: e.Servers,
	}, part, transfer.ClientConfig{
		Key:           transfer.UDPKey(req.Key),
		SourceTimeout: req.SourceTimeout,
		Impair:        req.Impair,
		Counters:      req.Counters,
		Trace:         req.Trace,
		Capture:       req.Capture,
		Progress:      req.Progress,
		Tree:          tr,
		Groups:        req.Groups,
	})
	conn.Close()
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
