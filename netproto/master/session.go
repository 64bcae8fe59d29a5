package master

import (
	"container/list"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
)

// MaxPeerName bounds the display name a peer registers with (name=).
const MaxPeerName = 32

// preallocFiles bounds what a REGISTER header makes the master allocate
// before its F lines arrive.
const preallocFiles = 128

// session serves one connection. Only its own goroutine reads; writes also
// come from other sessions' goroutines (relayed offers), hence wmu.
type session struct {
	s      *Server
	nc     net.Conn
	r      *line.Reader
	remote string
	ip     string // the IP of remote: the per-IP limits count by it

	wmu sync.Mutex // guards w and the connection's write side
	w   *line.Writer

	// Owned by the session goroutine.
	role      string
	tokens    float64 // request bucket (Config.Rate, Burst)
	last      time.Time
	regTokens float64 // registered-files bucket (Config.RegisterRate, RegisterBurst)
	regLast   time.Time
	// The ownership challenge sent for a contested address (register).
	proofAddr  string
	proofToken string
	proofAt    time.Time

	// Guarded by Server.mu, since other sessions read them to route offers.
	seeded   map[string]bool // hashes this connection offers as a partial source (seeds.go)
	addr     string          // address of the registration made on this connection, or ""
	name     string          // its display name, or ""
	nameKey  string          // nameKey(name), its key in Server.names, or ""
	regFiles int64           // files of its registration, counted in byIP[ip].files

	// Guarded by Server.mu: where the connection is counted.
	hsElem      *list.Element // in Server.handshaking until the handshake is done
	evicted     bool          // crowded out of the handshaking connections
	established bool          // counted in Server.established
}

func newSession(s *Server, nc net.Conn) *session {
	remote := nc.RemoteAddr().String()
	ss := &session{s: s, nc: nc, remote: remote, ip: ipOf(remote), tokens: float64(s.cfg.Burst), regTokens: float64(s.cfg.RegisterBurst)}
	ss.r = line.NewReader(nc, s.cfg.MaxLine)
	ss.w = line.NewWriter(nc, s.cfg.MaxLine)
	ss.r.Trace, ss.w.Trace = line.TraceHooks(s.cfg.Trace, nc.LocalAddr().String(), remote)
	return ss
}

// errClose ends a session after the reply was sent.
var errClose = errors.New("close connection")

// errEvicted ends a session crowded out of the handshaking connections:
// it is closed at once, since a flood is what crowded it out.
var errEvicted = errors.New("evicted during the handshake")

// send writes and flushes msgs as one unit.
func (ss *session) send(msgs ...line.Msg) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	// The deadline goes first: WriteMsg flushes to the connection
	// whenever the buffer fills, and a deadline left over from an earlier
	// reply would fail those writes once it has passed.
	ss.setDeadline(ss.nc.SetWriteDeadline, time.Now().Add(ss.s.cfg.WriteTimeout))
	for _, m := range msgs {
		if err := ss.w.WriteMsg(m); err != nil {
			return err
		}
	}
	return ss.w.Flush()
}

func (ss *session) sendErr(e *line.Error) error {
	return ss.send(line.ErrorMsg(e))
}

func (ss *session) serve() {
	err := ss.run()
	ss.leave()
	if errors.Is(err, errEvicted) {
		ss.nc.Close()
		return
	}
	if (errors.Is(err, errClose) || errors.Is(err, line.ErrLineTooLong)) && !ss.s.shuttingDown() {
		lingerClose(ss.nc) // the peer must get the reply that ends it
		return
	}
	ss.nc.Close()
}

func (ss *session) run() error {
	if err := ss.handshake(); err != nil {
		return err
	}
	for {
		ss.setDeadline(ss.nc.SetReadDeadline, time.Now().Add(ss.s.cfg.TTL))
		m, err := ss.read()
		if err != nil {
			return err
		}
		if m.Verb == "" { // bad line, already answered
			continue
		}
		if err := ss.dispatch(m); err != nil {
			return err
		}
	}
}

// lingerClose closes a connection after a reply that ends it (ERR 413,
// 414, 429, 401, 503 ...). The peer has often sent more than the master
// read: the rest of an over-long line, a flood, the F lines of a refused
// registration, or just its HELLO when it is over the cap. Closing with
// unread input makes the kernel answer with a reset, and a reset destroys
// the reply in the peer's receive buffer before it reads it. So: send FIN
// after the reply, then read and drop input until the peer closes too, for
// at most CloseLinger.
func lingerClose(nc net.Conn) {
	defer nc.Close()
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	nc.SetReadDeadline(time.Now().Add(CloseLinger))
	var buf [512]byte
	for {
		if _, err := nc.Read(buf[:]); err != nil {
			return
		}
	}
}

// read returns the next request. A malformed line is answered with ERR 400
// and returned as an empty Msg; an over-long line, a flood or a broken
// connection end the session (after ERR 413 / 429 where possible).
func (ss *session) read() (line.Msg, error) {
	raw, err := ss.r.ReadLine()
	if errors.Is(err, line.ErrLineTooLong) {
		ss.sendErr(line.Errorf(line.CodeTooLong, "line longer than %d bytes", ss.s.cfg.MaxLine))
		return line.Msg{}, err
	}
	if err != nil {
		return line.Msg{}, err
	}
	if !ss.allow() {
		ss.sendErr(line.Errorf(line.CodeSlowDown, "slow down: more than %g requests a second", ss.s.cfg.Rate))
		return line.Msg{}, errClose
	}
	m, _, err := line.ParseMsg(raw)
	if err != nil {
		return line.Msg{}, ss.sendErr(line.Errorf(line.CodeSyntax, "%v", err))
	}
	return m, nil
}

// allow takes a token from the request bucket.
func (ss *session) allow() bool {
	return take(&ss.tokens, &ss.last, 1, ss.s.cfg.Rate, float64(ss.s.cfg.Burst))
}

// take refills a token bucket at rate up to burst and takes cost from it,
// if it holds that much.
func take(tokens *float64, last *time.Time, cost, rate, burst float64) bool {
	now := time.Now()
	if !last.IsZero() {
		*tokens = min(burst, *tokens+now.Sub(*last).Seconds()*rate)
	}
	*last = now
	if *tokens < cost {
		return false
	}
	*tokens -= cost
	return true
}

func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

func (ss *session) handshake() error {
	cfg := &ss.s.cfg
	ss.setDeadline(ss.nc.SetReadDeadline, time.Now().Add(cfg.HelloTimeout))
	fail := func(e *line.Error) error {
		ss.sendErr(e)
		ss.s.event(Event{Kind: ConnRefused, Remote: ss.remote, Reason: e.Msg})
		return errClose
	}
	m, err := ss.read()
	if err != nil {
		return ss.handshakeError(err)
	}
	switch {
	case m.Verb == "":
		return errClose // bad line, answered
	case m.Verb != line.VerbHello:
		return fail(line.Errorf(line.CodeState, "say HELLO %s first", line.Version))
	case m.Arg(0) != line.Version:
		return fail(line.Errorf(line.CodeSyntax, "unsupported version %q; this master speaks %s", m.Arg(0), line.Version))
	}
	role := m.Value("role")
	switch role {
	case "client", store.RoleServer, store.RoleReceiver:
	default:
		return fail(line.Errorf(line.CodeSyntax, "role must be client, server or receiver, not %q", role))
	}
	cnonce, hasNonce := m.Get("nonce")
	if hasNonce && !line.ValidNonce(cnonce) {
		return fail(line.Errorf(line.CodeSyntax, "bad nonce %q", cnonce))
	}
	hi := line.NewMsg(line.VerbHi, line.Version).
		With("hb", secs(cfg.Heartbeat)).
		With("ttl", secs(cfg.TTL)).
		WithInt("maxline", int64(cfg.MaxLine)).
		WithInt("maxname", int64(cfg.MaxName)).
		WithInt("maxfiles", int64(cfg.MaxFiles))
	if cfg.Key != nil {
		mnonce := line.NewNonce()
		if err := ss.send(line.NewMsg(line.VerbAuth, line.AuthScheme).With("nonce", mnonce)); err != nil {
			return err
		}
		m, err := ss.read()
		if err != nil {
			return ss.handshakeError(err)
		}
		if m.Verb != line.VerbAuth || !line.EqualMAC(m.Value("mac"), line.ClientMAC(cfg.Key, role, mnonce, cnonce)) {
			return fail(line.Errorf(line.CodeAuth, "authentication failed"))
		}
		if hasNonce {
			hi = hi.With("mac", line.MasterMAC(cfg.Key, mnonce, cnonce))
		}
	}
	switch err := ss.s.establish(ss); err {
	case errEvicted:
		return ss.handshakeError(err)
	case errSessionsFull:
		ss.s.event(Event{Kind: ConnRefused, Remote: ss.remote, Reason: "too many connections"})
		ss.sendErr(errTooManyConns)
		return errClose
	case errIPFull:
		ss.s.event(Event{Kind: ConnRefused, Remote: ss.remote, Reason: "too many connections from " + ss.ip})
		ss.sendErr(line.Errorf(line.CodeUnavailable, "too many connections from %s: at most %d, try later", ss.ip, cfg.MaxConnsPerIP))
		return errClose
	}
	ss.role = role
	return ss.send(hi)
}

// handshakeError tells a connection crowded out of the handshaking ones
// why it ends (it was not silent for HelloTimeout, only slower than
// MaxHandshakes newer connections).
func (ss *session) handshakeError(err error) error {
	ss.s.mu.Lock()
	evicted := ss.evicted
	ss.s.mu.Unlock()
	if !evicted {
		return err
	}
	ss.s.event(Event{Kind: ConnRefused, Remote: ss.remote, Reason: "too many connections handshaking"})
	// Not send: setDeadline keeps an evicted connection's deadlines in
	// the past. One short line, and a flood is what evicted it, so one
	// second is enough.
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if ss.w.WriteMsg(line.ErrorMsg(line.Errorf(line.CodeUnavailable, "too many connections handshaking, try again"))) == nil {
		ss.w.Flush()
	}
	return errEvicted
}

func (ss *session) dispatch(m line.Msg) error {
	switch m.Verb {
	case line.VerbPing:
		return ss.ping()
	case line.VerbRegister:
		return ss.register(m)
	case line.VerbList:
		return ss.list(m)
	case line.VerbSearch:
		return ss.search(m)
	case line.VerbPeers:
		return ss.peers()
	case line.VerbBye:
		ss.leave()
		ss.send(line.NewMsg(line.VerbBye))
		return errClose
	case line.VerbOffer:
		return ss.offer(m)
	case line.VerbAccept, line.VerbRefuse:
		return ss.answer(m)
	case line.VerbDone:
		return ss.finish(m)
	case verbSeed:
		return ss.seed(m)
	case verbUnseed:
		return ss.unseed(m)
	case verbSources:
		return ss.sources(m)
	case line.VerbHello, line.VerbAuth:
		return ss.sendErr(line.Errorf(line.CodeState, "%s: handshake already done", m.Verb))
	case line.VerbFile, line.VerbEnd:
		return ss.sendErr(line.Errorf(line.CodeState, "%s outside a registration", m.Verb))
	}
	return ss.sendErr(line.Errorf(line.CodeSyntax, "unknown verb %q", m.Verb))
}

func (ss *session) catalogCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(ss.s.ctx, CatalogTimeout)
}

// catalogError maps a catalog failure to the error the peer gets.
func catalogError(err error) *line.Error {
	switch {
	case errors.Is(err, path.ErrBadPattern):
		return line.Errorf(line.CodeSyntax, "bad glob: %v", err)
	case errors.Is(err, store.ErrNotFound):
		return line.Errorf(line.CodeNotFound, "not registered")
	}
	return line.Errorf(line.CodeUnavailable, "catalog unavailable, try later")
}

// held returns the registration address this session holds, or "".
func (ss *session) held() string {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.addr != "" && ss.s.owners[ss.addr] == ss {
		return ss.addr
	}
	return ""
}

// displaced reports whether this session registered an address that
// another connection has taken over since.
func (ss *session) displaced() bool {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	return ss.addr != "" && ss.s.owners[ss.addr] != ss
}

func (ss *session) ping() error {
	if ss.displaced() {
		// Another connection proved the address is its own (or holds
		// the key): this one is told at once, and registers again.
		return ss.sendErr(line.Errorf(line.CodeNotFound, "not registered"))
	}
	if addr := ss.held(); addr != "" {
		ctx, cancel := ss.catalogCtx()
		err := ss.s.cfg.Catalog.Heartbeat(ctx, addr)
		cancel()
		if err != nil {
			// ERR 404 tells a registrar to register again.
			return ss.sendErr(catalogError(err))
		}
	}
	return ss.send(line.NewMsg(line.VerbPong))
}

// register reads "REGISTER addr= n= [name=]", n F lines and END. A header
// whose n cannot be trusted ends the session, since the lines that follow
// could not be told from requests; any other fault is answered once the
// list has been read, and the session goes on.
//
// One REGISTER is read, checked and committed in protocol order (header,
// F lines, END, budgets, owner, catalog): kept whole so that the order of
// the checks reads top to bottom.
func (ss *session) register(m line.Msg) error {
	cfg := &ss.s.cfg
	n, err := m.Int("n")
	if err != nil || n < 0 {
		ss.sendErr(line.Errorf(line.CodeSyntax, "REGISTER needs n=COUNT (0 or more); closing"))
		return errClose
	}
	if n > int64(cfg.MaxFiles) {
		ss.sendErr(line.Errorf(line.CodeTooMany, "too many files: %d, at most %d a registration; closing", n, cfg.MaxFiles))
		return errClose
	}
	if !take(&ss.regTokens, &ss.regLast, float64(n+1), cfg.RegisterRate, float64(cfg.RegisterBurst)) {
		ss.sendErr(line.Errorf(line.CodeSlowDown, "slow down: more than %.0f files registered a minute; closing", cfg.RegisterRate*60))
		return errClose
	}
	files, bad, err := ss.readFiles(n)
	if err != nil {
		return err
	}
	if bad != nil {
		return ss.sendErr(bad)
	}

	addr, name, cerr := ss.checkRegister(m, n)
	if cerr != nil {
		return ss.sendErr(cerr)
	}

	s := ss.s
	proof := m.Value("proof")
	key := ""
	if name != "" {
		key = nameKey(name)
	}
	s.mu.Lock()
	// An address belongs to the connection that registered it: another
	// one takes it over only by proving it is that address (or with the
	// key, which every peer of a keyed master holds).
	if o := s.owners[addr]; o != nil && o != ss && !ss.proves(addr, proof) {
		s.mu.Unlock()
		return ss.challenge(addr)
	}
	// Names are first come, first served, and checked and taken in this
	// one hold of the lock: two registrations racing for one name cannot
	// both pass. A name that looks like one in use (case, 0/o, 1/l ...)
	// is refused too. The holder of the address being taken over gives
	// up its name with it.
	if key != "" {
		if o := s.names[key]; o != nil && o != ss && s.owners[addr] != o {
			holder, holderAddr := o.name, o.addr // o's fields change under s.mu
			s.mu.Unlock()
			if holder == name {
				return ss.sendErr(line.Errorf(line.CodeState, "name %q is taken by %s", name, holderAddr))
			}
			return ss.sendErr(line.Errorf(line.CodeState, "name %q looks like %q, taken by %s", name, holder, holderAddr))
		}
	}
	prev := ""
	if ss.addr != "" && ss.addr != addr && s.owners[ss.addr] == ss {
		prev = ss.addr
	}
	nf := int64(len(files))
	u := s.ipUseLocked(ss.ip)
	ipGrowth := max(0, nf-ss.regFiles)
	if s.cfg.MaxFilesPerIP > 0 && ipGrowth > 0 && u.files+ipGrowth > s.cfg.MaxFilesPerIP {
		s.mu.Unlock()
		return ss.sendErr(line.Errorf(line.CodeFull, "too many files from %s: %d registered from this address, at most %d",
			ss.ip, u.files, s.cfg.MaxFilesPerIP))
	}
	l := loadOf(files)
	growth, full := s.budget.reserve(addr, prev, l)
	if full != nil {
		s.mu.Unlock()
		return ss.sendErr(full)
	}
	u.files += ipGrowth
	reservedName := false
	if key != "" && s.names[key] == nil {
		s.names[key], reservedName = ss, true
	}
	if prev != "" {
		delete(s.owners, prev)
	}
	s.mu.Unlock()
	ctx, cancel := ss.catalogCtx()
	defer cancel()
	if prev != "" {
		s.cfg.Catalog.Unregister(ctx, prev)
	}
	srv := store.Server{Addr: addr, Role: ss.role, Name: name}
	if err := s.cfg.Catalog.Register(ctx, srv, files); err != nil {
		s.mu.Lock()
		s.budget.cancel(growth)
		u.files -= ipGrowth
		if reservedName && s.names[key] == ss {
			delete(s.names, key)
		}
		s.mu.Unlock()
		return ss.sendErr(catalogError(err))
	}
	s.mu.Lock()
	s.budget.commit(addr, l, growth)
	if o := s.owners[addr]; o != nil && o != ss {
		// Taken over: o keeps its addr, so that its next PING is told
		// (ERR 404) and it registers again.
		s.dropRegistrationLocked(o)
	}
	u.files += nf - ss.regFiles - ipGrowth
	ss.regFiles = nf
	if ss.nameKey != "" && ss.nameKey != key && s.names[ss.nameKey] == ss {
		delete(s.names, ss.nameKey)
	}
	if key != "" {
		s.names[key] = ss
	}
	s.owners[addr] = ss
	ss.addr, ss.name, ss.nameKey = addr, name, key
	s.mu.Unlock()
	s.event(Event{Kind: PeerRegistered, Addr: addr, Role: ss.role, Name: name, Files: len(files), Remote: ss.remote})
	return ss.send(line.NewMsg(line.VerbOK).With("addr", addr).WithInt("files", int64(len(files))))
}

// readFiles reads a REGISTER's n F lines and its END. The first bad F line
// is returned as bad (answered once the list is read); err is a fault
// that ends the session (errClose once it has been answered).
func (ss *session) readFiles(n int64) (files []store.File, bad *line.Error, err error) {
	cfg := &ss.s.cfg
	// n is only a claim: memory grows with the F lines that arrive, not
	// with the header, or a 30-byte REGISTER n=MaxFiles would pin about
	// a megabyte until the TTL (see TestPendingRegistrationsCostLittle).
	hint := min(n, preallocFiles)
	files = make([]store.File, 0, hint)
	seen := make(map[string]bool, hint)
	for i := range n {
		ss.setDeadline(ss.nc.SetReadDeadline, time.Now().Add(cfg.TTL))
		raw, err := ss.r.ReadLine()
		if errors.Is(err, line.ErrLineTooLong) {
			ss.sendErr(line.Errorf(line.CodeTooLong, "line longer than %d bytes", cfg.MaxLine))
			return nil, nil, err
		}
		if err != nil {
			return nil, nil, err
		}
		fm, _, err := line.ParseMsg(raw)
		if err == nil && fm.Verb != line.VerbFile {
			ss.sendErr(line.Errorf(line.CodeSyntax, "registration: line %d of %d is %s, not F; closing", i+1, n, fm.Verb))
			return nil, nil, errClose
		}
		var e store.Entry
		if err == nil {
			e, err = line.ParseFile(fm, cfg.MaxName)
		}
		if err == nil && seen[e.Name] {
			err = &line.ProtocolError{Reason: "duplicate name", Input: e.Name}
		}
		if err != nil {
			if bad == nil {
				bad = line.Errorf(line.CodeSyntax, "registration: F line %d: %v", i+1, err)
			}
			continue
		}
		seen[e.Name] = true
		files = append(files, e.File)
	}
	ss.setDeadline(ss.nc.SetReadDeadline, time.Now().Add(cfg.TTL))
	end, err := ss.r.ReadMsg()
	var pe *line.ProtocolError
	if err != nil && !errors.As(err, &pe) {
		return nil, nil, err
	}
	if err != nil || end.Verb != line.VerbEnd {
		ss.sendErr(line.Errorf(line.CodeSyntax, "registration: expected END after %d F lines; closing", n))
		return nil, nil, errClose
	}
	return files, bad, nil
}

// checkRegister checks who may register what: the session's role, the
// address (addr=, or the connection's own) and the peer name.
func (ss *session) checkRegister(m line.Msg, n int64) (addr, name string, _ *line.Error) {
	if ss.role == "client" {
		return "", "", line.Errorf(line.CodeState, "role client cannot register; say HELLO role=server or role=receiver")
	}
	addr, err := ss.registrationAddr(m.Value("addr"))
	if err != nil {
		return "", "", line.Errorf(line.CodeSyntax, "%v", err)
	}
	name = m.Value("name")
	if err := checkPeerName(name); err != nil {
		return "", "", line.Errorf(line.CodeSyntax, "%v", err)
	}
	switch {
	case ss.role == store.RoleServer && n == 0:
		return "", "", line.Errorf(line.CodeSyntax,
			"nothing to share: a file server registers at least one file (a receiver says HELLO role=receiver)")
	case ss.role == store.RoleReceiver && n > 0:
		return "", "", line.Errorf(line.CodeSyntax, "a receiver registers no files (n=0)")
	}
	return addr, name, nil
}

// dropRegistrationLocked forgets what o's registration counted (its files
// in its IP's total, its name) when o loses its address or leaves. s.mu is
// held.
func (s *Server) dropRegistrationLocked(o *session) {
	if u := s.byIP[o.ip]; u != nil {
		u.files -= o.regFiles
	}
	o.regFiles = 0
	if o.nameKey != "" && s.names[o.nameKey] == o {
		delete(s.names, o.nameKey)
	}
	o.nameKey = ""
}

// proves reports whether this session may take addr over from the
// connection holding it: the master has a key (every peer proved it holds
// it), or proof is the token the master sent to addr for this session
// within ProofLifetime. Called from the session's goroutine.
func (ss *session) proves(addr, proof string) bool {
	if ss.s.cfg.Key != nil {
		return true
	}
	return proof != "" && addr == ss.proofAddr && time.Since(ss.proofAt) < ProofLifetime &&
		subtle.ConstantTimeCompare([]byte(proof), []byte(ss.proofToken)) == 1
}

// challenge answers a REGISTER of an address another connection holds: a
// fresh token goes to that address over UDP (chunk.AppendProof), and only a
// peer that receives datagrams there can echo it in REGISTER proof=. The
// datagram (40 bytes) is smaller than the REGISTER that asked for it, so
// the challenge cannot be used to amplify traffic towards a victim, and a
// REGISTER costs the registration budget.
func (ss *session) challenge(addr string) error {
	ss.proofAddr, ss.proofToken, ss.proofAt = addr, chunk.NewProofToken(), time.Now()
	if err := ss.s.sendProof(addr, ss.proofToken); err != nil {
		return ss.sendErr(line.Errorf(CodeTaken, "address %s is registered by another connection, and no challenge could be sent to it (%v)", addr, err))
	}
	return ss.sendErr(line.Errorf(CodeTaken, "address %s is registered by another connection: prove it is yours with REGISTER proof=TOKEN, TOKEN from the datagram just sent to it over UDP", addr))
}

// CodeTaken is the ERR code of a REGISTER of an address another
// connection holds (line.CodeConflict).
const CodeTaken = line.CodeConflict

// sendProof sends the ownership token tok to the UDP address addr.
func (s *Server) sendProof(addr, tok string) error {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("resolving: %w", err)
	}
	s.mu.Lock()
	if s.udp == nil && !s.closing {
		s.udp, err = net.ListenUDP("udp", nil)
	}
	pc := s.udp
	s.mu.Unlock()
	if err != nil || pc == nil {
		return fmt.Errorf("opening a udp socket: %w", err)
	}
	_, err = pc.WriteTo(chunk.AppendProof(nil, tok), ua)
	return err
}

// nameKey folds a peer name to what it looks like: case, and the
// characters a reader takes for one another in a terminal font (0 and o;
// 1, l and i; rn and m; vv and w; _ and -). Two names with one key are one
// name as far as the master is concerned.
func nameKey(n string) string {
	return nameFolds.Replace(strings.ToLower(n))
}

var nameFolds = strings.NewReplacer("rn", "m", "vv", "w", "0", "o", "1", "l", "i", "l", "_", "-")

// registrationAddr checks HOST:PORT and puts the connection's IP in place
// of an empty or unspecified host, so "addr=:5000" means "my address".
func (ss *session) registrationAddr(a string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("bad addr %q: want HOST:PORT", a)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("bad port in addr %q", a)
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || ip != nil && ip.IsUnspecified():
		peer, _, err := net.SplitHostPort(ss.remote)
		if err != nil {
			return "", fmt.Errorf("no address for %q", a)
		}
		host = peer
	case ip == nil && !validHostname(host):
		return "", fmt.Errorf("bad host in addr %q", a)
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, c := range []byte(h) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// checkPeerName checks a display name: 1 to MaxPeerName ASCII letters,
// digits and "._-", and no ':' so that it is never taken for an address.
func checkPeerName(n string) error {
	if n == "" {
		return nil
	}
	if len(n) > MaxPeerName {
		return fmt.Errorf("name longer than %d bytes", MaxPeerName)
	}
	for _, c := range []byte(n) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-", c) >= 0) {
			return fmt.Errorf("bad name %q: use letters, digits, '.', '_' and '-'", n)
		}
	}
	return nil
}

// maxArg reads max=, defaulting to def and capped at line.MaxResults.
func maxArg(m line.Msg, def int) (int, *line.Error) {
	n, err := m.OptInt("max", int64(def))
	if err != nil || n < 1 {
		return 0, line.Errorf(line.CodeSyntax, "max must be a number from 1 to %d", line.MaxResults)
	}
	return int(min(n, line.MaxResults)), nil
}

// sendEntries answers with FOUND n= [more=1], the records and END, or NOT
// FOUND when there are none.
func (ss *session) sendEntries(es []store.Entry, more bool) error {
	if len(es) == 0 {
		return ss.send(line.NewMsg(line.VerbNot, "FOUND"))
	}
	msgs := make([]line.Msg, 0, len(es)+2)
	head := line.NewMsg(line.VerbFound).WithInt("n", int64(len(es)))
	if more {
		head = head.With("more", "1")
	}
	msgs = append(msgs, head)
	for _, e := range es {
		msgs = append(msgs, line.FileMsg(e))
	}
	return ss.send(append(msgs, line.NewMsg(line.VerbEnd))...)
}

func (ss *session) list(m line.Msg) error {
	max, e := maxArg(m, line.DefaultListMax)
	if e != nil {
		return ss.sendErr(e)
	}
	q, err := line.ParseListQuery(m)
	if err != nil {
		return ss.sendErr(line.Errorf(line.CodeSyntax, "LIST: %v", err))
	}
	if q.Folder {
		return ss.listFolder(q)
	}
	glob := q.Glob
	if _, err := path.Match(glob, ""); err != nil {
		return ss.sendErr(line.Errorf(line.CodeSyntax, "bad glob %q", glob))
	}
	ctx, cancel := ss.catalogCtx()
	es, err := ss.s.cfg.Catalog.Files(ctx, glob)
	cancel()
	if err != nil {
		return ss.sendErr(catalogError(err))
	}
	more := len(es) > max
	return ss.sendEntries(es[:min(len(es), max)], more)
}

// listFolder answers one page of a folder listing: the entries under the
// prefix after the cursor, at most max (line.DefaultPageMax by default),
// more=1 when the folder goes on. One more entry than the page is read to
// know whether it does.
func (ss *session) listFolder(q line.ListQuery) error {
	max := q.Max
	if max == 0 {
		max = line.DefaultPageMax
	}
	ctx, cancel := ss.catalogCtx()
	es, err := ss.s.cfg.Catalog.FilesUnder(ctx, q.Prefix, q.After, max+1)
	cancel()
	if err != nil {
		return ss.sendErr(catalogError(err))
	}
	more := len(es) > max
	return ss.sendEntries(es[:min(len(es), max)], more)
}

func (ss *session) search(m line.Msg) error {
	max, e := maxArg(m, line.DefaultSearchMax)
	if e != nil {
		return ss.sendErr(e)
	}
	q := m.Value("q")
	if strings.TrimSpace(q) == "" {
		return ss.sendErr(line.Errorf(line.CodeSyntax, "SEARCH needs q=WORDS"))
	}
	ctx, cancel := ss.catalogCtx()
	es, err := ss.s.cfg.Catalog.Search(ctx, q, max+1)
	cancel()
	if err != nil {
		return ss.sendErr(catalogError(err))
	}
	more := len(es) > max
	return ss.sendEntries(es[:min(len(es), max)], more)
}

func (ss *session) peers() error {
	ctx, cancel := ss.catalogCtx()
	srvs, err := ss.s.cfg.Catalog.Servers(ctx)
	cancel()
	if err != nil {
		return ss.sendErr(catalogError(err))
	}
	if len(srvs) == 0 {
		return ss.send(line.NewMsg(line.VerbNot, "FOUND"))
	}
	msgs := []line.Msg{line.NewMsg(line.VerbFound).WithInt("n", int64(len(srvs)))}
	for _, s := range srvs {
		msgs = append(msgs, line.PeerMsg(s))
	}
	return ss.send(append(msgs, line.NewMsg(line.VerbEnd))...)
}

// leave removes the registration this session holds, unless another
// connection has taken it over or the master is shutting down, and drops
// its offers. It runs at BYE and when the session ends.
func (ss *session) leave() {
	s := ss.s
	s.mu.Lock()
	addr := ""
	if ss.addr != "" && s.owners[ss.addr] == ss {
		addr = ss.addr
		delete(s.owners, addr)
		s.budget.release(addr)
	}
	s.dropRegistrationLocked(ss)
	closing := s.closing
	ss.addr, ss.name = "", ""
	s.mu.Unlock()
	ss.dropOffers()
	ss.dropSeeds()
	if addr == "" || closing {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), CatalogTimeout)
	defer cancel()
	s.cfg.Catalog.Unregister(ctx, addr)
	s.event(Event{Kind: PeerLeft, Addr: addr, Role: ss.role, Remote: ss.remote, Reason: "left"})
}

// setDeadline sets one of the connection's deadlines unless the master is
// shutting down or the connection was evicted, when it keeps the past
// deadline Shutdown or evictLocked set. They set it under the same lock,
// so a session that renews a deadline just after cannot block for a whole
// TTL.
func (ss *session) setDeadline(set func(time.Time) error, t time.Time) {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.closing || ss.evicted {
		t = time.Unix(1, 0)
	}
	set(t)
}
