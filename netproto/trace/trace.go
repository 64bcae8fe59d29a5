// Package trace turns the messages a process sends and receives into lines
// a student can read, at most Width columns each.
//
// Tracer holds what it has seen of each transfer and each TCP reply, so
// that at Summary level it can say what happened rather than list every
// packet: the handshake (REQUEST, RETRY and its cookie, "cookie checked:
// address validated"), each REQUEST with its ranges, one ACK line per round
// trip with the bitmap drawn as █ (held) and ░ (missing) over its span,
// losses named in words ("chunk 41 lost (3 later ones acknowledged) →
// resent"), "window full", and DONE with the transfer's figures. Repeated
// copies (REQUESTs and DONEs are sent twice) are folded, idle PING/PONG
// hidden, and long TCP replies cut after a few records. At All level every
// datagram and line gets a line of its own.
//
// The inferences use only what the trace shows, the same on both ends: a
// client sees the ACKs it sent and the chunks that come again; a file
// server sees the ACKs it received and the chunks it sends again. A
// Tracer is safe for concurrent use.
package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/transfer"
)

// Level says how much a Tracer prints.
type Level int32

// Levels.
const (
	Off     Level = iota // nothing
	Summary              // trace on: what happened, in words
	All                  // trace all: every datagram and line, PING/PONG too
)

// Limits.
const (
	// Width is the most columns a line takes (a classroom projector's
	// terminal).
	Width = 80
	// MaxTransfers caps the transfers a Tracer remembers; the one seen
	// longest ago is forgotten first (a busy file server).
	MaxTransfers = 256
	// MaxConversations caps the TCP conversations whose replies are counted.
	MaxConversations = 256
	// MinACKGap is the least time between two ACK lines of one transfer at
	// Summary level, when the round trip is shorter (loopback): one line
	// per round trip would still be hundreds a second.
	MinACKGap = 10 * time.Millisecond
	// MaxLossLines is how many loss lines one transfer prints between two
	// ACK lines, and MaxLossLinesTotal over its whole life; the rest are
	// counted in the next ACK line ("3 more resent"). A student needs a few
	// examples, not every one of a lossy link's hundreds.
	MaxLossLines      = 2
	MaxLossLinesTotal = 6
	// MaxRecords is how many records (F, P) of one TCP reply are shown at
	// Summary level; END says how many more there were.
	MaxRecords = 3
)

// Tone says what a line is about, for colour.
type Tone uint8

// Tones.
const (
	Plain     Tone = iota
	Handshake      // HELLO/HI, REQUEST/RETRY, validation
	Progress       // ACKs, DATA
	Loss           // losses, resends, window full, drops
	Finished       // DONE, END, OK
	Refused        // ERROR, ERR
)

// Line is one line to print.
type Line struct {
	Text string
	Tone Tone
}

type xkey struct {
	role string
	peer netip.AddrPort
	id   uint64
}

// xfer is what the tracer knows of one transfer.
type xfer struct {
	seen      time.Time
	start     time.Time
	chunks    uint64    // in the file (0: unknown)
	wantLast  uint32    // last chunk of the last REQUEST's ranges
	reqSig    string    // the last REQUEST shown (copies are folded)
	reqAt     time.Time // the last REQUEST sent or received
	reqShown  time.Time // the last REQUEST line
	retries   int
	lostCtl   []string // control packets lost to `set loss` since the last line
	rtt       time.Duration
	retryAt   time.Time // the last RETRY sent (a server's round-trip sample)
	validated bool
	ack       *chunk.Ack // the last ACK seen, either way
	ackLine   time.Time  // when the last ACK line was printed
	ackHoles  bool       // whether it showed holes
	folded    int        // ACKs since the last ACK line
	ackLost   int        // ACKs lost to `set loss` since the last ACK line
	lossLines int        // loss lines since the last ACK line
	lossTotal int        // loss lines of the transfer
	resentHid int        // resends not printed since the last ACK line
	resent    int        // every resend of the transfer
	winFull   int        // window-full events since the last ACK line
	winShown  bool
	chunksIn  int  // DATA seen (not dropped)
	done      bool // DONE shown
	echoed    bool // DONE echo shown
}

// convo counts the records of a TCP reply in progress.
type convo struct {
	seen    time.Time
	records int
}

// Tracer renders events; see the package doc.
type Tracer struct {
	mu     sync.Mutex
	xfers  map[xkey]*xfer
	convos map[string]*convo
}

// New returns a Tracer that remembers nothing yet.
func New() *Tracer {
	return &Tracer{xfers: map[xkey]*xfer{}, convos: map[string]*convo{}}
}

func arrow(sent bool) string {
	if sent {
		return "→"
	}
	return "←"
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// fit cuts s to Width columns with an ellipsis.
func fit(s string) string {
	if utf8.RuneCountInString(s) <= Width {
		return s
	}
	r := []rune(s)
	return string(r[:Width-1]) + "…"
}

func cols(s string) int { return utf8.RuneCountInString(s) }

// UDP renders one datagram at level lv: zero, one or a few lines.
func (t *Tracer) UDP(lv Level, role string, ev transfer.Event) []Line {
	if lv == Off {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	x := t.xfer(role, ev)
	sent := ev.Dir == transfer.Sent
	prefix := fmt.Sprintf("%s %s %s %s #%04x ", ev.Time.Format("15:04:05.000"), role, arrow(sent), ev.Header.Kind, ev.Header.Transfer&0xffff)
	if lv == All {
		t.observe(x, ev)
		suffix := ""
		if ev.Dropped != "" {
			suffix = " — " + dropped(ev)
		}
		return []Line{{fitKeeping(prefix+everyPacket(ev, Width-cols(prefix)-cols(suffix)), suffix), toneOf(ev)}}
	}
	return t.summary(x, prefix, role, ev)
}

func (t *Tracer) xfer(role string, ev transfer.Event) *xfer {
	k := xkey{role, unmap(ev.Peer), ev.Header.Transfer}
	x := t.xfers[k]
	if x == nil {
		if len(t.xfers) >= MaxTransfers {
			var oldest xkey
			var at time.Time
			for k2, x2 := range t.xfers {
				if at.IsZero() || x2.seen.Before(at) {
					oldest, at = k2, x2.seen
				}
			}
			delete(t.xfers, oldest)
		}
		x = &xfer{start: ev.Time}
		t.xfers[k] = x
	}
	x.seen = ev.Time
	return x
}

// observe updates x from ev (both levels).
func (t *Tracer) observe(x *xfer, ev transfer.Event) {
	if ev.Dropped != "" {
		return
	}
	switch {
	case ev.Request != nil:
		r := ev.Request
		if ev.Dir == transfer.Received && len(r.Cookie) > 0 && !x.retryAt.IsZero() {
			if d := ev.Time.Sub(x.retryAt); x.rtt == 0 || d < x.rtt {
				x.rtt = d
			}
		}
		x.chunks = r.Chunks()
		if n := len(r.Ranges); n > 0 {
			x.wantLast = uint32(r.Ranges[n-1].End() - 1)
		}
		x.reqAt = ev.Time
	case ev.Retry != nil:
		// A round trip: the REQUEST just sent, its RETRY (the client's
		// view) or the RETRY just sent, the REQUEST with its cookie (the
		// server's). The smallest sample wins: a lost copy only makes one
		// longer.
		if !x.reqAt.IsZero() && ev.Dir == transfer.Received {
			if d := ev.Time.Sub(x.reqAt); x.rtt == 0 || d < x.rtt {
				x.rtt = d
			}
		}
		if ev.Dir == transfer.Sent {
			x.retryAt = ev.Time
		}
	case ev.Ack != nil:
		a := *ev.Ack
		a.Bits = append([]byte(nil), a.Bits...)
		x.ack = &a
	case ev.Header.Kind == chunk.KindData:
		x.chunksIn++
		if ev.Header.Flags&chunk.FlagRetransmit != 0 {
			x.resent++
		}
	}
}

func toneOf(ev transfer.Event) Tone {
	h := ev.Header
	switch {
	case ev.Dropped != "" || h.Flags&chunk.FlagRetransmit != 0:
		return Loss
	case h.Kind == chunk.KindRequest || h.Kind == chunk.KindRetry:
		return Handshake
	case h.Kind == chunk.KindDone:
		return Finished
	case h.Kind == chunk.KindError:
		return Refused
	}
	return Progress
}

// everyPacket is the body of a `trace all` line.
func everyPacket(ev transfer.Event, room int) string {
	h := ev.Header
	var b strings.Builder
	switch {
	case ev.Request != nil:
		r := ev.Request
		if h.Flags&chunk.FlagTree != 0 {
			b.WriteString("tree ")
		}
		fmt.Fprintf(&b, "%d B/%d win %d cookie %d B want %s", r.Size, r.ChunkSize, r.Window, len(r.Cookie), ranges(r.Ranges, 3))
	case ev.Retry != nil:
		fmt.Fprintf(&b, "cookie %d B, max chunk %d", len(ev.Retry.Cookie), ev.Retry.MaxChunkSize)
	case h.Kind == chunk.KindData:
		fmt.Fprintf(&b, "chunk %d", h.Chunk)
		if h.Flags&chunk.FlagRetransmit != 0 {
			b.WriteString(" resent")
		}
		if h.Flags&chunk.FlagAckNow != 0 {
			b.WriteString(" ack-now")
		}
		fmt.Fprintf(&b, " %d B", ev.Size)
	case ev.Ack != nil:
		a := ev.Ack
		head := fmt.Sprintf("cum %d base %d ", a.Cumulative, a.Base)
		tail := fmt.Sprintf(" win %d delay %dµs", a.Window, a.Delay)
		b.WriteString(head + bitmap(a, room-cols(head)-cols(tail)) + tail)
	case ev.Done != nil:
		b.WriteString(doneReason(ev.Done.Reason))
	case ev.Error != nil:
		b.WriteString(errorText(ev.Error))
	default:
		fmt.Fprintf(&b, "%d B", ev.Size)
	}
	if h.Flags&chunk.FlagSealed != 0 && ev.Request == nil && ev.Ack == nil && ev.Retry == nil {
		b.WriteString(" sealed")
	}
	return b.String()
}

// fitKeeping fits s then suffix into Width columns, cutting s.
func fitKeeping(s, suffix string) string {
	if cols(s)+cols(suffix) <= Width {
		return s + suffix
	}
	r := []rune(s)
	keep := max(0, Width-cols(suffix)-1)
	return string(r[:min(len(r), keep)]) + "…" + suffix
}

func dropped(ev transfer.Event) string {
	if ev.Dropped == "impairment" {
		return "lost (set loss)"
	}
	return "dropped: " + ev.Dropped
}

// summary is `trace on`.
func (t *Tracer) summary(x *xfer, prefix, role string, ev transfer.Event) []Line {
	h := ev.Header
	sent := ev.Dir == transfer.Sent
	defer t.observe(x, ev)
	if ev.Dropped != "" {
		switch {
		case h.Kind == chunk.KindAck && ev.Dropped == "impairment":
			x.ackLost++
			return nil
		case h.Kind == chunk.KindData && ev.Dropped == "impairment":
			return nil // it shows as a hole, then as a resend
		case h.Kind == chunk.KindData:
			if x.lossLines >= MaxLossLines || x.lossTotal >= MaxLossLinesTotal {
				return nil
			}
			x.lossLines++
			x.lossTotal++
			return []Line{{fit(fmt.Sprintf("%schunk %d %s", prefix, h.Chunk, dropped(ev))), Loss}}
		case ev.Dropped == "impairment" && len(x.lostCtl) < 8:
			// told on the transfer's next line: a lost REQUEST or RETRY
			// explains the wait before the next one
			x.lostCtl = append(x.lostCtl, h.Kind.String())
			return nil
		}
		return []Line{{fit(prefix + dropped(ev)), Loss}}
	}
	lines := t.event(x, prefix, sent, ev)
	if len(lines) > 0 && len(x.lostCtl) > 0 {
		// on the first line with room for it (the ACK lines make room)
		note := " (" + lostList(x.lostCtl) + " lost before)"
		for i := range lines {
			if cols(lines[i].Text)+cols(note) <= Width {
				lines[i].Text += note
				x.lostCtl = x.lostCtl[:0]
				break
			}
		}
	}
	return lines
}

// lostList says "a RETRY", "2 REQUESTs", "a REQUEST, an ACK".
func lostList(kinds []string) string {
	n := map[string]int{}
	var order []string
	for _, k := range kinds {
		if n[k] == 0 {
			order = append(order, k)
		}
		n[k]++
	}
	var parts []string
	for _, k := range order {
		switch {
		case n[k] > 1:
			parts = append(parts, fmt.Sprintf("%d %ss", n[k], k))
		case k == "ACK" || k == "ERROR":
			parts = append(parts, "an "+k)
		default:
			parts = append(parts, "a "+k)
		}
	}
	return strings.Join(parts, ", ")
}

// event renders a message that went through.
func (t *Tracer) event(x *xfer, prefix string, sent bool, ev transfer.Event) []Line {
	switch {
	case ev.Request != nil:
		return requestLines(x, prefix, sent, ev)
	case ev.Retry != nil:
		return retryLines(x, prefix, len(ev.Retry.Cookie))
	case ev.Header.Kind == chunk.KindData:
		return dataLines(x, prefix, sent, ev.Header)
	case ev.Ack != nil:
		return ackLines(x, prefix, ev)
	case ev.Done != nil:
		return doneLines(x, prefix, ev)
	case ev.Error != nil:
		return []Line{{fit(prefix + errorText(ev.Error)), Refused}}
	}
	return nil
}

// requestLines explains a REQUEST: the first one, the one that echoes the
// cookie, and later wish lists. The copy sent against loss is not shown.
func requestLines(x *xfer, prefix string, sent bool, ev transfer.Event) []Line {
	r := ev.Request
	sig := fmt.Sprintf("%d %d %v", len(r.Cookie), r.Window, r.Ranges)
	if sig == x.reqSig && ev.Time.Sub(x.reqShown) < time.Second {
		return nil // the copy sent against loss, or a retry
	}
	x.reqSig, x.reqShown = sig, ev.Time
	want := ranges(r.Ranges, 3)
	var body string
	switch {
	case len(r.Cookie) == 0:
		who := "to"
		if !sent {
			who = "from"
		}
		body = fmt.Sprintf("%s %s: %d × %d B, wants %s", who, unmap(ev.Peer), r.Chunks(), r.ChunkSize, want)
		if ev.Header.Flags&chunk.FlagTree != 0 {
			body = fmt.Sprintf("%s %s: the file's BLAKE3 tree, %d B", who, unmap(ev.Peer), r.Size)
		}
	case x.chunksIn == 0:
		body = fmt.Sprintf("again, with the cookie: wants %s, window %d", want, r.Window)
	default:
		body = fmt.Sprintf("new wish list: %s (%s), window %d", want, plural(int(count(r.Ranges)), "chunk", "chunks"), r.Window)
	}
	return []Line{{fit(prefix + body), Handshake}}
}

// retryLines explains the first RETRY (the address check) and its echo.
func retryLines(x *xfer, prefix string, cookieLen int) []Line {
	x.retries++
	switch x.retries {
	case 1:
		return []Line{{fit(fmt.Sprintf("%sprove your address: echo this %d-byte cookie", prefix, cookieLen)), Handshake}}
	case 2:
		return []Line{{fit(prefix + "again: the answer to the REQUEST's copy"), Handshake}}
	}
	return nil
}

// dataLines explains DATA: the first one (the address is validated), a
// resent chunk and why (up to the loss-line budgets), a full window.
func dataLines(x *xfer, prefix string, sent bool, h chunk.Header) []Line {
	var out []Line
	if !x.validated {
		x.validated = true
		if sent {
			out = append(out, Line{fit(prefix + "cookie checked: address validated, chunks flow"), Handshake})
		} else {
			out = append(out, Line{fit(prefix + "chunks flow: the server checked the cookie"), Handshake})
		}
	}
	switch {
	case h.Flags&chunk.FlagRetransmit != 0:
		if x.lossLines >= MaxLossLines || x.lossTotal >= MaxLossLinesTotal {
			x.resentHid++
			return out
		}
		x.lossLines++
		x.lossTotal++
		why := whyResent(x.ack, h)
		text := fmt.Sprintf("%schunk %d %s", prefix, h.Chunk, why)
		if cols(text) > Width { // a longer role or transfer: say it shorter
			text = fmt.Sprintf("%schunk %d %s", prefix, h.Chunk, strings.Replace(why, " ones acknowledged", " acked", 1))
		}
		out = append(out, Line{fit(text), Loss})
	case h.Flags&chunk.FlagAckNow != 0 && h.Chunk != x.wantLast:
		x.winFull++
		if !x.winShown {
			x.winShown = true
			out = append(out, Line{fit(fmt.Sprintf("%schunk %d: window full, waiting for an ACK", prefix, h.Chunk)), Loss})
		}
	}
	return out
}

// ackLines shows one ACK per round trip, and whenever holes appear or all
// close (the picture a student should not miss); the others are folded
// into the next line shown.
func ackLines(x *xfer, prefix string, ev transfer.Event) []Line {
	a := ev.Ack
	gap := max(x.rtt, MinACKGap)
	last := x.chunks > 0 && uint64(a.Cumulative) >= x.chunks
	holes := a.NBits > 0
	if !x.ackLine.IsZero() && ev.Time.Sub(x.ackLine) < gap && !last && holes == x.ackHoles {
		x.folded++
		return nil
	}
	x.ackHoles = holes
	line := ackLine(prefix, a, x)
	x.ackLine, x.folded, x.ackLost, x.lossLines, x.resentHid, x.winFull = ev.Time, 0, 0, 0, 0, 0
	return []Line{{line, Progress}}
}

// doneLines explains DONE once per transfer, and the server's echo for a
// transfer it has forgotten once.
func doneLines(x *xfer, prefix string, ev transfer.Event) []Line {
	if ev.Done.Reason == chunk.DoneEcho {
		if x.echoed {
			return nil
		}
		x.echoed = true
		return []Line{{fit(prefix + "echo: the server has forgotten the transfer"), Finished}}
	}
	if x.done {
		return nil
	}
	x.done = true
	body := doneReason(ev.Done.Reason)
	if x.chunksIn > 0 {
		body += fmt.Sprintf(": %d DATA in %s, %d resent", x.chunksIn, ev.Time.Sub(x.start).Round(time.Millisecond), x.resent)
	}
	return []Line{{fit(prefix + body), Finished}}
}

// whyResent names why a chunk comes again, from the last ACK seen.
func whyResent(a *chunk.Ack, h chunk.Header) string {
	if a != nil {
		if h.Chunk < a.Cumulative || a.Bit(h.Chunk) {
			return "resent, but it had arrived: the sender missed the ACK"
		}
		later := 0
		a.ForEach(func(i uint32) {
			if i > h.Chunk {
				later++
			}
		})
		switch {
		case later == 1:
			return "lost (1 later one acknowledged) → resent"
		case later > 1:
			return fmt.Sprintf("lost (%d later ones acknowledged) → resent", later)
		}
	}
	if h.Flags&chunk.FlagAckNow != 0 {
		return "timed out, no ACK → resent as a probe"
	}
	return "lost → resent"
}

// ackLine draws an ACK: what is held below its bitmap, the bitmap over its
// span, and what happened since the last ACK line.
func ackLine(prefix string, a *chunk.Ack, x *xfer) string {
	var head string
	switch {
	case x.chunks > 0 && uint64(a.Cumulative) >= x.chunks:
		head = "all " + plural(int(x.chunks), "chunk", "chunks") + " held"
	case a.Base == 0:
		head = "none in order yet"
	default:
		head = fmt.Sprintf("all below %d", a.Base)
	}
	if a.Cumulative != a.Base && !(x.chunks > 0 && uint64(a.Cumulative) >= x.chunks) {
		head += fmt.Sprintf(" (file: below %d)", a.Cumulative)
	}
	var notes []string
	if x.folded > 0 {
		notes = append(notes, plural(x.folded, "ACK", "ACKs")+" folded")
	}
	if x.ackLost > 0 {
		notes = append(notes, plural(x.ackLost, "ACK", "ACKs")+" lost")
	}
	if x.resentHid > 0 {
		notes = append(notes, fmt.Sprintf("%d more resent", x.resentHid))
	}
	if x.winFull > 1 {
		notes = append(notes, fmt.Sprintf("window full ×%d", x.winFull))
	}
	if len(x.lostCtl) > 0 {
		notes = append(notes, lostList(x.lostCtl)+" lost")
		x.lostCtl = x.lostCtl[:0]
	}
	tail := ""
	if len(notes) > 0 {
		tail = " · " + strings.Join(notes, ", ")
	}
	if a.NBits == 0 {
		return fit(prefix + head + tail)
	}
	lo := fmt.Sprintf(", %d ", a.Base)
	hi := fmt.Sprintf(" %d", uint64(a.Base)+uint64(a.NBits)-1)
	room := Width - cols(prefix) - cols(head) - cols(lo) - cols(hi) - cols(tail)
	if room < min(int(a.NBits), 8) {
		tail, room = "", Width-cols(prefix)-cols(head)-cols(lo)-cols(hi)
	}
	return fit(prefix + head + lo + bitmap(a, room) + hi + tail)
}

// bitmap draws a's bitmap in at most width cells: █ held, ░ missing; when
// each cell stands for several chunks, ▒ is a cell with some of each.
func bitmap(a *chunk.Ack, width int) string {
	n := int(a.NBits)
	if n == 0 {
		return "-"
	}
	width = max(width, 4)
	per := (n + width - 1) / width
	var b strings.Builder
	for c := 0; c < n; c += per {
		held, all := 0, 0
		for k := c; k < min(c+per, n); k++ {
			all++
			if a.Bit(a.Base + uint32(k)) {
				held++
			}
		}
		switch held {
		case all:
			b.WriteString("█")
		case 0:
			b.WriteString("░")
		default:
			b.WriteString("▒")
		}
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// ranges shows chunk ranges as "0–15, 20, 31–40" and how many more.
func ranges(rs []chunk.Range, most int) string {
	if len(rs) == 0 {
		return "nothing"
	}
	var parts []string
	for i, r := range rs {
		if i == most {
			parts = append(parts, fmt.Sprintf("+%d more", len(rs)-most))
			break
		}
		if r.Count == 1 {
			parts = append(parts, fmt.Sprint(r.First))
		} else {
			parts = append(parts, fmt.Sprintf("%d–%d", r.First, r.End()-1))
		}
	}
	return strings.Join(parts, ", ")
}

func count(rs []chunk.Range) uint64 {
	var n uint64
	for _, r := range rs {
		n += uint64(r.Count)
	}
	return n
}

func sizeText(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func doneReason(r chunk.DoneReason) string {
	switch r {
	case chunk.DoneComplete:
		return "complete"
	case chunk.DoneCancel:
		return "cancelled"
	case chunk.DoneEcho:
		return "echo"
	}
	return fmt.Sprintf("reason %d", r)
}

func errorText(e *chunk.Error) string {
	s := e.Code.String()
	switch e.Code {
	case chunk.CodeBusy:
		s += fmt.Sprintf(", try again in %d ms", e.Value)
	case chunk.CodeChunkSize:
		s += fmt.Sprintf(", at most %d", e.Value)
	case chunk.CodeNotYet:
		s += fmt.Sprintf(" from chunk %d (not checked there yet)", e.Value)
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// TCP renders one line of the master protocol at level lv.
func (t *Tracer) TCP(lv Level, role string, ev line.TraceEvent) []Line {
	if lv == Off {
		return nil
	}
	verb, _, _ := strings.Cut(ev.Line, " ")
	if lv == Summary && (verb == "PING" || verb == "PONG") {
		return nil
	}
	prefix := fmt.Sprintf("%s %s %s %s ", ev.Time.Format("15:04:05.000"), role, arrow(ev.Dir == line.Out), ev.Remote)
	tone := Plain
	switch verb {
	case "ERR":
		tone = Refused
	case "HELLO", "HI", "AUTH":
		tone = Handshake
	case "END", "OK", "BYE", "DONE":
		tone = Finished
	}
	if lv == Summary {
		t.mu.Lock()
		defer t.mu.Unlock()
		k := role + " " + ev.Remote + " " + ev.Dir.String()
		c := t.convos[k]
		if c == nil {
			if len(t.convos) >= MaxConversations {
				clear(t.convos)
			}
			c = &convo{}
			t.convos[k] = c
		}
		c.seen = ev.Time
		switch verb {
		case "F", "P":
			c.records++
			if c.records > MaxRecords {
				return nil
			}
		case "END":
			if hid := c.records - MaxRecords; hid > 0 {
				c.records = 0
				return []Line{{fit(fmt.Sprintf("%sEND (%d more records not shown)", prefix, hid)), tone}}
			}
			c.records = 0
		default:
			c.records = 0
		}
	}
	return []Line{{fit(prefix + ev.Line), tone}}
}
