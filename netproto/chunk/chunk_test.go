package chunk

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func hash(b byte) (h [32]byte) {
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func testCipher(t testing.TB, role Role) *Cipher {
	t.Helper()
	c, err := NewCipher([]byte("0123456789abcdef-shared"), 42, role)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPacketRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		h       Header
		payload []byte
		sealed  bool
	}{
		{"empty data", Header{Kind: KindData, Transfer: 1, Chunk: 0, Number: 1}, nil, false},
		{"data", Header{Kind: KindData, Flags: FlagRetransmit, Transfer: 0xdeadbeefcafe, Chunk: 77, Number: 1 << 40}, bytes.Repeat([]byte{0xab}, 1200), false},
		{"max data", Header{Kind: KindData, Transfer: 3, Chunk: MaxChunks - 1, Number: ^uint64(0)}, make([]byte, MaxChunkSize), false},
		{"sealed data", Header{Kind: KindData, Transfer: 42, Chunk: 5, Number: 9}, []byte("hello chunk"), true},
		{"sealed empty", Header{Kind: KindDone, Transfer: 42, Number: 10}, nil, true},
		{"unknown flag kept", Header{Kind: KindAck, Flags: 0x80, Transfer: 9, Number: 2}, []byte{1, 2, 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *Cipher
			if tt.sealed {
				c = testCipher(t, RoleServer)
			}
			prefix := []byte("prefix")
			b := AppendPacket(append([]byte(nil), prefix...), tt.h, tt.payload, c)
			if !bytes.Equal(b[:len(prefix)], prefix) {
				t.Fatalf("prefix clobbered")
			}
			pkt := b[len(prefix):]
			p, n, err := ParsePacket(pkt)
			if err != nil {
				t.Fatalf("ParsePacket: %v", err)
			}
			if n != len(pkt) {
				t.Errorf("n = %d, want %d", n, len(pkt))
			}
			want := tt.h
			want.Length = uint16(len(tt.payload))
			payload := p.Payload
			if tt.sealed {
				want.Flags |= FlagSealed
				want.Length += TagLen
				payload, err = testCipher(t, RoleClient).Open(pkt[:n])
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
			}
			if p.Header != want {
				t.Errorf("header = %+v, want %+v", p.Header, want)
			}
			if !bytes.Equal(payload, tt.payload) {
				t.Errorf("payload differs (%d vs %d bytes)", len(payload), len(tt.payload))
			}
		})
	}
}

func TestParsePacketErrors(t *testing.T) {
	good := AppendPacket(nil, Header{Kind: KindData, Transfer: 7, Chunk: 1, Number: 1}, []byte("payload"), nil)
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short", good[:HeaderLen-1], ErrShort},
		{"magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), ErrMagic},
		{"version", mod(func(b []byte) []byte { b[2] = 2; return b }), ErrVersion},
		{"kind 0", mod(func(b []byte) []byte { b[3] = 0; return b }), ErrKind},
		{"kind 7", mod(func(b []byte) []byte { b[3] = 7; return b }), ErrKind},
		{"zero transfer", AppendPacket(nil, Header{Kind: KindData}, nil, nil), ErrTransfer},
		{"truncated payload", good[:len(good)-1], ErrLength},
		{"flipped payload bit", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrChecksum},
		{"flipped header bit", mod(func(b []byte) []byte { b[17] ^= 0x10; return b }), ErrChecksum},
		{"flipped crc bit", mod(func(b []byte) []byte { b[30] ^= 1; return b }), ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParsePacket(tt.b)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSealedTamper(t *testing.T) {
	srv, cli := testCipher(t, RoleServer), testCipher(t, RoleClient)
	pkt := AppendPacket(nil, Header{Kind: KindData, Transfer: 42, Chunk: 3, Number: 5}, []byte("secret chunk bytes"), srv)
	if bytes.Contains(pkt, []byte("secret")) {
		t.Fatal("plaintext visible in sealed packet")
	}
	tests := []struct {
		name   string
		mutate func(b []byte)
		c      *Cipher
	}{
		{"chunk index", func(b []byte) { b[19] ^= 1 }, cli},
		{"packet number", func(b []byte) { b[27] ^= 1 }, cli},
		{"ciphertext", func(b []byte) { b[HeaderLen] ^= 1 }, cli},
		{"tag", func(b []byte) { b[len(b)-1] ^= 1 }, cli},
		{"own direction", func(b []byte) {}, srv}, // a reflected packet does not open
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append([]byte(nil), pkt...)
			tt.mutate(b)
			if _, err := tt.c.Open(b); !errors.Is(err, ErrOpen) {
				t.Errorf("Open = %v, want ErrOpen", err)
			}
		})
	}
	other, err := NewCipher([]byte("0123456789abcdef-shared"), 43, RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(append([]byte(nil), pkt...)); !errors.Is(err, ErrOpen) {
		t.Errorf("other transfer's key opened the packet")
	}
	if _, err := NewCipher([]byte("short"), 1, RoleClient); err == nil {
		t.Errorf("short key accepted")
	}
	if _, err := NewCipher(make([]byte, 32), 1, 9); err == nil {
		t.Errorf("bad role accepted")
	}
}

func TestRequestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    Request
	}{
		{"empty file", Request{Hash: hash(1), Size: 0, ChunkSize: 1200, Window: 1}},
		{"with cookie", Request{Hash: hash(2), Size: 1 << 20, ChunkSize: MaxChunkSize, Window: 64, Cookie: []byte("cookie-20-bytes-long"),
			Ranges: []Range{{0, 3}, {5, 1}, {10, 7}}}},
		{"ack delay", Request{Hash: hash(4), Size: 1 << 20, ChunkSize: MaxChunkSize, Window: 64, Ranges: []Range{{0, 3}}, AckDelay: 8000}},
		{"ack delay max, no ranges", Request{Hash: hash(5), Size: 1 << 20, ChunkSize: 1200, Window: 4, AckDelay: MaxAnnouncedAckDelay}},
		{"max ranges", Request{Hash: hash(3), Size: 1 << 30, ChunkSize: MinChunkSize, Window: MaxWindow, Cookie: bytes.Repeat([]byte{9}, MaxCookieLen),
			Ranges: func() []Range {
				r := make([]Range, MaxRequestRanges)
				for i := range r {
					r[i] = Range{uint32(i * 10), 5}
				}
				return r
			}()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.r.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			b := AppendRequest(nil, &tt.r)
			got, n, err := ParseRequest(b)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if n != len(b) {
				t.Errorf("n = %d, want %d", n, len(b))
			}
			if !reflect.DeepEqual(got, tt.r) {
				t.Errorf("got %+v\nwant %+v", got, tt.r)
			}
		})
	}
}

func TestRequestInvalid(t *testing.T) {
	base := Request{Hash: hash(1), Size: 12000, ChunkSize: 1200, Window: 8, Ranges: []Range{{0, 10}}}
	tests := []struct {
		name string
		mod  func(r *Request)
	}{
		{"chunk size small", func(r *Request) { r.ChunkSize = MinChunkSize - 1 }},
		{"chunk size big", func(r *Request) { r.ChunkSize = MaxChunkSize + 1 }},
		{"window 0", func(r *Request) { r.Window = 0 }},
		{"window big", func(r *Request) { r.Window = MaxWindow + 1 }},
		{"negative size", func(r *Request) { r.Size = -1 }},
		{"huge size", func(r *Request) { r.Size = MaxFileSize + 1 }},
		{"too many chunks", func(r *Request) { r.Size = int64(MaxChunks+1) * MinChunkSize; r.ChunkSize = MinChunkSize }},
		{"range past end", func(r *Request) { r.Ranges = []Range{{5, 6}} }},
		{"empty range", func(r *Request) { r.Ranges = []Range{{1, 0}} }},
		{"overlap", func(r *Request) { r.Ranges = []Range{{0, 5}, {4, 2}} }},
		{"unsorted", func(r *Request) { r.Ranges = []Range{{6, 1}, {2, 1}} }},
		{"too many ranges", func(r *Request) {
			r.Size = 1 << 30
			r.Ranges = make([]Range, MaxRequestRanges+1)
			for i := range r.Ranges {
				r.Ranges[i] = Range{uint32(2 * i), 1}
			}
		}},
		{"long cookie", func(r *Request) { r.Cookie = make([]byte, MaxCookieLen+1) }},
		{"overlong cookie", func(r *Request) { r.Cookie = make([]byte, 300) }},
		{"ack delay too long", func(r *Request) { r.AckDelay = MaxAnnouncedAckDelay + 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.mod(&r)
			if r.Validate() == nil {
				t.Errorf("Validate accepted %+v", r)
			}
			if _, _, err := ParseRequest(AppendRequest(nil, &r)); err == nil {
				t.Errorf("ParseRequest accepted the encoding")
			}
		})
	}
	b := AppendRequest(nil, &base)
	for i := 0; i < len(b); i++ {
		if _, _, err := ParseRequest(b[:i]); err == nil {
			t.Errorf("truncated to %d bytes: accepted", i)
		}
	}
}

func TestRetryDoneErrorRoundTrip(t *testing.T) {
	t.Run("retry", func(t *testing.T) {
		r := Retry{Cookie: []byte("0123456789abcdefghij"), MaxChunkSize: 60 * 1024}
		b := AppendRetry(nil, &r)
		got, n, err := ParseRetry(b)
		if err != nil || n != len(b) || !reflect.DeepEqual(got, r) {
			t.Errorf("got %+v, %d, %v", got, n, err)
		}
		for _, bad := range []Retry{{Cookie: nil, MaxChunkSize: 1200}, {Cookie: []byte("c"), MaxChunkSize: 10}, {Cookie: make([]byte, 65), MaxChunkSize: 1200}} {
			if _, _, err := ParseRetry(AppendRetry(nil, &bad)); err == nil {
				t.Errorf("accepted %+v", bad)
			}
		}
	})
	t.Run("done", func(t *testing.T) {
		for _, d := range []Done{{DoneComplete}, {DoneCancel}, {DoneEcho}} {
			b := AppendDone(nil, &d)
			got, n, err := ParseDone(b)
			if err != nil || n != 1 || got != d {
				t.Errorf("%v: got %+v, %d, %v", d, got, n, err)
			}
		}
		if _, _, err := ParseDone([]byte{9}); err == nil {
			t.Errorf("unknown reason accepted")
		}
		if _, _, err := ParseDone(nil); err == nil {
			t.Errorf("empty accepted")
		}
	})
	t.Run("error", func(t *testing.T) {
		for _, e := range []Error{{CodeBusy, 250, "too many transfers"}, {CodeNotFound, 0, ""}, {CodeChunkSize, 1400, "max 1400"},
			{CodeNotYet, 17, ""}, {CodeLeaving, 0, "the server is leaving"}} {
			b := AppendError(nil, &e)
			got, n, err := ParseError(b)
			if err != nil || n != len(b) || got != e {
				t.Errorf("%v: got %+v, %d, %v", e, got, n, err)
			}
		}
		for _, e := range []Error{{0, 0, ""}, {99, 0, ""}, {CodeLeaving + 1, 0, ""}, {CodeBusy, 0, strings.Repeat("x", MaxErrorText+1)}, {CodeBusy, 0, "bad\nline"}, {CodeBusy, 0, "\xff"}} {
			if _, _, err := ParseError(AppendError(nil, &e)); err == nil {
				t.Errorf("accepted %+v", e)
			}
		}
		e := &Error{Code: CodeBusy, Text: "cap"}
		if e.Error() != "busy: cap" {
			t.Errorf("Error() = %q", e.Error())
		}
		if got := (&Error{Code: CodeLeaving}).Error(); got != "server leaving" {
			t.Errorf("leaving: Error() = %q", got)
		}
		// The leaving ERROR is 7 bytes + its text: with the header it stays
		// under a third of the smallest REQUEST's reach (it is also the
		// reply to a REQUEST that comes while the server leaves).
		pkt := AppendPacket(nil, Header{Kind: KindError, Transfer: 1, Number: 1}, AppendError(nil, &Error{Code: CodeLeaving, Text: "the server is leaving"}), nil)
		if len(pkt) > 3*83 {
			t.Errorf("leaving ERROR of %d bytes", len(pkt))
		}
	})
}

func TestAckRoundTrip(t *testing.T) {
	m := NewChunkBitmap(20000)
	for _, i := range []int{100, 101, 103, 164, 227, 228, 1000, 8291} {
		m.Set(i)
	}
	tests := []struct {
		name  string
		base  int
		nbits int
	}{
		{"no bitmap", 100, 0},
		{"one bit", 100, 1},
		{"partial byte", 100, 13},
		{"unaligned base", 99, 130},
		{"word aligned", 64, 200},
		{"max bits", 100, MaxAckBits},
		{"past the end", 19990, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Ack{Cumulative: 99, Base: uint32(tt.base), Largest: 1234, Delay: 250, Window: 64, NBits: uint16(tt.nbits)}
			a.Bits = m.AppendBits(nil, tt.base, tt.nbits)
			b := AppendAck(nil, &a)
			got, n, err := ParseAck(b)
			if err != nil {
				t.Fatalf("ParseAck: %v", err)
			}
			g2, a2 := got, a
			g2.Bits, a2.Bits = nil, nil
			if n != len(b) || !reflect.DeepEqual(g2, a2) || !bytes.Equal(got.Bits, a.Bits) {
			}
			var seen []uint32
			got.ForEach(func(i uint32) { seen = append(seen, i) })
			var want []uint32
			for i := tt.base; i < tt.base+tt.nbits; i++ {
				if m.Has(i) {
					want = append(want, uint32(i))
				}
				if got.Bit(uint32(i)) != m.Has(i) {
					t.Errorf("Bit(%d) = %v", i, got.Bit(uint32(i)))
				}
			}
			if !reflect.DeepEqual(seen, want) {
				t.Errorf("ForEach = %v, want %v", seen, want)
			}
			if got.Bit(uint32(tt.base+tt.nbits)) || (tt.base > 0 && got.Bit(uint32(tt.base-1))) {
				t.Errorf("Bit outside the bitmap reported set")
			}
		})
	}
}

func TestAckInvalid(t *testing.T) {
	good := Ack{Cumulative: 1, Base: 1, Window: 4, NBits: 10, Bits: []byte{0xff, 0x03}}
	tests := []struct {
		name string
		mod  func(a *Ack)
	}{
		{"too many bits", func(a *Ack) { a.NBits = MaxAckBits + 1; a.Bits = make([]byte, (MaxAckBits+8)/8) }},
		{"padding bits set", func(a *Ack) { a.Bits = []byte{0xff, 0x07} }},
		{"window 0", func(a *Ack) { a.Window = 0 }},
		{"window big", func(a *Ack) { a.Window = MaxWindow + 1 }},
		{"past last index", func(a *Ack) { a.Base = MaxChunks - 5 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good
			tt.mod(&a)
			if _, _, err := ParseAck(AppendAck(nil, &a)); err == nil {
				t.Errorf("accepted %+v", a)
			}
		})
	}
	b := AppendAck(nil, &good)
	for i := 0; i < len(b); i++ {
		if _, _, err := ParseAck(b[:i]); err == nil {
			t.Errorf("truncated to %d: accepted", i)
		}
	}
}

func TestChunkBitmap(t *testing.T) {
	tests := []struct {
		name string
		n    int
		set  []int
	}{
		{"empty", 0, nil},
		{"one", 1, []int{0}},
		{"word edge", 130, []int{0, 63, 64, 65, 127, 128, 129}},
		{"sparse", 1000, []int{5, 500, 999}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewChunkBitmap(tt.n)
			for _, i := range tt.set {
				if !m.Set(i) {
					t.Errorf("Set(%d) not new", i)
				}
				if m.Set(i) {
					t.Errorf("Set(%d) twice reported new", i)
				}
			}
			if m.Set(-1) || m.Set(tt.n) || m.Has(-1) || m.Has(tt.n) {
				t.Errorf("out of range index accepted")
			}
			if m.Count() != len(tt.set) {
				t.Errorf("Count = %d", m.Count())
			}
			if m.Full() != (len(tt.set) == tt.n) {
				t.Errorf("Full = %v", m.Full())
			}
			in := map[int]bool{}
			for _, i := range tt.set {
				in[i] = true
			}
			for from := -1; from <= tt.n; from++ {
				wantMiss, wantSet := tt.n, tt.n
				for i := max(from, 0); i < tt.n; i++ {
					if !in[i] && wantMiss == tt.n {
						wantMiss = i
					}
					if in[i] && wantSet == tt.n {
						wantSet = i
					}
				}
				if got := m.NextMissing(from); got != wantMiss {
					t.Errorf("NextMissing(%d) = %d, want %d", from, got, wantMiss)
				}
				if got := m.NextSet(from); got != wantSet {
					t.Errorf("NextSet(%d) = %d, want %d", from, got, wantSet)
				}
			}
		})
	}
}

func TestParseAllocs(t *testing.T) {
	m := NewChunkBitmap(10000)
	for i := 0; i < 10000; i += 3 {
		m.Set(i)
	}
	a := Ack{Base: 10, Window: 100, NBits: MaxAckBits, Bits: m.AppendBits(nil, 10, MaxAckBits)}
	pkt := AppendPacket(nil, Header{Kind: KindAck, Transfer: 5, Number: 7}, AppendAck(nil, &a), nil)
	allocs := testing.AllocsPerRun(100, func() {
		p, _, err := ParsePacket(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ParseAck(p.Payload); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ParsePacket+ParseAck allocate %v times", allocs)
	}
	buf := make([]byte, 0, MaxDatagram)
	data := make([]byte, 1200)
	allocs = testing.AllocsPerRun(100, func() {
		buf = AppendPacket(buf[:0], Header{Kind: KindData, Transfer: 5, Number: 8}, data, nil)
	})
	if allocs != 0 {
		t.Errorf("AppendPacket allocates %v times", allocs)
	}
}

func BenchmarkParseData(b *testing.B) {
	pkt := AppendPacket(nil, Header{Kind: KindData, Transfer: 5, Number: 7}, make([]byte, MaxChunkSize), nil)
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, _, err := ParsePacket(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpen(b *testing.B) {
	srv, cli := testCipher(b, RoleServer), testCipher(b, RoleClient)
	data := make([]byte, MaxChunkSize)
	buf := make([]byte, 0, MaxDatagram)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf = AppendPacket(buf[:0], Header{Kind: KindData, Transfer: 42, Number: 7}, data, srv)
		if _, err := cli.Open(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSealedNoCRC: a sealed packet carries 0 in the CRC field (the AEAD
// authenticates it); ParsePacket passes a tampered sealed packet on to Open,
// which refuses it, and refuses a sealed packet whose CRC field is not 0.
func TestSealedNoCRC(t *testing.T) {
	srv, cli := testCipher(t, RoleServer), testCipher(t, RoleClient)
	pkt := AppendPacket(nil, Header{Kind: KindData, Transfer: 42, Chunk: 3, Number: 5}, []byte("chunk bytes"), srv)
	if crc := pkt[crcOffset : crcOffset+4]; !bytes.Equal(crc, []byte{0, 0, 0, 0}) {
		t.Fatalf("sealed packet's CRC field is %x, want 0", crc)
	}
	p, n, err := ParsePacket(pkt)
	if err != nil || n != len(pkt) {
		t.Fatalf("ParsePacket = %d, %v", n, err)
	}
	if plain, err := cli.Open(pkt[:n]); err != nil || string(plain) != "chunk bytes" || p.Chunk != 3 {
		t.Fatalf("Open = %q, %v", plain, err)
	}
	bad := AppendPacket(nil, Header{Kind: KindData, Transfer: 42, Chunk: 3, Number: 6}, []byte("chunk bytes"), srv)
	bad[len(bad)-5] ^= 0x10 // flipped in transit: no CRC catches it ...
	if _, n, err := ParsePacket(bad); err != nil {
		t.Fatalf("ParsePacket(tampered sealed) = %v", err)
	} else if _, err := cli.Open(bad[:n]); !errors.Is(err, ErrOpen) { // ... the tag does
		t.Fatalf("Open(tampered) = %v, want ErrOpen", err)
	}
	withCRC := append([]byte(nil), pkt...)
	withCRC[crcOffset+3] = 1
	if _, _, err := ParsePacket(withCRC); !errors.Is(err, ErrChecksum) {
		t.Fatalf("ParsePacket(sealed with a CRC) = %v, want ErrChecksum", err)
	}
	// Unsealed packets keep their CRC.
	plain := AppendPacket(nil, Header{Kind: KindData, Transfer: 42, Chunk: 3, Number: 7}, []byte("chunk bytes"), nil)
	plain[len(plain)-1] ^= 1
	if _, _, err := ParsePacket(plain); !errors.Is(err, ErrChecksum) {
		t.Fatalf("ParsePacket(corrupt unsealed) = %v, want ErrChecksum", err)
	}
}

// TestRequestAckDelayOptional: a REQUEST without the ACK delay (an older
// client's) parses with AckDelay 0, and an older server, which reads no
// further than the ranges, sees the same request in a newer client's.
func TestRequestAckDelayOptional(t *testing.T) {
	old := Request{Hash: hash(1), Size: 12000, ChunkSize: 1200, Window: 8, Ranges: []Range{{0, 10}}}
	b := AppendRequest(nil, &old)
	got, n, err := ParseRequest(b)
	if err != nil || got.AckDelay != 0 || n != len(b) {
		t.Fatalf("old request: %+v, %d, %v", got, n, err)
	}
	withDelay := old
	withDelay.AckDelay = 8000
	b2 := AppendRequest(nil, &withDelay)
	if len(b2) != len(b)+4 || !bytes.Equal(b2[:len(b)], b) {
		t.Fatalf("the ACK delay is not a 4-byte trailer: %x vs %x", b2, b)
	}
	got, n, err = ParseRequest(b2)
	if err != nil || got.AckDelay != 8000 || n != len(b2) {
		t.Fatalf("new request: %+v, %d, %v", got, n, err)
	}
}
