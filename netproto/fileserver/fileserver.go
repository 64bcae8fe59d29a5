// Package fileserver is the share role: it indexes shared folders
// (store/shareindex), keeps them registered with the master(s)
// (masterclient.Registrar) and serves them over the UDP chunk protocol
// (transfer.Server). A periodic rescan picks up changes and registers the new
// list; a file found modified while being served triggers a rescan at once,
// so new content is never served under an old hash.
//
// Server is the running role; Config says what to share and where; Event
// reports what the shell may want to show (roles never print).
package fileserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"fxsh/netproto/line"
	"fxsh/netproto/masterclient"
	"fxsh/netproto/transfer"
	"fxsh/store"
	"fxsh/store/shareindex"
)

// DefaultRescan is how often shared folders are re-indexed.
const DefaultRescan = 30 * time.Second

// Config says what to share and how.
type Config struct {
	Paths     []string // folders and files to share
	UDPAddr   string   // where to serve; "" = ":0" (every interface, any port)
	Masters   []string
	Key       string // shared key ("" = open network)
	CachePath string // hash cache file ("" = memory only)
	Rescan    time.Duration

	Impair    *transfer.Impair
	Counters  *transfer.Counters
	Trace     func(transfer.Event)
	LineTrace func(line.TraceEvent)
	OnEvent   func(Event)
}

// EventKind says what happened.
type EventKind int

const (
	Registered EventKind = iota // the file list is registered on Master
	MasterLost                  // the master connection ended (Err); it is retried
	Refused                     // the master refused us (Err)
	Rescanned                   // a rescan changed the list (Files)
	Warning                     // a file was skipped (Err)
	Offered                     // a push offer (receivers only; see masterclient)
)

// Event is a change the shell may show.
type Event struct {
	Kind   EventKind
	Master string
	Files  int
	Err    error
	Retry  time.Duration
	Offer  *masterclient.Offer
}

// UDPKey derives the chunk protocol's key from the shared secret: any
// passphrase length is accepted on the command line, the AEAD wants 32
// bytes, and the TCP protocol's HMAC must not reuse the same bytes.
func UDPKey(secret string) []byte {
	if secret == "" {
		return nil
	}
	h := sha256.Sum256([]byte("fxsh/1 udp key\x00" + secret))
	return h[:]
}

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

	mu    sync.Mutex // protects files
	files []store.File
}

// Start indexes cfg.Paths, opens the UDP socket, starts serving and starts
// registering. It fails if there is nothing to share or the socket cannot be
// opened; warnings about skipped files are returned (and not sent as events).
func Start(ctx context.Context, cfg Config) (*Server, []shareindex.Warning, error) {
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
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
		Open:     s.open,
		Key:      UDPKey(cfg.Key),
		Impair:   cfg.Impair,
		Counters: cfg.Counters,
		Trace:    cfg.Trace,
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
	s.reg = reg
	s.wg.Add(1)
	go s.rescanLoop(runCtx)
	return s, warns, nil
}

// open serves the UDP server's requests; a modified file asks for a rescan.
func (s *Server) open(hash string) (transfer.File, error) {
	f, err := s.idx.Open(hash)
	if err != nil {
		if errors.Is(err, shareindex.ErrModified) {
			s.Kick()
		}
		if errors.Is(err, shareindex.ErrNotFound) || errors.Is(err, shareindex.ErrModified) {
			return nil, fmt.Errorf("%w: %v", transfer.ErrNotFound, err)
		}
		return nil, err
	}
	return checkedFile{f, s}, nil
}

// checkedFile turns a modification noticed while reading into a rescan.
type checkedFile struct {
	shareindex.File
	s *Server
}

func (f checkedFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	if errors.Is(err, shareindex.ErrModified) {
		f.s.Kick()
	}
	return n, err
}

func (s *Server) masterEvent(ev masterclient.Event) {
	if s.cfg.OnEvent == nil {
		return
	}
	switch ev.Kind {
	case masterclient.Registered:
		s.cfg.OnEvent(Event{Kind: Registered, Master: ev.Master, Files: ev.Files})
	case masterclient.Lost:
		s.cfg.OnEvent(Event{Kind: MasterLost, Master: ev.Master, Err: ev.Err, Retry: ev.Retry})
	case masterclient.Refused:
		s.cfg.OnEvent(Event{Kind: Refused, Master: ev.Master, Err: ev.Err})
	}
}

// Kick asks for a rescan now (coalesced).
func (s *Server) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Server) rescanLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		if _, _, err := s.Rescan(ctx); err != nil && ctx.Err() == nil && s.cfg.OnEvent != nil {
			s.cfg.OnEvent(Event{Kind: Warning, Err: fmt.Errorf("rescan: %w", err)})
		}
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

// Close says BYE to the master, stops serving and closes the index.
func (s *Server) Close(ctx context.Context) error {
	err := s.reg.Close(ctx)
	s.cancel()
	s.udp.Close()
	s.wg.Wait()
	if cerr := s.idx.Close(); err == nil {
		err = cerr
	}
	return err
}
