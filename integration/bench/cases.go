//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const gib = 1 << 30

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.out, "   "+format+"\n", args...)
}

// logTransfer prints one line per download as it ends.
func (b *bench) logTransfer(t Transfer) {
	head := fmt.Sprintf("r%d %-9s %s", t.Round, t.Impl, t.Label)
	if !t.OK && !t.Partial {
		b.logf("%s FAILED after %.2f s: %s", head, t.Seconds, t.Err)
		return
	}
	part := ""
	if t.Partial {
		part = " (partial: time limit)"
	}
	b.logf("%s %s in %.2f s = %s MB/s%s; cpu client %.2f s server %.2f s; rss client %d MiB server %d MiB",
		head, formatSize(t.Bytes), t.Seconds, num(t.MBps), part, t.ClientCPU, t.ServerCPU,
		t.ClientRSSKiB>>10, t.ServerRSSKiB>>10)
}

// rotate returns impls starting at the r-th, so each goes first in turn.
func rotate(impls []string, r int) []string {
	if len(impls) == 0 {
		return nil
	}
	k := r % len(impls)
	return append(append([]string(nil), impls[k:]...), impls[:k]...)
}

// pick returns f of the transfer of impl and label in each round, NaN where
// there is none.
func pick(ts []Transfer, impl, label string, rounds int, f func(Transfer) float64) []float64 {
	out := make([]float64, rounds)
	for i := range out {
		out[i] = math.NaN()
	}
	for _, t := range ts {
		if t.Impl == impl && t.Label == label && t.Round >= 1 && t.Round <= rounds {
			out[t.Round-1] = f(t)
		}
	}
	return out
}

func throughput(t Transfer) float64 { return t.value() }

// startServers starts the fxsh server (unless skipped) and the TCP server
// for set in namespace ns; stop them with stopServers.
func (b *bench) startServers(ctx context.Context, ns, host string, set *fileSet) (fx, tcp *server, err error) {
	if tcp, err = b.startTCPServer(ctx, ns, host, set); err != nil {
		return nil, nil, err
	}
	if !b.cfg.SkipFxsh {
		if fx, err = b.startFxshServer(ctx, ns, host, set, ""); err != nil {
			b.logf("fxsh server failed, fxsh rows stay untested: %v", err)
			return nil, tcp, nil
		}
	}
	return fx, tcp, nil
}

func stopServers(ss ...*server) {
	for _, s := range ss {
		if s != nil {
			s.p.stop()
		}
	}
}

// serverFor picks the server an implementation talks to.
func serverFor(impl string, fx, tcp *server) *server {
	if isFxsh(impl) {
		return fx
	}
	return tcp
}

// perGiB is CPU-seconds per GiB moved of the client, the server, or both.
func perGiB(client, server bool) func(Transfer) float64 {
	return func(t Transfer) float64 {
		if (!t.OK && !t.Partial) || t.Bytes == 0 {
			return math.NaN()
		}
		c := 0.0
		if client {
			c += t.ClientCPU
		}
		if server {
			c += t.ServerCPU
		}
		return c / (float64(t.Bytes) / gib)
	}
}

// cpuRows reports the CPU-seconds per GiB of fx's transfers labelled label
// against ref's: the client, the server, and both (with target, if any).
func cpuRows(what string, ts []Transfer, label, fx, ref string, rounds int, both Target) []Row {
	return []Row{
		{Case: what + ": client CPU/GiB", Unit: "CPU-s/GiB", Fxsh: pick(ts, fx, label, rounds, perGiB(true, false)),
			Ref: pick(ts, ref, label, rounds, perGiB(true, false)), RefIs: ref},
		{Case: what + ": server CPU/GiB", Unit: "CPU-s/GiB", Fxsh: pick(ts, fx, label, rounds, perGiB(false, true)),
			Ref: pick(ts, ref, label, rounds, perGiB(false, true)), RefIs: ref},
		{Case: what + ": both sides CPU/GiB", Unit: "CPU-s/GiB", Fxsh: pick(ts, fx, label, rounds, perGiB(true, true)),
			Ref: pick(ts, ref, label, rounds, perGiB(true, true)), RefIs: ref, Target: both},
	}
}

func (b *bench) impls(fx *server, ccs ...string) []string {
	var out []string
	if fx != nil {
		out = append(out, implFxsh)
	}
	for _, cc := range ccs {
		if b.facts.hasCC(cc) {
			out = append(out, implTCP+cc)
		}
	}
	return out
}

// fxshRows says why fxsh rows are empty.
func (b *bench) fxshNote(fx *server) string {
	switch {
	case b.cfg.SkipFxsh:
		return "fxsh skipped (-skip-fxsh)"
	case fx == nil:
		return "fxsh server did not start: untested against fxsh"
	}
	return ""
}

// loopbackTransfers runs the loopback rounds once per run; the cost case
// reuses them.
func (b *bench) loopbackTransfers(ctx context.Context) ([]Transfer, string, error) {
	tcpImpl := implTCP + b.cfg.LoopbackCC
	if b.loopback != nil {
		return b.loopback, tcpImpl, nil
	}
	if !b.facts.hasCC(b.cfg.LoopbackCC) {
		return nil, tcpImpl, fmt.Errorf("congestion control %q is missing on this kernel", b.cfg.LoopbackCC)
	}
	set, err := ensureFiles(ctx, b.cfg.DataDir, b.cfg.Size, 1)
	if err != nil {
		return nil, tcpImpl, err
	}
	fx, tcp, err := b.startServers(ctx, "", "127.0.0.1", set)
	if err != nil {
		return nil, tcpImpl, err
	}
	defer stopServers(fx, tcp)
	impls := b.impls(fx, b.cfg.LoopbackCC)
	var fxKey *server
	if fx != nil {
		// fxsh in its other settings: 1200-byte chunks (the per-packet
		// cost apart from 64 KiB datagrams) and sealed datagrams.
		impls = append(impls, implFxsh1200)
		if fxKey, err = b.startFxshServer(ctx, "", "127.0.0.1", set, b.cfg.Key); err != nil {
			b.logf("fxsh server with --key failed, its rows stay untested: %v", err)
		} else {
			defer stopServers(fxKey)
			impls = append(impls, implFxshKey)
		}
	}
	var ts []Transfer
	for r := range b.cfg.Rounds {
		for _, impl := range rotate(impls, r) {
			if ctx.Err() != nil {
				return nil, tcpImpl, ctx.Err()
			}
			srv := serverFor(impl, fx, tcp)
			if impl == implFxshKey {
				srv = fxKey
			}
			t := b.measure(ctx, impl, srv, set.Names[:1], b.cfg.Timeout)
			t.Case, t.Round = "loopback", r+1
			b.logTransfer(t)
			ts = append(ts, t)
		}
	}
	b.loopback = ts
	return ts, tcpImpl, nil
}

func (b *bench) caseLoopback(ctx context.Context) (CaseResult, error) {
	cr := CaseResult{Info: []string{fmt.Sprintf("one %s file over 127.0.0.1; fxsh get (verified by fxsh: BLAKE3) against the TCP copy (%s, fsync %v)",
		formatSize(b.cfg.Size), b.cfg.LoopbackCC, b.cfg.TCPFsync)}}
	ts, tcpImpl, err := b.loopbackTransfers(ctx)
	cr.Transfers = ts
	if err != nil {
		return cr, err
	}
	n := b.cfg.Rounds
	lb := "loopback " + formatSize(b.cfg.Size)
	fx := pick(ts, implFxsh, "", n, throughput)
	cr.Rows = append(cr.Rows, Row{Case: lb, Unit: "MB/s",
		Fxsh: fx, Ref: pick(ts, tcpImpl, "", n, throughput), RefIs: tcpImpl,
		Target: Target{Of: "ratio", Op: ">=", Value: 0.8}, Note: b.fxshNoteFor(ts)},
		Row{Case: lb + ", set chunk 1200", Unit: "MB/s",
			Fxsh: pick(ts, implFxsh1200, "", n, throughput), Ref: pick(ts, tcpImpl, "", n, throughput), RefIs: tcpImpl,
			Target: Target{Of: "ratio", Op: ">=", Value: 0.5}},
		Row{Case: lb + ", --key vs without", Unit: "MB/s",
			Fxsh: pick(ts, implFxshKey, "", n, throughput), Ref: fx, RefIs: "fxsh",
			Target: Target{Of: "ratio", Op: ">=", Value: 0.85}})
	cr.Rows = append(cr.Rows, cpuRows(lb, ts, "", implFxsh, tcpImpl, n, Target{Of: "fxsh", Op: "<=", Value: 1.5})...)
	cr.Rows = append(cr.Rows, cpuRows(lb+", chunk 1200", ts, "", implFxsh1200, tcpImpl, n, Target{})...)
	cr.Rows = append(cr.Rows, cpuRows(lb+", --key", ts, "", implFxshKey, tcpImpl, n, Target{Of: "fxsh", Op: "<=", Value: 1.5})...)
	return cr, nil
}

// fxshNoteFor explains missing fxsh figures.
func (b *bench) fxshNoteFor(ts []Transfer) string {
	if b.cfg.SkipFxsh {
		return "fxsh skipped (-skip-fxsh)"
	}
	for _, t := range ts {
		if t.Impl == implFxsh {
			if t.Err != "" {
				return "fxsh failed: " + t.Err
			}
			return ""
		}
	}
	return "fxsh did not run (its server did not start): untested against fxsh"
}

// manyTransfers runs the many-clients rounds once per run; the cost case
// reuses them.
func (b *bench) manyTransfers(ctx context.Context) ([]Transfer, error) {
	if b.many != nil {
		return b.many, nil
	}
	set, err := ensureFiles(ctx, b.cfg.DataDir, b.cfg.ManySize, 1)
	if err != nil {
		return nil, err
	}
	fx, tcp, err := b.startServers(ctx, "", "127.0.0.1", set)
	if err != nil {
		return nil, err
	}
	defer stopServers(fx, tcp)
	impls := b.impls(fx, b.cfg.LoopbackCC)
	var all []Transfer
	b.manyCPU = make([][]float64, b.cfg.Rounds)
	for r := range b.cfg.Rounds {
		b.manyCPU[r] = []float64{math.NaN(), math.NaN()}
		for _, impl := range rotate(impls, r) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			ts, scpu := b.measureMany(ctx, impl, serverFor(impl, fx, tcp), set.Names[:1], b.cfg.Clients, b.cfg.Timeout)
			if impl == implFxsh {
				b.manyCPU[r][0] = scpu
			} else {
				b.manyCPU[r][1] = scpu
			}
			ok, lo, hi := 0, math.Inf(1), 0.0
			for i := range ts {
				ts[i].Case, ts[i].Round = "concurrency", r+1
				ts[i].Label = "many " + ts[i].Label
				if ts[i].OK {
					ok++
					lo, hi = min(lo, ts[i].MBps), max(hi, ts[i].MBps)
				} else {
					b.logTransfer(ts[i])
				}
			}
			agg := manyAggregate(ts)
			b.logf("r%d %-9s %d×%s: %d/%d verified, aggregate %s MB/s, per client %s..%s MB/s, server cpu %.2f s, server rss %d MiB",
				r+1, impl, len(ts), formatSize(set.Size), ok, len(ts), num(agg), num(lo), num(hi), scpu, ts[0].ServerRSSKiB>>10)
			all = append(all, ts...)
		}
	}
	b.many = all
	return all, nil
}

// manyAggregate is the bytes of all clients over the time from the first
// start to the last exit; NaN unless every client verified its file.
func manyAggregate(ts []Transfer) float64 {
	if len(ts) == 0 {
		return math.NaN()
	}
	var bytes int64
	first, last := math.Inf(1), math.Inf(-1)
	for _, t := range ts {
		if !t.OK {
			return math.NaN()
		}
		bytes += t.Bytes
		first, last = min(first, t.Start), max(last, t.Start+t.Seconds)
	}
	return mbps(bytes, last-first)
}

// manyPerRound groups the many-clients transfers of impl by round.
func manyPerRound(ts []Transfer, impl string, rounds int) [][]Transfer {
	out := make([][]Transfer, rounds)
	for _, t := range ts {
		if t.Impl == impl && t.Round >= 1 && t.Round <= rounds {
			out[t.Round-1] = append(out[t.Round-1], t)
		}
	}
	return out
}

func (b *bench) caseConcurrency(ctx context.Context) (CaseResult, error) {
	cr := CaseResult{Info: []string{fmt.Sprintf("loopback; one server; (a) 1 then 3 files of %s in one client; (b) %d clients × %s at once (the same file)",
		formatSize(b.cfg.ConcSize), b.cfg.Clients, formatSize(b.cfg.ManySize))}}
	tcpImpl := implTCP + b.cfg.LoopbackCC
	if !b.facts.hasCC(b.cfg.LoopbackCC) {
		return cr, fmt.Errorf("congestion control %q is missing on this kernel", b.cfg.LoopbackCC)
	}
	n := b.cfg.Rounds
	set, err := ensureFiles(ctx, b.cfg.DataDir, b.cfg.ConcSize, 3)
	if err != nil {
		return cr, err
	}
	fx, tcp, err := b.startServers(ctx, "", "127.0.0.1", set)
	if err != nil {
		return cr, err
	}
	impls := b.impls(fx, b.cfg.LoopbackCC)
	for r := range n {
		for _, impl := range rotate(impls, r) {
			for _, k := range []int{1, 3} {
				if ctx.Err() != nil {
					stopServers(fx, tcp)
					return cr, ctx.Err()
				}
				t := b.measure(ctx, impl, serverFor(impl, fx, tcp), set.Names[:k], b.cfg.Timeout)
				t.Case, t.Round, t.Label = "concurrency", r+1, fmt.Sprintf("%d×%s", k, formatSize(set.Size))
				b.logTransfer(t)
				cr.Transfers = append(cr.Transfers, t)
			}
		}
	}
	stopServers(fx, tcp)
	one, three := "1×"+formatSize(set.Size), "3×"+formatSize(set.Size)
	ts := cr.Transfers
	fxOne, fxThree := pick(ts, implFxsh, one, n, throughput), pick(ts, implFxsh, three, n, throughput)
	tcpOne, tcpThree := pick(ts, tcpImpl, one, n, throughput), pick(ts, tcpImpl, three, n, throughput)
	note := b.fxshNoteFor(ts)
	cr.Rows = append(cr.Rows,
		Row{Case: three + " aggregate / 1 transfer", Unit: "MB/s", Fxsh: fxThree, Ref: fxOne, RefIs: "fxsh " + one,
			Target: Target{Of: "ratio", Op: ">=", Value: 0.8}, Note: note},
		Row{Case: three + " aggregate vs TCP", Unit: "MB/s", Fxsh: fxThree, Ref: tcpThree, RefIs: tcpImpl},
		Row{Case: "TCP " + three + " aggregate / 1 transfer", Unit: "MB/s", Fxsh: tcpThree, Ref: tcpOne, RefIs: tcpImpl + " " + one,
			Note: "reference only: the fxsh column holds TCP here"},
	)

	many, err := b.manyTransfers(ctx)
	cr.Transfers = append(cr.Transfers, many...)
	if err != nil {
		return cr, err
	}
	label := fmt.Sprintf("%d×%s", b.cfg.Clients, formatSize(b.cfg.ManySize))
	fxAgg, tcpAgg := manyAggregates(many, implFxsh, n), manyAggregates(many, tcpImpl, n)
	cr.Rows = append(cr.Rows,
		Row{Case: label + " aggregate / 1 transfer", Unit: "MB/s", Fxsh: fxAgg, Ref: fxOne, RefIs: "fxsh " + one,
			Target: Target{Of: "ratio", Op: ">=", Value: 0.8}, Note: b.fxshNoteFor(many)},
		Row{Case: label + " aggregate vs TCP", Unit: "MB/s", Fxsh: fxAgg, Ref: tcpAgg, RefIs: tcpImpl},
		Row{Case: label + " slowest/fastest client", Unit: "slow/fast", Fxsh: manyFairness(many, implFxsh, n), Ref: manyFairness(many, tcpImpl, n),
			RefIs: tcpImpl, Target: Target{Of: "fxsh", Op: ">=", Value: 0.5}},
	)
	return cr, nil
}

// manyAggregates is each of n rounds' aggregate throughput of impl's many
// clients at once.
func manyAggregates(many []Transfer, impl string, n int) []float64 {
	out := make([]float64, n)
	for i, ts := range manyPerRound(many, impl, n) {
		out[i] = manyAggregate(ts)
	}
	return out
}

// manyFairness is each of n rounds' slowest/fastest throughput among
// impl's many clients (NaN for a round where one failed).
func manyFairness(many []Transfer, impl string, n int) []float64 {
	out := make([]float64, n)
	for i, ts := range manyPerRound(many, impl, n) {
		vs := make([]float64, len(ts))
		for j, t := range ts {
			vs[j] = throughput(t)
			if !t.OK {
				vs = nil
				break
			}
		}
		lo, hi := minMax(vs)
		out[i] = ratio(lo, hi)
	}
	return out
}

func (b *bench) caseCost(ctx context.Context) (CaseResult, error) {
	cr := CaseResult{Info: []string{"CPU: user+sys of the client (rusage at exit) + the server over the transfer (/proc/PID/stat); RSS: VmHWM of the client (sampled every 50 ms) and of the server"}}
	ts, tcpImpl, err := b.loopbackTransfers(ctx)
	if err != nil {
		return cr, err
	}
	n := b.cfg.Rounds
	perGiB := perGiB(true, true)
	clientRSS := func(t Transfer) float64 { return float64(t.ClientRSSKiB) / 1024 }
	serverRSS := func(t Transfer) float64 { return float64(t.ServerRSSKiB) / 1024 }
	lb := formatSize(b.cfg.Size)
	cr.Rows = append(cr.Rows,
		Row{Case: "CPU per GiB, both sides, loopback " + lb, Unit: "CPU-s/GiB", Fxsh: pick(ts, implFxsh, "", n, perGiB),
			Ref: pick(ts, tcpImpl, "", n, perGiB), RefIs: tcpImpl, Target: Target{Of: "fxsh", Op: "<=", Value: 1.5}, Note: b.fxshNoteFor(ts)},
		Row{Case: "client peak RSS, " + lb + " download", Unit: "MiB", Fxsh: pick(ts, implFxsh, "", n, clientRSS),
			Ref: pick(ts, tcpImpl, "", n, clientRSS), RefIs: tcpImpl, Target: Target{Of: "fxsh", Op: "<=", Value: 64}},
		Row{Case: "server peak RSS, " + lb + " transfer", Unit: "MiB", Fxsh: pick(ts, implFxsh, "", n, serverRSS),
			Ref: pick(ts, tcpImpl, "", n, serverRSS), RefIs: tcpImpl},
	)
	many, err := b.manyTransfers(ctx)
	if err != nil {
		return cr, err
	}
	rssMany := func(impl string) []float64 {
		out := make([]float64, n)
		for i, ts := range manyPerRound(many, impl, n) {
			out[i] = math.NaN()
			if len(ts) > 0 {
				out[i] = float64(ts[0].ServerRSSKiB) / 1024
			}
		}
		return out
	}
	cpuMany := func(impl string, col int) []float64 {
		out := make([]float64, n)
		for i, ts := range manyPerRound(many, impl, n) {
			out[i] = math.NaN()
			var c float64
			var by int64
			for _, t := range ts {
				if !t.OK {
					by = 0
					break
				}
				c += t.ClientCPU
				by += t.Bytes
			}
			if by > 0 && i < len(b.manyCPU) {
				out[i] = (c + b.manyCPU[i][col]) / (float64(by) / gib)
			}
		}
		return out
	}
	label := fmt.Sprintf("%d×%s", b.cfg.Clients, formatSize(b.cfg.ManySize))
	cr.Rows = append(cr.Rows,
		Row{Case: "server peak RSS serving " + label, Unit: "MiB", Fxsh: rssMany(implFxsh), Ref: rssMany(tcpImpl),
			RefIs: tcpImpl, Target: Target{Of: "fxsh", Op: "<=", Value: 64}, Note: b.fxshNoteFor(many)},
		Row{Case: "CPU per GiB, both sides, " + label, Unit: "CPU-s/GiB", Fxsh: cpuMany(implFxsh, 0), Ref: cpuMany(tcpImpl, 1), RefIs: tcpImpl},
	)
	return cr, nil
}

// ensurePath builds the lossy path once per run.
func (b *bench) ensurePath(ctx context.Context) (*lossyPath, error) {
	if b.path != nil {
		return b.path, nil
	}
	p, err := setupPath(ctx, b.cfg.Delay, b.cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("building the lossy path (needs root, ip, /dev/net/tun): %w", err)
	}
	b.path = p
	return p, nil
}

// ceiling measures the forwarder alone: a UDP flood through the path with
// no delay and with the case's delay, and the TCP reference with no delay.
func (b *bench) ceiling(ctx context.Context, p *lossyPath, tcp *server) (info []string, extra map[string]any, err error) {
	extra = map[string]any{}
	p.fwd.setLoss(0)
	defer p.fwd.setDelay(b.cfg.Delay)
	mins := math.Inf(1)
	for _, d := range []time.Duration{0, b.cfg.Delay} {
		p.fwd.setDelay(d)
		sinkAddr := net.JoinHostPort(AddrClient, strconv.Itoa(nsBlastPort))
		sink, err := b.start(ctx, "udp sink", inNS(NSClient, b.self, cmdUDPSink, "-listen", sinkAddr, "-for", "5s"), nil)
		if err != nil {
			return info, extra, err
		}
		if _, err := sink.waitLine(ctx, reTCPListen, 30*time.Second); err != nil {
			sink.stop()
			return info, extra, err
		}
		before := p.fwd.stats()
		blast, err := b.start(ctx, "udp blast", inNS(NSServer, b.self, cmdUDPBlast, "-to", sinkAddr, "-for", "2s"), nil)
		if err != nil {
			sink.stop()
			return info, extra, err
		}
		berr := blast.wait(ctx, 30*time.Second)
		time.Sleep(d + 20*time.Millisecond) // let the delay queue drain before counting
		after := p.fwd.stats()
		serr := sink.wait(ctx, 30*time.Second)
		if err := errors.Join(berr, serr); err != nil {
			return info, extra, err
		}
		var sent, got blastResult
		for _, l := range blast.output() {
			json.Unmarshal([]byte(l), &sent)
		}
		for _, l := range sink.output() {
			if strings.HasPrefix(l, "{") {
				json.Unmarshal([]byte(l), &got)
			}
		}
		st := after[0].sub(before[0])
		secs := sent.Seconds
		mb, kpps := mbps(int64(st.Bytes), secs), float64(st.Packets)/secs/1e3
		mins = min(mins, mb)
		info = append(info, fmt.Sprintf("forwarder ceiling, delay %s: %s MB/s, %s kpps of 1500-B packets (flood sent %s kpps, gso %v; sink got %s kpps; overflow %d, write errors %d)",
			d, num(mb), num(kpps), num(float64(sent.Packets)/secs/1e3), sent.GSO, num(float64(got.Packets)/secs/1e3), st.Overflow, st.WriteErrs))
		extra[fmt.Sprintf("ceiling_delay_%s", d)] = map[string]any{"mbps": nanNull(mb), "kpps": nanNull(kpps), "stats": st, "sent": sent, "received": got}
	}
	b.ceilingMB = mins
	defer func() {
		if err == nil {
			info = append(info, fmt.Sprintf("forwarder ceiling taken as %s MB/s (a download above 0.7× of it is flagged)", num(b.ceilingMB)))
		}
	}()
	if tcp != nil && b.facts.hasCC("cubic") {
		p.fwd.setDelay(0)
		t := b.measure(ctx, implTCP+"cubic", tcp, tcp.set.Names[:1], b.cfg.LossyTimeout)
		t.Case, t.Label = "ceiling", "delay 0"
		b.logTransfer(t)
		info = append(info, fmt.Sprintf("TCP cubic through the forwarder, no delay, no loss: %s MB/s (%s)", num(t.value()), formatSize(t.Bytes)))
		// The flood's sender competes with the forwarder for the two
		// cores; what TCP got through shows the forwarder can do at least
		// that much.
		if v := t.value(); v > b.ceilingMB {
			b.ceilingMB = v
		}
		extra["tcp_no_delay"] = t
	}
	return info, extra, nil
}

func (b *bench) caseCeiling(ctx context.Context) (CaseResult, error) {
	var cr CaseResult
	p, err := b.ensurePath(ctx)
	if err != nil {
		return cr, err
	}
	set, err := ensureFiles(ctx, b.cfg.DataDir, b.cfg.LossySize, 1)
	if err != nil {
		return cr, err
	}
	tcp, err := b.startTCPServer(ctx, NSServer, AddrServer, set)
	if err != nil {
		return cr, err
	}
	defer stopServers(tcp)
	cr.Info, cr.Extra, err = b.ceiling(ctx, p, tcp)
	return cr, err
}

func lossLabel(p float64) string { return "loss " + strconv.FormatFloat(p, 'f', -1, 64) + "%" }

func (b *bench) caseLossy(ctx context.Context) (CaseResult, error) {
	cr := CaseResult{Extra: map[string]any{}}
	p, err := b.ensurePath(ctx)
	if err != nil {
		return cr, err
	}
	set, err := ensureFiles(ctx, b.cfg.DataDir, b.cfg.LossySize, 1)
	if err != nil {
		return cr, err
	}
	fx, tcp, err := b.startServers(ctx, NSServer, AddrServer, set)
	if err != nil {
		return cr, err
	}
	defer stopServers(fx, tcp)
	cr.Info = append(cr.Info, fmt.Sprintf("two namespaces joined by a TUN forwarder (MTU %d), %s each way, random loss on server→client only; packets held per direction at most %v (0: unbounded; tail-drop beyond, like netem's limit); %s; time limit %s per download (TCP counts what it got); TCP cubic only unbounded",
		PathMTU, b.cfg.Delay, b.cfg.Limits, formatSize(set.Size), b.cfg.LossyTimeout))
	for _, cc := range []string{"cubic", "bbr"} {
		if !b.facts.hasCC(cc) {
			cr.Info = append(cr.Info, "TCP congestion control "+cc+" is missing on this kernel: its rows stay empty")
		}
	}
	info, extra, err := b.ceiling(ctx, p, tcp)
	cr.Info = append(cr.Info, info...)
	for k, v := range extra {
		cr.Extra[k] = v
	}
	if err != nil {
		return cr, fmt.Errorf("measuring the forwarder: %w", err)
	}
	n := b.cfg.Rounds
	for r := range n {
		for _, limit := range b.cfg.Limits {
			p.fwd.setLimit(limit)
			// TCP cubic only on the unbounded path: under loss it crawls
			// to the time limit, and the bounded rows compare with bbr.
			impls := b.impls(fx, "bbr")
			if limit == 0 {
				impls = b.impls(fx, "cubic", "bbr")
			}
			for _, loss := range b.cfg.Losses {
				p.fwd.setLoss(loss / 100)
				for _, impl := range rotate(impls, r) {
					if ctx.Err() != nil {
						return cr, ctx.Err()
					}
					before := p.fwd.stats()
					t := b.measure(ctx, impl, serverFor(impl, fx, tcp), set.Names[:1], b.cfg.LossyTimeout)
					st := p.fwd.stats()
					t.Case, t.Round, t.Label = "lossy", r+1, pathLabel(limit, loss)
					t.Path = ptr(st[0].sub(before[0]))
					b.logTransfer(t)
					b.logf("   path: %d forwarded, %d dropped (loss), %d tail-dropped (limit %d)", t.Path.Packets, t.Path.Dropped, t.Path.Overflow, limit)
					if v := t.value(); !math.IsNaN(v) && v > 0.7*b.ceilingMB {
						cr.Info = append(cr.Info, fmt.Sprintf("r%d %s %s: %s MB/s is near the forwarder's ceiling (%s MB/s): the path may be the bottleneck",
							t.Round, t.Impl, t.Label, num(v), num(b.ceilingMB)))
					}
					cr.Transfers = append(cr.Transfers, t)
				}
			}
		}
	}
	p.fwd.setLoss(0)
	p.fwd.setLimit(0)
	cr.Rows = append(cr.Rows, b.lossyRows(cr.Transfers, n)...)
	return cr, nil
}

// lossyRows are the lossy case's rows from its n rounds of transfers ts:
// per limit and loss, fxsh against TCP bbr (and cubic, unbounded), against
// its own 0 % figure, and the CPU per GiB of each.
func (b *bench) lossyRows(ts []Transfer, n int) []Row {
	var rows []Row
	note := b.fxshNoteFor(ts)
	for _, limit := range b.cfg.Limits {
		fx0 := pick(ts, implFxsh, pathLabel(limit, 0), n, throughput)
		for _, loss := range b.cfg.Losses {
			l := pathLabel(limit, loss)
			fxv := pick(ts, implFxsh, l, n, throughput)
			var tBBR, tCubic, tZero Target
			if loss > 0 || limit > 0 {
				tBBR = Target{Of: "ratio", Op: ">=", Value: 1}
			}
			if loss > 0 {
				tCubic = Target{Of: "ratio", Op: ">=", Value: 10}
				tZero = Target{Of: "ratio", Op: ">=", Value: 0.9}
			}
			rows = append(rows, Row{Case: l + ": fxsh vs TCP bbr", Unit: "MB/s", Fxsh: fxv, Ref: pick(ts, implTCP+"bbr", l, n, throughput), RefIs: "tcp-bbr", Target: tBBR, Note: note})
			if limit == 0 {
				rows = append(rows, Row{Case: l + ": fxsh vs TCP cubic", Unit: "MB/s", Fxsh: fxv, Ref: pick(ts, implTCP+"cubic", l, n, throughput), RefIs: "tcp-cubic", Target: tCubic})
			}
			if loss > 0 && slices.Contains(b.cfg.Losses, 0) {
				rows = append(rows, Row{Case: l + ": fxsh vs fxsh at 0%", Unit: "MB/s", Fxsh: fxv, Ref: fx0, RefIs: "fxsh loss 0%", Target: tZero})
			}
			var tCPU Target
			if limit > 0 {
				tCPU = Target{Of: "ratio", Op: "<=", Value: 2}
			}
			rows = append(rows, cpuRows(l, ts, l, implFxsh, implTCP+"bbr", n, tCPU)...)
		}
	}
	return rows
}

// pathLabel names a lossy-path condition: "loss 1%" unbounded, "limit
// 1000, loss 1%" with a bound on the packets held.
func pathLabel(limit int, loss float64) string {
	if limit == 0 {
		return lossLabel(loss)
	}
	return fmt.Sprintf("limit %d, %s", limit, lossLabel(loss))
}

func ptr[T any](v T) *T { return &v }

// benchLine is one result line of go test -bench: name, iterations, then
// value-unit pairs.
var reBenchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// parseBenchLines reads go test -bench output: for each result line, the
// benchmark's name (without the -GOMAXPROCS suffix) and its metrics by unit.
func parseBenchLines(out string) (names []string, metrics []map[string]float64) {
	for l := range strings.Lines(out) {
		m := reBenchLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		if len(f)%2 != 0 {
			continue
		}
		mm := map[string]float64{}
		for i := 0; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				mm = nil
				break
			}
			mm[f[i+1]] = v
		}
		if mm != nil {
			names, metrics = append(names, m[1]), append(metrics, mm)
		}
	}
	return names, metrics
}

// MasterLimit bounds the master case's go test runs.
const MasterLimit = 20 * time.Minute

func (b *bench) goBench(ctx context.Context, bench string, benchtime string) ([]map[string]float64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, MasterLimit)
	defer cancel()
	args := []string{"test", "-run", "^$", "-bench", "^" + bench + "$", "-benchtime", benchtime,
		"-count", strconv.Itoa(b.cfg.Rounds), "-timeout", MasterLimit.String(), b.cfg.MasterPkg}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.root
	out, err := cmd.CombinedOutput()
	line := "go " + strings.Join(args, " ")
	if err != nil {
		return nil, line, fmt.Errorf("%s: %w: %s", line, err, lastLines(string(out), 6))
	}
	names, ms := parseBenchLines(string(out))
	var res []map[string]float64
	for i, n := range names {
		if n == bench {
			res = append(res, ms[i])
		}
	}
	if len(res) == 0 {
		return nil, line, fmt.Errorf("%s: no %s result: %s", line, bench, lastLines(string(out), 6))
	}
	return res, line, nil
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], " | ")
}

func metric(ms []map[string]float64, unit string, rounds int) []float64 {
	out := make([]float64, rounds)
	for i := range out {
		out[i] = math.NaN()
		if i < len(ms) {
			if v, ok := ms[i][unit]; ok {
				out[i] = v
			}
		}
	}
	return out
}

func (b *bench) caseMaster(ctx context.Context) (CaseResult, error) {
	var cr CaseResult
	n := b.cfg.Rounds
	search, line, err := b.goBench(ctx, "BenchmarkSearch", fmt.Sprintf("%dx", b.cfg.SearchOps))
	cr.Info = append(cr.Info, "in-process catalog benchmark: "+line)
	if err != nil {
		return cr, err
	}
	b.logf("search: %v", search)
	cr.Rows = append(cr.Rows,
		Row{Case: "search p99, 1 000 000 entries", Unit: "ms", Fxsh: metric(search, "p99-ms", n), Target: Target{Of: "fxsh", Op: "<", Value: 2}},
		Row{Case: "search p50, 1 000 000 entries", Unit: "ms", Fxsh: metric(search, "p50-ms", n)},
		Row{Case: "search max", Unit: "ms", Fxsh: metric(search, "max-ms", n)},
		Row{Case: "catalog peak RSS (1M entries)", Unit: "MiB", Fxsh: metric(search, "peakRSS-MiB", n)},
	)
	if b.cfg.Quick {
		cr.Rows = append(cr.Rows, Row{Case: "register 10 000 servers × 100 files", Unit: "s", Fxsh: metric(search, "build-s", n),
			Note: "quick: the build time of BenchmarkSearch's catalog"})
		return cr, nil
	}
	reg, line, err := b.goBench(ctx, "BenchmarkRegister", "1x")
	cr.Info = append(cr.Info, line)
	if err != nil {
		return cr, err
	}
	b.logf("register: %v", reg)
	cr.Rows = append(cr.Rows, Row{Case: "register 10 000 servers × 100 files", Unit: "s", Fxsh: metric(reg, "s/10k-servers", n)})
	return cr, nil
}

// shareWarmup is left out at the start of a share round: both flows'
// startup phases, which say nothing about the steady split.
const shareWarmup = time.Second

// caseShare runs one fxsh download and one TCP bbr download at once over the
// bounded path and reports each one's share of what the data direction
// carried while both ran (the forwarder counts UDP and TCP bytes apart).
func (b *bench) caseShare(ctx context.Context) (CaseResult, error) {
	cr := CaseResult{Extra: map[string]any{}}
	p, err := b.ensurePath(ctx)
	if err != nil {
		return cr, err
	}
	if !b.facts.hasCC("bbr") {
		return cr, errors.New("TCP bbr is missing on this kernel")
	}
	set, err := ensureFiles(ctx, b.cfg.DataDir, b.cfg.ShareSize, 1)
	if err != nil {
		return cr, err
	}
	fx, tcp, err := b.startServers(ctx, NSServer, AddrServer, set)
	if err != nil {
		return cr, err
	}
	defer stopServers(fx, tcp)
	if fx == nil {
		return cr, errors.New(b.fxshNote(fx))
	}
	cr.Info = append(cr.Info, fmt.Sprintf("one fxsh get and one TCP bbr copy of %s each, started together over the lossy path (%s each way, no loss); share = each one's bytes on the data direction from %s after the start until the first one ends",
		formatSize(set.Size), b.cfg.Delay, shareWarmup))
	n := b.cfg.Rounds
	shares := map[int][2][]float64{}
	for _, limit := range b.cfg.ShareLimits {
		shares[limit] = [2][]float64{make([]float64, n), make([]float64, n)}
	}
	p.fwd.setLoss(0)
	defer p.fwd.setLimit(0)
	for r := range n {
		for _, limit := range b.cfg.ShareLimits {
			if ctx.Err() != nil {
				return cr, ctx.Err()
			}
			p.fwd.setLimit(limit)
			fxs, tcps, ts := b.shareRound(ctx, p, fx, tcp, set, rotate([]string{implFxsh, implTCP + "bbr"}, r))
			label := fmt.Sprintf("share, limit %d", limit)
			for i := range ts {
				ts[i].Case, ts[i].Round, ts[i].Label = "share", r+1, label
				b.logTransfer(ts[i])
			}
			b.logf("r%d %s: fxsh %.3f, tcp-bbr %.3f of the path while both ran", r+1, label, fxs, tcps)
			shares[limit][0][r], shares[limit][1][r] = fxs, tcps
			cr.Transfers = append(cr.Transfers, ts...)
		}
	}
	for _, limit := range b.cfg.ShareLimits {
		sh := shares[limit]
		cr.Rows = append(cr.Rows, Row{Case: fmt.Sprintf("limit %d: fxsh's share with one TCP bbr flow", limit), Unit: "share",
			Fxsh: sh[0], Ref: sh[1], RefIs: "tcp-bbr's share", Target: Target{Of: "fxsh", Op: "in", Value: 0.4, Hi: 0.6}})
	}
	return cr, nil
}

// shareRound starts the clients of impls (in that order) at once, samples
// the path until both end, and returns fxsh's and TCP's share of the data
// direction's bytes between shareWarmup and the first exit.
func (b *bench) shareRound(ctx context.Context, p *lossyPath, fx, tcp *server, set *fileSet, impls []string) (fxShare, tcpShare float64, ts []Transfer) {
	fxShare, tcpShare = math.NaN(), math.NaN()
	if err := b.recyclePages(2 * set.Size); err != nil {
		return fxShare, tcpShare, []Transfer{{Impl: implFxsh, Err: err.Error()}}
	}
	type sample struct {
		at time.Duration
		st DirStats
	}
	t0 := time.Now()
	cs := make([]*client, len(impls))
	ts = make([]Transfer, len(impls))
	for i, impl := range impls {
		c, err := b.startClient(ctx, impl, serverFor(impl, fx, tcp), set.Names[:1], 3*b.cfg.LossyTimeout)
		if err != nil {
			ts[i] = Transfer{Impl: impl, Err: err.Error()}
			continue
		}
		cs[i] = c
	}
	cpu0 := [2]float64{}
	cpu0[0], _ = fx.p.cpuNow()
	cpu0[1], _ = tcp.p.cpuNow()
	ended := make(chan time.Duration, len(cs))
	running := 0
	for i, c := range cs {
		if c == nil {
			continue
		}
		running++
		go func() {
			ts[i] = b.wait(ctx, c, t0)
			ended <- time.Since(t0)
		}()
	}
	var samples []sample
	tick := time.NewTicker(50 * time.Millisecond)
	first := time.Duration(-1)
	for running > 0 {
		select {
		case e := <-ended:
			running--
			if first < 0 {
				first = e
				samples = append(samples, sample{e, p.fwd.stats()[0]})
			}
		case <-tick.C:
			if first < 0 {
				samples = append(samples, sample{time.Since(t0), p.fwd.stats()[0]})
			}
		}
	}
	tick.Stop()
	for i, c := range cs {
		if c == nil {
			continue
		}
		srv := serverFor(impls[i], fx, tcp)
		k := 1
		if isFxsh(impls[i]) {
			k = 0
		}
		if cpu1, err := srv.p.cpuNow(); err == nil {
			ts[i].ServerCPU = cpu1 - cpu0[k]
		}
		ts[i].ServerRSSKiB = srv.p.hwmKiB()
		b.check(ctx, c, &ts[i])
	}
	// The window: the first sample at or after the warm-up, to the first exit.
	var from *sample
	for i := range samples {
		if samples[i].at >= shareWarmup {
			from = &samples[i]
			break
		}
	}
	if from == nil || len(samples) < 2 {
		return fxShare, tcpShare, ts
	}
	d := samples[len(samples)-1].st.sub(from.st)
	if tot := float64(d.UDPBytes + d.TCPBytes); tot > 0 {
		fxShare, tcpShare = float64(d.UDPBytes)/tot, float64(d.TCPBytes)/tot
	}
	return fxShare, tcpShare, ts
}
