package shell

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
)

func init() { areaCommands = append(areaCommands, getCommands) }

func getCommands() []*cmdSpec {
	return []*cmdSpec{
		{
			name: "get", group: "Transfers", usage: "get NAME... [-o DIR] [-f]", minArgs: 1, maxArgs: -1,
			summary: "download files as background jobs (globs allowed); returns at once with the job ids",
			detail: "Each file is a job (see jobs, wait, cancel); `set parallel N` run at once, the rest queue.\n" +
				"A name offered with different contents: get takes the content offered by the most hosts (distinct IPs;\n" +
				"ties: the one registered first) and says so on stderr; NAME@HASH (a hash prefix from list)\n" +
				"or NAME@HOST:PORT chooses. Files land in the download folder (--dir, or -o DIR) and never outside it;\n" +
				"an existing file is kept unless -f. A cancelled download resumes where it stopped.",
			example: "get week3/slides.pdf 'notes one.txt' -o ~/Downloads",
			run:     cmdGet,
			complete: func(s *Shell, c *compCtx) []string {
				if len(c.prev) > 0 && c.prev[len(c.prev)-1] == "-o" {
					return localPaths(c.cur)
				}
				return s.remoteNames(c.cur)
			},
		},
		{
			name: "stats", group: "Transfers", usage: "stats", maxArgs: 0,
			summary: "protocol counters for this process (as a server and as a client)",
			run:     cmdStats,
		},
		{
			name: "trace", group: "Transfers", usage: "trace on|off", minArgs: 1, maxArgs: 1,
			summary: "print protocol messages as they pass (TCP lines; UDP datagrams, DATA sampled)",
			run: func(_ context.Context, s *Shell, c *call) error {
				_, err := s.set.Set("trace", c.args[0])
				return err
			},
			complete: func(*Shell, *compCtx) []string { return []string{"on", "off"} },
		},
	}
}

// isGlob reports whether a name has path.Match metacharacters.
func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// escapeGlob returns the pattern that matches exactly the name s.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// resolve turns one get argument into catalog entries: one per distinct
// name, each with every server offering that content.
func (s *Shell) resolve(ctx context.Context, arg string) ([]store.Entry, error) {
	cl, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	query := func(glob string) ([]store.Entry, error) {
		entries, _, err := cl.List(ctx, glob, 0)
		return entries, err
	}
	name, choose := arg, ""
	// A glob fetches what it matches, and a file whose name has glob
	// characters ("[draft] notes?.txt") is fetched by its name too: the
	// exact name is looked up as well (a name registered as "*.txt"
	// cannot narrow `get *.txt` to itself).
	var entries []store.Entry
	if isGlob(arg) {
		if es, err := query(arg); err == nil {
			entries = es
		} else if !strings.Contains(err.Error(), "bad glob") {
			return nil, err
		}
	}
	exact, err := query(escapeGlob(arg))
	if err != nil {
		return nil, err
	}
	for _, e := range exact {
		if !slices.ContainsFunc(entries, func(o store.Entry) bool { return o.Name == e.Name && o.Hash == e.Hash }) {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		if i := strings.LastIndexByte(arg, '@'); i > 0 {
			name, choose = arg[:i], arg[i+1:]
			if entries, err = query(name); err != nil {
				return nil, err
			}
			entries = filterChoice(entries, choose)
		}
	}
	if len(entries) == 0 {
		if choose != "" {
			return nil, fmt.Errorf("no file %q offered as %q", name, choose)
		}
		if isGlob(arg) {
			return nil, fmt.Errorf("no file matches %q", arg)
		}
		return nil, fmt.Errorf("no file named %q in the index (try search)", arg)
	}
	byName := map[string][]store.Entry{}
	for _, e := range entries {
		byName[e.Name] = append(byName[e.Name], e)
	}
	var out []store.Entry
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var since map[string]time.Time // server address -> registered at, fetched once if needed
	for _, n := range names {
		es := byName[n]
		if len(es) > 1 {
			if since == nil {
				since = map[string]time.Time{}
				if peers, err := cl.Peers(ctx); err == nil {
					for _, p := range peers {
						since[p.Addr] = p.Registered
					}
				}
			}
			pick, rest := pickContent(es, since)
			var others []string
			for _, e := range rest {
				others = append(others, fmt.Sprintf("%s@%s (%d %s)", n, shortHash(e.Hash), hosts(e.Servers), plural(hosts(e.Servers), "host", "hosts")))
			}
			s.warn("%q has %d different contents: taking %s@%s, offered by the most hosts (%d; ties: the one registered first); not %s\n",
				n, len(es), n, shortHash(pick.Hash), hosts(pick.Servers), strings.Join(others, ", "))
			out = append(out, pick)
			continue
		}
		out = append(out, es[0])
	}
	return out, nil
}

// pickContent chooses among the contents offered under one name, by a rule
// a newcomer cannot game cheaply: the content offered by the most hosts
// (distinct IPs: a peer registering from many ports of one machine counts
// once), then the one whose first server registered earliest (since:
// PEERS' since=), then the lowest hash. It returns the pick and the others.
func pickContent(es []store.Entry, since map[string]time.Time) (store.Entry, []store.Entry) {
	first := func(e store.Entry) time.Time {
		var t time.Time
		for _, a := range e.Servers {
			if r, ok := since[a]; ok && (t.IsZero() || r.Before(t)) {
				t = r
			}
		}
		if t.IsZero() {
			return time.Unix(1<<40, 0) // unknown: last
		}
		return t
	}
	es = slices.Clone(es)
	slices.SortStableFunc(es, func(a, b store.Entry) int {
		if ha, hb := hosts(a.Servers), hosts(b.Servers); ha != hb {
			return hb - ha
		}
		if c := first(a).Compare(first(b)); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
	return es[0], es[1:]
}

// hosts counts the distinct IPs among server addresses.
func hosts(addrs []string) int {
	seen := map[string]bool{}
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			h = a
		}
		seen[h] = true
	}
	return len(seen)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// filterChoice keeps the entries a NAME@CHOICE picks: a server address or a
// hash prefix. A chosen server becomes the only source.
func filterChoice(entries []store.Entry, choose string) []store.Entry {
	var out []store.Entry
	if _, _, err := net.SplitHostPort(choose); err == nil {
		for _, e := range entries {
			for _, srv := range e.Servers {
				if srv == choose {
					e.Servers = []string{srv}
					out = append(out, e)
					break
				}
			}
		}
		return out
	}
	p := strings.ToLower(strings.TrimPrefix(choose, store.HashPrefix))
	if len(p) < 4 {
		return nil
	}
	for _, e := range entries {
		if strings.HasPrefix(strings.TrimPrefix(e.Hash, store.HashPrefix), p) {
			out = append(out, e)
		}
	}
	return out
}

func cmdGet(ctx context.Context, s *Shell, c *call) error {
	names, f, err := c.flags(map[string]bool{"-o": true, "-f": false})
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("usage: get NAME... [-o DIR] [-f]")
	}
	dir := s.opts.Dir
	if o, ok := f["-o"]; ok {
		dir = o
	}
	_, overwrite := f["-f"]
	// Resolve every name first: a typo fails the command before any job starts.
	var wanted []store.Entry
	seen := map[string]bool{}
	for _, n := range names {
		es, err := s.resolve(ctx, n)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !seen[e.Name] {
				seen[e.Name] = true
				wanted = append(wanted, e)
			}
		}
	}
	var ids []string
	for _, e := range wanted {
		j := s.startDownload(e, dir, overwrite, c.cmd.MayFail)
		j.SetTotal(e.Size)
		ids = append(ids, strconv.Itoa(j.ID))
		s.out("job %d: %s (%s) from %s\n", j.ID, e.Name, humanBytes(e.Size), serverList(e.Servers))
	}
	_ = ids
	return nil
}

// startDownload queues a download job.
func (s *Shell) startDownload(e store.Entry, dir string, overwrite, mayFail bool) *Job {
	return s.jobs.Start("get", e.Name, mayFail, func(ctx context.Context, j *Job) error {
		j.SetTotal(e.Size)
		j.SetSources(e.Servers)
		counters := transfer.NewCounters(s.counters)
		var last transfer.Progress
		var lastMu = make(chan struct{}, 1)
		lastMu <- struct{}{}
		j.SetCounters(func() []Counter {
			<-lastMu
			p := last
			lastMu <- struct{}{}
			return progressCounters(counters.Snapshot(), p)
		})
		chunk := 0
		if v := s.set.Get("chunk"); v != "auto" {
			chunk, _ = strconv.Atoi(v)
		}
		res, err := download.Get(ctx, download.Request{
			Entry:         e,
			Dir:           dir,
			Overwrite:     overwrite,
			ChunkSize:     chunk,
			Key:           s.opts.Key,
			SourceTimeout: s.set.Duration("timeout"),
			Impair:        s.impair,
			Counters:      counters,
			Trace:         s.traceUDP("get"),
			Started: func(resumed int64, _ int) {
				j.SetDone(resumed)
				if resumed > 0 {
					s.notify(fmt.Sprintf("job %d: resuming %s: %s already here", j.ID, e.Name, humanBytes(resumed)))
				}
			},
			Progress: func(p transfer.Progress) {
				j.SetDone(p.Have)
				<-lastMu
				last = p
				lastMu <- struct{}{}
			},
		})
		if err == nil {
			j.SetDone(e.Size)
		}
		// jobs -v shows each source's final share, not the last sample's.
		<-lastMu
		last.Sources = res.Fetch.Sources
		lastMu <- struct{}{}
		return downloadError(err)
	})
}

// downloadError makes a download failure read well in a job line.
func downloadError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, partfile.ErrExists):
		return fmt.Errorf("%w (use get -f to replace it)", err)
	case errors.Is(err, partfile.ErrNoSpace):
		return fmt.Errorf("%w; the partial file is kept: free space and get it again to resume", err)
	case errors.Is(err, transfer.ErrSourcesFailed):
		return fmt.Errorf("%w; the partial file is kept for a resume", err)
	}
	return err
}

// progressCounters renders a job's protocol counters for jobs -v.
func progressCounters(st transfer.Stats, p transfer.Progress) []Counter {
	out := []Counter{
		{"sent", strconv.FormatInt(st.DatagramsSent, 10)},
		{"recv", strconv.FormatInt(st.DatagramsReceived, 10)},
		{"retrans", strconv.FormatInt(st.Retransmits, 10)},
		{"dups", strconv.FormatInt(st.Duplicates, 10)},
		{"crc_drops", strconv.FormatInt(st.CRCDrops, 10)},
		{"impair_drops", strconv.FormatInt(st.ImpairDrops, 10)},
		{"rtt", st.RTT.Round(10 * time.Microsecond).String()},
	}
	var total int64
	for _, src := range p.Sources {
		total += src.Bytes
	}
	for _, src := range p.Sources {
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

func cmdStats(_ context.Context, s *Shell, _ *call) error {
	st := s.counters.Snapshot()
	rows := [][]string{{"COUNTER", "VALUE"}}
	add := func(k string, v int64) { rows = append(rows, []string{k, strconv.FormatInt(v, 10)}) }
	add("datagrams sent", st.DatagramsSent)
	add("datagrams received", st.DatagramsReceived)
	rows = append(rows, []string{"bytes sent", humanBytes(st.BytesSent)}, []string{"bytes received", humanBytes(st.BytesReceived)})
	add("chunks sent", st.ChunksSent)
	add("chunks received", st.ChunksReceived)
	add("retransmits", st.Retransmits)
	add("duplicates", st.Duplicates)
	add("losses detected", st.Losses)
	add("timeouts (PTO)", st.Timeouts)
	add("CRC drops", st.CRCDrops)
	add("auth drops", st.AuthDrops)
	add("malformed", st.Malformed)
	add("hostile", st.Hostile)
	add("impairment drops", st.ImpairDrops)
	add("cookie retries", st.Retries)
	add("busy replies", st.BusyReplies)
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

// traceUDP returns a trace hook for a role's datagrams (nil-safe: it checks
// the trace setting on every event).
func (s *Shell) traceUDP(role string) func(transfer.Event) {
	return func(ev transfer.Event) {
		if !s.set.On("trace") {
			return
		}
		s.notify(s.udpTraceLine(role, ev))
	}
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

// applyImpair pushes the demo settings into the process's Impair.
func (s *Shell) applyImpair() error {
	return s.impair.Set(transfer.ImpairSettings{
		Loss:    s.set.Float("loss"),
		Dup:     s.set.Float("dup"),
		Reorder: s.set.Float("reorder"),
		Delay:   s.set.Duration("delay"),
		Rate:    s.set.Bytes("rate"),
	})
}
