package shell

import (
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/netproto/transfer"
)

func TestAckBitmap(t *testing.T) {
	tests := []struct {
		name string
		ack  chunk.Ack
		want string
	}{
		{"empty", chunk.Ack{Base: 7}, "-"},
		{"one hole", chunk.Ack{Base: 7, NBits: 4, Bits: []byte{0b1110}}, "0111"},
		{"holes", chunk.Ack{Base: 0, NBits: 10, Bits: []byte{0b1011_0010, 0b10}}, "0100110101"},
		{"long", chunk.Ack{Base: 0, NBits: 70, Bits: []byte{1, 0, 0, 0, 0, 0, 0, 0, 0b10_0000}}, "1" + zeros(63) + "…(+6)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ackBitmap(&tt.ack); got != tt.want {
				t.Errorf("ackBitmap = %q, want %q", got, tt.want)
			}
		})
	}
}

func zeros(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '0'
	}
	return string(b)
}

func TestUDPTraceLine(t *testing.T) {
	s := testShell(t, newFakeUI(false))
	at := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.Local)
	peer := netip.MustParseAddrPort("[::ffff:127.0.0.1]:4000")
	h := func(k chunk.Kind, f chunk.Flags, c uint32) chunk.Header {
		return chunk.Header{Kind: k, Flags: f, Transfer: 0xabcd1234, Chunk: c}
	}
	tests := []struct {
		name string
		ev   transfer.Event
		want string
	}{
		{"request", transfer.Event{Dir: transfer.Sent, Header: h(chunk.KindRequest, 0, 0), Size: 91,
			Request: &chunk.Request{Hash: [32]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3}, Size: 5000, ChunkSize: 1200, Window: 64,
				Ranges: []chunk.Range{{First: 0, Count: 3}, {First: 5, Count: 1}}}},
			"03:04:05.678 udp get -> 127.0.0.1:4000 REQUEST t=1234 file=deadbeef0102 size=5000 chunk=1200 win=64 cookie=0B want=0+3,5+1 91B"},
		{"retry", transfer.Event{Dir: transfer.Received, Header: h(chunk.KindRetry, 0, 0), Size: 57,
			Retry: &chunk.Retry{Cookie: make([]byte, 20), MaxChunkSize: 64512}},
			"03:04:05.678 udp get <- 127.0.0.1:4000 RETRY t=1234 cookie=20B maxchunk=64512 57B"},
		{"retransmission", transfer.Event{Dir: transfer.Received, Header: h(chunk.KindData, chunk.FlagRetransmit|chunk.FlagAckNow, 9), Size: 1232},
			"03:04:05.678 udp get <- 127.0.0.1:4000 DATA t=1234 chunk=9 retransmit ack-now 1232B"},
		{"ack", transfer.Event{Dir: transfer.Sent, Header: h(chunk.KindAck, 0, 0), Size: 59,
			Ack: &chunk.Ack{Cumulative: 3, Base: 4, NBits: 5, Bits: []byte{0b11010}, Window: 64, Delay: 12}},
			"03:04:05.678 udp get -> 127.0.0.1:4000 ACK t=1234 cum=3 base=4 bitmap=01011 win=64 delay=12µs 59B"},
		{"dropped done", transfer.Event{Dir: transfer.Sent, Header: h(chunk.KindDone, 0, 0), Size: 33,
			Done: &chunk.Done{Reason: chunk.DoneComplete}, Dropped: "impairment"},
			"03:04:05.678 udp get -> 127.0.0.1:4000 DONE t=1234 complete DROPPED(impairment) 33B"},
		{"error", transfer.Event{Dir: transfer.Received, Header: h(chunk.KindError, 0, 0), Size: 40,
			Error: &chunk.Error{Code: chunk.CodeBusy, Value: 500, Text: "full"}},
			`03:04:05.678 udp get <- 127.0.0.1:4000 ERROR t=1234 busy value=500 "full" 40B`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ev.Time, tt.ev.Peer = at, peer
			if got := s.udpTraceLine("get", tt.ev); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	// On a terminal the kind is coloured: a retransmission differently from
	// a first transmission.
	s.pal.set(true)
	defer s.pal.set(false)
	first := s.udpTraceLine("get", transfer.Event{Time: at, Peer: peer, Header: h(chunk.KindData, 0, 1)})
	again := s.udpTraceLine("get", transfer.Event{Time: at, Peer: peer, Header: h(chunk.KindData, chunk.FlagRetransmit, 1)})
	esc := regexp.MustCompile(`\x1b\[[0-9;]*mDATA`)
	if a, b := esc.FindString(first), esc.FindString(again); a == "" || b == "" || a == b {
		t.Errorf("DATA colours: first %q, retransmission %q", a, b)
	}
}
