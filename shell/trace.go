package shell

// Trace: the protocol messages a role sends and receives, printed as they
// pass at the level `trace on|all|off` (the `trace` setting) says. The
// roles report every message through a hook (line.TraceEvent for the TCP
// line protocol, transfer.Event for UDP datagrams); traceTCP and traceUDP
// are the only hooks the shell hands them: each first passes the message to
// the capture (`trace --pcap`, capture.go), then, unless the trace is off,
// to the one trace.Tracer of the shell, which decides what a student sees
// (netproto/trace) and returns the lines to print past the UI.

import (
	"strings"
	"sync/atomic"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/trace"
	"github.com/fxshell/fxsh/netproto/transfer"
)

// tracing is the shell's trace state.
type tracing struct {
	level  atomic.Int32  // a trace.Level; read on every message
	tracer *trace.Tracer // what has been seen (safe for concurrent use)
}

// traceLevel parses the trace setting.
func traceLevel(v string) (string, error) {
	switch strings.ToLower(v) {
	case "all", "every":
		return "all", nil
	}
	return onOff(v)
}

func (s *Shell) setTraceLevel(v string) {
	lv := trace.Off
	switch v {
	case "on":
		lv = trace.Summary
	case "all":
		lv = trace.All
	}
	if s.tr.tracer == nil {
		s.tr.tracer = trace.New()
	}
	s.tr.level.Store(int32(lv))
}

// tracing reports whether the trace is on (the roles ask before they
// decode a datagram for it).
func (s *Shell) tracing() bool { return s.tr.level.Load() != int32(trace.Off) }

// traceTCP returns the trace hook of a role's TCP lines (master, client,
// share, receive; the demo's roles are named demo-…).
func (s *Shell) traceTCP(role string) func(line.TraceEvent) {
	return func(ev line.TraceEvent) {
		s.captureTCP(ev)
		if lv := trace.Level(s.tr.level.Load()); lv != trace.Off {
			s.printTrace(s.tr.tracer.TCP(lv, role, ev))
		}
	}
}

// traceUDP returns the trace hook of a role's datagrams (get, recv, share,
// send; demo-…). It costs an atomic load per datagram while the trace is
// off.
func (s *Shell) traceUDP(role string) func(transfer.Event) {
	return func(ev transfer.Event) {
		if lv := trace.Level(s.tr.level.Load()); lv != trace.Off {
			s.printTrace(s.tr.tracer.UDP(lv, role, ev))
		}
	}
}

func (s *Shell) printTrace(lines []trace.Line) {
	for _, l := range lines {
		s.notify(s.toned(l))
	}
}

// toned colours a trace line by its tone (on a terminal).
func (s *Shell) toned(l trace.Line) string {
	switch l.Tone {
	case trace.Handshake:
		return s.pal.hi.Sprint(l.Text)
	case trace.Loss:
		return s.pal.warn.Sprint(l.Text)
	case trace.Finished:
		return s.pal.ok.Sprint(l.Text)
	case trace.Refused:
		return s.pal.err.Sprint(l.Text)
	case trace.Progress:
		return l.Text
	}
	return s.pal.dim.Sprint(l.Text)
}

// udpTraceLine renders one datagram as `trace all` shows it (the demo
// quotes a few).
func (s *Shell) udpTraceLine(role string, ev transfer.Event) string {
	lines := trace.New().UDP(trace.All, role, ev)
	if len(lines) == 0 {
		return ""
	}
	return s.toned(lines[0])
}

// traceHelp is `help trace`: every field of a trace line, with examples.
const traceHelp = `trace on shows what happens, in words; trace all shows every datagram and
line. Lines are at most 80 columns:

  TIME         ROLE ⇄ KIND    #XFER WHAT
  10:02:03.120 get  → REQUEST #3f2a to 127.0.0.1:5000: 1.0 MB, 16 chunks of 64512 B

TIME  when the message passed (hours:minutes:seconds.milliseconds)
ROLE  which part of this fxsh: get/recv (downloading), share/send (serving
      files), client (asking the master), master, receive (push offers)
⇄     → this process sent it, ← it received it
KIND  UDP: REQUEST (which file, chunk size, window, wanted chunks, cookie),
      RETRY (echo this cookie: proves the client's address before any data),
      DATA (one chunk), ACK (what arrived), DONE, ERROR. TCP: the verb.
#XFER the transfer id's last 4 hex digits (one download from one server)

trace on, the words:
  wants 0–15, window 127     the chunk ranges asked for; how many chunks the
                             server may have in flight at once
  cookie checked: address validated   the server saw its cookie come back
  ACK #3f2a all below 7, 7 ░█░░█ 11 · 2 ACKs folded
      the client holds every chunk below 7; from 7 to 11 it holds those
      drawn █ and misses those drawn ░ (▒: a cell standing for several
      chunks, some held); one ACK line per round trip (at least 10 ms
      apart), the ACKs between them folded; "file: below N" is the
      file-wide point when several servers send
  chunk 41 lost (3 later ones acknowledged) → resent
      an ACK held 3 chunks sent after 41 but not 41: the sender declares it
      lost and sends it again (RETRANSMIT); "not acknowledged in time" is a
      timeout instead; "it had arrived" means the ACK was lost, not the chunk
  chunk 63: window full, the sender waits for an ACK
  REQUEST, DONE sent twice, and idle PING/PONG, are shown once or not at all.

trace all, the fields: cum (the client holds every chunk of the file below
  it), base (every chunk asked of this server below it), the bitmap from
  base, win (receive window, chunks), delay (µs the ACK waited), resent
  (RETRANSMIT flag), ack-now (acknowledge at once), sealed (encrypted with
  --key), "lost (set loss)" (dropped by the simulated loss).

trace --pcap FILE captures every TCP line and UDP datagram of this process
to a pcap file for Wireshark (netproto/wireshark/fxsh.lua decodes both),
at most 64 MiB unless --max SIZE; trace --pcap FILE off closes it.`
