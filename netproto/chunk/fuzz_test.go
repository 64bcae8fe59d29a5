package chunk

import (
	"bytes"
	"strings"
	"testing"
)

// seedPackets returns one encoded packet of every kind, plain and sealed.
func seedPackets(t testing.TB) [][]byte {
	m := NewChunkBitmap(5000)
	for i := 0; i < 5000; i += 7 {
		m.Set(i)
	}
	payloads := []struct {
		h Header
		p []byte
	}{
		{Header{Kind: KindRequest, Transfer: 1, Number: 1}, AppendRequest(nil, &Request{Hash: hash(1), Size: 100000, ChunkSize: 1200, Window: 64, Cookie: []byte("cookie"), Ranges: []Range{{0, 10}, {20, 5}}})},
		{Header{Kind: KindRetry, Transfer: 1, Number: 1 << 63}, AppendRetry(nil, &Retry{Cookie: []byte("0123456789abcdefghij"), MaxChunkSize: MaxChunkSize})},
		{Header{Kind: KindData, Transfer: 1, Chunk: 3, Number: 2}, bytes.Repeat([]byte("data"), 300)},
		{Header{Kind: KindAck, Transfer: 1, Number: 2}, AppendAck(nil, &Ack{Cumulative: 1, Base: 1, Largest: 2, Window: 64, NBits: 300, Bits: m.AppendBits(nil, 1, 300)})},
		{Header{Kind: KindDone, Transfer: 1, Number: 3}, AppendDone(nil, &Done{DoneComplete})},
		{Header{Kind: KindError, Transfer: 1, Number: 4}, AppendError(nil, &Error{CodeBusy, 100, "busy"})},
		{Header{Kind: KindError, Transfer: 1, Number: 1<<63 | 5}, AppendError(nil, &Error{CodeLeaving, 0, "the server is leaving"})},
	}
	c := testCipher(t, RoleServer)
	var out [][]byte
	for _, s := range payloads {
		out = append(out, AppendPacket(nil, s.h, s.p, nil))
		s.h.Transfer = 42
		out = append(out, AppendPacket(nil, s.h, s.p, c))
	}
	return out
}

// FuzzParsePacket feeds arbitrary datagrams to the whole receive path:
// packet, then opening, then the payload parser of its kind. Whatever
// parses must encode back to the same bytes.
func FuzzParsePacket(f *testing.F) {
	for _, p := range seedPackets(f) {
		f.Add(p)
	}
	open := testCipher(f, RoleClient)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := ParsePacket(b)
		if err != nil {
			return
		}
		if n < HeaderLen || n > len(b) || len(p.Payload) != int(p.Length) {
			t.Fatalf("n = %d, payload %d, length %d", n, len(p.Payload), p.Length)
		}
		if b[5] == 0 {
			again := AppendHeader(nil, p.Header)
			again = append(again, p.Payload...)
			if !bytes.Equal(again[:28], b[:28]) || !bytes.Equal(again[HeaderLen:], b[HeaderLen:n]) {
				t.Fatalf("header or payload does not re-encode")
			}
		}
		payload := p.Payload
		if p.Flags&FlagSealed != 0 {
			pl, err := open.Open(append([]byte(nil), b[:n]...))
			if err != nil {
				return
			}
			payload = pl
		}
		parsePayload(t, p.Kind, payload)
	})
}

func parsePayload(t *testing.T, k Kind, b []byte) {
	switch k {
	case KindRequest:
		if r, n, err := ParseRequest(b); err == nil && !bytes.Equal(AppendRequest(nil, &r), b[:n]) {
			t.Fatalf("request does not re-encode")
		}
	case KindRetry:
		if r, n, err := ParseRetry(b); err == nil && !bytes.Equal(AppendRetry(nil, &r), b[:n]) {
			t.Fatalf("retry does not re-encode")
		}
	case KindAck:
		checkAck(t, b)
	case KindDone:
		if d, n, err := ParseDone(b); err == nil && !bytes.Equal(AppendDone(nil, &d), b[:n]) {
			t.Fatalf("done does not re-encode")
		}
	case KindError:
		if e, n, err := ParseError(b); err == nil && !bytes.Equal(AppendError(nil, &e), b[:n]) {
			t.Fatalf("error does not re-encode")
		}
	}
}

func checkAck(t *testing.T, b []byte) {
	a, n, err := ParseAck(b)
	if err != nil {
		return
	}
	if !bytes.Equal(AppendAck(nil, &a), b[:n]) {
		t.Fatalf("ack does not re-encode")
	}
	// The bitmap must agree with a ChunkBitmap rebuilt from it.
	m := NewChunkBitmap(int(a.NBits))
	count := 0
	a.ForEach(func(i uint32) {
		if i < a.Base || uint64(i) >= uint64(a.Base)+uint64(a.NBits) {
			t.Fatalf("ForEach yields %d outside [%d, +%d)", i, a.Base, a.NBits)
		}
		m.Set(int(i - a.Base))
		count++
	})
	if m.Count() != count {
		t.Fatalf("ForEach repeated a chunk")
	}
	if !bytes.Equal(m.AppendBits(nil, 0, int(a.NBits)), a.Bits) {
		t.Fatalf("bitmap does not rebuild")
	}
}

// FuzzParseAck targets the ACK payload and its bitmap directly.
func FuzzParseAck(f *testing.F) {
	m := NewChunkBitmap(3 * MaxAckBits)
	for i := 0; i < m.Len(); i += 5 {
		m.Set(i)
	}
	for _, nb := range []int{0, 1, 7, 8, 9, 64, 1000, MaxAckBits} {
		for _, base := range []int{0, 3, 64, 1001} {
			a := Ack{Cumulative: uint32(base), Base: uint32(base), Largest: 99, Delay: 10, Window: 32, NBits: uint16(nb), Bits: m.AppendBits(nil, base, nb)}
			f.Add(AppendAck(nil, &a))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkAck(t, b) })
}

// FuzzParseError targets the ERROR payload: what parses re-encodes to the
// same bytes, validates, and has a code with a name (a new code must be
// added to String as well as to Validate).
func FuzzParseError(f *testing.F) {
	for c := CodeNotFound; c <= maxErrorCode; c++ {
		f.Add(AppendError(nil, &Error{Code: c, Value: uint32(c) * 100, Text: c.String()}))
	}
	f.Add(AppendError(nil, &Error{Code: maxErrorCode + 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, n, err := ParseError(b)
		if err != nil {
			return
		}
		if e.Validate() != nil || !bytes.Equal(AppendError(nil, &e), b[:n]) {
			t.Fatalf("error does not re-encode or validate")
		}
		if name := e.Code.String(); strings.HasPrefix(name, "code ") {
			t.Fatalf("accepted code %d has no name", e.Code)
		}
	})
}

// FuzzParseRequest targets the REQUEST payload.
func FuzzParseRequest(f *testing.F) {
	f.Add(AppendRequest(nil, &Request{Hash: hash(1), Size: 5000, ChunkSize: 1200, Window: 8, Ranges: []Range{{0, 5}}}))
	f.Add(AppendRequest(nil, &Request{Hash: hash(2), Size: 0, ChunkSize: 1024, Window: 1, Cookie: []byte("abc")}))
	f.Add(AppendRequest(nil, &Request{Hash: hash(3), Size: 5000, ChunkSize: 1200, Window: 8, Ranges: []Range{{0, 5}}, AckDelay: 8000}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := ParseRequest(b)
		if err != nil {
			return
		}
		if r.Validate() != nil || !bytes.Equal(AppendRequest(nil, &r), b[:n]) {
			t.Fatalf("request does not re-encode or validate")
		}
	})
}

// FuzzParseProof: any datagram parses as a proof or not without panicking;
// what parses is exactly a proof datagram of its token, and every proof
// datagram starts with a byte no packet starts with.
func FuzzParseProof(f *testing.F) {
	f.Add(AppendProof(nil, NewProofToken()))
	f.Add([]byte(ProofPrefix))
	f.Add(AppendPacket(nil, Header{Kind: KindRequest, Transfer: 1, Number: 1}, nil, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, ok := ParseProof(b)
		if !ok {
			return
		}
		if !IsProof(b) || string(AppendProof(nil, tok)) != string(b) || len(tok) != ProofTokenLen {
			t.Fatalf("ParseProof(%q) = %q, which does not round-trip", b, tok)
		}
		if _, _, err := ParsePacket(b); err == nil {
			t.Fatalf("%q parses as a proof and as a packet", b)
		}
	})
}
