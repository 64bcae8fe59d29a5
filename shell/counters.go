package shell

// Counters: what `jobs -v` shows under a job (its own protocol counters,
// and for a download each source's share) and what `stats` shows for the
// whole process. Every job that moves data has one jobCounters; its
// transfer.Counters also count into the process's (s.counters).

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
)

// jobCounters are one job's protocol counters.
type jobCounters struct {
	c *transfer.Counters // the job's own; they also count into the process's
	// server: the counters are a server's (a send job's push server):
	// losses, PTOs, congestion window and pacing rather than duplicates,
	// CRC drops and sources.
	server bool

	mu      sync.Mutex // protects sources and hist
	sources []transfer.SourceStats
	hist    history // the live view's samples (live.go)
}

// newJobCounters returns a job's counters, counting also into parent.
func newJobCounters(parent *transfer.Counters, server bool) *jobCounters {
	return &jobCounters{c: transfer.NewCounters(parent), server: server}
}

// serverJobCounters shows a job the counters of a server it shares with
// others (a push server serves every send job at once).
func serverJobCounters(c *transfer.Counters) *jobCounters {
	return &jobCounters{c: c, server: true}
}

// progress takes a download's latest progress (its sources).
func (jc *jobCounters) progress(p transfer.Progress) {
	jc.setSources(p.Sources)
	jc.mu.Lock()
	jc.hist.add(p)
	jc.mu.Unlock()
}

// setSources records each source's share; at the end of a download, its
// final one (not the last sample's).
func (jc *jobCounters) setSources(src []transfer.SourceStats) {
	jc.mu.Lock()
	jc.sources = src
	jc.mu.Unlock()
}

// rows renders the counters for jobs -v (Job.SetCounters).
func (jc *jobCounters) rows() []Counter {
	st := jc.c.Snapshot()
	if jc.server {
		return []Counter{
			{"sent", strconv.FormatInt(st.DatagramsSent, 10)},
			{"recv", strconv.FormatInt(st.DatagramsReceived, 10)},
			{"retrans", strconv.FormatInt(st.Retransmits, 10)},
			{"losses", strconv.FormatInt(st.Losses, 10)},
			{"pto", strconv.FormatInt(st.Timeouts, 10)},
			{"impair_drops", strconv.FormatInt(st.ImpairDrops, 10)},
			{"rtt", st.RTT.Round(10 * time.Microsecond).String()},
			{"cwnd", humanBytes(st.Cwnd)},
			{"pacing", humanRate(float64(st.PacingRate))},
		}
	}
	out := []Counter{
		{"sent", strconv.FormatInt(st.DatagramsSent, 10)},
		{"recv", strconv.FormatInt(st.DatagramsReceived, 10)},
		{"retrans", strconv.FormatInt(st.Retransmits, 10)},
		{"dups", strconv.FormatInt(st.Duplicates, 10)},
		{"crc_drops", strconv.FormatInt(st.CRCDrops, 10)},
		{"impair_drops", strconv.FormatInt(st.ImpairDrops, 10)},
		{"rtt", st.RTT.Round(10 * time.Microsecond).String()},
		{"groups_ok", strconv.FormatInt(st.GroupsVerified, 10)},
		{"groups_bad", strconv.FormatInt(st.GroupsFailed, 10)},
		{"liars_dropped", strconv.FormatInt(st.LiarsDropped, 10)},
	}
	jc.mu.Lock()
	sources := jc.sources
	for _, l := range jc.hist.lines(76) {
		out = append(out, Counter{liveCounter, l})
	}
	jc.mu.Unlock()
	var total int64
	for _, src := range sources {
		total += src.Bytes
	}
	for _, src := range sources {
		out = append(out, Counter{sourceCounter, sourceLine(src, total)})
	}
	return out
}

// sourceCounter names the counters jobs -v prints one per line: a source of
// a download and its share of the bytes.
const sourceCounter = "source"

// sourceLine describes one source: address, state, bytes it delivered and
// their share of what all sources delivered, RTT, and why it failed.
func sourceLine(src transfer.SourceStats, total int64) string {
	v := fmt.Sprintf("%s %s %s", src.Addr, src.State, humanBytes(src.Bytes))
	if src.Peer {
		v = fmt.Sprintf("%s peer %s %s", src.Addr, src.State, humanBytes(src.Bytes))
	}
	if total > 0 {
		v += fmt.Sprintf(" (%.0f%%)", 100*float64(src.Bytes)/float64(total))
	}
	if src.RTT > 0 {
		v += " rtt " + src.RTT.Round(10*time.Microsecond).String()
	}
	if src.Duplicates > 0 {
		v += fmt.Sprintf(" dups %d", src.Duplicates)
	}
	if src.Err != nil {
		v += ": " + src.Err.Error()
	}
	return v
}

func cmdStats(_ context.Context, s *Shell, c *call) error {
	st := s.counters.Snapshot()
	if c.json {
		return s.outJSON(statsJSON(st))
	}
	rows := [][]string{{"COUNTER", "VALUE"}}
	add := func(k string, v int64) { rows = append(rows, []string{k, strconv.FormatInt(v, 10)}) }
	add("datagrams sent", st.DatagramsSent)
	add("datagrams received", st.DatagramsReceived)
	rows = append(rows, []string{"bytes sent", humanBytes(st.BytesSent)}, []string{"bytes received", humanBytes(st.BytesReceived)})
	add("chunks sent", st.ChunksSent)
	add("chunks received", st.ChunksReceived)
	add("retransmits", st.Retransmits)
	add("duplicates", st.Duplicates)
	// Losses are counted by whoever sends the data: a process that only
	// downloads sees its peers' losses in its duplicates and retransmits,
	// never here, even while its own impairment drops data.
	add("losses detected (our sends)", st.Losses)
	add("timeouts (PTO)", st.Timeouts)
	add("timer wake-ups (client)", st.Wakeups)
	add("CRC drops", st.CRCDrops)
	add("auth drops", st.AuthDrops)
	add("malformed", st.Malformed)
	add("hostile", st.Hostile)
	add("impairment drops (set loss…, both ways)", st.ImpairDrops)
	add("cookie retries", st.Retries)
	add("busy replies", st.BusyReplies)
	add("not yet replies", st.NotYetReplies)
	add("leaving replies", st.LeavingReplies)
	add("groups verified", st.GroupsVerified)
	add("groups failed", st.GroupsFailed)
	add("groups read back", st.GroupsReadBack)
	add("groups checked inline", st.GroupsInline)
	add("sources dropped (bad bytes)", st.LiarsDropped)
	add("transfers started", st.TransfersStarted)
	add("transfers active", st.TransfersActive)
	rows = append(rows,
		[]string{"smoothed RTT", st.RTT.Round(time.Microsecond).String()},
		[]string{"congestion window", humanBytes(st.Cwnd)},
		[]string{"pacing rate", humanRate(float64(st.PacingRate))},
	)
	s.out("%s", table(s.pal, rows, 1))
	return nil
}
