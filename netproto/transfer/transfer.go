// Package transfer moves files over fxsh's UDP chunk protocol (the wire
// format is package chunk; the protocol is netproto/PROTOCOL.md, section 2).
//
// Server serves files to many clients at once from one UDP socket: it
// validates addresses with stateless cookies, runs one paced sender per
// transfer under a BBR-style congestion controller (cc.go) and recovers
// losses from selective ACKs and a probe timeout (rtt.go). Fetch downloads
// one file into a Sink from one or several servers at once (fetch.go: the
// sockets, ACKs and timers); its claim scheduler (swarm.go, pure bookkeeping
// over the chunk bitmap) hands out spans of chunks, more to faster sources,
// and carries on when a source dies. Impair degrades the datagrams a
// process sends and receives (loss, duplication, reordering, delay,
// corruption, a rate cap) for demos and tests. Counters, Stats and Event
// report what happened: roles never print.
package transfer

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// Counter names one of the values Counters keeps.
type Counter int

// Counters. The first group only grows; the last group are gauges that
// hold the latest value.
const (
	DatagramsSent     Counter = iota // datagrams written to the socket (after impairment)
	DatagramsReceived                // datagrams read from the socket
	BytesSent                        // datagram bytes written
	BytesReceived                    // datagram bytes read
	ChunksSent                       // DATA datagrams sent
	ChunksReceived                   // DATA datagrams received intact
	Retransmits                      // DATA sent (server) or received (client) again
	Duplicates                       // DATA for a chunk already held
	CRCDrops                         // datagrams dropped for a bad CRC32C
	AuthDrops                        // datagrams that did not authenticate (or were unsealed under a key)
	Malformed                        // datagrams that did not parse
	Hostile                          // well-formed datagrams that made no sense: forged transfer ids, wrong peer, wrong kind
	AckUnsent                        // ACK bits for chunks this sender never sent
	ImpairDrops                      // datagrams dropped by Impair
	Retries                          // RETRY datagrams sent (server) or received (client)
	BusyReplies                      // ERROR busy sent (server) or received (client)
	Evicted                          // transfers a server ended to give their slot to a new one (no progress for StallEvict)
	NotYetReplies                    // ERROR not yet sent (a partial source) or received (client)
	LeavingReplies                   // ERROR leaving sent (a server that closes) or received (client)
	GroupsVerified                   // client: 64 KiB groups checked against the file's tree
	GroupsFailed                     // client: groups whose bytes were not the file's (refetched)
	GroupsReadBack                   // client: groups checked from the disk, not the receive buffers (resume, overflow)
	GroupsInline                     // client: groups the receive loop checked itself (a trickle: no worker woken)
	LiarsDropped                     // client: sources dropped for sending bytes that are not the file's
	Losses                           // chunks a sender declared lost
	Timeouts                         // probe timeouts (PTO) and request timeouts
	Wakeups                          // client: times the control loop woke to run its timers
	TransfersStarted                 // transfers a server began, or sources a client began
	TransfersActive                  // gauge: transfers in progress
	SmoothedRTT                      // gauge: latest smoothed RTT, ns
	Cwnd                             // gauge: latest congestion window, bytes
	PacingRate                       // gauge: latest pacing rate, bytes/s
	numCounters
)

const firstGauge = TransfersActive

// Counters are live, concurrently updated protocol counters. A Counters may
// have a parent that receives every update too (a job's counters feed the
// process's). The zero value is ready to use.
type Counters struct {
	parent *Counters
	v      [numCounters]atomic.Int64
}

// NewCounters returns counters that also update parent (which may be nil).
func NewCounters(parent *Counters) *Counters { return &Counters{parent: parent} }

func (c *Counters) add(k Counter, n int64) {
	for ; c != nil; c = c.parent {
		c.v[k].Add(n)
	}
}

func (c *Counters) set(k Counter, n int64) {
	for ; c != nil; c = c.parent {
		c.v[k].Store(n)
	}
}

// Load returns one counter.
func (c *Counters) Load(k Counter) int64 {
	if c == nil || k < 0 || k >= numCounters {
		return 0
	}
	return c.v[k].Load()
}

// Stats is a snapshot of Counters.
type Stats struct {
	DatagramsSent, DatagramsReceived int64
	BytesSent, BytesReceived         int64
	ChunksSent, ChunksReceived       int64
	Retransmits, Duplicates          int64
	CRCDrops, AuthDrops, Malformed   int64
	Hostile, AckUnsent, ImpairDrops  int64
	Retries, BusyReplies             int64
	Evicted                          int64
	NotYetReplies                    int64
	LeavingReplies                   int64
	GroupsVerified, GroupsFailed     int64
	GroupsReadBack, LiarsDropped     int64
	GroupsInline                     int64
	Losses, Timeouts                 int64
	Wakeups                          int64
	TransfersStarted                 int64
	TransfersActive                  int64
	RTT                              time.Duration // latest smoothed RTT
	Cwnd                             int64         // latest congestion window, bytes
	PacingRate                       int64         // latest pacing rate, bytes/s
}

// Snapshot reads every counter.
func (c *Counters) Snapshot() Stats {
	l := c.Load
	return Stats{
		DatagramsSent: l(DatagramsSent), DatagramsReceived: l(DatagramsReceived),
		BytesSent: l(BytesSent), BytesReceived: l(BytesReceived),
		ChunksSent: l(ChunksSent), ChunksReceived: l(ChunksReceived),
		Retransmits: l(Retransmits), Duplicates: l(Duplicates),
		CRCDrops: l(CRCDrops), AuthDrops: l(AuthDrops), Malformed: l(Malformed),
		Hostile: l(Hostile), AckUnsent: l(AckUnsent), ImpairDrops: l(ImpairDrops),
		Retries: l(Retries), BusyReplies: l(BusyReplies), Evicted: l(Evicted),
		NotYetReplies: l(NotYetReplies), LeavingReplies: l(LeavingReplies), GroupsVerified: l(GroupsVerified), GroupsFailed: l(GroupsFailed),
		GroupsReadBack: l(GroupsReadBack), LiarsDropped: l(LiarsDropped), GroupsInline: l(GroupsInline),
		Losses: l(Losses), Timeouts: l(Timeouts), Wakeups: l(Wakeups),
		TransfersStarted: l(TransfersStarted), TransfersActive: l(TransfersActive),
		RTT: time.Duration(l(SmoothedRTT)), Cwnd: l(Cwnd), PacingRate: l(PacingRate),
	}
}

// Direction says whether an Event's datagram was sent or received.
type Direction uint8

// Directions.
const (
	Sent     Direction = 1
	Received Direction = 2
)

func (d Direction) String() string {
	if d == Sent {
		return "send"
	}
	return "recv"
}

// Event is one datagram seen by the trace hook. REQUEST, RETRY, ACK, DONE
// and ERROR are always reported; DATA one in TraceSample plus every
// retransmission. The pointers are set for the payload of the event's kind
// (copies: an Event stays valid after the hook returns).
type Event struct {
	Time    time.Time
	Dir     Direction
	Peer    netip.AddrPort
	Header  chunk.Header
	Size    int    // datagram bytes
	Dropped string // why a received datagram was dropped, or "impairment" for a sent one; "" if it went through
	Request *chunk.Request
	Retry   *chunk.Retry
	Ack     *chunk.Ack
	Done    *chunk.Done
	Error   *chunk.Error
}

// DefaultTraceSample is how many DATA datagrams pass for one that is
// traced: every one, since the shell's trace decides itself what to show
// (trace on summarizes, trace all shows each). While the trace is off the
// config's TraceActive says so before any decoding (measured: 11-14 ns a
// datagram, against 260-360 ns for decoding and reading the clock on this
// project's VM: BenchmarkTraceOff).
const DefaultTraceSample = 1

// decodeEvent fills ev's payload pointer from a plaintext payload.
func decodeEvent(ev *Event, payload []byte) {
	switch ev.Header.Kind {
	case chunk.KindRequest:
		if r, _, err := chunk.ParseRequest(payload); err == nil {
			r.Cookie = append([]byte(nil), r.Cookie...)
			ev.Request = &r
		}
	case chunk.KindRetry:
		if r, _, err := chunk.ParseRetry(payload); err == nil {
			r.Cookie = append([]byte(nil), r.Cookie...)
			ev.Retry = &r
		}
	case chunk.KindAck:
		if a, _, err := chunk.ParseAck(payload); err == nil {
			a.Bits = append([]byte(nil), a.Bits...)
			ev.Ack = &a
		}
	case chunk.KindDone:
		if d, _, err := chunk.ParseDone(payload); err == nil {
			ev.Done = &d
		}
	case chunk.KindError:
		if e, _, err := chunk.ParseError(payload); err == nil {
			ev.Error = &e
		}
	}
}
