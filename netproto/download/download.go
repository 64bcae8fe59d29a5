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
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
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
	Progress      func(transfer.Progress)
	// Started, if set, is told how much was already there (resume).
	Started func(resumedBytes int64, chunkSize int)
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
	part, err := partfile.Open(req.Dir, e.Name, e.Size, e.Hash, chunk, req.Overwrite)
	if err != nil {
		return Result{}, err
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
		Progress:      req.Progress,
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
