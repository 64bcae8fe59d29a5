package push

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
)

// MaxPushTransfers bounds the transfers a Sender's file server follows for
// the progress callbacks; past it a transfer goes unfollowed (it still runs).
const MaxPushTransfers = 1024

// SenderConfig configures a Sender.
type SenderConfig struct {
	Key      string             // shared secret ("" = open network)
	Impair   *transfer.Impair   // may be shared with other roles of the process
	Counters *transfer.Counters // parent of each file server's counters (e.g. the process's); may be nil
	Trace    func(transfer.Event)
	Capture  func(dir transfer.Direction, local, peer netip.AddrPort, b []byte) // see transfer.ServerConfig
}

// SendEventKind says what happened to one push.
type SendEventKind int

// Send events.
const (
	Serving  SendEventKind = iota // the file is hashed (Size) and served (Counters: the file server's, shared by every push it serves)
	Offered                       // the master relayed the offer (ID); it waits for the receiver's answer
	Accepted                      // the receiver accepted and is pulling the file
)

// SendEvent is something that happened to one push.
type SendEvent struct {
	Kind     SendEventKind
	ID       string
	Size     int64
	Counters *transfer.Counters
}

// Push is one file to push.
type Push struct {
	Path string // the file (a regular file)
	Name string // the name it is offered under (line.CheckName)
	To   string // the receiver: an address or a name from the master's peers

	// Progress is told the bytes the receiver has acknowledged in order;
	// OnEvent what happened. Both may be nil; neither may block for long.
	Progress func(done int64)
	OnEvent  func(SendEvent)
}

// Sender pushes files: it serves them from one UDP file server, started
// with the first push and closed when the last one ends.
type Sender struct {
	cfg SenderConfig
	ctx context.Context // the file servers' lifetime

	mu  sync.Mutex // protects srv
	srv *pushServer
}

// NewSender returns a Sender whose file servers run until ctx ends (or
// their last push does).
func NewSender(ctx context.Context, cfg SenderConfig) *Sender {
	return &Sender{cfg: cfg, ctx: ctx}
}

// Send hashes p's file, serves it, offers it through cl and waits for the
// receiver's answer and then the result: nil once the receiver has the
// file and has checked it.
func (s *Sender) Send(ctx context.Context, cl *masterclient.Client, p Push) error {
	hash, size, mtime, err := hashFile(ctx, p.Path)
	if err != nil {
		return err
	}
	ps, release, err := s.serve(p, hash, size, mtime)
	if err != nil {
		return err
	}
	defer release()
	emit := func(ev SendEvent) {
		if p.OnEvent != nil {
			p.OnEvent(ev)
		}
	}
	emit(SendEvent{Kind: Serving, Size: size, Counters: ps.counters})
	o, err := cl.Offer(ctx, p.To, store.File{Name: p.Name, Size: size, Hash: hash}, ps.addr)
	if err != nil {
		return fmt.Errorf("offering to %s: %w", p.To, err)
	}
	defer o.Close()
	emit(SendEvent{Kind: Offered, ID: o.ID})
	accepted := false
	for {
		var ev masterclient.Event
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev = <-o.Events:
		}
		switch ev.Kind {
		case masterclient.Lost:
			if accepted {
				return fmt.Errorf("lost the master (%v): %s's result cannot reach us", ev.Err, p.To)
			}
			return fmt.Errorf("lost the master (%v) before %s answered", ev.Err, p.To)
		case masterclient.OfferAnswered:
			if ev.Offer.Accepted {
				accepted = true
				emit(SendEvent{Kind: Accepted, ID: o.ID})
				continue
			}
			switch ev.Offer.Reason {
			case line.ReasonNoAnswer:
				return fmt.Errorf("%s did not answer within %v", p.To, master.OfferTimeout)
			case line.ReasonReceiverGone:
				return fmt.Errorf("%s went away before answering", p.To)
			}
			return fmt.Errorf("%s refused %s: %s", p.To, p.Name, ev.Offer.Reason)
		case masterclient.OfferFinished:
			switch ev.Offer.Reason {
			case "":
				if p.Progress != nil {
					p.Progress(size)
				}
				return nil
			case line.ReasonReceiverGone:
				return fmt.Errorf("%s went away before it had %s (%s)", p.To, p.Name, line.ReasonReceiverGone)
			}
			return fmt.Errorf("%s could not receive %s: %s", p.To, p.Name, ev.Offer.Reason)
		}
	}
}

// hashFile returns a file's content hash (as the catalog writes it), size and
// modification time.
func hashFile(ctx context.Context, path string) (string, int64, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, time.Time{}, err
	}
	if !st.Mode().IsRegular() {
		return "", 0, time.Time{}, fmt.Errorf("%s is not a regular file", path)
	}
	h := store.NewHash()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", 0, time.Time{}, err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", 0, time.Time{}, fmt.Errorf("hashing %s: %w", path, err)
		}
	}
	return store.FormatHash(h.Sum(nil)), st.Size(), st.ModTime(), nil
}

// pushServer serves the files being pushed, by hash, and follows the
// receivers' REQUESTs and ACKs to report each push's progress.
type pushServer struct {
	srv      *transfer.Server
	addr     string
	done     chan struct{}
	traceF   func(transfer.Event)
	counters *transfer.Counters // this server's (every push it serves)

	mu    sync.Mutex // protects the fields below
	files map[string]*pushFile
	xfers map[pushXfer]pushTrack
}

// pushFile is one file being served, for one or more pushes.
type pushFile struct {
	path     string
	size     int64
	mtime    time.Time
	progress map[*Push]bool // the pushes of this content, told its progress
}

type pushXfer struct {
	peer netip.AddrPort
	tid  uint64
}

type pushTrack struct {
	hash  string
	chunk int64
	done  int64 // bytes acknowledged in order
}

// serve makes the push server serve p's file (with this hash) and returns
// the server (its address is the one to offer) and a function that stops
// serving it for p.
func (s *Sender) serve(p Push, hash string, size int64, mtime time.Time) (*pushServer, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		srv, err := s.startServer()
		if err != nil {
			return nil, nil, err
		}
		s.srv = srv
	}
	ps := s.srv
	ps.mu.Lock()
	f := ps.files[hash] // the same content sent twice is served once
	if f == nil {
		f = &pushFile{path: p.Path, size: size, mtime: mtime, progress: map[*Push]bool{}}
		ps.files[hash] = f
	}
	f.progress[&p] = true
	ps.mu.Unlock()
	release := func() {
		s.mu.Lock()
		ps.mu.Lock()
		delete(f.progress, &p)
		if len(f.progress) == 0 && ps.files[hash] == f {
			delete(ps.files, hash)
			for k, t := range ps.xfers {
				if t.hash == hash {
					delete(ps.xfers, k)
				}
			}
		}
		idle := len(ps.files) == 0
		ps.mu.Unlock()
		if idle && s.srv == ps {
			s.srv = nil
		} else {
			idle = false
		}
		s.mu.Unlock()
		if idle {
			ps.close()
		}
	}
	return ps, release, nil
}

func (s *Sender) startServer() (*pushServer, error) {
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return nil, fmt.Errorf("opening a udp socket to serve the file: %w", err)
	}
	ps := &pushServer{addr: pc.LocalAddr().String(), done: make(chan struct{}), traceF: s.cfg.Trace,
		counters: transfer.NewCounters(s.cfg.Counters), files: map[string]*pushFile{}, xfers: map[pushXfer]pushTrack{}}
	ps.srv = transfer.NewServer(pc, transfer.ServerConfig{
		Open:     ps.open,
		Key:      transfer.UDPKey(s.cfg.Key),
		Impair:   s.cfg.Impair,
		Counters: ps.counters,
		Trace:    ps.follow,
		Capture:  s.cfg.Capture,
	})
	go func() {
		defer close(ps.done)
		ps.srv.Serve(s.ctx)
	}()
	return ps, nil
}

func (ps *pushServer) close() {
	ps.srv.Close()
	<-ps.done
}

// pushedFile is an offered file opened for the transfer server.
type pushedFile struct {
	*os.File
	size int64
}

func (f pushedFile) Size() int64 { return f.size }

// errNotOffered is what a REQUEST for anything but a file being pushed gets.
var errNotOffered = fmt.Errorf("%w: not offered", transfer.ErrNotFound)

// open serves a REQUEST: only files being pushed, and only as they were
// when offered (the receiver checks the hash anyway; this fails early).
func (ps *pushServer) open(hash string) (transfer.File, error) {
	ps.mu.Lock()
	pf := ps.files[hash]
	ps.mu.Unlock()
	if pf == nil {
		return nil, errNotOffered
	}
	f, err := os.Open(pf.path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || st.Size() != pf.size || !st.ModTime().Equal(pf.mtime) {
		f.Close()
		return nil, fmt.Errorf("%w: %s changed since it was offered", transfer.ErrNotFound, pf.path)
	}
	return pushedFile{File: f, size: pf.size}, nil
}

// follow is the transfer server's event hook: it follows each transfer's
// REQUEST and ACKs to report its pushes' progress, then passes the event
// to the configured trace. (transfer.Server reports acknowledgements
// through its events only.)
func (ps *pushServer) follow(ev transfer.Event) {
	if ev.Dir == transfer.Received {
		ps.track(ev)
	}
	if ps.traceF != nil {
		ps.traceF(ev)
	}
}

func (ps *pushServer) track(ev transfer.Event) {
	k := pushXfer{ev.Peer, ev.Header.Transfer}
	var report []*Push
	var done int64
	ps.mu.Lock()
	switch {
	case ev.Request != nil:
		hash := store.Sum(ev.Request.Hash).String()
		if _, ok := ps.files[hash]; ok && len(ps.xfers) < MaxPushTransfers {
			ps.xfers[k] = pushTrack{hash: hash, chunk: int64(ev.Request.ChunkSize)}
		}
	case ev.Ack != nil:
		if t, ok := ps.xfers[k]; ok {
			if f := ps.files[t.hash]; f != nil {
				if done = min(int64(ev.Ack.Cumulative)*t.chunk, f.size); done > t.done {
					t.done = done
					ps.xfers[k] = t
					for p := range f.progress {
						if p.Progress != nil {
							report = append(report, p)
						}
					}
				}
			}
		}
	case ev.Done != nil:
		delete(ps.xfers, k)
	}
	ps.mu.Unlock()
	for _, p := range report {
		p.Progress(done)
	}
}
