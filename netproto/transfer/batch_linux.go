//go:build linux

package transfer

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux batching: recvmmsg reads up to rxBatch messages per system call,
// UDP_GRO lets the kernel coalesce a run of same-sized datagrams from one
// peer into one message (the segment size comes in a control message), and
// UDP_SEGMENT (GSO) sends a run of same-sized datagrams as one message that
// the kernel splits. Every datagram on the wire is still one whole packet
// with its own header and CRC: the batching is invisible to the peer.
//
// The x/net ipv4/ipv6 ReadBatch would allocate a net.Addr per message; these
// few raw system calls allocate nothing per datagram.

// offloadBatch is what the Linux socket supports, probed once per socket.
type offloadBatch struct {
	raw syscall.RawConn
	gso atomic.Bool // cleared if the kernel or the route refuses a GSO send
	gro bool

	// The reader's: used by one goroutine at a time (Serve or readLoop).
	hdrs   []mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6
	oob    []byte
	bufs   [][]byte
	got    int
	rerr   error
	recvFn func(fd uintptr) bool
}

// mmsghdr is struct mmsghdr; Go's padding matches C's on 32- and 64-bit.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

const (
	// rxBatch is how many messages one recvmmsg may return: on a path
	// without GRO (a TUN device, most NICs' forwarding) each is one
	// datagram, so this many per system call. The buffers are 64 KiB each
	// but a 1200-byte datagram touches one page of one.
	rxBatch = 32
	// rxBufLen holds the largest GRO-coalesced message (64 KiB of
	// datagrams) with room to spare; a plain datagram is smaller.
	rxBufLen = 1<<16 + 1024
	oobLen   = 64
	// maxGSOSegments is the kernel's UDP_MAX_SEGMENTS on older kernels.
	maxGSOSegments = 64
	// maxGSOBytes is the largest UDP payload one GSO message may carry
	// (IPv4's limit; IPv6's is a little larger).
	maxGSOBytes = 65507
)

func newOffload(c *net.UDPConn, disable bool) *offloadBatch {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	o := &offloadBatch{raw: raw}
	if !disable {
		_ = raw.Control(func(fd uintptr) {
			s := int(fd)
			if _, err := unix.GetsockoptInt(s, unix.IPPROTO_UDP, unix.UDP_SEGMENT); err == nil {
				o.gso.Store(true)
			}
			if unix.SetsockoptInt(s, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil {
				o.gro = true
			}
		})
	}
	o.hdrs = make([]mmsghdr, rxBatch)
	o.iovs = make([]unix.Iovec, rxBatch)
	o.names = make([]unix.RawSockaddrInet6, rxBatch)
	o.oob = make([]byte, rxBatch*oobLen)
	o.bufs = make([][]byte, rxBatch)
	bufLen := rxBufLen
	if !o.gro {
		bufLen = maxDatagramBuf
	}
	for i := range o.bufs {
		o.bufs[i] = make([]byte, bufLen)
	}
	o.recvFn = o.recvmmsg
	return o
}

// recvmmsg is the RawConn.Read callback: false means "would block, wait".
func (o *offloadBatch) recvmmsg(fd uintptr) bool {
	for i := range o.hdrs {
		h := &o.hdrs[i]
		o.iovs[i].Base = &o.bufs[i][0]
		o.iovs[i].SetLen(len(o.bufs[i]))
		h.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&o.names[i])), Namelen: unix.SizeofSockaddrInet6, Iov: &o.iovs[i]}
		h.hdr.SetIovlen(1)
		if o.gro {
			h.hdr.Control = &o.oob[i*oobLen]
			h.hdr.SetControllen(oobLen)
		}
		h.n = 0
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&o.hdrs[0])), uintptr(len(o.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			o.got, o.rerr = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			o.got, o.rerr = 0, errno
			return true
		}
	}
}

// read blocks until datagrams arrive and calls fn for each one, splitting
// GRO-coalesced messages into their datagrams. b is valid during fn only.
func (o *offloadBatch) read(fn func(b []byte, from netip.AddrPort)) error {
	if err := o.raw.Read(o.recvFn); err != nil {
		return err
	}
	if o.rerr != nil {
		return o.rerr
	}
	for i := 0; i < o.got; i++ {
		h := &o.hdrs[i]
		if h.hdr.Flags&unix.MSG_TRUNC != 0 {
			continue // cannot be one of ours
		}
		from := sockaddrToAddrPort(&o.names[i])
		b := o.bufs[i][:h.n]
		seg := 0
		if o.gro {
			seg = groSize(o.oob[i*oobLen : i*oobLen+int(h.hdr.Controllen)])
		}
		if seg <= 0 || seg >= len(b) {
			fn(b, from)
			continue
		}
		for len(b) > 0 {
			m := min(seg, len(b))
			fn(b[:m:m], from)
			b = b[m:]
		}
	}
	return nil
}

// messages is how many messages the last read returned.
func (o *offloadBatch) messages() int { return o.got }

// groSize finds the UDP_GRO control message: the size of each coalesced
// datagram (0 if the message is one datagram).
func groSize(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(2) {
			data := oob[unix.CmsgLen(0):l]
			if len(data) >= 4 {
				return int(*(*int32)(unsafe.Pointer(&data[0])))
			}
			return int(*(*uint16)(unsafe.Pointer(&data[0])))
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), binary.BigEndian.Uint16(p[:]))
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), binary.BigEndian.Uint16(p[:]))
	}
	return netip.AddrPort{}
}

// gsoControl returns the control message that makes one send of several
// datagrams of seg bytes each.
func gsoControl(seg int) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&b[unix.CmsgLen(0)])) = uint16(seg)
	return b
}

// isGSOError says whether a failed GSO send means the path cannot do GSO
// (no checksum offload on the device, or a kernel that refuses the size):
// the datagrams are then sent one by one from now on.
func isGSOError(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	return errno == unix.EIO || errno == unix.EINVAL || errno == unix.EOPNOTSUPP
}
