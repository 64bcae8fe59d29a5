package pcap

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 678_000, time.UTC)

func fixedNow() time.Time { return t0 }

// readRecords parses a pcap file the way a reader must: global header,
// then records; it returns each record's bytes.
func readRecords(t *testing.T, b []byte) [][]byte {
	t.Helper()
	if len(b) < fileHeaderLen {
		t.Fatalf("file of %d bytes", len(b))
	}
	if m := binary.LittleEndian.Uint32(b); m != 0xa1b2c3d4 {
		t.Fatalf("magic %#x", m)
	}
	if lt := binary.LittleEndian.Uint32(b[20:]); lt != LinkTypeRaw {
		t.Fatalf("link type %d", lt)
	}
	var recs [][]byte
	for b = b[fileHeaderLen:]; len(b) > 0; {
		if len(b) < recordHeaderLen {
			t.Fatalf("truncated record header")
		}
		incl := int(binary.LittleEndian.Uint32(b[8:]))
		orig := int(binary.LittleEndian.Uint32(b[12:]))
		if incl != orig || len(b) < recordHeaderLen+incl {
			t.Fatalf("record lengths %d/%d with %d bytes left", incl, orig, len(b))
		}
		if sec, us := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]); int64(sec) != t0.Unix() || int(us) != t0.Nanosecond()/1000 {
			t.Errorf("time stamp %d.%06d, want %d.%06d", sec, us, t0.Unix(), t0.Nanosecond()/1000)
		}
		recs = append(recs, b[recordHeaderLen:recordHeaderLen+incl])
		b = b[recordHeaderLen+incl:]
	}
	return recs
}

// checkPacket verifies one record's IP and transport headers and returns
// its payload.
func checkPacket(t *testing.T, pkt []byte, p Proto, src, dst netip.AddrPort) []byte {
	t.Helper()
	var ph []byte // pseudo-header addresses
	var seg []byte
	switch pkt[0] >> 4 {
	case 4:
		if fold(sum(0, pkt[:20])) != 0xffff {
			t.Errorf("IPv4 header checksum wrong")
		}
		if int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) || pkt[9] != byte(p) {
			t.Errorf("IPv4 total length %d of %d, proto %d", binary.BigEndian.Uint16(pkt[2:]), len(pkt), pkt[9])
		}
		s, _ := netip.AddrFromSlice(pkt[12:16])
		d, _ := netip.AddrFromSlice(pkt[16:20])
		if s != src.Addr() || d != dst.Addr() {
			t.Errorf("addresses %v > %v, want %v > %v", s, d, src.Addr(), dst.Addr())
		}
		ph, seg = pkt[12:20], pkt[20:]
	case 6:
		if int(binary.BigEndian.Uint16(pkt[4:]))+40 != len(pkt) || pkt[6] != byte(p) {
			t.Errorf("IPv6 payload length %d of %d, next header %d", binary.BigEndian.Uint16(pkt[4:]), len(pkt), pkt[6])
		}
		s, _ := netip.AddrFromSlice(pkt[8:24])
		d, _ := netip.AddrFromSlice(pkt[24:40])
		if s != src.Addr() || d != dst.Addr() {
			t.Errorf("addresses %v > %v, want %v > %v", s, d, src.Addr(), dst.Addr())
		}
		ph, seg = pkt[8:40], pkt[40:]
	default:
		t.Fatalf("IP version %d", pkt[0]>>4)
	}
	c := sum(0, ph) + uint32(p) + uint32(len(seg))
	if fold(sum(c, seg)) != 0xffff {
		t.Errorf("transport checksum wrong")
	}
	if sp, dp := binary.BigEndian.Uint16(seg), binary.BigEndian.Uint16(seg[2:]); sp != src.Port() || dp != dst.Port() {
		t.Errorf("ports %d > %d, want %d > %d", sp, dp, src.Port(), dst.Port())
	}
	if p == UDP {
		if int(binary.BigEndian.Uint16(seg[4:])) != len(seg) {
			t.Errorf("UDP length %d of %d", binary.BigEndian.Uint16(seg[4:]), len(seg))
		}
		return seg[8:]
	}
	return seg[20:]
}

func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w, err := NewWriter(&out, Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	c4 := netip.MustParseAddrPort("127.0.0.1:40000")
	s4 := netip.MustParseAddrPort("[::ffff:127.0.0.2]:5000") // mapped: written as IPv4
	c6 := netip.MustParseAddrPort("[::1]:40001")
	s6 := netip.MustParseAddrPort("[::1]:5001")
	m := netip.MustParseAddrPort("127.0.0.1:1234")
	odd := []byte("fx\x01\x03odd length payload!")
	w.UDP(c4, s4, []byte("fx request"))
	w.UDP(s6, c6, odd)
	w.TCP(c4, m, []byte("HELLO fxsh/1 role=client\n"))
	w.TCP(m, c4, []byte("HI fxsh/1 hb=10\n"))
	w.TCP(c4, m, []byte("LIST\n"))
	st, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, out.Bytes())
	if len(recs) != 5 || st.Packets != 5 || st.Bytes != int64(out.Len()) || st.Dropped != 0 {
		t.Fatalf("%d records, stats %+v, file %d bytes", len(recs), st, out.Len())
	}
	s4u := netip.MustParseAddrPort("127.0.0.2:5000")
	if got := checkPacket(t, recs[0], UDP, c4, s4u); string(got) != "fx request" {
		t.Errorf("payload %q", got)
	}
	if got := checkPacket(t, recs[1], UDP, s6, c6); !bytes.Equal(got, odd) {
		t.Errorf("payload %q", got)
	}
	// TCP: sequence numbers count each direction's bytes from 1, and each
	// segment acknowledges what the other side sent.
	want := []struct {
		src, dst netip.AddrPort
		seq, ack uint32
		line     string
	}{
		{c4, m, 1, 1, "HELLO fxsh/1 role=client\n"},
		{m, c4, 1, 26, "HI fxsh/1 hb=10\n"},
		{c4, m, 26, 17, "LIST\n"},
	}
	for i, wt := range want {
		pkt := recs[2+i]
		if got := checkPacket(t, pkt, TCP, wt.src, wt.dst); string(got) != wt.line {
			t.Errorf("segment %d: payload %q", i, got)
		}
		seg := pkt[20:]
		if seq, ack := binary.BigEndian.Uint32(seg[4:]), binary.BigEndian.Uint32(seg[8:]); seq != wt.seq || ack != wt.ack {
			t.Errorf("segment %d: seq %d ack %d, want %d %d", i, seq, ack, wt.seq, wt.ack)
		}
	}
}

func TestUnspecifiedLocal(t *testing.T) {
	var out bytes.Buffer
	w, _ := NewWriter(&out, Options{Now: fixedNow})
	// A socket bound to [::]:5000 answering 127.0.0.1: captured as sent
	// from the loopback address the kernel uses for that peer.
	w.UDP(netip.MustParseAddrPort("[::]:5000"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000"), []byte("x"))
	// and receiving from it
	w.UDP(netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000"), netip.MustParseAddrPort("[::]:5000"), []byte("y"))
	w.Close()
	recs := readRecords(t, out.Bytes())
	checkPacket(t, recs[0], UDP, netip.MustParseAddrPort("127.0.0.1:5000"), netip.MustParseAddrPort("127.0.0.1:40000"))
	checkPacket(t, recs[1], UDP, netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.1:5000"))
}

func TestCap(t *testing.T) {
	var out bytes.Buffer
	var full atomic.Int32
	const max = 1000
	w, _ := NewWriter(&out, Options{MaxBytes: max, Now: fixedNow, OnFull: func() { full.Add(1) }})
	a, b := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")
	p := make([]byte, 100) // 144-byte records
	for range 20 {
		w.UDP(a, b, p)
	}
	st, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Full || full.Load() != 1 {
		t.Errorf("full %v, OnFull called %d times", st.Full, full.Load())
	}
	if int64(out.Len()) > max || st.Packets != (max-fileHeaderLen)/144 || st.Packets+st.Dropped != 20 {
		t.Errorf("file %d bytes (cap %d), stats %+v", out.Len(), max, st)
	}
	if n := len(readRecords(t, out.Bytes())); int64(n) != st.Packets {
		t.Errorf("%d records, stats say %d", n, st.Packets)
	}
}

// blockedWriter blocks every Write until release is closed.
type blockedWriter struct{ release chan struct{} }

func (b blockedWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

func TestNeverBlocks(t *testing.T) {
	bw := blockedWriter{make(chan struct{})}
	// The header is buffered, so NewWriter returns; then the disk stalls.
	w, err := NewWriter(bw, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")
	p := make([]byte, 64<<10-100)
	start := time.Now()
	const n = 2000 // 128 MB offered to a stalled disk
	for range n {
		w.UDP(a, b, p)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%d captures took %v with the disk stalled", n, d)
	}
	st := w.Stats()
	if st.Dropped == 0 || w.queued.Load() > MaxQueued {
		t.Errorf("stats %+v, %d bytes queued (max %d)", st, w.queued.Load(), MaxQueued)
	}
	close(bw.release)
	st, _ = w.Close()
	if st.Packets+st.Dropped != n {
		t.Errorf("written %d + dropped %d != %d", st.Packets, st.Dropped, n)
	}
}

func TestTooLong(t *testing.T) {
	var out bytes.Buffer
	w, _ := NewWriter(&out, Options{})
	w.UDP(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"), make([]byte, maxPayload+1))
	st, _ := w.Close()
	if st.Packets != 0 || st.Dropped != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestTshark checks that Wireshark's own reader opens the file and finds
// UDP and TCP with the right addresses (skipped without tshark).
func TestTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("no tshark")
	}
	path := filepath.Join(t.TempDir(), "x.pcap")
	w, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.UDP(netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.1:5000"), []byte("hello"))
	w.TCP(netip.MustParseAddrPort("[::1]:40001"), netip.MustParseAddrPort("[::1]:1234"), []byte("PING\n"))
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tshark, "-n", "-r", path, "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-o", "ip.check_checksum:TRUE", "-T", "fields", "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.dstport", "-e", "tcp.dstport",
		"-e", "udp.checksum.status", "-e", "tcp.checksum.status", "-e", "ip.checksum.status")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	// checksum status 1 is "good" (0 bad, 2 unverified)
	want := "127.0.0.1\t\t5000\t\t1\t\t1\n\t::1\t\t1234\t\t1\t\n"
	if string(got) != want {
		t.Errorf("tshark fields:\n%q\nwant\n%q", got, want)
	}
}
