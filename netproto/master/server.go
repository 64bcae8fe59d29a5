// Package master is fxsh's master: it accepts TCP connections speaking the
// line protocol (netproto/line, netproto/PROTOCOL.md), records file
// servers and receivers in a store.Catalog and answers LIST, SEARCH and
// PEERS.
//
// Start (start.go) listens on Config.Addr and serves until Running.Close:
// what serve master and the demo run. Server runs the accept loop and owns
// the set of open connections (server.go). Each connection is served by one goroutine (session.go):
// handshake and optional key check, then one request at a time, with the
// registration it holds removed when it says BYE or goes away. Connections
// are counted apart before and after the handshake (MaxHandshakes,
// MaxConns), and budget.go bounds what all the registrations together may
// make the catalog hold. offers.go
// relays push offers from a sender to a receiver's connection, and the
// receiver's answer and result (DONE) back. Config holds every limit and
// timer, defaulting to the named constants of netproto/line, so tests can
// shrink them.
package master

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
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
	// of requests (the F lines of a registration are counted by the
	// registration bucket below). A connection over it gets ERR 429 and
	// is closed.
	DefaultRate  = 100 // requests per second
	DefaultBurst = 200
	// RegisterRate and RegisterBurst shape a second per-connection bucket,
	// of registered files: a REGISTER of n files costs n+1 of it on top of
	// its one request, checked at the header, before the F lines are read.
	// Each registration rewrites the catalog's index for its files, under
	// the catalog's write lock while searches wait (measured: 0.2 µs per
	// byte of name for classroom names, 3 to 4 µs for random long ones),
	// so a peer may register its full list twice at once (a share,
	// then a rescan) and then one full list a minute; a rescan registers
	// only when something changed, and a lost master means a new
	// connection with a new bucket. Over it: ERR 429, and the connection
	// (and its registration) ends.
	RegisterRate  = line.MaxFiles / 60.0 // files per second: a full list a minute
	RegisterBurst = 2 * line.MaxFiles
	// MaxOffers bounds the push offers one connection may have waiting
	// for an answer or, once accepted, for the receiver's DONE.
	MaxOffers = 16
	// OfferTimeout is how long an offer waits for ACCEPT or REFUSE.
	OfferTimeout = 2 * time.Minute
	// CloseLinger bounds how long the master keeps reading (and dropping)
	// what a peer still sends after a reply that ends its connection, so
	// that the reply is not destroyed by a reset (see lingerClose).
	CloseLinger = time.Second

	// Per-address limits: what the connections from one IP may hold
	// together, so that one machine cannot take what the master shares
	// between all of them by opening many connections. The defaults leave
	// room for a classroom behind one NAT (80 students with a shell, a
	// share and a receiver each); a master whose peers all come through
	// one address should raise them.
	//
	// MaxConnsPerIP bounds the sessions (connections past the handshake)
	// from one IP: beyond it, ERR 503 and close.
	MaxConnsPerIP = 250
	// MaxHandshakesPerIP bounds the connections from one IP still
	// handshaking; a new one from that IP evicts its own oldest, so a
	// flood from one address crowds out only itself. When all
	// MaxHandshakes are taken, the oldest of the address holding the most
	// goes first.
	MaxHandshakesPerIP = 32
	// MaxFilesPerIP bounds the files the registrations made from one IP
	// hold together: an eighth of MaxCatalogFiles, 50 full registrations
	// (without it, 401 connections from one IP fill the catalog).
	MaxFilesPerIP = MaxCatalogFiles / 8
	// ProofLifetime is how long the token a master sends to a contested
	// address (see register) may be echoed.
	ProofLifetime = 30 * time.Second
)

// Config configures a Server. Zero values mean the defaults.
type Config struct {
	Addr      string        // Start: the TCP address to listen on (HOST:PORT; port 0 picks one)
	Catalog   store.Catalog // required; the caller closes it after Shutdown
	Heartbeat time.Duration // announced PING interval (line.DefaultHeartbeat)
	TTL       time.Duration // silence after which a connection is dropped (line.DefaultTTL)
	Key       []byte        // shared key; nil lets anyone join

	MaxConns            int           // line.MaxConns
	MaxHandshakes       int           // line.MaxHandshakes
	MaxLine             int           // line.MaxLine
	MaxName             int           // line.MaxName
	MaxFiles            int           // line.MaxFiles
	HelloTimeout        time.Duration // line.HelloTimeout
	WriteTimeout        time.Duration // WriteTimeout
	Rate                float64       // DefaultRate requests per second
	Burst               int           // DefaultBurst
	RegisterRate        float64       // RegisterRate files per second
	RegisterBurst       int           // RegisterBurst files
	MaxCatalogFiles     int64         // MaxCatalogFiles
	MaxCatalogNameBytes int64         // MaxCatalogNameBytes
	// Per-IP limits; 0 takes the default, a negative value turns the
	// limit off (tests that open thousands of connections from 127.0.0.1).
	MaxConnsPerIP      int   // MaxConnsPerIP
	MaxHandshakesPerIP int   // MaxHandshakesPerIP
	MaxFilesPerIP      int64 // MaxFilesPerIP

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
	def(&c.MaxHandshakes, line.MaxHandshakes)
	def(&c.RegisterBurst, RegisterBurst)
	if c.RegisterRate <= 0 {
		c.RegisterRate = RegisterRate
	}
	if c.MaxCatalogFiles <= 0 {
		c.MaxCatalogFiles = MaxCatalogFiles
	}
	if c.MaxCatalogNameBytes <= 0 {
		c.MaxCatalogNameBytes = MaxCatalogNameBytes
	}
	def(&c.MaxLine, line.MaxLine)
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = MaxConnsPerIP
	}
	if c.MaxHandshakesPerIP == 0 {
		c.MaxHandshakesPerIP = MaxHandshakesPerIP
	}
	if c.MaxFilesPerIP == 0 {
		c.MaxFilesPerIP = MaxFilesPerIP
	}
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
	sessions map[*session]struct{} // every connection served, handshaking or not
	// handshaking holds the sessions before their handshake is done,
	// oldest first (at most MaxHandshakes); established counts the others
	// (at most MaxConns).
	handshaking list.List
	established int
	owners      map[string]*session // registration address -> the session holding it
	budget      catalogBudget
	offers      offerTable
	// byIP counts what the connections from one IP hold (per-IP limits).
	byIP map[string]*ipUse
	// names holds the peer names in use by their lookalike key
	// (nameKey): first come, first served, checked and taken in one hold
	// of mu.
	names map[string]*session
	udp   net.PacketConn // sends ownership challenges; opened when first needed
	seeds seedTable      // partial sources (seeds.go)
}

// ipUse is what the connections from one IP hold. Guarded by Server.mu.
type ipUse struct {
	handshaking int
	sessions    int
	files       int64 // registered, committed or reserved
}

// ipOf returns the IP of a connection's remote address (the whole string
// if it has no port).
func ipOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

func (s *Server) ipUseLocked(ip string) *ipUse {
	u := s.byIP[ip]
	if u == nil {
		u = &ipUse{}
		s.byIP[ip] = u
	}
	return u
}

func (s *Server) ipTidyLocked(ip string) {
	if u := s.byIP[ip]; u != nil && *u == (ipUse{}) {
		delete(s.byIP, ip)
	}
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, ctx: ctx, cancel: cancel,
		sessions: map[*session]struct{}{},
		owners:   map[string]*session{},
		budget:   newCatalogBudget(load{cfg.MaxCatalogFiles, cfg.MaxCatalogNameBytes}),
		offers:   offerTable{byID: map[string]*offer{}},
		byIP:     map[string]*ipUse{},
		names:    map[string]*session{},
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
	full := s.established >= s.cfg.MaxConns
	var ss *session
	if !full {
		ip := ipOf(nc.RemoteAddr().String())
		u := s.ipUseLocked(ip)
		switch {
		case s.cfg.MaxHandshakesPerIP > 0 && u.handshaking >= s.cfg.MaxHandshakesPerIP:
			s.evictLocked(s.oldestHandshakeLocked(ip))
		case s.handshaking.Len() >= s.cfg.MaxHandshakes:
			s.evictLocked(s.oldestHandshakeLocked(s.busiestHandshakerLocked()))
		}
		ss = newSession(s, nc)
		s.sessions[ss] = struct{}{}
		ss.hsElem = s.handshaking.PushBack(ss)
		u.handshaking++
	}
	s.wg.Add(1)
	s.mu.Unlock()

	if full {
		go func() {
			defer s.wg.Done()
			s.event(Event{Kind: ConnRefused, Remote: nc.RemoteAddr().String(), Reason: "too many connections"})
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			b, _ := line.AppendMsg(nil, line.ErrorMsg(errTooManyConns))
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
		if ss.hsElem != nil {
			s.handshaking.Remove(ss.hsElem)
			ss.hsElem = nil
			s.ipUseLocked(ss.ip).handshaking--
		}
		if ss.established {
			s.established--
			s.ipUseLocked(ss.ip).sessions--
		}
		s.ipTidyLocked(ss.ip)
		s.mu.Unlock()
	}()
}

var errTooManyConns = line.Errorf(line.CodeUnavailable, "too many connections, try later")

// evictLocked ends the handshake of ss to make room for a newer one: its
// slot is free at once, and its goroutine wakes up from a past read
// deadline, says why and closes. s.mu is held.
func (s *Server) evictLocked(ss *session) {
	s.handshaking.Remove(ss.hsElem)
	ss.hsElem = nil
	s.ipUseLocked(ss.ip).handshaking--
	ss.evicted = true
	ss.nc.SetReadDeadline(time.Unix(1, 0))
}

// oldestHandshakeLocked returns the oldest connection from ip still
// handshaking (there is one: the caller counted it). s.mu is held.
func (s *Server) oldestHandshakeLocked(ip string) *session {
	for e := s.handshaking.Front(); e != nil; e = e.Next() {
		if ss := e.Value.(*session); ss.ip == ip {
			return ss
		}
	}
	return s.handshaking.Front().Value.(*session)
}

// busiestHandshakerLocked returns the IP with the most connections
// handshaking (at most MaxHandshakes to look at). s.mu is held.
func (s *Server) busiestHandshakerLocked() string {
	best, n := "", 0
	for e := s.handshaking.Front(); e != nil; e = e.Next() {
		ip := e.Value.(*session).ip
		if c := s.byIP[ip].handshaking; c > n {
			best, n = ip, c
		}
	}
	return best
}

// errSessionsFull: the handshake is done but MaxConns sessions are open.
var errSessionsFull = errors.New("too many connections")

// errIPFull: the handshake is done but MaxConnsPerIP sessions from that
// IP are open.
var errIPFull = errors.New("too many connections from one address")

// establish moves ss from the handshaking connections to the sessions. It
// fails with errEvicted if ss was crowded out meanwhile (after its last
// read), or errSessionsFull.
func (s *Server) establish(ss *session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.evicted {
		return errEvicted
	}
	u := s.ipUseLocked(ss.ip)
	if ss.hsElem != nil {
		s.handshaking.Remove(ss.hsElem)
		ss.hsElem = nil
		u.handshaking--
	}
	if s.established >= s.cfg.MaxConns {
		return errSessionsFull
	}
	if s.cfg.MaxConnsPerIP > 0 && u.sessions >= s.cfg.MaxConnsPerIP {
		return errIPFull
	}
	s.established++
	u.sessions++
	ss.established = true
	return nil
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
	if s.udp != nil {
		s.udp.Close()
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
