package shell

// demo: the first command a teacher runs. In this one process it starts a
// master on a free loopback port, two file servers on generated sample
// files, and a download of a file both servers hold, with some injected
// loss, and narrates each step and what the protocol did.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
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

// Demo parameters.
const (
	// DemoFileSize is the size of the file the demo downloads: big enough
	// to see losses repaired, small enough to take about a second.
	DemoFileSize = 8 << 20
	// DemoLoss is the default loss the demo injects on this process.
	DemoLoss = "0.05"
	// DemoRate caps this process's sending rate during the demo, so that
	// the download lasts long enough to be watched.
	DemoRate = "8MB/s"
	// demoProgressEvery is how often the demo reports the download.
	demoProgressEvery = 400 * time.Millisecond
	// demoTimeout bounds the whole demo.
	demoTimeout = 2 * time.Minute
)

func init() { areaCommands = append(areaCommands, demoCommands) }

func demoCommands() []*cmdSpec {
	return []*cmdSpec{
		{
			name: "demo", group: "Transfers", usage: "demo [--loss P] | demo off", maxArgs: 2,
			summary: "watch fxsh work: a master, two file servers and a lossy download, in this process, narrated",
			detail: "Generates sample files in a temporary folder, starts a master on a free loopback port and\n" +
				"two file servers, downloads a file both servers hold from both at once with loss P injected\n" +
				"on this process (default " + DemoLoss + ", restored afterwards), and explains what happened.\n" +
				"In a script everything stops at the end of the demo; at the prompt the master and servers\n" +
				"keep running for you to explore (list, peers, get, trace on) until demo off or quit, which\n" +
				"remove the folder.",
			example:  "demo --loss 0.1",
			run:      cmdDemo,
			complete: func(*Shell, *compCtx) []string { return []string{"--loss", "off"} },
		},
	}
}

// demoRole is what a demo leaves running at the prompt: its master, its two
// servers and its folder.
type demoRole struct {
	dir      string
	addr     string
	srv      *master.Server
	cat      store.Catalog
	served   chan error
	servers  []*fileserver.Server
	prevMstr []string // the shell's masters before the demo
	given    bool
	s        *Shell
	once     sync.Once
}

func (d *demoRole) Describe() string {
	var udp []string
	for _, fs := range d.servers {
		udp = append(udp, fs.Addr())
	}
	return fmt.Sprintf("demo master on %s, file servers on udp %s, files in %s (demo off removes them)",
		d.addr, strings.Join(udp, " and "), d.dir)
}

// Close stops the servers (BYE) and the master, removes the folder, and
// points the shell back at its own master(s).
func (d *demoRole) Close(ctx context.Context) error {
	var err error
	d.once.Do(func() {
		for _, fs := range d.servers {
			if e := fs.Close(ctx); e != nil && err == nil {
				err = e
			}
		}
		if d.srv != nil {
			if e := d.srv.Shutdown(ctx); e != nil && err == nil {
				err = e
			}
			<-d.served
			d.cat.Close()
		}
		if e := os.RemoveAll(d.dir); e != nil && err == nil {
			err = e
		}
		if d.s != nil && d.prevMstr != nil {
			d.s.mu.Lock()
			if len(d.s.opts.Masters) == 1 && d.s.opts.Masters[0] == d.addr {
				d.s.opts.Masters = d.prevMstr
				d.s.opts.MasterGiven = d.given
			}
			d.s.mu.Unlock()
			d.s.dropClient()
		}
	})
	return err
}

// demoFile is one generated sample file.
type demoFile struct {
	path string
	data []byte
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

func cmdDemo(ctx context.Context, s *Shell, c *call) error {
	pos, f, err := c.flags(map[string]bool{"--loss": true})
	if err != nil {
		return err
	}
	if len(pos) == 1 && pos[0] == "off" && len(f) == 0 {
		r := s.role("demo")
		if r == nil {
			return errors.New("no demo is running")
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := r.Close(cctx)
		s.removeRole("demo")
		if err == nil {
			s.out("demo stopped; its folder is removed\n")
		}
		return err
	}
	if len(pos) > 0 {
		return errors.New("usage: demo [--loss P] | demo off")
	}
	if s.role("demo") != nil {
		return errors.New("a demo is already running (demo off stops it)")
	}
	loss := DemoLoss
	if v, ok := f["--loss"]; ok {
		if loss, err = probability(v); err != nil {
			return fmt.Errorf("--loss: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	d := &demoRole{s: s}
	keep := false
	defer func() {
		if !keep {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			d.Close(cctx)
			cancel()
		}
	}()
	n := &narrator{s: s}
	if err := s.runDemo(ctx, d, n, loss); err != nil {
		if ctx.Err() != nil {
			return errors.New("demo interrupted; everything it started is stopped and its folder removed")
		}
		return err
	}
	if s.ui.IsTerminal() {
		// At the prompt the demo's world stays up to be explored.
		keep = true
		s.mu.Lock()
		d.prevMstr, d.given = s.opts.Masters, s.opts.MasterGiven
		s.opts.Masters, s.opts.MasterGiven = []string{d.addr}, true
		s.mu.Unlock()
		s.dropClient()
		s.addRole("demo", d)
		n.step("Your turn")
		n.say("The demo's master and both servers keep running, and this shell now uses that master.")
		n.say("Try: list · peers · search notes · trace on · get readme.txt · stats · status")
		n.say("demo off (or quit) stops them and removes " + d.dir + ".")
		return nil
	}
	n.step("Cleaning up")
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = d.Close(cctx)
	ccancel()
	if err != nil {
		return fmt.Errorf("stopping the demo: %w", err)
	}
	n.say("Both servers said BYE (the master dropped their files at once), the master stopped,")
	n.say("and the demo folder is removed. Run `help` to see every command.")
	return nil
}

// narrator numbers the demo's steps and prints its sentences.
type narrator struct {
	s *Shell
	n int
}

func (n *narrator) step(title string) {
	n.n++
	n.s.out("\n%s\n", n.s.pal.head.Sprint(fmt.Sprintf("%d. %s", n.n, title)))
}

func (n *narrator) say(format string, a ...any) {
	n.s.out("   "+format+"\n", a...)
}

// runDemo does the demo's steps; everything it starts is recorded in d so
// that the caller can stop it.
func (s *Shell) runDemo(ctx context.Context, d *demoRole, n *narrator, loss string) error {
	s.out("%s\n", s.pal.head.Sprint("fxsh demo: a master, two file servers and a download, all in this process"))

	// The folder and its sample files.
	dir, err := os.MkdirTemp("", "fxsh-demo-")
	if err != nil {
		return fmt.Errorf("making the demo folder: %w", err)
	}
	d.dir = dir
	big := sampleBytes(DemoFileSize, 2024)
	files := []demoFile{
		{filepath.Join(dir, "alpha", "dataset.bin"), big},
		{filepath.Join(dir, "alpha", "readme.txt"), []byte(sampleText)},
		{filepath.Join(dir, "beta", "dataset.bin"), big},
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

	// 1. The master.
	n.step("The master")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the demo master: %w", err)
	}
	d.cat = memcat.New(line.DefaultTTL)
	d.srv = master.New(master.Config{
		Catalog: d.cat,
		Trace:   s.traceTCP("demo-master"),
	})
	d.addr = ln.Addr().String()
	d.served = make(chan error, 1)
	go func() { d.served <- d.srv.Serve(ln) }()
	n.say("A master listens on TCP %s. It keeps the index: which file servers are up and", d.addr)
	n.say("what each shares. It moves no file data itself: files go straight from server to client.")

	// 2. Two file servers.
	n.step("Two file servers")
	n.say("Sample files are in %s:", dir)
	n.say("  alpha/  dataset.bin (%s), readme.txt", humanBytes(DemoFileSize))
	n.say("  beta/   dataset.bin (the same bytes), notes/week1.txt")
	srvCounters := transfer.NewCounters(s.counters)
	for i, name := range []string{"alpha", "beta"} {
		fs, _, err := fileserver.Start(ctx, fileserver.Config{
			Paths:     []string{filepath.Join(dir, name)},
			UDPAddr:   "127.0.0.1:0",
			Masters:   []string{d.addr},
			Impair:    s.impair,
			Counters:  srvCounters,
			Trace:     s.traceUDP("demo-" + name),
			Capture:   s.captureUDP,
			LineTrace: s.traceTCP("demo-" + name),
		})
		if err != nil {
			return fmt.Errorf("starting file server %s: %w", name, err)
		}
		d.servers = append(d.servers, fs)
		if err := fs.WaitRegistered(ctx); err != nil {
			return fmt.Errorf("registering file server %s: %w", name, err)
		}
		n.say("Server %c shares %s/ on UDP %s: it hashed its %d files (BLAKE3) and sent the master",
			'A'+i, name, fs.Addr(), len(fs.Files()))
		n.say("  REGISTER addr=%s n=%d, one F line per file (name, size, type, mtime, hash), END.", fs.Addr(), len(fs.Files()))
	}

	// 3. The index.
	n.step("What the master knows")
	cl, err := masterclient.Dial(ctx, masterclient.Config{Masters: []string{d.addr},
		Trace: s.traceTCP("demo-client")})
	if err != nil {
		return fmt.Errorf("asking the demo master: %w", err)
	}
	defer cl.Close()
	entries, _, err := cl.List(ctx, "", 0)
	if err != nil {
		return err
	}
	n.say("A client says HELLO, the master answers HI, and LIST returns every file:")
	for _, l := range strings.Split(strings.TrimRight(s.entryTable(entries), "\n"), "\n") {
		n.say("  %s", l)
	}
	var target store.Entry
	for _, e := range entries {
		if e.Name == "dataset.bin" {
			target = e
		}
	}
	if len(target.Servers) != 2 {
		return fmt.Errorf("the master lists dataset.bin on %d servers, not 2", len(target.Servers))
	}
	n.say("dataset.bin is one entry with two servers: same name, same hash, so the client")
	n.say("may take chunks from both at once.")

	// 4. Loss.
	n.step("Injecting loss")
	old, oldRate := s.set.Get("loss"), s.set.Get("rate")
	if _, err := s.set.Set("loss", loss); err != nil {
		return err
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			s.set.Set("loss", old)
			s.set.Set("rate", oldRate)
		}
	}
	defer restore()
	if _, err := s.set.Set("rate", DemoRate); err != nil {
		return err
	}
	p := s.set.Float("loss")
	twice := 1 - (1-p)*(1-p)
	n.say("set loss %s: every datagram this process sends or receives is dropped with probability %s.", loss, loss)
	n.say("Servers and client share this process, so each datagram risks it twice: about %.0f%% are lost.", 100*twice)
	n.say("UDP does not repair that: the chunk protocol must. (set rate %s too, so that you can", DemoRate)
	n.say("watch: on loopback the download would otherwise be over in a few milliseconds.)")

	// 5. The download.
	n.step("Downloading dataset.bin from both servers")
	n.say("The client asks each server with a REQUEST (file hash, chunk size, which chunks); each answers")
	n.say("RETRY with a cookie first (no data to an unproven address), then streams DATA, paced. ACKs")
	n.say("carry a bitmap of the chunks held past the first hole; the servers resend exactly the holes.")
	dlDir := filepath.Join(dir, "downloads")
	cliCounters := transfer.NewCounters(s.counters)
	seen := &demoWire{}
	var mu sync.Mutex
	var last transfer.Progress
	progress := func() transfer.Progress {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	type result struct {
		res download.Result
		err error
	}
	done := make(chan result, 1)
	trace := s.traceUDP("demo-get")
	start := time.Now()
	go func() {
		res, err := download.Get(ctx, download.Request{
			Entry:    target,
			Dir:      dlDir,
			Impair:   s.impair,
			Counters: cliCounters,
			Capture:  s.captureUDP,
			Trace: func(ev transfer.Event) {
				seen.note(s, ev)
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
			pr := progress()
			if pr.Total == 0 {
				continue
			}
			var parts []string
			for i, src := range pr.Sources {
				parts = append(parts, fmt.Sprintf("server %c %s", 'A'+i, humanBytes(src.Bytes)))
			}
			n.say("  %3.0f%%  %s of %s  (%s)  repaired so far: %d chunks",
				100*float64(pr.Have)/float64(pr.Total), humanBytes(pr.Have), humanBytes(pr.Total),
				strings.Join(parts, ", "), cliCounters.Load(transfer.Retransmits))
		}
	}
	elapsed := time.Since(start)
	restore()
	if r.err != nil {
		return fmt.Errorf("the demo download failed: %w", r.err)
	}
	got, err := os.ReadFile(filepath.Join(dlDir, "dataset.bin"))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, big) {
		return errors.New("the downloaded dataset.bin differs from the original")
	}

	// 6. What happened.
	n.step("Done: dataset.bin verified")
	n.say("%s arrived in %s: goodput %s.", humanBytes(DemoFileSize), humanDuration(elapsed.Round(time.Millisecond)),
		humanRate(float64(DemoFileSize)/elapsed.Seconds()))
	n.say("Its BLAKE3 hash matched the catalog's before it took its name (it was written as a hidden")
	n.say(".fxpart file until then), and it is byte for byte the servers' file.")
	cs, ss := cliCounters.Snapshot(), srvCounters.Snapshot()
	n.say("What the protocol did:")
	n.say("  datagrams: servers sent %d, client sent %d (REQUESTs, ACKs, DONE)", ss.DatagramsSent, cs.DatagramsSent)
	n.say("  dropped by the injected loss: %d", cs.ImpairDrops+ss.ImpairDrops)
	n.say("  retransmissions: %d chunks sent again by the servers, %d of them arrived (%d duplicates)",
		ss.Retransmits, cs.Retransmits, cs.Duplicates)
	n.say("  losses the servers detected from ACK bitmaps: %d; probe timeouts: %d", ss.Losses, ss.Timeouts)
	n.say("  smoothed RTT %s; a server's congestion window %s, pacing %s",
		ss.RTT.Round(time.Microsecond), humanBytes(ss.Cwnd), humanRate(float64(ss.PacingRate)))
	var total int64
	for _, src := range r.res.Fetch.Sources {
		total += src.Bytes
	}
	for i, src := range r.res.Fetch.Sources {
		share := 0.0
		if total > 0 {
			share = 100 * float64(src.Bytes) / float64(total)
		}
		n.say("  server %c (%s) delivered %s (%.0f%%), rtt %s", 'A'+i, src.Addr, humanBytes(src.Bytes), share,
			src.RTT.Round(time.Microsecond))
	}
	if lines := seen.lines(); len(lines) > 0 {
		n.say("A few of the datagrams, as `trace on` shows them:")
		for _, l := range lines {
			n.say("  %s", l)
		}
	}
	n.say("The loss is back to %s, the rate to %s.", old, oldRate)
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
