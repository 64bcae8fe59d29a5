package trace

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/transfer"
)

var (
	t0   = time.Date(2026, 1, 2, 10, 2, 3, 120_000_000, time.UTC)
	peer = netip.MustParseAddrPort("[::ffff:127.0.0.1]:5000")
)

const id = 0xabcd3f2a

type step struct {
	ms int
	ev transfer.Event
}

func ev(dir transfer.Direction, k chunk.Kind, f chunk.Flags, c uint32) transfer.Event {
	return transfer.Event{Dir: dir, Peer: peer, Header: chunk.Header{Kind: k, Flags: f, Transfer: id, Chunk: c}, Size: 100}
}

func req(cookie int, win uint32, rs ...chunk.Range) transfer.Event {
	e := ev(transfer.Sent, chunk.KindRequest, 0, 0)
	e.Request = &chunk.Request{Size: 16 * 1000, ChunkSize: 1000, Window: win, Cookie: make([]byte, cookie), Ranges: rs}
	return e
}

func retry() transfer.Event {
	e := ev(transfer.Received, chunk.KindRetry, 0, 0)
	e.Retry = &chunk.Retry{Cookie: make([]byte, 20), MaxChunkSize: 64512}
	return e
}

func data(c uint32, f chunk.Flags) transfer.Event { return ev(transfer.Received, chunk.KindData, f, c) }

func ack(cum uint32, held ...uint32) transfer.Event {
	e := ev(transfer.Sent, chunk.KindAck, 0, 0)
	a := &chunk.Ack{Cumulative: cum, Base: cum, Window: 8}
	m := chunk.NewChunkBitmap(16)
	top := cum
	for _, h := range held {
		m.Set(int(h))
		top = max(top, h+1)
	}
	a.NBits = uint16(top - cum)
	a.Bits = m.AppendBits(nil, int(cum), int(a.NBits))
	e.Ack = a
	return e
}

func done(dir transfer.Direction, r chunk.DoneReason) transfer.Event {
	e := ev(dir, chunk.KindDone, 0, 0)
	e.Done = &chunk.Done{Reason: r}
	return e
}

func lost(e transfer.Event) transfer.Event { e.Dropped = "impairment"; return e }

func run(t *testing.T, lv Level, role string, steps []step) []string {
	t.Helper()
	tr := New()
	var out []string
	for _, s := range steps {
		s.ev.Time = t0.Add(time.Duration(s.ms) * time.Millisecond)
		for _, l := range tr.UDP(lv, role, s.ev) {
			if n := utf8.RuneCountInString(l.Text); n > Width {
				t.Errorf("line of %d columns: %q", n, l.Text)
			}
			out = append(out, strings.TrimPrefix(l.Text, "10:02:03."))
		}
	}
	return out
}

// A 16-chunk get with losses, as the client sees it.
var lossyGet = []step{
	{0, req(0, 8, chunk.Range{First: 0, Count: 16})},
	{0, req(0, 8, chunk.Range{First: 0, Count: 16})}, // the copy
	{2, retry()},
	{2, req(20, 8, chunk.Range{First: 0, Count: 16})},
	{2, lost(req(20, 8, chunk.Range{First: 0, Count: 16}))},
	{3, retry()}, // the answer to the first REQUEST's copy
	{4, data(0, 0)},
	{4, lost(data(1, 0))},
	{4, data(2, 0)},
	{4, data(3, 0)},
	{4, data(4, 0)},
	{5, ack(1, 2, 3, 4)},
	{5, data(7, chunk.FlagAckNow)}, // window full
	{6, ack(1, 2, 3, 4, 7)},        // folded: within MinACKGap
	{7, data(1, chunk.FlagRetransmit)},
	{8, lost(ack(5, 7))},
	{20, ack(5, 7)},
	{21, data(5, chunk.FlagRetransmit|chunk.FlagAckNow)},
	{40, ack(16)},
	{40, done(transfer.Sent, chunk.DoneComplete)},
	{40, done(transfer.Sent, chunk.DoneComplete)},
	{41, done(transfer.Received, chunk.DoneEcho)},
}

func TestSummary(t *testing.T) {
	got := run(t, Summary, "get", lossyGet)
	want := []string{
		"120 get → REQUEST #3f2a to 127.0.0.1:5000: 16 × 1000 B, wants 0–15",
		"122 get ← RETRY #3f2a prove your address: echo this 20-byte cookie",
		"122 get → REQUEST #3f2a again, with the cookie: wants 0–15, window 8",
		"123 get ← RETRY #3f2a again: the answer to the REQUEST's copy (a REQUEST lost before)",
		"124 get ← DATA #3f2a chunks flow: the server checked the cookie",
		"125 get → ACK #3f2a all below 1, 1 ░███ 4",
		"125 get ← DATA #3f2a chunk 7: window full, waiting for an ACK",
		"127 get ← DATA #3f2a chunk 1 lost (4 later ones acknowledged) → resent",
		"140 get → ACK #3f2a all below 5, 5 ░░█ 7 · 1 ACK folded, 1 ACK lost",
		"141 get ← DATA #3f2a chunk 5 lost (1 later one acknowledged) → resent",
		"160 get → ACK #3f2a all 16 chunks held",
		"160 get → DONE #3f2a complete: 7 DATA in 40ms, 2 resent",
		"161 get ← DONE #3f2a echo: the server has forgotten the transfer",
	}
	// The lost REQUEST's note fits neither the RETRY's line nor the next:
	// the next ACK line tells it.
	want[3] = "123 get ← RETRY #3f2a again: the answer to the REQUEST's copy"
	want[5] = "125 get → ACK #3f2a all below 1, 1 ░███ 4 · a REQUEST lost"
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAll(t *testing.T) {
	got := run(t, All, "get", lossyGet)
	if len(got) != len(lossyGet) {
		t.Fatalf("%d lines for %d datagrams:\n%s", len(got), len(lossyGet), strings.Join(got, "\n"))
	}
	if !strings.HasSuffix(got[4], "— lost (set loss)") {
		t.Errorf("line 4 lost its note: %q", got[4])
	}
	for i, w := range map[int]string{
		0:  "120 get → REQUEST #3f2a 16000 B/1000 win 8 cookie 0 B want 0–15",
		4:  "122 get → REQUEST #3f2a 16000 B/1000 win 8 cookie 20…",
		7:  "124 get ← DATA #3f2a chunk 1 100 B — lost (set loss)",
		11: "125 get → ACK #3f2a cum 1 base 1 ░███ win 8 delay 0µs",
		14: "127 get ← DATA #3f2a chunk 1 resent 100 B",
		17: "141 get ← DATA #3f2a chunk 5 resent ack-now 100 B",
		21: "161 get ← DONE #3f2a echo",
	} {
		if !strings.HasPrefix(got[i], strings.TrimSuffix(w, "…")) {
			t.Errorf("line %d: %q, want %q", i, got[i], w)
		}
	}
}

func TestWhyResent(t *testing.T) {
	h := chunk.Header{Kind: chunk.KindData, Chunk: 5, Flags: chunk.FlagRetransmit}
	a := ack(3, 4, 6, 7, 8).Ack
	for _, tt := range []struct {
		a    *chunk.Ack
		h    chunk.Header
		want string
	}{
		{a, h, "lost (3 later ones acknowledged) → resent"},
		{a, chunk.Header{Chunk: 4}, "resent, but it had arrived: the sender missed the ACK"},
		{a, chunk.Header{Chunk: 1}, "resent, but it had arrived: the sender missed the ACK"},
		{a, chunk.Header{Chunk: 9, Flags: chunk.FlagAckNow}, "timed out, no ACK → resent as a probe"},
		{nil, chunk.Header{Chunk: 9}, "lost → resent"},
	} {
		if got := whyResent(tt.a, tt.h); got != tt.want {
			t.Errorf("chunk %d: %q, want %q", tt.h.Chunk, got, tt.want)
		}
	}
}

func TestBitmap(t *testing.T) {
	a := ack(0, 1, 2, 5).Ack // bits 0..5: ░██░░█
	if got := bitmap(a, 10); got != "░██░░█" {
		t.Errorf("1:1 %q", got)
	}
	if got := bitmap(a, 3); got != "▒▒▒" { // cells of two chunks: {0,1} {2,3} {4,5}
		t.Errorf("scaled %q", got)
	}
	if got := bitmap(ack(0, 0, 1, 4, 5).Ack, 3); got != "█░█" {
		t.Errorf("scaled %q", got)
	}
	long := &chunk.Ack{Base: 0, NBits: 8192, Bits: make([]byte, 1024), Window: 1}
	if n := utf8.RuneCountInString(bitmap(long, 30)); n > 30 {
		t.Errorf("%d cells for width 30", n)
	}
}

func TestTCP(t *testing.T) {
	tr := New()
	lines := []line.TraceEvent{
		{Dir: line.Out, Line: "PING"}, {Dir: line.In, Line: "PONG"},
		{Dir: line.Out, Line: "LIST"}, {Dir: line.In, Line: "FOUND n=5"},
		{Dir: line.In, Line: "F name=a"}, {Dir: line.In, Line: "F name=b"}, {Dir: line.In, Line: "F name=c"},
		{Dir: line.In, Line: "F name=d"}, {Dir: line.In, Line: "F name=e"}, {Dir: line.In, Line: "END"},
		{Dir: line.Out, Line: "SEARCH q=" + strings.Repeat("x", 100)},
	}
	var on, all []string
	for _, l := range lines {
		l.Time, l.Remote = t0, "127.0.0.1:1234"
		for _, x := range tr.TCP(Summary, "client", l) {
			on = append(on, strings.TrimPrefix(x.Text, "10:02:03.120 client "))
		}
		for _, x := range tr.TCP(All, "client", l) {
			all = append(all, x.Text)
		}
	}
	want := []string{"→ 127.0.0.1:1234 LIST", "← 127.0.0.1:1234 FOUND n=5", "← 127.0.0.1:1234 F name=a",
		"← 127.0.0.1:1234 F name=b", "← 127.0.0.1:1234 F name=c", "← 127.0.0.1:1234 END (2 more records not shown)",
		"→ 127.0.0.1:1234 SEARCH q=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…"}
	if strings.Join(on, "\n") != strings.Join(want, "\n") {
		t.Errorf("summary:\n%s\nwant\n%s", strings.Join(on, "\n"), strings.Join(want, "\n"))
	}
	if len(all) != len(lines) || !strings.HasSuffix(all[0], "PING") {
		t.Errorf("all: %q", all)
	}
}

func TestForgets(t *testing.T) {
	tr := New()
	for i := range MaxTransfers + 10 {
		e := req(0, 8, chunk.Range{First: 0, Count: 1})
		e.Header.Transfer = uint64(i + 1)
		e.Time = t0.Add(time.Duration(i) * time.Millisecond)
		tr.UDP(Summary, "get", e)
	}
	if n := len(tr.xfers); n > MaxTransfers {
		t.Errorf("%d transfers remembered, cap %d", n, MaxTransfers)
	}
}
