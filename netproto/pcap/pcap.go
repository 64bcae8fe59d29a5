// Package pcap writes what a process sends and receives into a standard
// libpcap capture file that Wireshark and tshark open.
//
// Writer is a capture in progress: UDP and TCP hand it one datagram or one
// protocol line with the real local and remote address and port; it wraps
// each in synthesized IPv4 or IPv6 and UDP or TCP headers and writes it as
// one record of link type LINKTYPE_RAW (101: the record starts with the IP
// header; the version nibble says v4 or v6). Why synthesized IP headers
// rather than LINKTYPE_USER0: Wireshark's own tools (conversations,
// endpoints, IO graphs, "Follow UDP/TCP stream", TCP analysis) work on them,
// the fxsh dissector finds the packets by port and by heuristics with no
// per-user link-type table to configure, and the same dissector reads a
// capture taken with tcpdump on a real interface.
//
// A Writer never blocks its caller: UDP and TCP copy the bytes into a queue
// bounded by MaxQueued, and one goroutine encodes and writes the records.
// What does not fit in the queue is counted (Stats.Dropped), not waited
// for. The file is bounded too: once the next record would take it past its
// cap (DefaultMaxBytes unless told), the capture stops, Stats.Full is set
// and OnFull is called once.
//
// The checksums in the synthesized headers are computed (IPv4 header, UDP,
// TCP), so Wireshark's checksum validation, when switched on, agrees. TCP
// segments carry sequence and acknowledgement numbers counted per
// connection from 1, so "Follow TCP stream" and the TCP analysis work; the
// SYN/FIN handshake, which the process never sees, is not invented.
package pcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Limits and constants.
const (
	// DefaultMaxBytes caps a capture file when the caller gives no cap:
	// 64 MiB holds a 1 MB download at 20 % loss many times over (about
	// 1.1 MB of datagrams each), or about a minute of a classroom's TCP,
	// and is small enough to leave on and forget.
	DefaultMaxBytes = 64 << 20

	// MaxQueued caps the bytes waiting for the writer goroutine. A burst
	// larger than this (the disk slower than the network) loses packets
	// from the capture, counted in Stats.Dropped; the transfer itself never
	// waits for the disk.
	MaxQueued = 16 << 20

	// LinkTypeRaw is LINKTYPE_RAW: each record is an IPv4 or IPv6 packet.
	LinkTypeRaw = 101

	// Snaplen is the largest record: a whole IP packet (the 16-bit IPv4
	// total length) plus the 40-byte IPv6 header.
	Snaplen = 65535 + 40

	fileHeaderLen   = 24
	recordHeaderLen = 16
	maxPayload      = 65535 - 20 - 20 // the largest payload any record carries
	maxFlows        = 4096            // TCP connections whose sequence numbers are remembered
	maxRoutes       = 1024            // unspecified local addresses resolved per peer
)

// Proto says which transport header a record gets.
type Proto uint8

// Transports.
const (
	UDP Proto = 17
	TCP Proto = 6
)

// ErrTooLong is what Add returns for a payload no IP packet can carry.
var ErrTooLong = errors.New("pcap: payload longer than an IP packet can carry")

// Stats describe a capture.
type Stats struct {
	Packets int64 // records written
	Bytes   int64 // file size so far, headers included
	Dropped int64 // packets not captured because the queue was full or the file at its cap
	Full    bool  // the cap was reached: nothing more is written
	Err     error // the first write error (the capture stopped)
}

// Options configure a Writer.
type Options struct {
	MaxBytes int64  // cap of the file, headers included; 0: DefaultMaxBytes
	OnFull   func() // called once, from the writer goroutine, when the cap stops the capture
	// Now returns the time stamped on a record; nil: time.Now. (Tests.)
	Now func() time.Time
}

type record struct {
	t        time.Time
	proto    Proto
	src, dst netip.AddrPort
	b        []byte
}

// Writer is a capture in progress. Its methods are safe for concurrent use.
type Writer struct {
	opts   Options
	closer io.Closer // the file, when Create opened it

	// Set by the callers, read by the writer goroutine.
	queue  chan record
	queued atomic.Int64 // bytes in queue
	stats  struct {
		packets, bytes, dropped atomic.Int64
		full                    atomic.Bool
	}

	mu     sync.Mutex // guards closed and sending on queue against Close
	closed bool

	// The writer goroutine's.
	w      *bufio.Writer
	err    error
	seq    map[[2]netip.AddrPort]uint32 // next TCP sequence number per direction
	routes map[netip.Addr]netip.Addr    // peer → the local address the kernel would use
	ipID   uint16
	buf    []byte
	done   chan struct{}
}

// Create creates (or truncates) the file at path and starts a capture into
// it.
func Create(path string, opts Options) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating capture file: %w", err)
	}
	w, err := NewWriter(f, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.closer = f
	return w, nil
}

// NewWriter writes the pcap file header to out and starts a capture into
// it. Close stops it; it does not close out.
func NewWriter(out io.Writer, opts Options) (*Writer, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Writer{
		opts:   opts,
		queue:  make(chan record, 4096),
		w:      bufio.NewWriterSize(out, 64<<10),
		seq:    make(map[[2]netip.AddrPort]uint32),
		routes: make(map[netip.Addr]netip.Addr),
		done:   make(chan struct{}),
	}
	var h [fileHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4) // microsecond time stamps
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	// thiszone and sigfigs are 0
	binary.LittleEndian.PutUint32(h[16:], Snaplen)
	binary.LittleEndian.PutUint32(h[20:], LinkTypeRaw)
	if _, err := w.w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("writing capture header: %w", err)
	}
	w.stats.bytes.Store(fileHeaderLen)
	go w.run()
	return w, nil
}

// UDP captures one datagram sent from src to dst. It copies b and returns
// at once.
func (w *Writer) UDP(src, dst netip.AddrPort, b []byte) { w.add(UDP, src, dst, b) }

// TCP captures one TCP segment carrying b (a protocol line) from src to
// dst. It copies b and returns at once.
func (w *Writer) TCP(src, dst netip.AddrPort, b []byte) { w.add(TCP, src, dst, b) }

func (w *Writer) add(p Proto, src, dst netip.AddrPort, b []byte) {
	if w.stats.full.Load() || len(b) > maxPayload {
		w.stats.dropped.Add(1)
		return
	}
	n := int64(len(b))
	if w.queued.Add(n) > MaxQueued {
		w.queued.Add(-n)
		w.stats.dropped.Add(1)
		return
	}
	r := record{proto: p, src: src, dst: dst, b: append([]byte(nil), b...)}
	w.mu.Lock()
	r.t = w.opts.Now() // under the lock: records are queued in time order
	if w.closed {
		w.mu.Unlock()
		w.queued.Add(-n)
		return
	}
	select {
	case w.queue <- r:
	default:
		w.queued.Add(-n)
		w.stats.dropped.Add(1)
	}
	w.mu.Unlock()
}

// Stats returns the capture's figures so far.
func (w *Writer) Stats() Stats {
	return Stats{
		Packets: w.stats.packets.Load(),
		Bytes:   w.stats.bytes.Load(),
		Dropped: w.stats.dropped.Load(),
		Full:    w.stats.full.Load(),
	}
}

// Close writes what is queued, flushes, closes the file that Create opened
// and returns the final figures. Later UDP and TCP calls are ignored.
func (w *Writer) Close() (Stats, error) {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
	err := w.err
	if w.closer != nil {
		if cerr := w.closer.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing capture file: %w", cerr)
		}
		w.closer = nil
	}
	st := w.Stats()
	st.Err = err
	return st, err
}

func (w *Writer) run() {
	defer close(w.done)
	for r := range w.queue {
		w.queued.Add(-int64(len(r.b)))
		if w.err != nil || w.stats.full.Load() {
			w.stats.dropped.Add(1)
			continue
		}
		w.write(r)
		if len(w.queue) == 0 && w.err == nil {
			if err := w.w.Flush(); err != nil {
				w.err = fmt.Errorf("writing capture file: %w", err)
			}
		}
	}
	if w.err == nil {
		if err := w.w.Flush(); err != nil {
			w.err = fmt.Errorf("writing capture file: %w", err)
		}
	}
}

func (w *Writer) write(r record) {
	src, dst := w.addresses(r.src, r.dst)
	w.buf = w.buf[:0]
	w.buf = append(w.buf, make([]byte, recordHeaderLen)...)
	w.buf = appendPacket(w.buf, r.proto, src, dst, r.b, w.nextID(), w.tcpNumbers(r.proto, src, dst, len(r.b)))
	n := len(w.buf) - recordHeaderLen
	if w.stats.bytes.Load()+int64(len(w.buf)) > w.opts.MaxBytes {
		w.stats.dropped.Add(1)
		if !w.stats.full.Swap(true) && w.opts.OnFull != nil {
			w.opts.OnFull()
		}
		return
	}
	us := r.t.UnixMicro()
	binary.LittleEndian.PutUint32(w.buf[0:], uint32(us/1e6))
	binary.LittleEndian.PutUint32(w.buf[4:], uint32(us%1e6))
	binary.LittleEndian.PutUint32(w.buf[8:], uint32(n))
	binary.LittleEndian.PutUint32(w.buf[12:], uint32(n))
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = fmt.Errorf("writing capture file: %w", err)
		return
	}
	w.stats.packets.Add(1)
	w.stats.bytes.Add(int64(len(w.buf)))
}

func (w *Writer) nextID() uint16 {
	w.ipID++
	return w.ipID
}

// tcpNumbers returns the sequence and acknowledgement numbers of a segment
// of n bytes from src to dst, and counts it.
func (w *Writer) tcpNumbers(p Proto, src, dst netip.AddrPort, n int) [2]uint32 {
	if p != TCP {
		return [2]uint32{}
	}
	fwd, back := [2]netip.AddrPort{src, dst}, [2]netip.AddrPort{dst, src}
	if len(w.seq) >= maxFlows {
		clear(w.seq) // numbers restart from 1; Wireshark then sees new data
	}
	seq, ok := w.seq[fwd]
	if !ok {
		seq = 1
	}
	ack, ok := w.seq[back]
	if !ok {
		ack = 1
	}
	w.seq[fwd] = seq + uint32(n)
	if _, ok := w.seq[back]; !ok {
		w.seq[back] = 1
	}
	return [2]uint32{seq, ack}
}

// addresses makes both addresses of one family: IPv4-mapped IPv6 becomes
// IPv4, and an unspecified local address (a socket bound to every
// interface) becomes the address the kernel would send from to that peer,
// as a capture on the interface would show it.
func (w *Writer) addresses(src, dst netip.AddrPort) (netip.AddrPort, netip.AddrPort) {
	s := netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	d := netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	unspec := func(a netip.Addr) bool { return !a.IsValid() || a.IsUnspecified() }
	switch {
	case unspec(s.Addr()) && !unspec(d.Addr()):
		s = netip.AddrPortFrom(w.route(d.Addr()), s.Port())
	case unspec(d.Addr()) && !unspec(s.Addr()):
		d = netip.AddrPortFrom(w.route(s.Addr()), d.Port())
	}
	if s.Addr().Is4() != d.Addr().Is4() { // cannot happen with real sockets
		d = netip.AddrPortFrom(w.route(s.Addr()), d.Port())
	}
	return s, d
}

// route returns the local address the kernel picks to reach peer (a UDP
// "connect" sends nothing), or the family's unspecified address.
func (w *Writer) route(peer netip.Addr) netip.Addr {
	if a, ok := w.routes[peer]; ok {
		return a
	}
	local := netip.IPv4Unspecified()
	if peer.Is6() {
		local = netip.IPv6Unspecified()
	}
	if peer.IsValid() && !peer.IsUnspecified() {
		if c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, 9))); err == nil {
			if la, ok := c.LocalAddr().(*net.UDPAddr); ok {
				if a, ok := netip.AddrFromSlice(la.IP); ok && a.Unmap().Is4() == peer.Is4() {
					local = a.Unmap()
				}
			}
			c.Close()
		}
	}
	if len(w.routes) >= maxRoutes {
		clear(w.routes)
	}
	w.routes[peer] = local
	return local
}

// appendPacket appends an IP packet carrying a UDP datagram or a TCP
// segment with payload b. src and dst are of one family.
func appendPacket(buf []byte, p Proto, src, dst netip.AddrPort, b []byte, id uint16, tcp [2]uint32) []byte {
	thl := 8
	if p == TCP {
		thl = 20
	}
	tlen := thl + len(b)
	if src.Addr().Is4() {
		var h [20]byte
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+tlen))
		binary.BigEndian.PutUint16(h[4:], id)
		binary.BigEndian.PutUint16(h[6:], 0x4000) // don't fragment
		h[8] = 64
		h[9] = byte(p)
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		binary.BigEndian.PutUint16(h[10:], ^fold(sum(0, h[:])))
		buf = append(buf, h[:]...)
	} else {
		var h [40]byte
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], uint16(tlen))
		h[6] = byte(p)
		h[7] = 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(h[8:], s[:])
		copy(h[24:], d[:])
		buf = append(buf, h[:]...)
	}
	tStart := len(buf)
	if p == UDP {
		var h [8]byte
		binary.BigEndian.PutUint16(h[0:], src.Port())
		binary.BigEndian.PutUint16(h[2:], dst.Port())
		binary.BigEndian.PutUint16(h[4:], uint16(tlen))
		buf = append(buf, h[:]...)
	} else {
		var h [20]byte
		binary.BigEndian.PutUint16(h[0:], src.Port())
		binary.BigEndian.PutUint16(h[2:], dst.Port())
		binary.BigEndian.PutUint32(h[4:], tcp[0])
		binary.BigEndian.PutUint32(h[8:], tcp[1])
		h[12] = 5 << 4
		h[13] = 0x18 // PSH, ACK
		binary.BigEndian.PutUint16(h[14:], 65535)
		buf = append(buf, h[:]...)
	}
	buf = append(buf, b...)
	// Transport checksum over the pseudo-header and the segment.
	s16 := src.Addr().AsSlice()
	d16 := dst.Addr().AsSlice()
	c := sum(0, s16)
	c = sum(c, d16)
	c += uint32(p) + uint32(tlen)
	c = sum(c, buf[tStart:])
	ck := ^fold(c)
	if p == UDP && ck == 0 {
		ck = 0xffff // 0 means "no checksum" in UDP
	}
	off := 6
	if p == TCP {
		off = 16
	}
	binary.BigEndian.PutUint16(buf[tStart+off:], ck)
	return buf
}

// sum adds b as big-endian 16-bit words to c (the Internet checksum).
func sum(c uint32, b []byte) uint32 {
	for len(b) >= 2 {
		c += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		c += uint32(b[0]) << 8
	}
	return c
}

func fold(c uint32) uint16 {
	for c>>16 != 0 {
		c = c&0xffff + c>>16
	}
	return uint16(c)
}
