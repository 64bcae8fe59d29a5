//go:build linux

package transfer

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func TestGROSize(t *testing.T) {
	i32 := func(v int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(v)) }
	tests := []struct {
		name string
		oob  []byte
		want int
	}{
		{"none", nil, 0},
		{"gro", cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, i32(1232)), 1232},
		{"gro as u16", cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, []byte{0xd0, 0x04}), int(binary.NativeEndian.Uint16([]byte{0xd0, 0x04}))},
		{"other first", append(cmsg(unix.IPPROTO_IP, unix.IP_TOS, i32(0)), cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, i32(8224))...), 8224},
		{"other only", cmsg(unix.IPPROTO_IP, unix.IP_TOS, i32(5)), 0},
		{"truncated", cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, i32(1232))[:unix.SizeofCmsghdr-1], 0},
		{"length past the end", func() []byte {
			b := cmsg(unix.IPPROTO_UDP, unix.UDP_GRO, i32(1232))
			(*unix.Cmsghdr)(unsafe.Pointer(&b[0])).SetLen(len(b) + 8)
			return b
		}(), 0},
		{"zero length", make([]byte, 32), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := groSize(tt.oob); got != tt.want {
				t.Errorf("groSize = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestGSOToReceive sends one GSO message of three datagrams (the last
// short) and checks that receive hands over exactly those three, with GRO on
// the receiving socket and without.
func TestGSOToReceive(t *testing.T) {
	for _, noOffload := range []bool{false, true} {
		t.Run(map[bool]string{false: "gro", true: "no gro"}[noOffload], func(t *testing.T) {
			rc := listen(t)
			defer rc.Close()
			l := newLink(rc, nil, NewCounters(nil), nil, 0, noOffload)
			sc := listen(t)
			defer sc.Close()
			sl := newLink(sc, nil, NewCounters(nil), nil, 0, false)
			if sl.off == nil || !sl.off.gso.Load() {
				t.Skip("no UDP GSO here")
			}
			const seg = 100
			msg := make([]byte, 2*seg+37)
			for i := range msg {
				msg[i] = byte(i)
			}
			to := rc.LocalAddr().(*net.UDPAddr).AddrPort()
			if err := sl.sendBatch(msg, seg, to, gsoControl(seg)); err != nil {
				t.Fatal(err)
			}
			if n := sl.stats.Load(DatagramsSent); n != 3 {
				t.Errorf("DatagramsSent = %d, want 3", n)
			}
			var got [][]byte
			from := sc.LocalAddr().(*net.UDPAddr).AddrPort()
			if err := rc.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			for len(got) < 3 {
				err := l.receive(func(b []byte, a netip.AddrPort) {
					if a != from {
						t.Errorf("from %v, want %v", a, from)
					}
					got = append(got, append([]byte(nil), b...))
				})
				if err != nil {
					t.Fatalf("receive after %d datagrams: %v", len(got), err)
				}
			}
			want := [][]byte{msg[:seg], msg[seg : 2*seg], msg[2*seg:]}
			if len(got) != 3 {
				t.Fatalf("%d datagrams, want 3", len(got))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("datagram %d: %d bytes, want %d (or content differs)", i, len(got[i]), len(want[i]))
				}
			}
		})
	}
}
