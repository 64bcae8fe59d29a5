package shell

// Trace: the protocol messages a role sends and receives, printed as they
// pass while `set trace on` (or `trace on`). The roles report every message
// through a hook (line.TraceEvent for the TCP line protocol, transfer.Event
// for UDP datagrams, DATA sampled); traceTCP and traceUDP are the only
// hooks the shell hands them: each checks the setting on every event and
// prints one line, tcpTraceLine or udpTraceLine, past the UI.

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/transfer"
)

// traceTCP returns the trace hook of a role's TCP lines (master, client,
// share, receive; the demo's roles are named demo-…).
func (s *Shell) traceTCP(role string) func(line.TraceEvent) {
	return func(ev line.TraceEvent) {
		s.captureTCP(ev)
		if s.set.On("trace") {
			s.notify(s.tcpTraceLine(role, ev))
		}
	}
}

// traceUDP returns the trace hook of a role's datagrams (get, recv, share,
// send; demo-…).
func (s *Shell) traceUDP(role string) func(transfer.Event) {
	return func(ev transfer.Event) {
		if s.set.On("trace") {
			s.notify(s.udpTraceLine(role, ev))
		}
	}
}

// tcpTraceLine renders one line of the TCP protocol: time, role,
// direction, peer and the line (coloured by verb).
func (s *Shell) tcpTraceLine(role string, ev line.TraceEvent) string {
	arrow := "<-"
	if ev.Dir == line.Out {
		arrow = "->"
	}
	verb, _, _ := strings.Cut(ev.Line, " ")
	col := s.pal.dim
	switch verb {
	case "ERR":
		col = s.pal.err
	case "HELLO", "HI", "AUTH", "CHALLENGE":
		col = s.pal.hi
	case "REGISTER", "END", "OK", "BYE":
		col = s.pal.ok
	case "OFFER", "ACCEPT", "REFUSE", "DONE": // pushes
		col = s.pal.warn
	}
	return fmt.Sprintf("%s tcp %s %s %s %s", ev.Time.Format("15:04:05.000"), role, arrow, ev.Remote, col.Sprint(ev.Line))
}

// udpTraceLine renders one datagram: time, role, direction, peer, kind
// (coloured by kind), transfer id and what the payload says.
func (s *Shell) udpTraceLine(role string, ev transfer.Event) string {
	arrow := "<-"
	if ev.Dir == transfer.Sent {
		arrow = "->"
	}
	h := ev.Header
	col := s.pal.dim
	var b strings.Builder
	switch {
	case ev.Request != nil:
		col = s.pal.hi
		r := ev.Request
		fmt.Fprintf(&b, " file=%x size=%d chunk=%d win=%d cookie=%dB want=%s", r.Hash[:6], r.Size, r.ChunkSize,
			r.Window, len(r.Cookie), rangeList(r.Ranges))
	case ev.Retry != nil:
		col = s.pal.hi
		fmt.Fprintf(&b, " cookie=%dB maxchunk=%d", len(ev.Retry.Cookie), ev.Retry.MaxChunkSize)
	case h.Kind == chunk.KindData:
		fmt.Fprintf(&b, " chunk=%d", h.Chunk)
		if h.Flags&chunk.FlagRetransmit != 0 {
			col = s.pal.warn
			b.WriteString(" retransmit")
		}
		if h.Flags&chunk.FlagAckNow != 0 {
			b.WriteString(" ack-now")
		}
	case ev.Ack != nil:
		col = s.pal.ok
		a := ev.Ack
		fmt.Fprintf(&b, " cum=%d base=%d bitmap=%s win=%d delay=%dµs", a.Cumulative, a.Base, ackBitmap(a), a.Window, a.Delay)
	case ev.Done != nil:
		col = s.pal.ok
		b.WriteString(" " + doneReason(ev.Done.Reason))
	case ev.Error != nil:
		col = s.pal.err
		fmt.Fprintf(&b, " %s", ev.Error.Code)
		if ev.Error.Value != 0 {
			fmt.Fprintf(&b, " value=%d", ev.Error.Value)
		}
		if ev.Error.Text != "" {
			fmt.Fprintf(&b, " %q", ev.Error.Text)
		}
	}
	if ev.Dropped != "" {
		col = s.pal.warn
		b.WriteString(" DROPPED(" + ev.Dropped + ")")
	}
	peer := netip.AddrPortFrom(ev.Peer.Addr().Unmap(), ev.Peer.Port())
	return fmt.Sprintf("%s udp %s %s %s %s t=%04x%s %dB", ev.Time.Format("15:04:05.000"), role, arrow, peer,
		col.Sprint(h.Kind.String()), h.Transfer&0xffff, b.String(), ev.Size)
}

// MaxTraceBits is how much of an ACK bitmap a trace line shows.
const MaxTraceBits = 64

// ackBitmap shows an ACK's bitmap readably: bit k (chunk base+k) as '1'
// (held) or '0' (missing), lowest first, at most MaxTraceBits of them.
func ackBitmap(a *chunk.Ack) string {
	if a.NBits == 0 {
		return "-"
	}
	n := min(int(a.NBits), MaxTraceBits)
	var b strings.Builder
	for k := range n {
		if a.Bit(a.Base + uint32(k)) {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	if int(a.NBits) > n {
		fmt.Fprintf(&b, "…(+%d)", int(a.NBits)-n)
	}
	return b.String()
}

// rangeList shows a REQUEST's wanted ranges as first+count, the first few.
func rangeList(rs []chunk.Range) string {
	if len(rs) == 0 {
		return "-"
	}
	const most = 4
	var parts []string
	for i, r := range rs {
		if i == most {
			parts = append(parts, fmt.Sprintf("…(+%d)", len(rs)-most))
			break
		}
		parts = append(parts, fmt.Sprintf("%d+%d", r.First, r.Count))
	}
	return strings.Join(parts, ",")
}

func doneReason(r chunk.DoneReason) string {
	switch r {
	case chunk.DoneComplete:
		return "complete"
	case chunk.DoneCancel:
		return "cancel"
	case chunk.DoneEcho:
		return "echo"
	}
	return fmt.Sprintf("reason=%d", r)
}
