// Package fileserver is the share role: it indexes shared folders
// (store/shareindex), keeps them registered with the master(s)
// (masterclient.Registrar) and serves them over the UDP chunk protocol
// (transfer.Server). A periodic rescan picks up changes and registers the new
// list. A file found modified when a client asks for it, or while it is being
// served, fails that transfer and triggers a rescan RescanSettle later (the
// writer is usually not done yet); a rescan that changed the list is followed
// by another RescanSettle later, so a file caught half-written is registered
// again once it stops changing. Every read is checked against the indexed
// version before its bytes are sent, so new content is never served under an
// old hash, not even in part.
//
// Server is the running role; Config says what to share and where; Event
// reports what the shell may want to show (roles never print).
package fileserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/shareindex"
	"github.com/fxshell/fxsh/store/tree"
)

// Rescan timing.
const (
	// DefaultRescan is how often shared folders are re-indexed.
	DefaultRescan = 30 * time.Second
	// RescanSettle is how long a rescan asked for by Kick waits, and how
	// soon a rescan that changed the list (or failed) is followed by
	// another: a file found modified is usually still being written, and a
	// scan can catch it truncated or changing under the hasher.
	RescanSettle = time.Second
	// MaxSettleRescans bounds the follow-ups in a row, so a file that is
	// always being written (a log) is rescanned at the normal pace.
	MaxSettleRescans = 5
)

// Config says what to share and how.
type Config struct {
	Paths     []string // folders and files to share
	UDPAddr   string   // where to serve; "" = ":0" (every interface, any port)
	Masters   []string
	Key       string        // shared key ("" = open network)
	CachePath string        // hash cache file ("" = memory only)
	Rescan    time.Duration // 0: DefaultRescan
	Settle    time.Duration // 0: RescanSettle

	Impair   *transfer.Impair
	Counters *transfer.Counters
	Trace    func(transfer.Event)
	Capture  func(dir transfer.Direction, local, peer netip.AddrPort, b []byte) // see transfer.ServerConfig
	// TraceActive: see transfer.ServerConfig.
	TraceActive func() bool
	LineTrace   func(line.TraceEvent)
	OnEvent     func(Event)
}

// EventKind says what happened.
type EventKind int

const (
	Registered EventKind = iota // the file list is registered on Master
	MasterLost                  // the master connection ended (Err); it is retried
	Refused                     // the master refused us (Err)
	Rescanned                   // a rescan changed the list (Files)
	Warning                     // a file was skipped (Err)
	Modified                    // a file changed since it was indexed (Err); a rescan follows
)

// Event is a change the shell may show.
type Event struct {
	Kind   EventKind
	Master string
	Files  int
	Addr   string // Registered: the address the master lists us under
	Err    error
	Retry  time.Duration
}

// openTree serves the tree object (store/tree) of an indexed file.
func (s *Server) openTree(hash string) (transfer.File, error) {
	t, err := s.idx.Tree(hash)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", transfer.ErrNotFound, err)
	}
	return TreeFile(t), nil
}

// TreeFile serves a tree object from memory.
func TreeFile(t *tree.Tree) transfer.File {
	b := tree.AppendTree(nil, t)
	return memFile{bytes.NewReader(b)}
}

type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

// Server is a running share.
type Server struct {
	cfg  Config
	idx  *shareindex.Index
	udp  *transfer.Server
	reg  *masterclient.Registrar
	addr string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // asks the rescan loop to rescan now

	mu         sync.Mutex // protects the fields below
	earlyProof string     // an ownership token that arrived before reg was set
	files      []store.File
	modified   error // the modification behind the pending Kick, reported by rescanLoop
}

// Start indexes cfg.Paths, opens the UDP socket, starts serving and starts
// registering. It fails if there is nothing to share or the socket cannot be
// opened; warnings about skipped files are returned (and not sent as events).
func Start(ctx context.Context, cfg Config) (*Server, []shareindex.Warning, error) {
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.Settle <= 0 {
		cfg.Settle = RescanSettle
	}
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = ":0"
	}
	idx, err := shareindex.New(shareindex.Config{Paths: cfg.Paths, CachePath: cfg.CachePath})
	if err != nil {
		return nil, nil, err
	}
	files, warns, err := idx.Scan(ctx)
	if err != nil {
		idx.Close()
		return nil, warns, err
	}
	pc, err := net.ListenPacket("udp", cfg.UDPAddr)
	if err != nil {
		idx.Close()
		return nil, warns, fmt.Errorf("opening udp %s: %w", cfg.UDPAddr, err)
	}
	s := &Server{cfg: cfg, idx: idx, addr: pc.LocalAddr().String(), files: files, kick: make(chan struct{}, 1)}
	s.udp = transfer.NewServer(pc, transfer.ServerConfig{
		Open:        s.open,
		OpenTree:    s.openTree,
		Key:         transfer.UDPKey(cfg.Key),
		Impair:      cfg.Impair,
		Counters:    cfg.Counters,
		Trace:       cfg.Trace,
		OnProof:     s.proof,
		Capture:     cfg.Capture,
		TraceActive: cfg.TraceActive,
	})
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.udp.Serve(runCtx)
	}()
	mcfg := masterclient.Config{
		Masters: cfg.Masters,
		Role:    store.RoleServer,
		Trace:   cfg.LineTrace,
		OnEvent: s.masterEvent,
	}
	if cfg.Key != "" {
		mcfg.Key = []byte(cfg.Key)
	}
	reg, err := masterclient.StartRegistrar(runCtx, mcfg, masterclient.Registration{
		Addr: s.addr, Role: store.RoleServer, Files: files,
	})
	if err != nil {
		cancel()
		s.udp.Close()
		s.wg.Wait()
		idx.Close()
		return nil, warns, fmt.Errorf("registering: %w", err)
	}
	s.mu.Lock()
	s.reg = reg
	early := s.earlyProof
	s.mu.Unlock()
	if early != "" {
		reg.Proof(early) // a challenge that came before s.reg was set
	}
	s.wg.Add(1)
	go s.rescanLoop(runCtx)
	return s, warns, nil
}

// proof hands the registrar a master's ownership challenge that reached
// the UDP socket (the registrar may not exist yet: nothing asked then).
func (s *Server) proof(token string) {
	s.mu.Lock()
	reg := s.reg
	if reg == nil {
		s.earlyProof = token
	}
	s.mu.Unlock()
	if reg != nil {
		reg.Proof(token)
	}
}

// open serves the UDP server's requests; a modified file asks for a rescan.
func (s *Server) open(hash string) (transfer.File, error) {
	f, err := s.idx.Open(hash)
	if err != nil {
		if errors.Is(err, shareindex.ErrModified) {
			s.noteModified(err)
		}
		if errors.Is(err, shareindex.ErrModified) {
			return nil, fmt.Errorf("%w: %w: %w", transfer.ErrNotFound, transfer.ErrChanged, err)
		}
		if errors.Is(err, shareindex.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", transfer.ErrNotFound, err)
		}
		return nil, err
	}
	return checkedFile{f, s}, nil
}

// checkedFile serves only bytes of the indexed version. shareindex.File
// checks the file every ModCheckBytes, which would let up to 4 MiB of a file
// rewritten in place go out under the old hash; checkedFile checks after
// every read instead (one fstat, cheap next to the read). Linux file systems
// update a file's mtime in write(2) before its bytes land, so a read that saw
// any new byte is followed by a Check that fails, and the read is dropped.
// (This is as good as the mtime: a rewrite within the same clock tick as the
// indexed write, or through a shared mapping, is left to the client's hash
// check, which keeps it from ever appearing under the file's name.)
type checkedFile struct {
	shareindex.File
	s *Server
}

func (f checkedFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	if err == nil || err == io.EOF {
		if cerr := f.File.Check(); cerr != nil {
			n, err = 0, cerr
		}
	}
	if errors.Is(err, shareindex.ErrModified) {
		f.s.noteModified(err)
		err = fmt.Errorf("%w: %w", transfer.ErrChanged, err)
	}
	return n, err
}

// noteModified asks for a rescan because of err, which rescanLoop reports.
func (s *Server) noteModified(err error) {
	s.mu.Lock()
	s.modified = err
	s.mu.Unlock()
	s.Kick()
}

func (s *Server) masterEvent(ev masterclient.Event) {
	if s.cfg.OnEvent == nil {
		return
	}
	switch ev.Kind {
	case masterclient.Registered:
		s.cfg.OnEvent(Event{Kind: Registered, Master: ev.Master, Files: ev.Files, Addr: ev.Addr})
	case masterclient.Lost:
		s.cfg.OnEvent(Event{Kind: MasterLost, Master: ev.Master, Err: ev.Err, Retry: ev.Retry})
	case masterclient.Refused:
		s.cfg.OnEvent(Event{Kind: Refused, Master: ev.Master, Err: ev.Err})
	}
}

// Kick asks for a rescan cfg.Settle from now (coalesced).
func (s *Server) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// rescanLoop rescans every cfg.Rescan, cfg.Settle after a Kick, and again
// cfg.Settle after a rescan that changed the list or failed (at most
// MaxSettleRescans times in a row).
func (s *Server) rescanLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Rescan)
	defer t.Stop()
	var settle <-chan time.Time // a rescan due cfg.Settle after a kick or a change
	followUps := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
			s.mu.Lock()
			err := s.modified
			s.modified = nil
			s.mu.Unlock()
			if settle == nil { // else a rescan is already due, and was reported
				settle = time.After(s.cfg.Settle)
				if err != nil {
					s.event(Event{Kind: Modified, Err: err})
				}
			}
			continue
		case <-settle:
		}
		settle = nil
		changed, _, err := s.Rescan(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.event(Event{Kind: Warning, Err: fmt.Errorf("rescan: %w", err)})
		}
		if !changed && err == nil {
			followUps = 0
		} else if followUps < MaxSettleRescans {
			followUps++
			settle = time.After(s.cfg.Settle)
		}
	}
}

func (s *Server) event(ev Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

// Rescan re-indexes the shared paths and registers the new list if it
// changed. It reports whether it changed.
func (s *Server) Rescan(ctx context.Context) (bool, []shareindex.Warning, error) {
	gen := s.idx.Generation()
	files, warns, err := s.idx.Scan(ctx)
	if err != nil {
		return false, warns, err
	}
	if s.idx.Generation() == gen {
		return false, warns, nil
	}
	s.mu.Lock()
	s.files = files
	s.mu.Unlock()
	if err := s.reg.Update(files); err != nil {
		return true, warns, fmt.Errorf("registering the new list: %w", err)
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(Event{Kind: Rescanned, Files: len(files)})
	}
	return true, warns, nil
}

// WaitRegistered waits until the first registration is recorded.
func (s *Server) WaitRegistered(ctx context.Context) error { return s.reg.WaitRegistered(ctx) }

// Addr is the UDP address the share serves on.
func (s *Server) Addr() string { return s.addr }

// Paths are the shared paths.
func (s *Server) Paths() []string { return s.idx.Paths() }

// Files returns the files offered.
func (s *Server) Files() []store.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.File(nil), s.files...)
}

// Master is the master currently registered with.
func (s *Server) Master() string { return s.reg.Master() }

// Stats returns the UDP server's counters.
func (s *Server) Stats() transfer.Stats { return s.udp.Stats() }

// ActiveWithin is how recently a client must have been heard for its
// transfer to count as a running download (Downloads): a client that
// downloads ACKs every few milliseconds; one that went away without a DONE
// is forgotten only after transfer.DefaultIdleTimeout.
const ActiveWithin = 2 * time.Second

// Downloads reports how many downloads from this share are running now,
// and from how many hosts (IP addresses): what stopping it would cut.
func (s *Server) Downloads() (n, hosts int) { return s.udp.Downloads(ActiveWithin) }

// Close says BYE to the master and, at the same time, tells every client
// downloading that the server is leaving (transfer.Server.Close: ERROR
// leaving, within transfer.MaxLeaveDelay), so no new client is sent here
// and the running ones fail over or fail at once; then it closes the
// index.
func (s *Server) Close(ctx context.Context) error {
	left := make(chan struct{})
	go func() {
		defer close(left)
		s.udp.Close()
	}()
	err := s.reg.Close(ctx)
	<-left
	s.cancel()
	s.wg.Wait()
	if cerr := s.idx.Close(); err == nil {
		err = cerr
	}
	return err
}
