package shell

// The demo's steps, in the order demoSteps lists them; each is a function
// named after the title it narrates, over the demoWorld the steps build.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/fileserver"
	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/memcat"
)

// demoStep is one narrated step of the demo.
type demoStep struct {
	title string
	do    func(w *demoWorld, ctx context.Context) error
}

// demoSteps is the demo, in order.
func demoSteps() []demoStep {
	return []demoStep{
		{"The master", (*demoWorld).theMaster},
		{"Two file servers", (*demoWorld).twoFileServers},
		{"What the master knows", (*demoWorld).whatTheMasterKnows},
		{"Injecting loss", (*demoWorld).injectingLoss},
		{"Downloading dataset.bin from both servers", (*demoWorld).downloading},
		{"Done: dataset.bin verified", (*demoWorld).done},
	}
}

// demoWorld is what the demo builds and tears down: a folder of sample
// files, a master, two file servers, and what the download did.
type demoWorld struct {
	s    *Shell
	n    *narrator
	loss string // the loss to inject

	dir         string // the demo folder (sample files, downloads)
	big         []byte // dataset.bin's content
	cat         store.Catalog
	master      *master.Running      // nil once closed
	addr        string               // the master's
	servers     []*fileserver.Server // server A, server B
	srvCounters *transfer.Counters   // both servers'
	target      store.Entry          // dataset.bin as the master lists it

	// What the download did, for the last step.
	oldLoss, oldRate string
	restored         bool
	cliCounters      *transfer.Counters
	result           download.Result
	elapsed          time.Duration
	wire             demoWire
}

func newDemoWorld(s *Shell, loss string) *demoWorld {
	n := &narrator{s: s}
	if s.ui.IsTerminal() {
		n.pause = s.opts.DemoPause
		if n.pause == 0 {
			n.pause = DefaultDemoPause
		}
	}
	return &demoWorld{s: s, n: n, loss: loss}
}

// run does the steps; everything they start is in w, for close.
func (w *demoWorld) run(ctx context.Context) error {
	w.s.out("%s\n", w.s.pal.head.Sprint("fxsh demo: a master, two file servers and a download, all in this process"))
	defer w.restoreSettings()
	for _, st := range demoSteps() {
		if !w.n.wait(ctx) {
			return ctx.Err()
		}
		w.n.step(st.title)
		if err := st.do(w, ctx); err != nil {
			return err
		}
	}
	return nil
}

// close stops the servers (BYE), then the master, and removes the folder;
// closing again does nothing.
func (w *demoWorld) close(ctx context.Context) error {
	w.restoreSettings()
	var err error
	keep := func(e error) {
		if e != nil && err == nil {
			err = e
		}
	}
	for _, fs := range w.servers {
		keep(fs.Close(ctx))
	}
	w.servers = nil
	if w.master != nil {
		keep(w.master.Close(ctx))
		w.cat.Close()
		w.master = nil
	}
	keep(removeDir(w.dir))
	w.dir = ""
	return err
}

// label names a server of the demo by its UDP address: "server A" is
// the one sharing alpha/, whatever order the master lists them in.
func (w *demoWorld) label(addr string) string {
	for i, fs := range w.servers {
		if fs.Addr() == addr {
			return fmt.Sprintf("server %c", 'A'+i)
		}
	}
	return "server " + addr
}

// theMaster starts the demo's master on a free loopback port.
func (w *demoWorld) theMaster(ctx context.Context) error {
	w.cat = memcat.New(line.DefaultTTL)
	run, err := master.Start(ctx, master.Config{
		Addr:    "127.0.0.1:0",
		Catalog: w.cat,
		Trace:   w.s.traceTCP("demo-master"),
	})
	if err != nil {
		w.cat.Close()
		return fmt.Errorf("starting the demo master: %w", err)
	}
	w.master, w.addr = run, run.Addr
	w.n.say("A master listens on TCP %s. It keeps the index: which file servers are up and", run.Addr)
	w.n.say("what each shares. It moves no file data itself: files go straight from server to client.")
	return nil
}

// sampleText is the readable sample file's content.
const sampleText = `fxsh demo notes

A master keeps the index: which file servers are up and what they share.
File servers register their files with it over TCP and serve them over UDP.
A client asks the master where a file is, then pulls chunks from every server
that holds the same content (same BLAKE3 hash), and checks the whole file before
it takes its name.
`

// sampleBytes returns n pseudo-random bytes, the same for the same seed.
func sampleBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// writeSamples makes the demo folder and its sample files: dataset.bin in
// both servers' folders, and one file of each's own.
func (w *demoWorld) writeSamples() error {
	dir, err := os.MkdirTemp("", "fxsh-demo-")
	if err != nil {
		return fmt.Errorf("making the demo folder: %w", err)
	}
	w.dir = dir
	w.big = sampleBytes(DemoFileSize, 2024)
	files := []struct {
		path string
		data []byte
	}{
		{filepath.Join(dir, "alpha", "dataset.bin"), w.big},
		{filepath.Join(dir, "alpha", "readme.txt"), []byte(sampleText)},
		{filepath.Join(dir, "beta", "dataset.bin"), w.big},
		{filepath.Join(dir, "beta", "notes", "week1.txt"), []byte("Week 1: sockets, TCP and UDP.\n")},
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return fmt.Errorf("writing sample files: %w", err)
		}
	}
	return nil
}

// twoFileServers writes the sample files and starts server A on alpha/
// and server B on beta/, each registering with the master.
func (w *demoWorld) twoFileServers(ctx context.Context) error {
	if err := w.writeSamples(); err != nil {
		return err
	}
	w.n.say("Sample files are in %s:", w.dir)
	w.n.say("  alpha/  dataset.bin (%s), readme.txt", humanBytes(DemoFileSize))
	w.n.say("  beta/   dataset.bin (the same bytes), notes/week1.txt")
	s := w.s
	w.srvCounters = transfer.NewCounters(s.counters)
	for i, name := range []string{"alpha", "beta"} {
		fs, _, err := fileserver.Start(ctx, fileserver.Config{
			Paths:     []string{filepath.Join(w.dir, name)},
			UDPAddr:   "127.0.0.1:0",
			Masters:   []string{w.master.Addr},
			Impair:    s.impair,
			Counters:  w.srvCounters,
			Trace:     s.traceUDP("demo-" + name),
			Capture:   s.captureUDP,
			LineTrace: s.traceTCP("demo-" + name),
		})
		if err != nil {
			return fmt.Errorf("starting file server %s: %w", name, err)
		}
		w.servers = append(w.servers, fs)
		if err := fs.WaitRegistered(ctx); err != nil {
			return fmt.Errorf("registering file server %s: %w", name, err)
		}
		w.n.say("Server %c shares %s/ on UDP %s: it hashed its %d files (BLAKE3) and sent the master",
			'A'+i, name, fs.Addr(), len(fs.Files()))
		w.n.say("  REGISTER addr=%s n=%d, one F line per file (name, size, type, mtime, hash), END.", fs.Addr(), len(fs.Files()))
	}
	return nil
}

// whatTheMasterKnows lists the index as a client and finds dataset.bin on
// both servers.
func (w *demoWorld) whatTheMasterKnows(ctx context.Context) error {
	cl, err := masterclient.Dial(ctx, masterclient.Config{Masters: []string{w.master.Addr},
		Trace: w.s.traceTCP("demo-client")})
	if err != nil {
		return fmt.Errorf("asking the demo master: %w", err)
	}
	defer cl.Close()
	entries, _, err := cl.List(ctx, "", 0)
	if err != nil {
		return err
	}
	w.n.say("A client says HELLO, the master answers HI, and LIST returns every file:")
	for _, l := range strings.Split(strings.TrimRight(w.s.entryTable(entries), "\n"), "\n") {
		w.n.say("  %s", l)
	}
	for _, e := range entries {
		if e.Name == "dataset.bin" {
			w.target = e
		}
	}
	if len(w.target.Servers) != 2 {
		return fmt.Errorf("the master lists dataset.bin on %d servers, not 2", len(w.target.Servers))
	}
	w.n.say("dataset.bin is one entry with two servers: same name, same hash, so the client")
	w.n.say("may take chunks from both at once.")
	return nil
}

// injectingLoss sets the loss (and a rate cap, to make the download
// watchable); the last step, or close, restores them.
func (w *demoWorld) injectingLoss(context.Context) error {
	set := w.s.set
	w.oldLoss, w.oldRate = set.Get("loss"), set.Get("rate")
	if _, err := set.Set("loss", w.loss); err != nil {
		return err
	}
	if _, err := set.Set("rate", DemoRate); err != nil {
		w.restoreSettings()
		return err
	}
	p := set.Float("loss")
	twice := 1 - (1-p)*(1-p)
	w.n.say("set loss %s: every datagram this process sends or receives is dropped with probability %s.", w.loss, w.loss)
	w.n.say("Servers and client share this process, so each datagram risks it twice: about %.0f%% are lost.", 100*twice)
	w.n.say("UDP does not repair that: the chunk protocol must. (set rate %s too, so that you can", DemoRate)
	w.n.say("watch: on loopback the download would otherwise be over in a few milliseconds.)")
	return nil
}

// restoreSettings puts loss and rate back as they were before the demo.
func (w *demoWorld) restoreSettings() {
	if w.oldLoss == "" || w.restored {
		return
	}
	w.restored = true
	w.s.set.Set("loss", w.oldLoss)
	w.s.set.Set("rate", w.oldRate)
}

// downloading fetches dataset.bin from both servers, reporting progress,
// and checks it against the original.
func (w *demoWorld) downloading(ctx context.Context) error {
	w.n.say("The client asks each server with a REQUEST (file hash, chunk size, which chunks); each answers")
	w.n.say("RETRY with a cookie first (no data to an unproven address), then streams DATA, paced. ACKs")
	w.n.say("carry a bitmap of the chunks held past the first hole; the servers resend exactly the holes.")
	s := w.s
	dlDir := filepath.Join(w.dir, "downloads")
	w.cliCounters = transfer.NewCounters(s.counters)
	var mu sync.Mutex
	var last transfer.Progress
	trace := s.traceUDP("demo-get")
	type result struct {
		res download.Result
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		res, err := download.Get(ctx, download.Request{
			Entry: w.target, Dir: dlDir, Impair: s.impair, Counters: w.cliCounters, Capture: s.captureUDP,
			Trace: func(ev transfer.Event) {
				w.wire.note(s, ev)
				trace(ev)
			},
			Progress: func(pr transfer.Progress) {
				mu.Lock()
				last = pr
				mu.Unlock()
			},
		})
		done <- result{res, err}
	}()
	t := time.NewTicker(demoProgressEvery)
	defer t.Stop()
	var r result
wait:
	for {
		select {
		case r = <-done:
			break wait
		case <-t.C:
			mu.Lock()
			pr := last
			mu.Unlock()
			w.sayProgress(pr)
		}
	}
	w.elapsed, w.result = time.Since(start), r.res
	w.restoreSettings()
	if r.err != nil {
		return fmt.Errorf("the demo download failed: %w", r.err)
	}
	got, err := os.ReadFile(filepath.Join(dlDir, "dataset.bin"))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, w.big) {
		return errors.New("the downloaded dataset.bin differs from the original")
	}
	return nil
}

// sayProgress narrates one progress sample: how much, from which server,
// and how many chunks were repaired so far.
func (w *demoWorld) sayProgress(pr transfer.Progress) {
	if pr.Total == 0 {
		return
	}
	var parts []string
	for _, src := range pr.Sources {
		parts = append(parts, fmt.Sprintf("%s %s", w.label(src.Addr), humanBytes(src.Bytes)))
	}
	w.n.say("  %3.0f%%  %s of %s  (%s)  repaired so far: %d chunks",
		100*float64(pr.Have)/float64(pr.Total), humanBytes(pr.Have), humanBytes(pr.Total),
		strings.Join(parts, ", "), w.cliCounters.Load(transfer.Retransmits))
}

// done explains what the download did: time, counters, each server's
// share, and a few datagrams as trace shows them.
func (w *demoWorld) done(context.Context) error {
	n := w.n
	n.say("%s arrived in %s: goodput %s.", humanBytes(DemoFileSize), humanDuration(w.elapsed.Round(time.Millisecond)),
		humanRate(float64(DemoFileSize)/w.elapsed.Seconds()))
	n.say("Its BLAKE3 hash matched the catalog's before it took its name (it was written as a hidden")
	n.say(".fxpart file until then), and it is byte for byte the servers' file.")
	cs, ss := w.cliCounters.Snapshot(), w.srvCounters.Snapshot()
	n.say("What the protocol did:")
	n.say("  datagrams: servers sent %d, client sent %d (REQUESTs, ACKs, DONE)", ss.DatagramsSent, cs.DatagramsSent)
	n.say("  dropped by the injected loss: %d", cs.ImpairDrops+ss.ImpairDrops)
	n.say("  retransmissions: %d chunks sent again by the servers, %d of them arrived (%d duplicates)",
		ss.Retransmits, cs.Retransmits, cs.Duplicates)
	n.say("  losses the servers detected from ACK bitmaps: %d; probe timeouts: %d", ss.Losses, ss.Timeouts)
	n.say("  smoothed RTT %s; a server's congestion window %s, pacing %s",
		ss.RTT.Round(time.Microsecond), humanBytes(ss.Cwnd), humanRate(float64(ss.PacingRate)))
	var total int64
	for _, src := range w.result.Fetch.Sources {
		total += src.Bytes
	}
	for _, src := range w.result.Fetch.Sources {
		share := 0.0
		if total > 0 {
			share = 100 * float64(src.Bytes) / float64(total)
		}
		n.say("  %s (%s) delivered %s (%.0f%%), rtt %s", w.label(src.Addr), src.Addr, humanBytes(src.Bytes), share,
			src.RTT.Round(time.Microsecond))
	}
	if lines := w.wire.lines(); len(lines) > 0 {
		n.say("A few of the datagrams, as `trace on` shows them:")
		for _, l := range lines {
			n.say("  %s", l)
		}
	}
	n.say("The loss is back to %s, the rate to %s.", w.oldLoss, w.oldRate)
	return nil
}

// demoWire keeps the first datagram of each interesting kind the demo's
// client saw, to show what the wire looked like.
type demoWire struct {
	mu   sync.Mutex
	have map[string]bool
	got  []string
}

// demoWireKinds are the moments the demo shows, in order.
var demoWireKinds = []string{"request", "retry", "request+cookie", "data", "ack+bitmap", "retransmit", "done"}

func (w *demoWire) note(s *Shell, ev transfer.Event) {
	kind := ""
	switch {
	case ev.Dropped != "":
		return
	case ev.Request != nil && len(ev.Request.Cookie) == 0:
		kind = "request"
	case ev.Request != nil:
		kind = "request+cookie"
	case ev.Retry != nil:
		kind = "retry"
	case ev.Header.Kind == chunk.KindData && ev.Header.Flags&chunk.FlagRetransmit != 0:
		kind = "retransmit"
	case ev.Header.Kind == chunk.KindData:
		kind = "data"
	case ev.Ack != nil && ev.Ack.NBits > 0:
		kind = "ack+bitmap"
	case ev.Done != nil && ev.Dir == transfer.Sent:
		kind = "done"
	default:
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.have == nil {
		w.have = map[string]bool{}
	}
	if w.have[kind] {
		return
	}
	w.have[kind] = true
	w.got = append(w.got, kind+"\x00"+s.udpTraceLine("get", ev))
}

// lines returns the noted datagrams in protocol order.
func (w *demoWire) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, k := range demoWireKinds {
		for _, g := range w.got {
			if kind, l, _ := strings.Cut(g, "\x00"); kind == k {
				out = append(out, l)
			}
		}
	}
	return out
}
