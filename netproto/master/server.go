// Package master is fxsh's master: it accepts TCP connections speaking the
// line protocol (netproto/line, netproto/PROTOCOL.md), records file
// servers and receivers in a store.Catalog and answers LIST, SEARCH and
// PEERS.
//
// Server runs the accept loop and owns the set of open connections
// (server.go). Each connection is served by one goroutine (session.go):
// handshake and optional key check, then one request at a time, with the
// registration it holds removed when it says BYE or goes away. offers.go
// relays push offers from a sender to a receiver's connection, and the
// receiver's answer and result (DONE) back. Config holds every limit and
// timer, defaulting to the named constants of netproto/line, so tests can
// shrink them.
package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"fxsh/netproto/line"
	"fxsh/store"
)

// TraceEvent is one protocol line, reported to Config.Trace.
type TraceEvent = line.TraceEvent

// Timers and limits of the master that the protocol does not announce.
const (
	// WriteTimeout bounds one reply: a peer that does not read cannot
	// hold a goroutine (and a LIST's worth of buffer) forever.
	WriteTimeout = 10 * time.Second
	// CatalogTimeout bounds one catalog call.
	CatalogTimeout = 5 * time.Second
	// DefaultRate and DefaultBurst shape the per-connection token bucket
	// of requests (F lines of a registration are not counted: MaxFiles
	// bounds them). A connection over it gets ERR 429 and is closed.
	DefaultRate  = 100 // requests per second
	DefaultBurst = 200
	// MaxOffers bounds the push offers one connection may have waiting
	// for an answer or, once accepted, for the receiver's DONE.
	MaxOffers = 16
	// OfferTimeout is how long an offer waits for ACCEPT or REFUSE.
	OfferTimeout = 2 * time.Minute
	// CloseLinger bounds how long the master keeps reading (and dropping)
	// what a peer still sends after a reply that ends its connection, so
	// that the reply is not destroyed by a reset (see lingerClose).
	CloseLinger = time.Second
)

// Config configures a Server. Zero values mean the defaults.
type Config struct {
	Catalog   store.Catalog // required; the caller closes it after Shutdown
	Heartbeat time.Duration // announced PING interval (line.DefaultHeartbeat)
	TTL       time.Duration // silence after which a connection is dropped (line.DefaultTTL)
	Key       []byte        // shared key; nil lets anyone join

	MaxConns     int           // line.MaxConns
	MaxLine      int           // line.MaxLine
	MaxName      int           // line.MaxName
	MaxFiles     int           // line.MaxFiles
	HelloTimeout time.Duration // line.HelloTimeout
	WriteTimeout time.Duration // WriteTimeout
	Rate         float64       // DefaultRate requests per second
	Burst        int           // DefaultBurst

	// Trace, if set, sees every line in and out. It is called from the
	// connections' goroutines and must not block.
	Trace func(TraceEvent)
	// OnEvent, if set, is told when peers register and leave. It is
	// called from the connections' goroutines and must not block.
	OnEvent func(Event)
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defd(&c.Heartbeat, line.DefaultHeartbeat)
	defd(&c.TTL, line.DefaultTTL)
	defd(&c.HelloTimeout, line.HelloTimeout)
	defd(&c.WriteTimeout, WriteTimeout)
	def(&c.MaxConns, line.MaxConns)
	def(&c.MaxLine, line.MaxLine)
	def(&c.MaxName, line.MaxName)
	def(&c.MaxFiles, line.MaxFiles)
	def(&c.Burst, DefaultBurst)
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
}

// EventKind says what happened to a peer.
type EventKind int

// Event kinds.
const (
	PeerRegistered EventKind = iota // a registration was recorded (or replaced)
	PeerLeft                        // a registration was removed: BYE or connection gone
	ConnRefused                     // a connection was refused (Reason says why)
)

func (k EventKind) String() string {
	switch k {
	case PeerRegistered:
		return "registered"
	case PeerLeft:
		return "left"
	case ConnRefused:
		return "refused"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is a change the shell may want to show.
type Event struct {
	Time   time.Time
	Kind   EventKind
	Addr   string // the registration's address (PeerRegistered, PeerLeft)
	Role   string
	Name   string
	Files  int
	Remote string // the TCP peer
	Reason string // why a peer left or a connection was refused
}

// Server is a master. Create it with New, run it with Serve and stop it
// with Shutdown.
type Server struct {
	cfg    Config
	ctx    context.Context // canceled by Shutdown: bounds catalog calls
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per connection goroutine

	// refusing counts connections over MaxConns being refused; at most
	// MaxConns of them linger (see lingerClose), the others are closed at
	// once, so that a connection flood costs at most MaxConns goroutines
	// for CloseLinger.
	refusing atomic.Int32

	mu       sync.Mutex // guards the fields below
	ln       net.Listener
	closing  bool
	sessions map[*session]struct{}
	owners   map[string]*session // registration address -> the session holding it
	offers   offerTable
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, ctx: ctx, cancel: cancel,
		sessions: map[*session]struct{}{},
		owners:   map[string]*session{},
		offers:   offerTable{byID: map[string]*offer{}},
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("master: server closed")

// Serve accepts connections on ln until Shutdown or an accept error, and
// serves each in its own goroutine. It always closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.Catalog == nil {
		ln.Close()
		return errors.New("master: no catalog")
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	defer ln.Close()

	var delay time.Duration // backoff on temporary accept errors (EMFILE ...)
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accepting: %w", err)
		}
		delay = 0
		s.startSession(nc)
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (s *Server) startSession(nc net.Conn) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return
	}
	full := len(s.sessions) >= s.cfg.MaxConns
	var ss *session
	if !full {
		ss = newSession(s, nc)
		s.sessions[ss] = struct{}{}
	}
	s.wg.Add(1)
	s.mu.Unlock()

	if full {
		go func() {
			defer s.wg.Done()
			s.event(Event{Kind: ConnRefused, Remote: nc.RemoteAddr().String(), Reason: "too many connections"})
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			b, _ := line.AppendMsg(nil, line.ErrorMsg(line.Errorf(line.CodeUnavailable, "too many connections, try later")))
			if _, err := nc.Write(b); err != nil {
				nc.Close()
				return
			}
			defer s.refusing.Add(-1)
			if s.refusing.Add(1) > int32(s.cfg.MaxConns) {
				nc.Close()
				return
			}
			lingerClose(nc)
		}()
		return
	}
	go func() {
		defer s.wg.Done()
		ss.serve()
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
	}()
}

// Shutdown stops accepting, ends every connection and waits for their
// goroutines, or for ctx. Registrations are not removed from the catalog:
// with a shared catalog another master takes the peers over when they
// reconnect, and an in-memory catalog goes away with the master anyway.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if s.ln != nil {
		s.ln.Close()
	}
	past := time.Unix(1, 0)
	for ss := range s.sessions {
		ss.nc.SetDeadline(past)
	}
	s.mu.Unlock()
	s.cancel()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for ss := range s.sessions {
			ss.nc.Close()
		}
		s.mu.Unlock()
		return fmt.Errorf("master shutdown: %w", ctx.Err())
	}
}

func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) event(e Event) {
	if s.cfg.OnEvent != nil {
		e.Time = time.Now()
		s.cfg.OnEvent(e)
	}
}
