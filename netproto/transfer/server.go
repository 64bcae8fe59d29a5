package transfer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/store"
)

// File is what a Server sends: the shared-folder index opens it by hash.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// ErrNotFound is what ServerConfig.Open should wrap when it has no file
// with that hash; any Open error is answered with ERROR not found.
var ErrNotFound = errors.New("transfer: no such file")

// ErrChanged is what ServerConfig.Open, or a File's ReadAt, should wrap when
// the file is no longer the version of that hash (modified since it was
// indexed). The client is told in plain words (ERROR not found, "the file
// changed on the server") rather than seeing a read failure.
var ErrChanged = errors.New("the file changed on the server")

// changedText is the ERROR text that goes with ErrChanged.
const changedText = "the file changed on the server"

// ErrNotYet is what a PartialFile's ReadAt wraps for bytes it may not serve
// yet; the client is told ERROR not yet.
var ErrNotYet = errors.New("transfer: not checked yet")

// PartialFile is a File of which only some bytes may be served yet: a file
// a peer is still downloading, whose groups it serves once it has checked
// them (store/tree). Available reports whether bytes [off, end) may be
// served. The server cuts the chunks that may not from every REQUEST and
// answers ERROR not yet, naming the first; the client asks elsewhere.
type PartialFile interface {
	File
	Available(off, end int64) bool
}

// ErrServerClosed is what Serve returns when the server was closed before
// it started.
var ErrServerClosed = errors.New("transfer: server closed")

// Server limits. Each is a default for the ServerConfig field of the same
// name; a zero field takes the default.
const (
	// DefaultMaxTransfers caps the transfers (and pending REQUESTs) one
	// server runs at once: each costs a goroutine, an open file and up to
	// ~0.5 MiB of sent-chunk records.
	DefaultMaxTransfers = 256
	// DefaultMaxTransfersPerAddr caps the transfers one client socket
	// (IP:port) may hold.
	DefaultMaxTransfersPerAddr = 16
	// DefaultMaxTransfersPerIP caps the transfers all the sockets of one
	// IP may hold together: a quarter of DefaultMaxTransfers, so that one
	// machine opening many ports (17 ports x 16 took all 256 slots) leaves
	// three quarters to the others, and a classroom behind one NAT still
	// runs 64 downloads at once.
	DefaultMaxTransfersPerIP = DefaultMaxTransfers / 4
	// DefaultStallEvict: when a cap is reached, a new validated REQUEST
	// takes the slot of a transfer that has delivered nothing (no chunk
	// acknowledged) for this long, from the same IP when the per-IP cap is
	// the one reached. Such a transfer holds a slot without progress — a
	// client kept alive by a REQUEST every few seconds and never ACKing
	// held a slot for 5 bytes a second. Its client is told ERROR busy; an
	// honest one asks again. An honest transfer ACKs every few
	// milliseconds, and a new one is spared for this long.
	DefaultStallEvict = 3 * time.Second
	// DefaultMaxPending caps the validated REQUESTs whose file is still
	// being opened: Open may touch the disk and runs off the read loop.
	DefaultMaxPending = 32
	// DefaultMaxInFlight caps the chunks one transfer may have in flight,
	// whatever the receiver's window says: the sent-chunk records are a
	// ring of twice this size.
	DefaultMaxInFlight = 4096
	// DefaultIdleTimeout drops a transfer whose client has sent nothing
	// for this long.
	DefaultIdleTimeout = 20 * time.Second
	// BusyRetryAfter is the wait an ERROR busy asks for.
	BusyRetryAfter = 500 * time.Millisecond
	// AmplificationFactor bounds what a server sends to an address it has
	// not validated: at most this many bytes per byte received (RFC 9000 §8).
	AmplificationFactor = 3
)

// Leaving: a server that closes with transfers running tells each client
// (ERROR leaving), so a client fails over to its other sources, or fails,
// at once instead of after its SourceTimeout.
const (
	// LeaveCopies is how many ERROR leaving each client is sent: one lost
	// datagram must not cost a client its whole source timeout.
	LeaveCopies = 3
	// LeaveGap spaces the copies, so one burst of loss does not take them
	// all. Meanwhile the socket stays open and a REQUEST or ACK that
	// arrives is answered ERROR leaving too.
	LeaveGap = 15 * time.Millisecond
	// MaxLeaveDelay bounds what telling the clients adds to Close: the
	// copies are LeaveGap apart, and sending stops at this bound however
	// many transfers there are.
	MaxLeaveDelay = 100 * time.Millisecond
	// leaveText is the ERROR leaving's text.
	leaveText = "it stops serving"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Open returns the file with the given content hash (store.HashPrefix +
	// 64 hex digits).
	Open func(hash string) (File, error)
	// OpenTree returns the tree object (store/tree) of the file with the
	// given content hash, asked for by a REQUEST with chunk.FlagTree; nil:
	// no trees here (ERROR not found).
	OpenTree func(hash string) (File, error)
	// Key, if set (at least chunk.MinKeyLen bytes), makes every datagram
	// sealed with keys derived from it; unsealed ones are refused.
	Key []byte

	MaxChunkSize        int           // largest chunk size accepted; 0: chunk.MaxChunkSize
	MaxTransfers        int           // 0: DefaultMaxTransfers
	MaxTransfersPerAddr int           // 0: DefaultMaxTransfersPerAddr
	MaxTransfersPerIP   int           // 0: DefaultMaxTransfersPerIP
	StallEvict          time.Duration // 0: DefaultStallEvict
	MaxPending          int           // 0: DefaultMaxPending
	MaxInFlight         int           // chunks; 0: DefaultMaxInFlight (at most chunk.MaxWindow)
	IdleTimeout         time.Duration

	Impair      *Impair     // may be shared with other roles of the process
	Counters    *Counters   // parent of the server's counters (e.g. the process's); may be nil
	Trace       func(Event) // called from the server's goroutines; must not block
	TraceSample int         // DATA events: one in TraceSample (0: DefaultTraceSample)
	// OnProof, if set, gets the token of each ownership-proof datagram
	// (chunk.ParseProof) the socket receives: a master challenging a
	// registration of this address sent it, and the registrar echoes it
	// over TCP. Called from the read loop; must not block.
	OnProof func(token string)
	// Capture, if set, sees every datagram sent and received (see
	// link.setCapture); it must copy what it keeps and must not block.
	Capture func(dir Direction, local, peer netip.AddrPort, b []byte)
	// TraceActive: see ClientConfig.TraceActive.
	TraceActive func() bool

	noOffload bool // tests: no GSO or GRO
}

func (c *ServerConfig) defaults() error {
	if c.Open == nil {
		return errors.New("transfer: ServerConfig.Open is nil")
	}
	if c.Key != nil && len(c.Key) < chunk.MinKeyLen {
		return fmt.Errorf("transfer: key of %d bytes (min %d)", len(c.Key), chunk.MinKeyLen)
	}
	def := func(v *int, d, hi int) {
		if *v <= 0 {
			*v = d
		}
		*v = min(*v, hi)
	}
	def(&c.MaxChunkSize, chunk.MaxChunkSize, chunk.MaxChunkSize)
	c.MaxChunkSize = max(c.MaxChunkSize, chunk.MinChunkSize)
	def(&c.MaxTransfers, DefaultMaxTransfers, 1<<20)
	def(&c.MaxTransfersPerAddr, DefaultMaxTransfersPerAddr, c.MaxTransfers)
	def(&c.MaxTransfersPerIP, DefaultMaxTransfersPerIP, c.MaxTransfers)
	c.MaxTransfersPerAddr = min(c.MaxTransfersPerAddr, c.MaxTransfersPerIP)
	if c.StallEvict <= 0 {
		c.StallEvict = DefaultStallEvict
	}
	def(&c.MaxPending, DefaultMaxPending, c.MaxTransfers)
	def(&c.MaxInFlight, DefaultMaxInFlight, chunk.MaxWindow)
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	return nil
}

type tkey struct {
	addr netip.AddrPort
	tid  uint64
}

// Server serves files over the chunk protocol from one socket.
type Server struct {
	cfg     ServerConfig
	cfgErr  error
	link    *link
	stats   *Counters
	cookies *cookieJar
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // senders and openers

	mu        sync.RWMutex // guards the fields below
	transfers map[tkey]*transfer
	pending   map[tkey]bool
	perAddr   map[netip.AddrPort]int // transfers + pending per client address
	perIP     map[netip.Addr]int     // transfers + pending per client IP
	noStalled time.Time              // a scan for a stalled transfer found none: not again before StallEvict/8
	served    bool
	closed    bool
}

// NewServer returns a server that will serve on conn. The server owns conn
// from now on: Serve and Close close it. On a *net.UDPConn it enlarges the
// socket buffers (SocketBuffer).
func NewServer(conn net.PacketConn, cfg ServerConfig) *Server {
	s := &Server{
		cookies:   newCookieJar(),
		transfers: make(map[tkey]*transfer),
		pending:   make(map[tkey]bool),
		perAddr:   make(map[netip.AddrPort]int),
		perIP:     make(map[netip.Addr]int),
	}
	s.cfgErr = cfg.defaults()
	s.cfg = cfg
	s.stats = NewCounters(cfg.Counters)
	s.link = newLink(conn, cfg.Impair, s.stats, cfg.Trace, cfg.TraceSample, cfg.noOffload)
	s.link.setCapture(cfg.Capture)
	s.link.setTraceActive(cfg.TraceActive)
	s.link.receiveBuffer()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Addr is the server's local address.
func (s *Server) Addr() net.Addr { return s.link.conn.LocalAddr() }

// Stats returns the server's counters.
func (s *Server) Stats() Stats { return s.stats.Snapshot() }

// Serve reads and answers datagrams until ctx is done or Close is called,
// then stops every transfer and returns nil. It returns an error for a bad
// configuration or a socket that fails.
func (s *Server) Serve(ctx context.Context) error {
	if s.cfgErr != nil {
		s.Close()
		return s.cfgErr
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.served {
		s.mu.Unlock()
		return errors.New("transfer: Serve called twice")
	}
	s.served = true
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, s.Close)
	defer stop()
	handle := s.handle // bound once: a method value per datagram would allocate
	fails := 0
	for {
		err := s.link.receive(handle)
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				s.Close()
				return nil
			}
			// ICMP errors surface on some systems as read errors; a run of
			// them means the socket itself is broken.
			if fails++; fails > 100 {
				s.Close()
				return fmt.Errorf("transfer: reading: %w", err)
			}
			continue
		}
		fails = 0
	}
}

func (s *Server) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// Close stops the server: every transfer stops, its client is told ERROR
// leaving (LeaveCopies times, within MaxLeaveDelay), the socket closes and
// every file closes. It waits for the server's goroutines and may be called
// more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closed = true
	ts := make([]*transfer, 0, len(s.transfers))
	for _, t := range s.transfers {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	for _, t := range ts {
		t.stop()
	}
	s.tellLeaving(ts)
	s.cancel()
	_ = s.link.conn.Close()
	s.wg.Wait()
}

// tellLeaving sends ERROR leaving to the client of each transfer,
// LeaveCopies times LeaveGap apart, stopping at MaxLeaveDelay. The read
// loop still runs meanwhile (and answers late REQUESTs and ACKs the same).
func (s *Server) tellLeaving(ts []*transfer) {
	if len(ts) == 0 {
		return
	}
	deadline := time.Now().Add(MaxLeaveDelay)
	defer func() {
		// An impairment delay (set delay) holds the copies back: keep
		// the socket open for them, within the bound.
		if im := s.link.impair.load(); im != nil && im.Delay > 0 {
			time.Sleep(min(im.Delay+2*time.Millisecond, time.Until(deadline)))
		}
	}()
	for i := 0; i < LeaveCopies; i++ {
		if i > 0 {
			time.Sleep(min(LeaveGap, time.Until(deadline)))
		}
		for _, t := range ts {
			if time.Now().After(deadline) {
				return
			}
			s.stats.add(LeavingReplies, 1)
			s.replyStateless(t.key.addr, 1<<20, t.key.tid, t.cipher, chunk.CodeLeaving, 0, leaveText)
		}
	}
}

// Downloads reports the transfers whose client was heard from within
// activeWithin, and from how many client addresses (IPs): what a user
// about to stop the server is told it would cut.
func (s *Server) Downloads(activeWithin time.Duration) (transfers, hosts int) {
	s.mu.RLock()
	ts := make([]*transfer, 0, len(s.transfers))
	for _, t := range s.transfers {
		ts = append(ts, t)
	}
	s.mu.RUnlock()
	ips := map[netip.Addr]bool{}
	for _, t := range ts {
		if t.sinceHeard() <= activeWithin {
			transfers++
			ips[t.key.addr.Addr()] = true
		}
	}
	return transfers, len(ips)
}

// handle processes one datagram; it runs on the read loop or, under
// impairment, on a timer goroutine: an address proof, or a packet checked
// (checksum, length, seal) and handed to the case for its kind.
func (s *Server) handle(b []byte, from netip.AddrPort) {
	if chunk.IsProof(b) {
		if tok, ok := chunk.ParseProof(b); ok && s.cfg.OnProof != nil {
			s.cfg.OnProof(tok)
		} else {
			s.stats.add(Malformed, 1)
		}
		return
	}
	p, n, err := chunk.ParsePacket(b)
	if err != nil {
		if err == chunk.ErrChecksum {
			s.stats.add(CRCDrops, 1)
			if h, _, herr := chunk.ParseHeader(b); herr == nil {
				s.link.traceRecv(h, nil, from, len(b), "crc")
			}
		} else {
			s.stats.add(Malformed, 1)
		}
		return
	}
	if n != len(b) {
		s.stats.add(Malformed, 1)
		return
	}
	key := tkey{from, p.Transfer}
	s.mu.RLock()
	t := s.transfers[key]
	leaving := s.closed
	s.mu.RUnlock()

	payload, c, ok := s.unseal(&p, b[:n], from, t)
	if !ok {
		return
	}
	s.link.traceRecv(p.Header, payload, from, len(b), "")

	if leaving && (p.Kind == chunk.KindRequest || p.Kind == chunk.KindAck) {
		// Closing: no new transfer, and a client that missed the
		// ERROR leaving hears it again.
		s.stats.add(LeavingReplies, 1)
		s.replyStateless(from, len(b), p.Transfer, c, chunk.CodeLeaving, 0, leaveText)
		return
	}
	switch p.Kind {
	case chunk.KindRequest:
		s.onRequest(key, t, c, payload, len(b), p.Number, p.Flags&chunk.FlagTree != 0)
	case chunk.KindAck:
		a, _, err := chunk.ParseAck(payload)
		if err != nil {
			s.stats.add(Malformed, 1)
			return
		}
		if t == nil {
			s.stats.add(Hostile, 1)
			s.replyStateless(from, len(b), p.Transfer, c, chunk.CodeUnknownTransfer, 0, "")
			return
		}
		t.onAck(&a, p.Number)
	case chunk.KindDone:
		d, _, err := chunk.ParseDone(payload)
		if err != nil {
			s.stats.add(Malformed, 1)
			return
		}
		if t != nil {
			t.stop()
		}
		if d.Reason != chunk.DoneEcho {
			s.sendStateless(from, len(b), p.Transfer, c, chunk.KindDone, chunk.AppendDone(nil, &chunk.Done{Reason: chunk.DoneEcho}))
		}
	case chunk.KindError:
		if t != nil {
			t.stop()
		}
	default: // RETRY and DATA only flow towards clients
		s.stats.add(Hostile, 1)
	}
}

// unseal checks a packet's seal against the server's key: b is the whole
// datagram, t its transfer if known. It returns the payload to read (opened
// when sealed) and the transfer's cipher (nil without a key); !ok means the
// datagram was dropped (and, for a REQUEST, answered unauthorized).
func (s *Server) unseal(p *chunk.Packet, b []byte, from netip.AddrPort, t *transfer) (payload []byte, c *chunk.Cipher, ok bool) {
	var err error
	payload = p.Payload
	switch {
	case s.cfg.Key == nil && p.Flags&chunk.FlagSealed != 0:
		s.stats.add(AuthDrops, 1)
		s.link.traceRecv(p.Header, nil, from, len(b), "sealed, but this server has no key")
		if p.Kind == chunk.KindRequest {
			s.replyStateless(from, len(b), p.Transfer, nil, chunk.CodeUnauthorized, 0, "this server has no key")
		}
		return nil, nil, false
	case s.cfg.Key != nil && p.Flags&chunk.FlagSealed == 0:
		s.stats.add(AuthDrops, 1)
		s.link.traceRecv(p.Header, nil, from, len(b), "not sealed")
		if p.Kind == chunk.KindRequest {
			s.replyStateless(from, len(b), p.Transfer, nil, chunk.CodeUnauthorized, 0, "a key is required")
		}
		return nil, nil, false
	case s.cfg.Key != nil:
		if t != nil {
			c = t.cipher
		} else if c, err = chunk.NewCipher(s.cfg.Key, p.Transfer, chunk.RoleServer); err != nil {
			s.stats.add(AuthDrops, 1)
			return nil, nil, false
		}
		if payload, err = c.Open(b); err != nil {
			s.stats.add(AuthDrops, 1)
			s.link.traceRecv(p.Header, nil, from, len(b), "does not authenticate")
			return nil, nil, false
		}
	}
	return payload, c, true
}

func (s *Server) onRequest(key tkey, t *transfer, c *chunk.Cipher, payload []byte, inSize int, pn uint64, tree bool) {
	r, _, err := chunk.ParseRequest(payload)
	if err != nil {
		s.stats.add(Malformed, 1)
		s.replyStateless(key.addr, inSize, key.tid, c, chunk.CodeBadRequest, 0, "")
		return
	}
	if t != nil {
		s.notYet(t.file, &r, key, inSize, c)
		if err := t.update(&r, pn); err != nil {
			s.replyStateless(key.addr, inSize, key.tid, c, chunk.CodeBadRequest, 0, err.Error())
		}
		return
	}
	now := time.Now()
	if !s.cookies.check(r.Cookie, key.addr, key.tid, now) {
		retry := chunk.Retry{Cookie: s.cookies.make(key.addr, key.tid, now), MaxChunkSize: uint32(s.cfg.MaxChunkSize)}
		if s.sendStateless(key.addr, inSize, key.tid, c, chunk.KindRetry, chunk.AppendRetry(nil, &retry)) {
			s.stats.add(Retries, 1)
		}
		return
	}
	if int(r.ChunkSize) > s.cfg.MaxChunkSize {
		s.replyStateless(key.addr, inSize, key.tid, c, chunk.CodeChunkSize, uint32(s.cfg.MaxChunkSize), "")
		return
	}
	s.mu.Lock()
	switch {
	case s.closed || s.pending[key]:
		s.mu.Unlock()
		return
	case s.transfers[key] != nil:
		// Its file opened since handle looked: a duplicate REQUEST.
		t := s.transfers[key]
		s.mu.Unlock()
		s.notYet(t.file, &r, key, inSize, c)
		if err := t.update(&r, pn); err != nil {
			s.replyStateless(key.addr, inSize, key.tid, c, chunk.CodeBadRequest, 0, err.Error())
		}
		return
	case len(s.pending) >= s.cfg.MaxPending,
		s.full(key.addr) && !s.evictStalledLocked(key.addr):
		s.mu.Unlock()
		s.stats.add(BusyReplies, 1)
		s.replyStateless(key.addr, inSize, key.tid, c, chunk.CodeBusy, uint32(BusyRetryAfter/time.Millisecond), "")
		return
	}
	s.pending[key] = true
	s.perAddr[key.addr]++
	s.perIP[key.addr.Addr()]++
	s.wg.Add(1)
	s.mu.Unlock()
	go s.open(key, c, r, inSize, pn, tree)
}

// open opens the file of a validated REQUEST and starts its transfer.
func (s *Server) open(key tkey, c *chunk.Cipher, r chunk.Request, inSize int, pn uint64, tree bool) {
	defer s.wg.Done()
	hash := store.Sum(r.Hash).String()
	var f File
	var err error
	switch {
	case !tree:
		f, err = s.cfg.Open(hash)
	case s.cfg.OpenTree != nil:
		f, err = s.cfg.OpenTree(hash)
	default:
		err = ErrNotFound
	}
	if err == nil {
		s.notYet(f, &r, key, inSize, c)
	}
	if err == nil && f.Size() != r.Size {
		_ = f.Close()
		err = fmt.Errorf("size %d, not %d", f.Size(), r.Size)
	}
	var t *transfer
	if err == nil {
		t, err = newTransfer(s, key, c, f, &r, pn)
		if err != nil {
			_ = f.Close()
		}
	}
	s.mu.Lock()
	delete(s.pending, key)
	if err != nil || s.closed {
		s.dropAddr(key.addr)
		s.mu.Unlock()
		if err != nil {
			text := ""
			if errors.Is(err, ErrChanged) {
				text = changedText
			}
			s.replyStateless(key.addr, inSize, key.tid, c, chunk.CodeNotFound, 0, text)
		} else {
			_ = f.Close()
			s.replyStateless(key.addr, inSize, key.tid, c, chunk.CodeLeaving, 0, leaveText)
		}
		return
	}
	s.transfers[key] = t
	s.wg.Add(1)
	s.mu.Unlock()
	s.stats.add(TransfersStarted, 1)
	s.stats.add(TransfersActive, 1)
	go t.run()
}

// notYet cuts from r the chunks a PartialFile may not serve yet and tells
// the client (ERROR not yet, naming the first).
func (s *Server) notYet(f File, r *chunk.Request, key tkey, inSize int, c *chunk.Cipher) {
	pf, ok := f.(PartialFile)
	if !ok {
		return
	}
	first, cut := trimUnavailable(pf, r)
	if cut {
		s.stats.add(NotYetReplies, 1)
		s.replyStateless(key.addr, inSize, key.tid, c, chunk.CodeNotYet, first, "not yet: that part is not checked here yet")
	}
}

// trimUnavailable removes from r's ranges the chunks f may not serve yet;
// first is the first one removed. Ranges split past MaxRequestRanges are
// dropped (the client asks again).
func trimUnavailable(f PartialFile, r *chunk.Request) (first uint32, cut bool) {
	cs := int64(r.ChunkSize)
	var out []chunk.Range
	for _, rg := range r.Ranges {
		run := chunk.Range{First: rg.First}
		for c := rg.First; uint64(c) < rg.End(); c++ {
			off := int64(c) * cs
			if f.Available(off, min(off+cs, r.Size)) {
				if run.Count == 0 {
					run.First = c
				}
				run.Count++
				continue
			}
			if !cut {
				first, cut = c, true
			}
			if run.Count > 0 && len(out) < chunk.MaxRequestRanges {
				out = append(out, run)
			}
			run.Count = 0
		}
		if run.Count > 0 && len(out) < chunk.MaxRequestRanges {
			out = append(out, run)
		}
	}
	if cut {
		r.Ranges = out
	}
	return first, cut
}

func (s *Server) dropAddr(a netip.AddrPort) {
	if s.perAddr[a]--; s.perAddr[a] <= 0 {
		delete(s.perAddr, a)
	}
	if s.perIP[a.Addr()]--; s.perIP[a.Addr()] <= 0 {
		delete(s.perIP, a.Addr())
	}
}

// full reports whether a new transfer from a would go over a cap (in all,
// per IP or per socket). s.mu is held.
func (s *Server) full(a netip.AddrPort) bool {
	return len(s.transfers)+len(s.pending) >= s.cfg.MaxTransfers ||
		s.perIP[a.Addr()] >= s.cfg.MaxTransfersPerIP ||
		s.perAddr[a] >= s.cfg.MaxTransfersPerAddr
}

// evictStalledLocked makes room for a new transfer from a, if it can, by
// ending the transfer that has gone longest without progress, at least
// StallEvict (see DefaultStallEvict): one of a's socket or IP when that is
// the cap reached, any otherwise. It reports whether the room is there
// now. The evicted client is told ERROR busy. s.mu is held.
func (s *Server) evictStalledLocked(a netip.AddrPort) bool {
	now := time.Now()
	if now.Before(s.noStalled) {
		return false // a scan just found none: a REQUEST flood cannot make us rescan each time
	}
	sameAddr := s.perAddr[a] >= s.cfg.MaxTransfersPerAddr
	sameIP := sameAddr || s.perIP[a.Addr()] >= s.cfg.MaxTransfersPerIP
	var victim *transfer
	var longest time.Duration
	for k, t := range s.transfers {
		if sameAddr && k.addr != a || sameIP && k.addr.Addr() != a.Addr() {
			continue
		}
		if d := t.sinceProgress(); d >= s.cfg.StallEvict && d > longest {
			victim, longest = t, d
		}
	}
	if victim == nil {
		s.noStalled = now.Add(s.cfg.StallEvict / 8)
		return false
	}
	delete(s.transfers, victim.key)
	s.dropAddr(victim.key.addr)
	s.stats.add(Evicted, 1)
	victim.stop()
	go s.replyStateless(victim.key.addr, 1<<20, victim.key.tid, victim.cipher, chunk.CodeBusy, uint32(BusyRetryAfter/time.Millisecond), "")
	return !s.full(a)
}

// remove forgets a transfer whose sender has ended.
func (s *Server) remove(t *transfer) {
	s.mu.Lock()
	if s.transfers[t.key] == t {
		delete(s.transfers, t.key)
		s.dropAddr(t.key.addr)
	}
	s.mu.Unlock()
	s.stats.add(TransfersActive, -1)
}

// statelessNumber is a packet number for a reply sent without transfer
// state: random with the top bit set, so it never meets a stateful one.
func statelessNumber() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1<<63
}

// sendStateless sends one control packet in reply to an inSize-byte
// datagram, if it stays within the amplification limit.
func (s *Server) sendStateless(to netip.AddrPort, inSize int, tid uint64, c *chunk.Cipher, kind chunk.Kind, payload []byte) bool {
	pkt := chunk.AppendPacket(make([]byte, 0, chunk.HeaderLen+len(payload)+chunk.TagLen), chunk.Header{Kind: kind, Transfer: tid, Number: statelessNumber()}, payload, c)
	if len(pkt) > AmplificationFactor*inSize {
		return false
	}
	return s.link.send(pkt, to, payload) == nil
}

func (s *Server) replyStateless(to netip.AddrPort, inSize int, tid uint64, c *chunk.Cipher, code chunk.ErrorCode, value uint32, text string) {
	if len(text) > chunk.MaxErrorText {
		text = text[:chunk.MaxErrorText]
	}
	e := chunk.Error{Code: code, Value: value, Text: sanitize(text)}
	s.sendStateless(to, inSize, tid, c, chunk.KindError, chunk.AppendError(nil, &e))
}

// sanitize makes text a valid ERROR text.
func sanitize(text string) string {
	b := []byte(text)
	for i, c := range b {
		if c < 0x20 || c == 0x7f || c >= 0x80 {
			b[i] = '?'
		}
	}
	return string(b)
}

func cryptoRead(b []byte) (int, error) { return rand.Read(b) }
