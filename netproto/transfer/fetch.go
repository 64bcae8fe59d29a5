package transfer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/tree"
)

// Sink stores the chunks of one download (store/partfile implements it).
type Sink interface {
	Have(i int) bool                     // chunk i already stored (resume: never requested again)
	WriteChunk(i int, data []byte) error // store chunk i at offset i*ChunkSize; data is only valid during the call
}

// RunSink is a Sink that can also store a run of consecutive chunks whose
// bytes lie end to end in data with one call (store/partfile implements
// it). Fetch gathers small chunks that arrive in order into such runs, to
// save a write per chunk.
type RunSink interface {
	Sink
	WriteChunks(first int, data []byte) error
}

// Request says what to fetch and from where.
type Request struct {
	Hash      string   // content hash: store.HashPrefix + 64 hex digits
	Size      int64    // bytes
	ChunkSize int      // in [chunk.MinChunkSize, chunk.MaxChunkSize]; see ChooseChunkSize
	Sources   []string // UDP HOST:PORT of servers holding the file (several: swarm)
	// Tree asks for the file's tree object (store/tree), not the file:
	// REQUESTs carry chunk.FlagTree and Size is tree.Bytes(file size).
	Tree bool
}

// Client limits and timers.
const (
	// DefaultSourceTimeout is how long a source with work may stay silent
	// (or busy) before it is dropped; with no source left the fetch fails.
	DefaultSourceTimeout = 15 * time.Second
	// DefaultProgressInterval is how often ClientConfig.Progress is called.
	DefaultProgressInterval = 250 * time.Millisecond
	// SpanBytes is the unit of work handed to one source: big enough that
	// handing out work costs nothing, small enough that a slow source
	// holds back little at the end (when idle sources duplicate it).
	SpanBytes = 16 << 20
	// MaxSpanChunks caps a span in chunks, so two spans fit the sender's
	// sent-chunk ring and one ACK bitmap's reach stays meaningful.
	MaxSpanChunks = 4096
	// SpansPerSource is how many unfinished spans a source holds: one it
	// sends and one queued behind it, so it never waits for a REQUEST.
	SpansPerSource = 2
	// MinSteal is the fewest missing chunks an idle source takes from a
	// busy one's claim at the end (it takes the upper half).
	MinSteal = 4
	// minStallTime is the least silence after which a source's claims go
	// to others (it becomes 8 RTTs on slower paths).
	minStallTime = 200 * time.Millisecond
	// MaxRunChunk is the largest chunk size Fetch gathers into runs for a
	// RunSink: a bigger chunk is written on its own at little cost.
	MaxRunChunk = 16 << 10
	// RunBytes caps a run of chunks gathered for one write.
	RunBytes = 256 << 10
	// MaxSources caps the sources of one fetch.
	MaxSources = 64
	// controlTick is the client's timer resolution (delayed ACKs, request
	// retries, progress): the control loop runs at most once per tick.
	controlTick = time.Millisecond
	// maxControlSleep bounds how long the control loop sleeps when nothing
	// is due (a safety net: every deadline it keeps is computed, nextDue).
	maxControlSleep = 50 * time.Millisecond
	// idlePoll is how often a source with no work looks again for work it
	// can take over (a stalled source's claims, the end game's halves,
	// both a matter of time) when nothing else changed.
	idlePoll = 20 * time.Millisecond
	// initialRequestTimeout is the REQUEST retry timeout before any RTT is
	// known; after that it is 4 RTTs (at least minRequestTimeout). It
	// doubles with each retry up to maxRequestTimeout.
	initialRequestTimeout = 200 * time.Millisecond
	minRequestTimeout     = 10 * time.Millisecond
	maxRequestTimeout     = time.Second
)

// ErrSourcesFailed is wrapped by the error Fetch returns when every source
// failed; the message names each source and why.
var ErrSourcesFailed = errors.New("every source failed")

// ErrSourceLeft is the error of a source whose server said it was leaving
// (ERROR leaving: it stopped serving). The source is dropped at once and the
// others carry on; when every source left, Fetch's error wraps it with
// ErrSourcesFailed and reads "server HOST:PORT left".
var ErrSourceLeft = errors.New("the server left")

// sourcesError is Fetch's error when every source failed: a message of its
// own, and the sentinels it stands for.
type sourcesError struct {
	msg  string
	errs []error
}

func (e *sourcesError) Error() string   { return e.msg }
func (e *sourcesError) Unwrap() []error { return e.errs }

// allFailed makes the error of a fetch whose sources have all failed: when
// every one left, "server A left" (or "servers A, B left"), else each source
// and why.
func allFailed(srcs []*source) error {
	var msgs, left []string
	for _, s := range srcs {
		msgs = append(msgs, fmt.Sprintf("%s: %v", s.name, s.err))
		if errors.Is(s.err, ErrSourceLeft) {
			left = append(left, s.name)
		}
	}
	switch {
	case len(left) == 1 && len(srcs) == 1:
		return &sourcesError{"server " + left[0] + " left", []error{ErrSourcesFailed, ErrSourceLeft}}
	case len(left) == len(srcs):
		return &sourcesError{"servers " + strings.Join(left, ", ") + " left", []error{ErrSourcesFailed, ErrSourceLeft}}
	}
	return &sourcesError{ErrSourcesFailed.Error() + ": " + strings.Join(msgs, "; "), []error{ErrSourcesFailed}}
}

// ClientConfig configures Fetch.
type ClientConfig struct {
	Key           []byte        // shared key (at least chunk.MinKeyLen bytes): seal every datagram
	SourceTimeout time.Duration // 0: DefaultSourceTimeout
	Window        int           // receive window in chunks; 0: from the socket's receive buffer
	Impair        *Impair
	Counters      *Counters // where this fetch counts (live); nil: private counters
	Trace         func(Event)
	TraceSample   int
	// Capture, if set, sees every datagram sent and received (see
	// link.setCapture); it must copy what it keeps and must not block.
	Capture func(dir Direction, local, peer netip.AddrPort, b []byte)
	// TraceActive, if set, is asked before each datagram is decoded for
	// Trace: while it says no, Trace costs no clock read (the shell's
	// trace off).
	TraceActive      func() bool
	Progress         func(Progress) // called from Fetch's goroutine every ProgressInterval; must not block
	ProgressInterval time.Duration
	// Tree, if set, is the file's tree (checked against its hash by the
	// caller): every 64 KiB group is checked on arrival (verify.go) and
	// the sink must be a ReadSink.
	Tree *tree.Tree
	// Groups, if set with Tree, records the checked groups as they pass
	// (a seeding server offers them); nil: private.
	Groups *tree.Have
	// Peers, if set (with Tree), brings the partial sources of the file
	// as the caller learns them (from the master): each is added as a
	// source or has its groups updated (peers.go). The claims are then
	// smaller (SwarmSpanBytes) and handed out rarest first, peers first.
	Peers <-chan []Peer

	noOffload bool // tests: no GSO or GRO
}

// Peer is a partial source: a UDP address and the 64 KiB groups it holds,
// as ranges [first, end).
type Peer struct {
	Addr   string
	Groups [][2]int
}

// SourceStats describe one source of a fetch.
type SourceStats struct {
	Addr       string
	Peer       bool   // a partial source (another downloader), not an origin
	State      string // "idle", "requesting", "active", "failed"
	Err        error  // why it failed
	Bytes      int64  // new chunk bytes it delivered
	Chunks     int64
	Duplicates int64
	RTT        time.Duration
}

// Progress is a fetch's state for a progress display.
type Progress struct {
	Have, Total int64         // bytes stored (resumed ones included) and file size
	Rate        float64       // bytes/s, smoothed
	ETA         time.Duration // 0 if unknown
	Sources     []SourceStats
	Stats       Stats
	Map         []uint8 // the file in at most MapCells cells: CellHave, CellInFlight, CellMissing (chunkmap.go)
}

// Result is what a finished fetch did.
type Result struct {
	Bytes   int64 // chunk bytes written by this call (resumed chunks not included)
	Elapsed time.Duration
	Sources []SourceStats
	Stats   Stats
}

// ChooseChunkSize picks the chunk size for a download from these sources:
// the largest one when every source is on loopback; otherwise the largest
// whose sealed DATA datagram fits the smallest route MTU to them (1424
// bytes on a 1500-byte IPv4 path: per-packet costs, and a router's buffer
// counted in packets, both favour full-sized packets); 1200, which fits any
// 1280-byte path, when a route's MTU is unknown (outside Linux, a source
// that is not an IP address). A smaller MTU further along the path than
// the route's shows through ICMP: the kernel then fragments (IPv4) or
// lowers the route's MTU for the next download.
func ChooseChunkSize(sources []string) int {
	if len(sources) == 0 {
		return chunk.DefaultChunkSize
	}
	size, loop := chunk.MaxChunkSize, true
	for _, s := range sources {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return chunk.DefaultChunkSize
		}
		if ap.Addr().IsLoopback() {
			continue
		}
		loop = false
		if size = min(size, pathChunkSize(ap.Addr(), routeMTU(ap))); size <= chunk.DefaultChunkSize {
			return chunk.DefaultChunkSize
		}
	}
	if loop {
		return chunk.MaxChunkSize
	}
	return size
}

// pathChunkSize is the largest chunk whose sealed DATA packet fits one
// datagram of mtu bytes to a (0 if mtu is unknown or too small).
func pathChunkSize(a netip.Addr, mtu int) int {
	ipHdr := 40
	if a.Unmap().Is4() {
		ipHdr = 20
	}
	c := mtu - ipHdr - 8 - chunk.HeaderLen - chunk.TagLen
	if c < chunk.MinChunkSize {
		return 0
	}
	return min(c, chunk.MaxChunkSize)
}

type srcState uint8

const (
	srcIdle       srcState = iota // no work given yet
	srcRequesting                 // REQUEST sent, no DATA yet
	srcActive
	srcFailed
)

func (s srcState) String() string {
	return [...]string{"idle", "requesting", "active", "failed"}[s]
}

// source is one server of a fetch. Guarded by fetcher.mu.
type source struct {
	worker // its part of the claim schedule (swarm.go)

	idx    int // in fetcher.srcs: its bit in the verifier's masks
	addr   netip.AddrPort
	name   string
	tid    uint64
	cipher *chunk.Cipher
	pn     uint64
	cookie []byte
	state  srcState
	err    error

	reqSent    time.Duration
	backoff    int  // REQUEST retries since the source last answered
	reqPending bool // a REQUEST is unanswered (for RTT samples)
	busyUntil  time.Duration
	contacted  bool

	// What the source said instead of data, for backoff and for the
	// error that names why it gave nothing (silentError).
	cookieSent bool // the last REQUEST echoed a cookie
	retries    int  // RETRYs in a row answering an echoed cookie, since the last DATA
	busy       int  // ERROR busy since the last DATA
	lastBusy   bool // the last thing it sent was ERROR busy
	malformed  int  // DATA of the wrong length or past the end

	largestPn uint64
	largestAt time.Duration
	hasPn     bool
	unacked   int
	unackedAt time.Duration
	gap       time.Duration // the time between its chunks, averaged (onData)
	slowAcks  bool          // the last DATA said the sender allows SlowAckDelay (chunk.FlagAckDelay)
	ackDue    bool          // an ACK waits for the end of the batch (flushAcks)
	lastChunk int
	bytes     int64
	chunks    int64
	dups      int64
	rtt       rttEstimator
}

func (s *source) nextPn() uint64 { s.pn++; return s.pn }

// ackDelay is the longest s's ACK may be held back: SlowAckDelay once its
// sender said it allows for that, else MaxAckDelay (an older sender).
func (s *source) ackDelay() time.Duration {
	if s.slowAcks {
		return SlowAckDelay
	}
	return MaxAckDelay
}

// Backoff against a source that answers with something other than data.
const (
	// MaxRetryReplies bounds the RETRYs in a row a source may answer an
	// echoed cookie with: a server refusing every cookie it made (or one
	// that is hostile) would otherwise get a REQUEST per RETRY as fast as
	// the network goes (237,000 REQUESTs in 4 s before issue 18).
	MaxRetryReplies = 8
	// maxBusyBackoff caps the wait after repeated ERROR busy.
	maxBusyBackoff = 4 * time.Second
)

// silentError says why a source with work gave no data for timeout: it
// was busy, it sent malformed DATA, or it said nothing.
func (s *source) silentError(timeout time.Duration) error {
	switch {
	case s.lastBusy:
		return fmt.Errorf("busy: the server is at its limit (%d busy replies, no data for %v)", s.busy, timeout)
	case s.malformed > 0:
		return fmt.Errorf("malformed DATA: %d datagrams of the wrong length or past the end, no good data for %v", s.malformed, timeout)
	}
	return fmt.Errorf("no data for %v", timeout)
}

func (s *source) requestTimeout() time.Duration {
	d := initialRequestTimeout
	if s.rtt.has {
		d = max(4*s.rtt.srtt()+MaxAckDelay, minRequestTimeout)
	}
	return min(d<<min(s.backoff, 16), maxRequestTimeout)
}

type fetcher struct {
	req       Request
	hash      [32]byte
	nchunks   int
	chunkSize int
	sink      Sink
	cfg       ClientConfig
	link      *link
	stats     *Counters
	window    int
	ackEvery  int
	coalesce  bool // small chunks: let datagrams gather between reads (RxCoalesce)
	spanLen   int
	epoch     time.Time
	srcs      []*source
	byTid     atomic.Pointer[map[uint64]*source] // copied on write (a peer joins), read without mu
	complete  chan struct{}
	ver       *verifier // nil: no per-group checks

	mu        sync.Mutex // guards everything below and every source
	finished  bool       // Fetch has returned or is returning: handlers do nothing
	err       error
	have      *chunk.ChunkBitmap
	haveBytes int64
	written   int64
	cum       int
	sw        *swarm // who is asked for which chunks
	payBuf    []byte
	pktBuf    []byte
	acksDue   bool    // some source has ackDue
	runSink   RunSink // non-nil: gather small chunks into runs
	runBuf    []byte  // chunks runFirst... end to end, not yet written
	runFirst  int
	rate      float64
	lastProg  time.Duration
	lastHave  int64
	// The control loop sleeps on timer until wakeAt, the earliest
	// deadline it knows (nextDue); poke brings it forward when a datagram
	// or a checked group makes something due sooner. Both under mu.
	timer    *time.Timer
	wakeAt   time.Duration
	lastTick time.Duration
}

// Fetch downloads req into sink over conn (a UDP socket of the caller's,
// used by this fetch alone until it returns). It returns when every chunk
// is stored, ctx is done, the sink fails, or every source has failed.
// Chunks the sink already has are never requested. On a *net.UDPConn,
// Fetch enlarges the socket buffers; it leaves the read deadline cleared.
func Fetch(ctx context.Context, conn net.PacketConn, req Request, sink Sink, cfg ClientConfig) (Result, error) {
	start := time.Now()
	f, err := newFetcher(conn, req, sink, cfg)
	if err != nil {
		return Result{}, err
	}
	if f.have.Full() && f.ver == nil {
		return f.result(start), nil
	}
	if f.ver != nil {
		f.startVerify()
		defer f.stopVerify()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.readLoop()
	}()
	err = f.control(ctx)
	f.mu.Lock()
	f.finished = true
	reason := chunk.DoneComplete
	if err != nil {
		reason = chunk.DoneCancel
	}
	for _, s := range f.srcs {
		if s.contacted && s.state != srcFailed {
			f.sendDone(s, reason)
			f.sendDone(s, reason) // twice: a lost DONE would leave the server sending until its idle timeout
		}
	}
	f.mu.Unlock()
	_ = conn.SetReadDeadline(time.Now())
	wg.Wait()
	_ = conn.SetReadDeadline(time.Time{})
	f.stats.set(TransfersActive, 0)
	return f.result(start), err
}

// newFetcher: Long because it checks the request and then sets up every part of a
// fetch, in order; each step is a few lines.
func newFetcher(conn net.PacketConn, req Request, sink Sink, cfg ClientConfig) (*fetcher, error) {
	f := &fetcher{req: req, sink: sink, cfg: cfg, epoch: time.Now(), complete: make(chan struct{})}
	f.byTid.Store(&map[uint64]*source{})
	sum, err := store.ParseHash(req.Hash)
	if err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	f.hash = sum
	probe := chunk.Request{Size: req.Size, ChunkSize: uint32(req.ChunkSize), Window: 1}
	if req.ChunkSize < chunk.MinChunkSize || req.ChunkSize > chunk.MaxChunkSize {
		return nil, fmt.Errorf("transfer: chunk size %d outside [%d, %d]", req.ChunkSize, chunk.MinChunkSize, chunk.MaxChunkSize)
	}
	if err := probe.Validate(); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	if len(req.Sources) == 0 || len(req.Sources) > MaxSources {
		return nil, fmt.Errorf("transfer: %d sources (want 1 to %d)", len(req.Sources), MaxSources)
	}
	if sink == nil {
		return nil, errors.New("transfer: nil sink")
	}
	if cfg.Key != nil && len(cfg.Key) < chunk.MinKeyLen {
		return nil, fmt.Errorf("transfer: key of %d bytes (min %d)", len(cfg.Key), chunk.MinKeyLen)
	}
	if f.cfg.SourceTimeout <= 0 {
		f.cfg.SourceTimeout = DefaultSourceTimeout
	}
	if f.cfg.ProgressInterval <= 0 {
		f.cfg.ProgressInterval = DefaultProgressInterval
	}
	f.chunkSize = req.ChunkSize
	f.nchunks = int(probe.Chunks())
	f.stats = cfg.Counters
	if f.stats == nil {
		f.stats = NewCounters(nil)
	}
	f.link = newLink(conn, cfg.Impair, f.stats, cfg.Trace, cfg.TraceSample, cfg.noOffload)
	f.link.setCapture(cfg.Capture)
	f.link.setTraceActive(cfg.TraceActive)

	f.have = chunk.NewChunkBitmap(f.nchunks)
	for i := 0; i < f.nchunks; i++ {
		if sink.Have(i) {
			f.have.Set(i)
			f.haveBytes += int64(f.chunkLen(i))
		}
	}
	f.cum = f.have.NextMissing(0)
	f.spanLen = max(1, min(SpanBytes/f.chunkSize, MaxSpanChunks))
	f.sw = newSwarm(f.have, f.spanLen)
	f.sw.geo = geometry{chunkSize: f.chunkSize, size: req.Size}
	if cfg.Tree != nil {
		if err := f.newVerifier(cfg.Tree, cfg.Groups); err != nil {
			return nil, err
		}
	}
	if f.have.Full() && f.ver == nil {
		return f, nil
	}

	dg := chunk.HeaderLen + f.chunkSize + chunk.TagLen
	f.window = cfg.Window
	rcvbuf := f.link.receiveBuffer()
	if f.window <= 0 {
		f.window = rcvbuf / (dg + 1024) // + kernel bookkeeping per datagram
	}
	f.window = max(MinWindow, min(f.window, chunk.MaxWindow))
	if rs, ok := sink.(RunSink); ok && f.chunkSize <= MaxRunChunk {
		f.runSink = rs
		f.runBuf = make([]byte, 0, RunBytes)
	}
	// Gathering datagrams between reads needs batched reads and a socket
	// buffer that holds a few milliseconds of them.
	f.coalesce = f.chunkSize <= maxCoalesceChunk && f.link.off != nil && rcvbuf >= minCoalesceBuffer
	f.ackEvery = max(2, min(f.window/16, MaxAckEvery))

	for _, addr := range req.Sources {
		if _, err := f.addSource(addr); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// addSource adds a source (at the start, or a peer that joins: then with
// f.mu held).
func (f *fetcher) addSource(addr string) (*source, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("transfer: source %q: %w", addr, err)
	}
	s := &source{worker: newWorker(), idx: len(f.srcs), addr: ua.AddrPort(), name: addr, lastChunk: -2}
	old := *f.byTid.Load()
	for s.tid == 0 || old[s.tid] != nil {
		s.tid = randUint64()
	}
	s.pn = randUint64() >> 2
	if f.cfg.Key != nil {
		c, err := chunk.NewCipher(f.cfg.Key, s.tid, chunk.RoleClient)
		if err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
		s.cipher = c
	}
	next := make(map[uint64]*source, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[s.tid] = s
	f.srcs = append(f.srcs, s)
	f.byTid.Store(&next)
	f.sw.add(&s.worker)
	return s, nil
}

func (f *fetcher) now() time.Duration { return time.Since(f.epoch) }

func (f *fetcher) chunkLen(i int) int {
	return int(min(int64(f.chunkSize), f.req.Size-int64(i)*int64(f.chunkSize)))
}

func (f *fetcher) result(start time.Time) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Result{Bytes: f.written, Elapsed: time.Since(start), Sources: f.sourceStats(), Stats: f.stats.Snapshot()}
}

func (f *fetcher) sourceStats() []SourceStats {
	out := make([]SourceStats, len(f.srcs))
	for i, s := range f.srcs {
		out[i] = SourceStats{Addr: s.name, Peer: s.peer, State: s.state.String(), Err: s.err, Bytes: s.bytes, Chunks: s.chunks, Duplicates: s.dups}
		if s.rtt.has {
			out[i].RTT = s.rtt.srtt()
		}
	}
	return out
}

// finish ends the fetch (err nil: complete). Called with f.mu held.
func (f *fetcher) finish(err error) {
	select {
	case <-f.complete:
		return
	default:
	}
	f.err = err
	close(f.complete)
}

// control runs the fetch's timers: held ACKs, REQUEST retries, sources
// timing out, idle sources taking over work, progress. It sleeps until the
// earliest of them is due (nextDue), not on a fixed tick: a slow download
// would otherwise wake 1000 times a second for a chunk every few tens of
// milliseconds, and thirty of them on one machine spend a core on it.
func (f *fetcher) control(ctx context.Context) error {
	f.mu.Lock()
	f.stats.set(TransfersActive, 1)
	for _, s := range f.srcs {
		f.refill(s, 0)
	}
	f.timer = time.NewTimer(time.Hour)
	defer f.timer.Stop()
	f.runTimers()
	f.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("transfer: fetch stopped: %w", ctx.Err())
		case <-f.complete:
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.err
		case ps := <-f.cfg.Peers:
			f.mu.Lock()
			f.peersSeen(ps)
			f.mu.Unlock()
		case <-f.timer.C:
		}
		f.mu.Lock()
		p := f.runTimers()
		f.mu.Unlock()
		if p != nil {
			f.cfg.Progress(*p)
		}
	}
}

// runTimers does what is due (tick), then sets the timer for the next
// deadline, at least controlTick away. It returns the progress to report,
// if that is due. Called with f.mu held.
func (f *fetcher) runTimers() *Progress {
	f.stats.add(Wakeups, 1)
	f.tick()
	now := f.now()
	var p *Progress
	if f.cfg.Progress != nil && now-f.lastProg >= f.cfg.ProgressInterval {
		p = f.progress()
	}
	f.lastTick = now
	f.wakeAt = max(f.nextDue(now), now+controlTick)
	f.timer.Reset(f.wakeAt - now)
	return p
}

// poke wakes the control loop sooner when something is due before it
// would wake (never sooner than controlTick after its last run). The
// receive loop pokes after each batch, the verifier after each group.
// Called with f.mu held.
func (f *fetcher) poke() {
	if f.timer == nil || f.finished {
		return
	}
	now := f.now()
	if due := max(f.nextDue(now), f.lastTick+controlTick); due < f.wakeAt {
		f.wakeAt = due
		f.timer.Reset(max(due-now, 0))
	}
}

// nextDue is the earliest time tick has something to do: a held ACK to
// send, a REQUEST to send or resend, a source to time out or to find work
// for, progress to report; at most maxControlSleep from now. Called with
// f.mu held.
func (f *fetcher) nextDue(now time.Duration) time.Duration {
	due := now + maxControlSleep
	if f.cfg.Progress != nil {
		due = min(due, f.lastProg+f.cfg.ProgressInterval)
	}
	for _, s := range f.srcs {
		if s.state == srcFailed {
			continue
		}
		if s.unacked > 0 {
			due = min(due, s.unackedAt+s.ackDelay())
		}
		due = min(due, f.sourceDue(s, now))
	}
	return due
}

// sourceDue is when tick next has something to do for s (see tick).
func (f *fetcher) sourceDue(s *source, now time.Duration) time.Duration {
	if !f.hasWork(s) {
		switch {
		case s.needUpdate && s.state == srcActive:
			return now // tell it its claims went to others
		case len(f.sw.pool) > 0 && s.nothingAt != f.sw.gen+1:
			return now // the pool changed since it last found nothing there
		}
		return now + idlePoll
	}
	if s.state == srcIdle {
		return now
	}
	due := max(s.lastData, s.started) + f.cfg.SourceTimeout
	switch {
	case s.needUpdate:
		due = min(due, s.busyUntil)
	case s.state == srcRequesting:
		due = min(due, max(s.busyUntil, s.reqSent+s.requestTimeout()))
	case s.state == srcActive:
		due = min(due, max(s.busyUntil, max(s.lastData, s.reqSent)+s.requestTimeout()))
	}
	return due
}

func (f *fetcher) progress() *Progress {
	now := f.now()
	if dt := (now - f.lastProg).Seconds(); f.lastProg > 0 && dt > 0 {
		inst := float64(f.haveBytes-f.lastHave) / dt
		if f.rate == 0 {
			f.rate = inst
		} else {
			f.rate = 0.7*f.rate + 0.3*inst
		}
	}
	f.lastProg, f.lastHave = now, f.haveBytes
	p := &Progress{Have: f.haveBytes, Total: f.req.Size, Rate: f.rate, Sources: f.sourceStats(), Stats: f.stats.Snapshot(),
		Map: f.chunkMap(MapCells)}
	if f.rate > 0 {
		p.ETA = time.Duration(float64(f.req.Size-f.haveBytes) / f.rate * float64(time.Second))
	}
	return p
}

// tick runs the timers. Called with f.mu held.
func (f *fetcher) tick() {
	now := f.now()
	live := 0
	for _, s := range f.srcs {
		if s.state == srcFailed {
			continue
		}
		live++
		if s.unacked > 0 && now-s.unackedAt >= s.ackDelay() {
			f.sendAck(s, now)
		}
		if !f.hasWork(s) {
			f.refill(s, now)
			if !f.hasWork(s) {
				if s.needUpdate && s.state == srcActive {
					f.sendRequest(s, now) // its claims went to others
				}
				continue
			}
		}
		if s.state == srcIdle {
			s.state, s.started, s.lastData = srcRequesting, now, now
			s.needUpdate = true
		}
		if now-max(s.lastData, s.started) > f.cfg.SourceTimeout {
			f.fail(s, s.silentError(f.cfg.SourceTimeout))
			live--
			continue
		}
		if now < s.busyUntil {
			continue
		}
		switch {
		case s.needUpdate:
			f.sendRequest(s, now)
		case s.state == srcRequesting && now-s.reqSent >= s.requestTimeout():
			f.stats.add(Timeouts, 1)
			s.backoff++
			f.sendRequest(s, now)
		case s.state == srcActive && now-max(s.lastData, s.reqSent) >= s.requestTimeout():
			// Work outstanding but nothing arriving: the last REQUEST or
			// the tail may be lost, or the server forgot us.
			f.stats.add(Timeouts, 1)
			s.backoff++
			f.sendRequest(s, now)
			f.sendAck(s, now)
		}
	}
	if live == 0 {
		f.finish(fmt.Errorf("transfer: %w", allFailed(f.srcs)))
	}
}

func (f *fetcher) fail(s *source, err error) {
	s.state, s.err = srcFailed, err
	f.sw.drop(&s.worker)
}

// hasWork reports whether s is asked for a chunk still missing.
func (f *fetcher) hasWork(s *source) bool { return f.sw.hasWork(&s.worker) }

// refill tops s up with work (swarm.refill).
func (f *fetcher) refill(s *source, now time.Duration) { f.sw.refill(&s.worker, now) }

// rttSample takes the time since the last REQUEST as a round trip.
func (f *fetcher) rttSample(s *source, now time.Duration) {
	s.rtt.update(now-s.reqSent, 0)
	s.srtt = s.rtt.srtt()
	f.stats.set(SmoothedRTT, int64(s.srtt))
	s.reqPending = false
}

// base is the first chunk s was asked for that is still missing.
func (f *fetcher) base(s *source) int {
	for i := range s.claims {
		c := &s.claims[i]
		if c.next = f.have.NextMissing(max(c.next, f.cum)); c.next < c.hi {
			return c.next
		}
	}
	return max(f.cum, min(s.highest+1, f.nchunks))
}

func (f *fetcher) sendPacket(s *source, kind chunk.Kind, payload []byte) {
	var flags chunk.Flags
	if kind == chunk.KindRequest && f.req.Tree {
		flags = chunk.FlagTree
	}
	f.pktBuf = chunk.AppendPacket(f.pktBuf[:0], chunk.Header{Kind: kind, Flags: flags, Transfer: s.tid, Number: s.nextPn()}, payload, s.cipher)
	_ = f.link.send(f.pktBuf, s.addr, payload) // a failed send is a lost datagram: timers recover it
}

func (f *fetcher) sendRequest(s *source, now time.Duration) {
	r := chunk.Request{Hash: f.hash, Size: f.req.Size, ChunkSize: uint32(f.chunkSize), Window: uint32(f.window), Cookie: s.cookie, Ranges: f.sw.ranges(&s.worker),
		AckDelay: uint32(SlowAckDelay / time.Microsecond)}
	f.payBuf = chunk.AppendRequest(f.payBuf[:0], &r)
	f.sendPacket(s, chunk.KindRequest, f.payBuf)
	s.cookieSent = len(s.cookie) > 0
	if s.state != srcActive {
		// Until data flows the handshake is all there is: a second copy
		// halves the chance that loss costs a whole request timeout.
		f.sendPacket(s, chunk.KindRequest, f.payBuf)
	}
	if !s.contacted {
		f.stats.add(TransfersStarted, 1)
	}
	s.reqSent, s.reqPending, s.needUpdate, s.contacted = now, true, false, true
}

func (f *fetcher) sendAck(s *source, now time.Duration) {
	base := f.base(s)
	nbits := 0
	if s.highest >= base {
		nbits = min(chunk.MaxAckBits, s.highest-base+1)
	}
	a := chunk.Ack{
		Cumulative: uint32(f.cum), Base: uint32(base), Largest: s.largestPn,
		Delay: uint32(min((now - s.largestAt).Microseconds(), 1<<32-1)), Window: uint32(f.window), NBits: uint16(nbits),
	}
	f.payBuf = f.payBuf[:0]
	// The bitmap goes straight into the payload buffer after the fixed part.
	fixed := chunk.AppendAck(f.payBuf, &a)
	f.payBuf = f.have.AppendBits(fixed, base, nbits)
	f.sendPacket(s, chunk.KindAck, f.payBuf)
	s.unacked, s.ackDue = 0, false
}

func (f *fetcher) sendDone(s *source, reason chunk.DoneReason) {
	f.payBuf = chunk.AppendDone(f.payBuf[:0], &chunk.Done{Reason: reason})
	f.sendPacket(s, chunk.KindDone, f.payBuf)
}

func (f *fetcher) readLoop() {
	// Handlers are bound once: a method value per datagram would allocate.
	now, batched := f.handle, f.handleBatched
	fails := 0
	for {
		// Without impairment, ACKs due in a batch go out once at its end
		// (they then cover the whole batch); an impaired datagram may be
		// handled later on another goroutine, so it acknowledges at once.
		h := now
		if f.link.impair.idle() {
			h = batched
		}
		err := f.link.receive(h)
		if err != nil {
			f.mu.Lock()
			done := f.finished
			if !done && (errors.Is(err, net.ErrClosed) || fails > 100) {
				f.finish(fmt.Errorf("transfer: reading: %w", err))
				done = true
			}
			f.mu.Unlock()
			if done {
				return
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				fails++
			}
			continue
		}
		fails = 0
		f.flushAcks()
		if f.coalesce && f.link.rxMsgs > 0 && f.link.rxMsgs < coalesceBelow {
			// Datagrams trickle in one or two per wake-up: let them
			// gather for a moment instead of paying a wake-up, a read and
			// an ACK decision per datagram (see RxCoalesce).
			time.Sleep(RxCoalesce)
		}
	}
}

// flushAcks sends the ACKs that datagrams of the last batch made due.
func (f *fetcher) flushAcks() {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.poke()
	if !f.flushRun() {
		return
	}
	if f.acksDue {
		f.sendDueAcks()
	}
	// After the ACKs, so hashing never holds them back.
	f.dispatchVerify(f.link.rxMsgs < coalesceBelow)
}

// sendDueAcks sends the ACKs that the last batch made due. Called with
// f.mu held.
func (f *fetcher) sendDueAcks() {
	f.acksDue = false
	if f.finished {
		return
	}
	now := f.now()
	for _, s := range f.srcs {
		if s.ackDue {
			s.ackDue = false
			if s.state != srcFailed {
				f.sendAck(s, now)
			}
		}
	}
}

// flushRun writes the gathered run of chunks; false if that failed (the
// fetch then fails). Called with f.mu held.
func (f *fetcher) flushRun() bool {
	if len(f.runBuf) == 0 {
		return true
	}
	err := f.runSink.WriteChunks(f.runFirst, f.runBuf)
	f.runBuf = f.runBuf[:0]
	if err != nil {
		f.finish(fmt.Errorf("transfer: %w", err)) // the sink says which chunks
		return false
	}
	return true
}

func (f *fetcher) handleBatched(b []byte, from netip.AddrPort) { f.handlePacket(b, from, true) }

// handle processes one datagram from the socket; an ACK it makes due goes
// out at once.
// (An impaired datagram may be handled late on another goroutine, outside
// any batch: it pokes the control loop itself.)
func (f *fetcher) handle(b []byte, from netip.AddrPort) {
	f.handlePacket(b, from, false)
	f.mu.Lock()
	f.dispatchVerify(false)
	f.poke()
	f.mu.Unlock()
}

// handlePacket processes one datagram; with batched, an ACK it makes due
// waits for flushAcks at the end of the batch. It checks the datagram
// (checksum, transfer id, address, seal), then hands it to the case for
// its kind.
func (f *fetcher) handlePacket(b []byte, from netip.AddrPort, batched bool) {
	p, n, err := chunk.ParsePacket(b)
	if err != nil {
		if err == chunk.ErrChecksum {
			f.stats.add(CRCDrops, 1)
			if h, _, herr := chunk.ParseHeader(b); herr == nil {
				f.link.traceRecv(h, nil, from, len(b), "crc")
			}
		} else {
			f.stats.add(Malformed, 1)
		}
		return
	}
	s := (*f.byTid.Load())[p.Transfer]
	if n != len(b) || s == nil || !sameAddr(s.addr, from) {
		f.stats.add(Hostile, 1)
		return
	}
	payload := p.Payload
	switch {
	case s.cipher != nil:
		if payload, err = s.cipher.Open(b[:n]); err != nil {
			f.stats.add(AuthDrops, 1)
			f.link.traceRecv(p.Header, nil, from, len(b), "does not authenticate")
			return
		}
	case p.Flags&chunk.FlagSealed != 0:
		f.stats.add(AuthDrops, 1)
		return
	}
	f.link.traceRecv(p.Header, payload, from, len(b), "")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finished {
		return
	}
	now := f.now()
	switch p.Kind {
	case chunk.KindData:
		f.onData(s, &p.Header, payload, now, batched)
	case chunk.KindRetry:
		f.onRetry(s, payload, now)
	case chunk.KindError:
		f.onError(s, payload, now)
	case chunk.KindDone:
		// an echo of our DONE, or the server ended the transfer: nothing to do
	default:
		f.stats.add(Hostile, 1)
	}
}

// onRetry handles a RETRY from s: the server's cookie to echo, or its
// refusal of the one echoed. Called with f.mu held.
func (f *fetcher) onRetry(s *source, payload []byte, now time.Duration) {
	r, _, err := chunk.ParseRetry(payload)
	if err != nil {
		f.stats.add(Malformed, 1)
		return
	}
	f.stats.add(Retries, 1)
	if s.reqPending {
		f.rttSample(s, now)
	}
	if int(r.MaxChunkSize) < f.chunkSize {
		f.fail(s, fmt.Errorf("source takes chunks of at most %d bytes, not %d", r.MaxChunkSize, f.chunkSize))
		return
	}
	s.lastBusy = false
	if s.cookieSent {
		// A fresh RETRY for a cookie we echoed: the server refused
		// it. Once is a restarted server or an expired cookie; again
		// and again, back off, then give the source up.
		s.retries++
		if s.retries >= MaxRetryReplies {
			f.fail(s, fmt.Errorf("refuses our cookie: %d RETRYs in a row", s.retries))
			return
		}
	}
	s.cookie = append(s.cookie[:0], r.Cookie...)
	s.cookieSent = false
	s.backoff = 0
	if s.retries > 1 {
		s.busyUntil = now + min(minRequestTimeout<<s.retries, maxRequestTimeout)
		s.needUpdate = true // sent by tick once busyUntil passes
	} else if f.hasWork(s) {
		f.sendRequest(s, now)
	}
}

// onError handles an ERROR from s: busy (back off), not yet (a peer lacks
// that chunk), leaving (drop the source now), unknown transfer (ask
// again); any other code fails the source. Called with f.mu held.
func (f *fetcher) onError(s *source, payload []byte, now time.Duration) {
	e, _, err := chunk.ParseError(payload)
	if err != nil {
		f.stats.add(Malformed, 1)
		return
	}
	switch e.Code {
	case chunk.CodeBusy:
		f.stats.add(BusyReplies, 1)
		// The retry-after asked for, doubled for each busy in a row
		// (up to maxBusyBackoff, or the retry-after if longer).
		wait := time.Duration(min(e.Value, 10000)) * time.Millisecond
		wait = max(wait, min(wait<<min(s.busy, 8), maxBusyBackoff))
		s.busy++
		s.lastBusy = true
		s.busyUntil = now + wait
		s.needUpdate = true
	case chunk.CodeNotYet:
		f.stats.add(NotYetReplies, 1)
		if s.peer && int(e.Value) < f.nchunks {
			f.sw.notYet(&s.worker, int(e.Value))
		}
	case chunk.CodeLeaving:
		// The server stops serving: drop it now (its claims go back
		// to the others), not after SourceTimeout of silence. Like
		// every reply, it counts only from the source's own address,
		// on its transfer id, sealed under the key when there is one.
		f.stats.add(LeavingReplies, 1)
		if s.state != srcFailed {
			f.fail(s, ErrSourceLeft)
		}
	case chunk.CodeUnknownTransfer:
		// The server forgot us: ask again. A source that failed stays
		// failed (a late ERROR must not bring it back without work).
		if s.state != srcFailed {
			s.state = srcRequesting
			s.needUpdate = true
		}
	default:
		if s.state != srcFailed {
			f.fail(s, &e)
		}
	}
}

// onData stores one chunk. Called with f.mu held.
func (f *fetcher) onData(s *source, h *chunk.Header, data []byte, now time.Duration, batched bool) {
	i := int(h.Chunk)
	if i >= f.nchunks || len(data) != f.chunkLen(i) {
		f.stats.add(Malformed, 1)
		s.malformed++
		return
	}
	s.retries, s.busy, s.lastBusy = 0, 0, false
	if s.state == srcFailed {
		return
	}
	f.stats.add(ChunksReceived, 1)
	if s.state != srcActive {
		s.state = srcActive
	}
	if s.reqPending {
		f.rttSample(s, now)
	}
	if s.state == srcActive && s.chunks > 0 {
		// The gap between this source's chunks (a moving average).
		s.gap += (now - s.lastData - s.gap) / 8
	}
	s.lastData = now
	s.backoff = 0
	if !s.hasPn || h.Number > s.largestPn {
		s.largestPn, s.largestAt, s.hasPn = h.Number, now, true
	}
	s.slowAcks = h.Flags&chunk.FlagAckDelay != 0
	ackNow := h.Flags&chunk.FlagAckNow != 0 || i != s.lastChunk+1
	s.lastChunk = i
	if h.Flags&chunk.FlagRetransmit != 0 {
		f.stats.add(Retransmits, 1)
	}
	if f.have.Has(i) {
		f.stats.add(Duplicates, 1)
		s.dups++
		ackNow = true
	} else {
		if !f.store(i, data, batched) {
			return
		}
		f.have.Set(i)
		f.haveBytes += int64(len(data))
		f.written += int64(len(data))
		s.bytes += int64(len(data))
		s.chunks++
		if f.ver != nil {
			f.arrived(s, i, data)
		}
		if i == f.cum {
			f.cum = f.have.NextMissing(i)
		}
		f.sw.delivered(&s.worker, i, now)
	}
	if s.unacked == 0 {
		s.unackedAt = now
	}
	s.unacked++
	switch {
	case f.have.Full():
		if !f.flushRun() {
			return
		}
		f.sendAck(s, now)
	case !ackNow && s.unacked < f.ackEvery && s.gap < s.ackDelay():
		// Held back: more chunks are likely before the delay runs out.
		// (A source whose chunks come further apart than that is
		// acknowledged at the end of the batch: holding its ACK would
		// cover nothing more and cost the control loop a wake-up.)
	case batched:
		s.ackDue, f.acksDue = true, true
	default:
		f.sendAck(s, now)
	}
	if f.have.Full() {
		f.maybeDone()
		return
	}
	for _, o := range f.srcs {
		if o.needUpdate && o.state != srcFailed && now >= o.busyUntil && (o.state == srcActive || o.cookie != nil) {
			f.sendRequest(o, now)
		}
	}
}

// store hands chunk i to the sink, or, in a batch, adds it to the run to
// write at the end of the batch (so the batch's ACKs follow the write).
// False if the sink failed. Called with f.mu held.
func (f *fetcher) store(i int, data []byte, batched bool) bool {
	if f.runSink == nil || !batched {
		if err := f.sink.WriteChunk(i, data); err != nil {
			f.finish(fmt.Errorf("transfer: %w", err)) // the sink says which chunk
			return false
		}
		return true
	}
	if n := len(f.runBuf); n > 0 && (i != f.runFirst+n/f.chunkSize || n+len(data) > cap(f.runBuf) || n%f.chunkSize != 0) {
		if !f.flushRun() {
			return false
		}
	}
	if len(f.runBuf) == 0 {
		f.runFirst = i
	}
	f.runBuf = append(f.runBuf, data...)
	return true
}

func randUint64() uint64 {
	var b [8]byte
	_, _ = cryptoRead(b[:])
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// peersSeen adds the peers not yet among the sources (up to MaxSources)
// and refreshes the groups of the others. Called with f.mu held.
func (f *fetcher) peersSeen(ps []Peer) {
	for _, p := range ps {
		var s *source
		for _, o := range f.srcs {
			if o.name == p.Addr {
				s = o
				break
			}
		}
		if s == nil {
			if len(f.srcs) >= MaxSources || f.ver == nil {
				continue
			}
			var err error
			if s, err = f.addSource(p.Addr); err != nil {
				continue
			}
			if !f.sw.swarming {
				f.sw.goSwarm(max(1, min(SwarmSpanBytes/f.chunkSize, MaxSpanChunks)))
			}
		}
		if s.state == srcFailed || !s.peer && s.idx < len(f.req.Sources) {
			continue // an origin stays one; a liar stays out
		}
		f.sw.setHas(&s.worker, p.Groups)
	}
	for _, s := range f.srcs {
		if s.state != srcFailed && !f.hasWork(s) {
			f.refill(s, f.now())
		}
	}
}
