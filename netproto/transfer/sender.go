package transfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// Sent-chunk record states.
const (
	recFree  uint8 = iota
	recLive        // in flight
	recLost        // declared lost, waiting in the retransmit queue
	recAcked       // acknowledged
)

// sentRec is what a sender remembers about the last transmission of a chunk.
// The delivery fields are BBR's per-packet snapshot for rate samples.
type sentRec struct {
	chunk         uint32
	state         uint8
	appLimited    bool
	size          int32
	pn            uint64
	sendTime      time.Duration
	delivered     int64
	deliveredTime time.Duration
	firstSentTime time.Duration
	lost          int64
}

type fifoEntry struct {
	chunk uint32
	pn    uint64
}

// queue is a FIFO that reuses its backing array.
type queue[T any] struct {
	items []T
	head  int
}

func (q *queue[T]) push(v T) {
	if q.head > 0 && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		q.items = q.items[:n]
		q.head = 0
	}
	q.items = append(q.items, v)
}
func (q *queue[T]) len() int { return len(q.items) - q.head }
func (q *queue[T]) front() T { return q.items[q.head] }
func (q *queue[T]) pop()     { q.head++ }
func (q *queue[T]) reset()   { q.items, q.head = q.items[:0], 0 }
func (q *queue[T]) pushFront(v T) {
	if q.head > 0 {
		q.head--
		q.items[q.head] = v
		return
	}
	q.items = append([]T{v}, q.items...)
}

// transfer is the server side of one transfer: a paced sender goroutine
// (run) and the ACK processing the read loop calls (onAck).
type transfer struct {
	srv       *Server
	key       tkey
	cipher    *chunk.Cipher
	file      File
	hash      [32]byte
	size      int64
	chunkSize int
	nchunks   uint32
	epoch     time.Time
	clock     func() time.Duration // nil: time since epoch (tests run a virtual clock)
	wake      chan struct{}

	mu     sync.Mutex // guards everything below
	closed bool
	ranges []chunk.Range // wanted, ascending
	ri     int           // cursor: range index...
	next   uint32        // ...and the next chunk to look at
	ring   []sentRec     // indexed by chunk & mask
	mask   uint32
	// ackedBits mirrors the ring: bit c&mask is set when the slot holds
	// chunk c and it is acknowledged. An ACK's bitmap repeats, ACK after
	// ACK, every chunk received past a hole; masked with this, only the
	// bits that changed since are looked at (nil for rings under 64 slots).
	ackedBits  []uint64
	sentAt     []time.Duration  // send times indexed by packet number & (len-1): RTT samples
	fifo       queue[fifoEntry] // live transmissions in send order
	retx       queue[uint32]    // chunks declared lost
	low        uint32           // every chunk below is acknowledged
	cum        uint32           // the client's file-wide cumulative point
	rangesPn   uint64           // packet number of the REQUEST that set ranges
	sentHigh   uint32           // one past the highest chunk ever sent
	rwnd       int              // chunks
	ackDelay   time.Duration    // the longest the client may hold an ACK back (REQUEST)
	ackDelayOK bool             // the client announced it: DATA carries chunk.FlagAckDelay
	maxIn      int              // chunks: the server's cap
	inflight   int64            // bytes
	inN        int              // chunks

	delivered     int64
	deliveredTime time.Duration
	firstSentTime time.Duration
	lost          int64
	appLimited    bool
	largestAcked  uint64
	hasLargest    bool
	rtt           rttEstimator
	cc            *bbr
	pn            uint64
	lastRecv      time.Duration
	lastSend      time.Duration
	ptoCount      int
	probes        int // datagrams a probe timeout may send past the window
	nextSendAt    time.Duration
	readErr       error
}

func newTransfer(s *Server, key tkey, c *chunk.Cipher, f File, r *chunk.Request, reqPn uint64) (*transfer, error) {
	t := &transfer{
		srv:       s,
		key:       key,
		cipher:    c,
		file:      f,
		hash:      r.Hash,
		size:      r.Size,
		chunkSize: int(r.ChunkSize),
		nchunks:   uint32(r.Chunks()),
		epoch:     time.Now(),
		wake:      make(chan struct{}, 1),
		maxIn:     s.cfg.MaxInFlight,
		rwnd:      int(r.Window),
	}
	t.setAckDelay(r)
	ringSize := 1 << bits.Len(uint(min(2*t.maxIn, max(int(t.nchunks), 1))-1))
	t.ring = make([]sentRec, ringSize)
	t.mask = uint32(ringSize - 1)
	t.sentAt = make([]time.Duration, ringSize)
	for i := range t.ring {
		t.ring[i].chunk = ^uint32(0)
	}
	if ringSize >= 64 {
		t.ackedBits = make([]uint64, ringSize/64)
	}
	t.cc = newBBR(chunk.HeaderLen + t.chunkSize)
	// A random starting packet number (below 2^62) keeps nonces unique even
	// if a REQUEST is replayed to a restarted transfer.
	t.pn = randUint64() >> 2
	t.setRanges(r.Ranges, reqPn)
	return t, nil
}

func (t *transfer) now() time.Duration {
	if t.clock != nil {
		return t.clock()
	}
	return time.Since(t.epoch)
}

func (t *transfer) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// sinceProgress is how long the transfer has gone without a chunk
// acknowledged (since it started, if none was).
func (t *transfer) sinceProgress() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.now() - t.deliveredTime
}

// sinceHeard is how long the transfer's client has sent nothing.
func (t *transfer) sinceHeard() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.now() - t.lastRecv
}

func (t *transfer) stop() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.signal()
}

// setRanges replaces the wanted chunks, as asked by the client's packet
// number pn. Called with t.mu held (or before run).
func (t *transfer) setRanges(rs []chunk.Range, pn uint64) {
	t.ranges = append(t.ranges[:0], rs...)
	t.ri, t.next = 0, 0
	t.rangesPn = pn
	// A client asks again for chunks it had acknowledged only when it
	// dropped them: their group failed its tree check (verified
	// streaming). They are sent again: the cumulative point comes down to
	// them and their records forget the acknowledgement.
	if len(rs) > 0 && rs[0].First < t.cum {
		t.cum = rs[0].First
	}
	// Only chunks within the ring's reach below sentHigh can still hold a
	// record; the ranges are disjoint, so this visits at most len(ring)
	// records per REQUEST whatever the ranges claim.
	reach := t.sentHigh - min(t.sentHigh, uint32(len(t.ring)))
	for _, rg := range rs {
		for c := max(rg.First, reach); uint64(c) < rg.End() && c < t.sentHigh; c++ {
			if r := t.slot(c); r.chunk == c && r.state == recAcked {
				r.state = recFree
			}
		}
	}
	// An ACK's base speaks of the ranges it was sent under; only the
	// file-wide cumulative point carries over to the new ones.
	t.low = t.cum
}

func (t *transfer) wanted(c uint32) bool {
	i := sort.Search(len(t.ranges), func(i int) bool { return uint64(t.ranges[i].First)+uint64(t.ranges[i].Count) > uint64(c) })
	return i < len(t.ranges) && t.ranges[i].First <= c
}

// lostWanted reports whether a chunk this sender declared lost is still
// wanted: it is if a range wants it, or if it lies below the end of the
// last range — a client with more holes than a REQUEST can list
// (chunk.MaxRequestRanges) names the lowest ones and the unsent tail, and
// still wants the holes in between: they are resent without waiting for
// the REQUEST that names them.
func (t *transfer) lostWanted(c uint32) bool {
	if len(t.ranges) == 0 {
		return false
	}
	if len(t.ranges) < chunk.MaxRequestRanges {
		return t.wanted(c)
	}
	return c >= t.ranges[0].First && uint64(c) < t.ranges[len(t.ranges)-1].End()
}

// setAckDelay takes the longest the client may hold an ACK back from its
// REQUEST (chunk.Request.AckDelay, bounded by chunk.MaxAnnouncedAckDelay):
// the probe timeout allows for it, and DATA says it is honoured.
func (t *transfer) setAckDelay(r *chunk.Request) {
	t.ackDelay, t.ackDelayOK = MaxAckDelay, r.AckDelay != 0
	if t.ackDelayOK {
		t.ackDelay = max(MaxAckDelay, time.Duration(r.AckDelay)*time.Microsecond)
	}
}

// update applies a REQUEST on the live transfer: new wanted ranges and window.
func (t *transfer) update(r *chunk.Request, pn uint64) error {
	if r.Hash != t.hash || r.Size != t.size || int(r.ChunkSize) != t.chunkSize {
		return errors.New("request does not match the transfer")
	}
	t.mu.Lock()
	t.lastRecv = t.now()
	if pn < t.rangesPn {
		t.mu.Unlock()
		return nil // overtaken by a newer REQUEST
	}
	t.setRanges(r.Ranges, pn)
	t.rwnd = int(r.Window)
	t.setAckDelay(r)
	t.mu.Unlock()
	t.signal()
	return nil
}

func (t *transfer) chunkLen(c uint32) int {
	off := int64(c) * int64(t.chunkSize)
	return int(min(int64(t.chunkSize), t.size-off))
}

func (t *transfer) slot(c uint32) *sentRec { return &t.ring[c&t.mask] }

// pick chooses the next chunk to send: a lost one first, then the next new
// one. ok is false if there is nothing (or the ring is full).
func (t *transfer) pick() (c uint32, retransmit, ok bool) {
	for t.retx.len() > 0 {
		c := t.retx.front()
		t.retx.pop()
		r := t.slot(c)
		if r.chunk == c && r.state == recLost && c >= t.low && t.lostWanted(c) {
			return c, true, true
		}
	}
	for t.ri < len(t.ranges) {
		rg := t.ranges[t.ri]
		c := max(t.next, rg.First, t.low)
		if uint64(c) >= rg.End() {
			t.ri++
			continue
		}
		r := t.slot(c)
		if r.chunk == c && r.state == recLost {
			// Lost, and not queued: the retransmit queue, empty by now,
			// dropped it while a REQUEST did not want it (one cut at
			// MaxRequestRanges, say); wanted again, it is resent here.
			t.next = c + 1
			return c, true, true
		}
		if r.chunk == c && r.state != recFree {
			t.next = c + 1 // in flight or acknowledged already
			continue
		}
		if r.state == recLive || r.state == recLost {
			return 0, false, false // the slot still holds another chunk in flight
		}
		t.next = c + 1
		return c, false, true
	}
	return 0, false, false
}

// window is how many bytes may be in flight.
func (t *transfer) window() int64 {
	w := min(t.cc.cwnd, int64(min(t.rwnd, t.maxIn))*t.cc.chunk)
	return max(w, t.cc.chunk)
}

func (t *transfer) ptoDeadline() time.Duration {
	d := t.rtt.pto(t.ackDelay) << min(t.ptoCount, 10)
	return t.lastSend + min(d, MaxPTO)
}

// plan decides, under t.mu, what to do now: send chunk c (with flags), or
// wait (0 < wait), or stop.
func (t *transfer) plan(now time.Duration) (c uint32, flags chunk.Flags, wait time.Duration, stop bool) {
	if t.closed || t.readErr != nil {
		return 0, 0, 0, true
	}
	idle := t.srv.cfg.IdleTimeout
	if now-t.lastRecv > idle {
		return 0, 0, 0, true
	}
	t.detectLosses(now)
	if t.inN > 0 && now >= t.ptoDeadline() {
		t.onPTO()
	}
	if t.nextSendAt > now+50*time.Microsecond {
		return 0, 0, t.nextSendAt - now, false
	}
	size := t.cc.chunk
	if t.inflight+size > t.window() && t.probes == 0 {
		return 0, 0, t.waitFor(now), false
	}
	c, retransmit, ok := t.pick()
	if !ok {
		t.appLimited = true
		return 0, 0, t.waitFor(now), false
	}
	if retransmit {
		flags |= chunk.FlagRetransmit
	}
	if t.ackDelayOK {
		flags |= chunk.FlagAckDelay
	}
	if t.probes > 0 {
		t.probes--
		flags |= chunk.FlagAckNow
	}
	if t.inflight+2*size > t.window() || (t.ri >= len(t.ranges) && t.retx.len() == 0) {
		flags |= chunk.FlagAckNow // the window is full, or this is the last: do not make the ACK wait
	}
	t.record(c, int32(chunk.HeaderLen+t.chunkLen(c)), now)
	rate := max(t.cc.pacingRate, 1)
	t.nextSendAt = max(t.nextSendAt, now-2*pacingQuantum) + time.Duration(int64(size)*int64(time.Second)/rate)
	return c, flags, 0, false
}

// waitFor is how long to sleep when nothing can be sent.
func (t *transfer) waitFor(now time.Duration) time.Duration {
	d := t.lastRecv + t.srv.cfg.IdleTimeout - now
	if t.inN > 0 {
		d = min(d, t.ptoDeadline()-now)
		if t.fifo.len() > 0 && t.hasLargest {
			e := t.fifo.front()
			if r := t.slot(e.chunk); r.chunk == e.chunk && r.state == recLive && e.pn < t.largestAcked {
				d = min(d, r.sendTime+t.rtt.lossDelay()-now)
			}
		}
	}
	return max(d, 100*time.Microsecond)
}

func (t *transfer) record(c uint32, size int32, now time.Duration) {
	if t.inN == 0 {
		t.firstSentTime, t.deliveredTime = now, now
	}
	r := t.slot(c)
	if t.ackedBits != nil {
		t.ackedBits[(c&t.mask)>>6] &^= 1 << (c & 63)
	}
	*r = sentRec{
		chunk: c, state: recLive, size: size, pn: t.pn, sendTime: now,
		delivered: t.delivered, deliveredTime: t.deliveredTime, firstSentTime: t.firstSentTime,
		lost: t.lost, appLimited: t.appLimited,
	}
	t.appLimited = false
	t.fifo.push(fifoEntry{c, t.pn})
	t.sentAt[t.pn&uint64(len(t.sentAt)-1)] = now
	t.pn++
	t.inflight += int64(size)
	t.inN++
	t.lastSend = now
	t.sentHigh = max(t.sentHigh, c+1)
}

func (t *transfer) markLost(r *sentRec, first bool) {
	r.state = recLost
	t.inflight -= int64(r.size)
	t.inN--
	t.lost += int64(r.size)
	t.cc.onLoss(int64(r.size))
	if first {
		t.retx.pushFront(r.chunk)
	} else {
		t.retx.push(r.chunk)
	}
	t.srv.stats.add(Losses, 1)
}

// detectLosses declares lost what RFC 9002's packet and time thresholds say.
func (t *transfer) detectLosses(now time.Duration) {
	if !t.hasLargest {
		return
	}
	lossDelay := t.rtt.lossDelay()
	for t.fifo.len() > 0 {
		e := t.fifo.front()
		r := t.slot(e.chunk)
		if r.chunk != e.chunk || r.pn != e.pn || r.state != recLive {
			t.fifo.pop() // acknowledged or superseded
			continue
		}
		if e.pn > t.largestAcked {
			return
		}
		if t.largestAcked-e.pn >= 3 || now-r.sendTime >= lossDelay {
			t.fifo.pop()
			t.markLost(r, false)
			continue
		}
		return
	}
}

// onPTO fires when nothing has been acknowledged for a probe timeout: the
// oldest chunk in flight is sent again, past the window, with ACK-now.
func (t *transfer) onPTO() {
	t.ptoCount++
	t.probes = 2
	t.srv.stats.add(Timeouts, 1)
	for t.fifo.len() > 0 {
		e := t.fifo.front()
		t.fifo.pop()
		if r := t.slot(e.chunk); r.chunk == e.chunk && r.pn == e.pn && r.state == recLive {
			t.markLost(r, true)
			return
		}
	}
}

// onAck processes one ACK from the client.
//
// Kept whole: RFC 9002's ACK processing in its order (RTT sample, newly
// acknowledged, loss detection, congestion control, window).
func (t *transfer) onAck(a *chunk.Ack, pn uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.lastRecv = now
	t.rwnd = int(a.Window)

	// The ACK names the largest packet number the client received. A
	// chunk acknowledged now whose record is of a later transmission (a
	// retransmission, or a probe) was received as an earlier one: it
	// counts as delivered but speaks for no packet, so it neither gives
	// the rate sample nor moves the largest acknowledged packet.
	var newest *sentRec
	var acked int64
	ack := func(r *sentRec) {
		switch r.state {
		case recLive:
			t.inflight -= int64(r.size)
			t.inN--
		case recLost: // a spurious loss: it arrived after all
		default:
			return
		}
		r.state = recAcked
		if t.ackedBits != nil {
			t.ackedBits[(r.chunk&t.mask)>>6] |= 1 << (r.chunk & 63)
		}
		t.delivered += int64(r.size)
		t.deliveredTime = now
		acked += int64(r.size)
		if r.pn <= a.Largest && (newest == nil || r.pn > newest.pn) {
			newest = r
		}
	}
	t.cum = max(t.cum, min(a.Cumulative, t.nchunks))
	newLow := t.cum
	if pn > t.rangesPn {
		newLow = max(newLow, min(a.Base, t.nchunks))
	}
	if newLow > t.low {
		if newLow-t.low >= uint32(len(t.ring)) {
			for i := range t.ring {
				if r := &t.ring[i]; r.chunk < newLow {
					ack(r)
				}
			}
		} else {
			for c := t.low; c < newLow; c++ {
				if r := t.slot(c); r.chunk == c {
					ack(r)
				}
			}
		}
		t.low = newLow
	}
	var unsent int64
	t.forEachNewlyAcked(a, func(c uint32) {
		if c < t.low {
			return
		}
		if c >= t.sentHigh {
			unsent++
			return
		}
		if r := t.slot(c); r.chunk == c {
			ack(r)
		}
	})
	if unsent > 0 {
		t.srv.stats.add(AckUnsent, unsent)
	}
	if acked == 0 {
		return
	}
	// An RTT sample comes from the send time of the packet the ACK names,
	// when that packet is newly acknowledged and sent recently enough for
	// its time to be remembered (packet numbers solve Karn's problem).
	var sample time.Duration
	if a.Largest < t.pn && t.pn-a.Largest <= uint64(len(t.sentAt)) && (!t.hasLargest || a.Largest > t.largestAcked) {
		sample = now - t.sentAt[a.Largest&uint64(len(t.sentAt)-1)]
		t.rtt.update(sample, time.Duration(a.Delay)*time.Microsecond)
		t.largestAcked, t.hasLargest = a.Largest, true
	}
	t.ptoCount = 0
	if newest == nil {
		t.detectLosses(now)
		t.signal()
		return
	}
	t.firstSentTime = newest.sendTime
	rs := rateSample{
		delivered:      t.delivered - newest.delivered,
		lost:           t.lost - newest.lost,
		interval:       max(newest.sendTime-newest.firstSentTime, now-newest.deliveredTime),
		priorDelivered: newest.delivered,
		appLimited:     newest.appLimited,
	}
	if sample > 0 {
		rs.rtt = sample
		if d := time.Duration(a.Delay) * time.Microsecond; rs.rtt > d {
			rs.rtt -= d
		}
	}
	if rs.interval < t.rtt.min {
		rs.interval = 0 // too short to trust (ACK compression)
	}
	t.detectLosses(now)
	t.cc.onAck(now, rs, acked, t.delivered, t.inflight)
	st := t.srv.stats
	st.set(SmoothedRTT, int64(t.rtt.srtt()))
	st.set(Cwnd, t.cc.cwnd)
	st.set(PacingRate, t.cc.pacingRate)
	t.signal()
}

// forEachNewlyAcked calls fn for the chunks a's bitmap marks, skipping
// those the ring already holds as acknowledged: 64 bits at a time, so the
// cost of an ACK is its length in words plus what changed, not one lookup
// per bit that an earlier ACK already reported.
func (t *transfer) forEachNewlyAcked(a *chunk.Ack, fn func(c uint32)) {
	if t.ackedBits == nil {
		a.ForEach(fn)
		return
	}
	nb := int(a.NBits)
	for k := 0; k < nb; k += 64 {
		v := bitmapWord(a.Bits, k/8)
		c0 := a.Base + uint32(k)
		v &^= t.ackedWord(c0)
		for v != 0 {
			fn(c0 + uint32(bits.TrailingZeros64(v)))
			v &= v - 1
		}
	}
}

// bitmapWord reads up to 8 bytes of an ACK bitmap from byte i as a
// little-endian word (bit j is chunk base+8i+j), zero past the end.
func bitmapWord(b []byte, i int) uint64 {
	if i+8 <= len(b) {
		return binary.LittleEndian.Uint64(b[i:])
	}
	var v uint64
	for j := i; j < len(b); j++ {
		v |= uint64(b[j]) << (8 * (j - i))
	}
	return v
}

// ackedWord returns ackedBits for the 64 chunks from c0 (the ring wraps).
func (t *transfer) ackedWord(c0 uint32) uint64 {
	idx := c0 & t.mask
	w, s := idx>>6, idx&63
	v := t.ackedBits[w] >> s
	if s != 0 {
		v |= t.ackedBits[(int(w)+1)%len(t.ackedBits)] << (64 - s)
	}
	return v
}

// planned is one chunk the sender decided to send.
type planned struct {
	chunk uint32
	flags chunk.Flags
	pn    uint64
}

// run is the transfer's sender goroutine. It sends in batches: every chunk
// the pacer and the window allow now, up to one GSO send (about 64 KiB),
// with one file read per run of consecutive chunks, then one system call.
func (t *transfer) run() {
	s := t.srv
	defer s.wg.Done()
	defer func() {
		_ = t.file.Close()
		s.remove(t)
	}()
	t.mu.Lock()
	t.lastRecv = t.now()
	t.mu.Unlock()
	seg := chunk.HeaderLen + t.chunkSize
	if t.cipher != nil {
		seg += chunk.TagLen
	}
	nseg := s.link.batchSegments(seg)
	gso := gsoControl(seg)
	buf := make([]byte, nseg*seg)
	var scratch []byte // one read for a run of chunks, copied into the packets
	if nseg > 1 {
		scratch = make([]byte, nseg*t.chunkSize)
	}
	plans := make([]planned, 0, nseg)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		plans = plans[:0]
		var wait time.Duration
		var stop bool
		t.mu.Lock()
		for len(plans) < nseg {
			c, flags, w, st := t.plan(t.now())
			if st || w > 0 {
				wait, stop = w, st
				break
			}
			plans = append(plans, planned{c, flags, t.pn - 1})
			if t.chunkLen(c) < t.chunkSize {
				break // a short packet can only be the last of a GSO send
			}
		}
		t.mu.Unlock()
		if len(plans) > 0 {
			if err := t.sendPlanned(plans, buf, scratch, seg, gso); err != nil {
				return
			}
			continue
		}
		if stop {
			t.mu.Lock()
			err := t.readErr
			t.mu.Unlock()
			switch {
			case errors.Is(err, ErrChanged):
				s.replyStateless(t.key.addr, 1<<20, t.key.tid, t.cipher, chunk.CodeNotFound, 0, changedText)
			case errors.Is(err, ErrNotYet):
				s.replyStateless(t.key.addr, 1<<20, t.key.tid, t.cipher, chunk.CodeNotYet, 0, "not yet: that part is not checked here yet")
			case err != nil:
				s.replyStateless(t.key.addr, 1<<20, t.key.tid, t.cipher, chunk.CodeInternal, 0, "reading the file failed")
			}
			return
		}
		timer.Reset(wait)
		select {
		case <-t.wake:
		case <-timer.C:
		case <-s.ctx.Done():
			return
		}
	}
}

// sendPlanned reads and sends the planned chunks as packets of seg bytes
// laid end to end in buf. It returns an error only when the socket is
// closed; a failed read stops the transfer through readErr, and a failed
// send counts as loss (recovered like one).
func (t *transfer) sendPlanned(plans []planned, buf, scratch []byte, seg int, gso []byte) error {
	s := t.srv
	end := 0
	for i := 0; i < len(plans); {
		// A run of consecutive chunks is read at once.
		j := i + 1
		for j < len(plans) && plans[j].chunk == plans[j-1].chunk+1 && scratch != nil {
			j++
		}
		off := int64(plans[i].chunk) * int64(t.chunkSize)
		var data []byte
		if j-i > 1 {
			n := 0
			for k := i; k < j; k++ {
				n += t.chunkLen(plans[k].chunk)
			}
			if m, err := t.file.ReadAt(scratch[:n], off); m < n {
				t.failRead(plans[i].chunk, err)
				break
			}
			data = scratch[:n]
		}
		ok := true
		for k := i; k < j; k++ {
			p := plans[k]
			n := t.chunkLen(p.chunk)
			pkt := chunk.AppendHeader(buf[end:end], chunk.Header{Kind: chunk.KindData, Flags: p.flags, Transfer: t.key.tid, Chunk: p.chunk, Number: p.pn})
			pkt = pkt[:chunk.HeaderLen+n]
			if data != nil {
				copy(pkt[chunk.HeaderLen:], data[:n])
				data = data[n:]
			} else if m, err := t.file.ReadAt(pkt[chunk.HeaderLen:], off); m < n {
				t.failRead(p.chunk, err)
				ok = false
				break
			}
			pkt = chunk.Finish(pkt, 0, t.cipher)
			end += len(pkt)
		}
		if !ok {
			break
		}
		i = j
	}
	if end == 0 {
		return nil
	}
	if err := s.link.sendBatch(buf[:end], seg, t.key.addr, gso); err != nil && errors.Is(err, net.ErrClosed) {
		return err
	}
	// Chunks whose send failed otherwise count as sent: they are recovered
	// as losses.
	n := int64((end + seg - 1) / seg)
	s.stats.add(ChunksSent, n)
	var retx int64
	for _, p := range plans[:n] {
		if p.flags&chunk.FlagRetransmit != 0 {
			retx++
		}
	}
	if retx > 0 {
		s.stats.add(Retransmits, retx)
	}
	return nil
}

func (t *transfer) failRead(c uint32, err error) {
	if err == nil {
		err = errors.New("short read")
	}
	t.mu.Lock()
	t.readErr = fmt.Errorf("reading chunk %d: %w", c, err)
	t.mu.Unlock()
}
