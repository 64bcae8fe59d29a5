package transfer

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// SocketBuffer is the send and receive buffer NewServer and Fetch ask the
// kernel for on a *net.UDPConn: about 4 ms at 2 GB/s, so a receiver that is
// descheduled for a moment does not drop a window's worth of datagrams.
const SocketBuffer = 8 << 20

// maxDatagramBuf is a receive buffer for one datagram: one byte more than
// the largest packet, so a longer datagram shows as malformed.
const maxDatagramBuf = chunk.MaxDatagram + 1

// link is one UDP socket with counting, tracing and impairment on both
// directions. It is safe for concurrent use, except receive, which one
// goroutine calls at a time.
type link struct {
	conn   net.PacketConn
	udp    *net.UDPConn  // non-nil: the allocation-free path
	off    *offloadBatch // non-nil: batched reads, GSO sends where the kernel has them (Linux)
	impair *Impair
	stats  *Counters
	trace  func(Event)
	sample uint64

	// capture, if set, sees every datagram written and every one delivered
	// (see setCapture); local is the socket's address for it.
	capture func(dir Direction, local, peer netip.AddrPort, b []byte)
	local   netip.AddrPort

	traceActive func() bool // nil: always (see setTraceActive)
	nData       atomic.Uint64
	gsoN        atomic.Int64 // GSO sends (tests)
	outQ        delayLine    // Impair's delay, sending side
	inQ         delayLine    // Impair's delay, receiving side

	// The receiving goroutine's.
	rxMsgs    int                          // messages the last receive read (a GRO message holds several datagrams)
	rxBuf     []byte                       // one datagram, without offload
	rxHandler func([]byte, netip.AddrPort) // the handler of the receive in progress
	rxDeliver func([]byte, netip.AddrPort) // l.deliver to rxHandler, bound once
}

// newLink wraps conn. noOffload turns off GRO and GSO (tests of the plain
// path); batched reads stay.
func newLink(conn net.PacketConn, im *Impair, stats *Counters, trace func(Event), sample int, noOffload bool) *link {
	if sample <= 0 {
		sample = DefaultTraceSample
	}
	l := &link{conn: conn, impair: im, stats: stats, trace: trace, sample: uint64(sample)}
	l.udp, _ = conn.(*net.UDPConn)
	if l.udp != nil {
		l.off = newOffload(l.udp, noOffload)
	}
	l.rxDeliver = func(b []byte, from netip.AddrPort) { l.deliver(b, from, l.rxHandler) }
	return l
}

// setCapture makes fn see every datagram the link writes to the socket and
// every one it delivers to the protocol: a capture taken between the
// impairment and the network on the sending side and between the network's
// impairment and the protocol on the receiving side, so a datagram lost to
// `set loss` is not in it, as if the network had lost it. fn must copy b
// if it keeps it, and must not block.
func (l *link) setCapture(fn func(dir Direction, local, peer netip.AddrPort, b []byte)) {
	l.capture = fn
	if ua, ok := l.conn.LocalAddr().(*net.UDPAddr); ok {
		l.local = ua.AddrPort()
	}
}

// setTraceActive makes the link ask fn before it decodes a datagram for the
// trace: while fn says no, tracing costs a call and no clock read.
func (l *link) setTraceActive(fn func() bool) { l.traceActive = fn }

// receive blocks until datagrams arrive, then hands each one to h through
// the impairment (see deliver). With batching it returns after a batch, so
// the caller can act once per batch (acknowledge, say).
func (l *link) receive(h func([]byte, netip.AddrPort)) error {
	if l.off != nil {
		l.rxHandler = h
		err := l.off.read(l.rxDeliver)
		l.rxMsgs = l.off.messages()
		return err
	}
	if l.rxBuf == nil {
		l.rxBuf = make([]byte, maxDatagramBuf)
	}
	n, from, err := l.read(l.rxBuf)
	if err != nil {
		return err
	}
	l.rxMsgs = 1
	l.deliver(l.rxBuf[:n], from, h)
	return nil
}

// batchSegments is how many packets of seg bytes a sender should put in one
// sendBatch: as many as one GSO send carries (about 64 KiB), at least one.
func (l *link) batchSegments(seg int) int {
	return max(1, min(maxGSOSegments, maxGSOBytes/max(seg, 1)))
}

// sendBatch sends the packets in b: each seg bytes long except possibly the
// last. gso is gsoControl(seg). Without impairment and with GSO it is one
// system call; otherwise each packet goes through send.
func (l *link) sendBatch(b []byte, seg int, to netip.AddrPort, gso []byte) error {
	if len(b) <= seg || !l.impair.idle() || l.off == nil || !l.off.gso.Load() {
		return l.sendEach(b, seg, to)
	}
	_, _, err := l.udp.WriteMsgUDPAddrPort(b, gso, to)
	if err != nil {
		if isGSOError(err) {
			l.off.gso.Store(false)
			return l.sendEach(b, seg, to)
		}
		return err
	}
	l.gsoN.Add(1)
	if l.capture != nil {
		for off := 0; off < len(b); off += seg {
			l.capture(Sent, l.local, to, b[off:min(off+seg, len(b))])
		}
	}
	n := (len(b) + seg - 1) / seg
	l.stats.add(DatagramsSent, int64(n))
	l.stats.add(BytesSent, int64(len(b)))
	if l.trace != nil {
		for off := 0; off < len(b); off += seg {
			l.traceSent(b[off:min(off+seg, len(b))], to, nil, "")
		}
	}
	return nil
}

// sendEach sends the packets of b one by one. It carries on past a failed
// one (a full socket buffer loses that datagram only) unless the socket is
// closed, and returns the first error.
func (l *link) sendEach(b []byte, seg int, to netip.AddrPort) error {
	var first error
	for off := 0; off < len(b); off += seg {
		if err := l.send(b[off:min(off+seg, len(b))], to, nil); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// receiveBuffer enlarges the socket's buffers and returns the receive
// buffer's usable size in bytes.
func (l *link) receiveBuffer() int {
	if l.udp == nil {
		return 256 << 10
	}
	return setSocketBuffers(l.udp, SocketBuffer)
}

func (l *link) write(b []byte, to netip.AddrPort) error {
	var err error
	if l.udp != nil {
		_, err = l.udp.WriteToUDPAddrPort(b, to)
	} else {
		_, err = l.conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	}
	if err != nil {
		return err
	}
	if l.capture != nil {
		l.capture(Sent, l.local, to, b)
	}
	l.stats.add(DatagramsSent, 1)
	l.stats.add(BytesSent, int64(len(b)))
	return nil
}

// send writes the packet b to `to` through the impairment. plain is the
// plaintext payload of a control packet, for the trace. A DATA packet may
// wait for Impair's rate cap; control packets never wait.
func (l *link) send(b []byte, to netip.AddrPort, plain []byte) error {
	s := l.impair.load()
	if s == nil {
		l.traceSent(b, to, plain, "")
		return l.write(b, to)
	}
	isData := len(b) > 3 && chunk.Kind(b[3]) == chunk.KindData
	if s.Rate > 0 {
		if d := l.impair.take(s.Rate, len(b)); d > 0 && isData {
			time.Sleep(d)
		}
	}
	if !s.active() {
		l.traceSent(b, to, plain, "")
		return l.write(b, to)
	}
	if s.Loss > 0 && randFloat() < s.Loss {
		l.stats.add(ImpairDrops, 1)
		l.traceSent(b, to, plain, "impairment")
		return nil
	}
	l.traceSent(b, to, plain, "")
	n := 1
	if s.Dup > 0 && randFloat() < s.Dup {
		n = 2
	}
	corruptIt := s.Corrupt > 0 && randFloat() < s.Corrupt
	d := s.extraDelay()
	if !corruptIt && d == 0 {
		for ; n > 0; n-- {
			if err := l.write(b, to); err != nil {
				return err
			}
		}
		return nil
	}
	cp := append([]byte(nil), b...)
	if corruptIt {
		corrupt(cp)
	}
	if d == 0 {
		for ; n > 0; n-- {
			if err := l.write(cp, to); err != nil {
				return err
			}
		}
		return nil
	}
	if !l.outQ.add(d, func() {
		for i := 0; i < n; i++ {
			_ = l.write(cp, to) // the socket may be closed by then
		}
	}) {
		l.stats.add(ImpairDrops, 1)
	}
	return nil
}

// read reads one datagram.
func (l *link) read(buf []byte) (int, netip.AddrPort, error) {
	if l.udp != nil {
		return l.udp.ReadFromUDPAddrPort(buf)
	}
	n, a, err := l.conn.ReadFrom(buf)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	if ua, ok := a.(*net.UDPAddr); ok {
		return n, ua.AddrPort(), nil
	}
	ap, perr := netip.ParseAddrPort(a.String())
	if perr != nil {
		return 0, netip.AddrPort{}, errors.New("transfer: peer address is not IP:port: " + a.String())
	}
	return n, ap, nil
}

// deliver counts a received datagram and hands it to h through the
// impairment: h may run later on another goroutine, twice, or never. h may
// modify b (sealed packets open in place) and must not keep it.
func (l *link) deliver(b []byte, from netip.AddrPort, h func([]byte, netip.AddrPort)) {
	l.stats.add(DatagramsReceived, 1)
	l.stats.add(BytesReceived, int64(len(b)))
	s := l.impair.load()
	if s == nil || !s.active() {
		l.captureIn(b, from)
		h(b, from)
		return
	}
	if s.Loss > 0 && randFloat() < s.Loss {
		l.stats.add(ImpairDrops, 1)
		if hd, _, err := chunk.ParseHeader(b); err == nil && l.sampled(hd) {
			l.emit(Event{Dir: Received, Peer: from, Header: hd, Size: len(b), Dropped: "impairment"})
		}
		return
	}
	if s.Corrupt > 0 && randFloat() < s.Corrupt {
		corrupt(b)
	}
	var dup []byte
	if s.Dup > 0 && randFloat() < s.Dup {
		dup = append([]byte(nil), b...)
	}
	if d := s.extraDelay(); d > 0 {
		cp := append([]byte(nil), b...)
		if !l.inQ.add(d, func() {
			l.captureIn(cp, from)
			h(cp, from)
			if dup != nil {
				l.captureIn(dup, from)
				h(dup, from)
			}
		}) {
			l.stats.add(ImpairDrops, 1)
		}
		return
	}
	l.captureIn(b, from)
	h(b, from)
	if dup != nil {
		l.captureIn(dup, from)
		h(dup, from)
	}
}

// captureIn shows a datagram about to be delivered to the capture (before
// the handler, which may open it in place).
func (l *link) captureIn(b []byte, from netip.AddrPort) {
	if l.capture != nil {
		l.capture(Received, l.local, from, b)
	}
}

func (l *link) sampled(h chunk.Header) bool {
	if l.trace == nil || l.traceActive != nil && !l.traceActive() {
		return false
	}
	if h.Kind != chunk.KindData || h.Flags&chunk.FlagRetransmit != 0 {
		return true
	}
	return (l.nData.Add(1)-1)%l.sample == 0
}

func (l *link) emit(ev Event) {
	ev.Time = time.Now()
	l.trace(ev)
}

func (l *link) traceSent(b []byte, to netip.AddrPort, plain []byte, dropped string) {
	if l.trace == nil || l.traceActive != nil && !l.traceActive() {
		return
	}
	h, _, err := chunk.ParseHeader(b)
	if err != nil || !l.sampled(h) {
		return
	}
	ev := Event{Dir: Sent, Peer: to, Header: h, Size: len(b), Dropped: dropped}
	decodeEvent(&ev, plain)
	l.emit(ev)
}

// traceRecv reports a received packet whose header parsed; payload is
// plaintext (nil if it never opened).
func (l *link) traceRecv(h chunk.Header, payload []byte, from netip.AddrPort, size int, dropped string) {
	if !l.sampled(h) {
		return
	}
	ev := Event{Dir: Received, Peer: from, Header: h, Size: size, Dropped: dropped}
	decodeEvent(&ev, payload)
	l.emit(ev)
}

// sameAddr compares addresses ignoring IPv4-in-IPv6 mapping.
func sameAddr(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}
