//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/shell"
	"github.com/fxshell/fxsh/store"

	"golang.org/x/sys/unix"
)

// The soak case (issue 7, "Load and soak"): one file server, -soak-clients
// clients downloading at once for -soak-duration with `set loss` on the
// clients, every file compared byte for byte with the source, and no growth
// of goroutines or memory between the first window (minute 1) and the last.
//
// The server is a separate process running fxsh's shell (shell.Run, exactly
// what the fxsh binary runs: `serve master; share DIR`) as a hidden
// subcommand of this binary (__soak-serve), so that besides its RSS and
// threads (read from /proc) it reports its own goroutines and live heap: it
// appends one JSON sample, taken after a GC, to a file every -soak-sample.
// The clients are goroutines of this process, each looping: pick a file,
// download.Get it into a folder of its own (with the loss on a shared
// Impair, as `set loss` does in a shell, and up to -soak-attempts resumes),
// hand it to a pool of checkers (compare it with the source byte for byte,
// delete it) and start the next. So -soak-clients downloads are under way
// for the whole duration; then no new one starts and those under way
// finish, each bounded by -soak-file-timeout. The downloads go to /dev/shm by default: on this
// machine's disk, creating, syncing and deleting some 60 files a second
// bound the rate, not fxsh, and half the clients would be waiting on the
// file system instead of downloading.

// Limits of the soak case.
const (
	MaxSoakClients  = 500
	MaxSoakDuration = 24 * time.Hour
	MaxSoakSize     = 1 << 30
	MaxSoakSamples  = 10_000 // -soak-duration / -soak-sample, and lines the server writes
	MaxSoakAttempts = 10
	MaxSoakErrors   = 100 // failures, and separately retried attempts, kept in the JSON
	// MaxSoakSampleLine bounds one line of the server's sample file.
	MaxSoakSampleLine = 4096
	// SoakListLimit bounds waiting for the share's files in the master's list.
	SoakListLimit = 30 * time.Second
)

// The growth verdict: a metric passes when both its median over the last
// window and its median over the first window plus the rise of a line
// fitted (Theil-Sen) to the samples from the end of the first window to the
// end are at most first × (1 + SoakTolerance) + the metric's slack.
// The slack absorbs what is in flight at a sample instant (a download
// between files holds fewer goroutines and buffers); a leak per download or
// per lost datagram would pass it within seconds.
const (
	SoakTolerance       = 0.10
	SoakSlackGoroutines = 50
	SoakSlackHeapMiB    = 4
	SoakSlackRSSMiB     = 8
)

const cmdSoakServe = "__soak-serve"

// SoakConfig is the soak case's settings (-soak-* flags).
type SoakConfig struct {
	Duration    time.Duration `json:"duration_ns"`
	Clients     int           `json:"clients"`
	Loss        float64       `json:"loss"` // fraction of datagrams, as `set loss`
	Size        int64         `json:"size"`
	Files       int           `json:"files"`
	Sample      time.Duration `json:"sample_ns"`
	Window      time.Duration `json:"window_ns"`
	FileTimeout time.Duration `json:"file_timeout_ns"`
	Attempts    int           `json:"attempts"`
	DownloadDir string        `json:"download_dir"` // "": the run's work folder (on disk)
}

func defaultSoak() SoakConfig {
	return SoakConfig{Duration: 10 * time.Minute, Clients: 100, Loss: 0.05, Size: 4 << 20, Files: 8,
		Sample: 10 * time.Second, Window: time.Minute, FileTimeout: 3 * time.Minute, Attempts: 3,
		DownloadDir: "/dev/shm"}
}

func (s *SoakConfig) addFlags(fs *flag.FlagSet) {
	fs.DurationVar(&s.Duration, "soak-duration", s.Duration, "soak: how long the clients keep downloading")
	fs.IntVar(&s.Clients, "soak-clients", s.Clients, "soak: clients downloading at once (goroutines of this process)")
	fs.Float64Var(&s.Loss, "soak-loss", s.Loss, "soak: `set loss` of the clients: fraction of datagrams dropped each way (add -fxsh-server-cmds 'set loss X' for the server too)")
	fs.Var(sizeFlag{&s.Size}, "soak-size", "soak: size of each file")
	fs.IntVar(&s.Files, "soak-files", s.Files, "soak: files shared; each download picks one at random")
	fs.DurationVar(&s.Sample, "soak-sample", s.Sample, "soak: sampling interval (goroutines, heap after a GC, RSS, threads)")
	fs.DurationVar(&s.Window, "soak-window", s.Window, "soak: the window compared, first against last (minute 1 and the last minute)")
	fs.DurationVar(&s.FileTimeout, "soak-file-timeout", s.FileTimeout, "soak: time limit of one download, all its attempts and the check")
	fs.IntVar(&s.Attempts, "soak-attempts", s.Attempts, "soak: attempts per download (the later ones resume); failing all of them is a failure")
	fs.StringVar(&s.DownloadDir, "soak-download-dir", s.DownloadDir, "soak: existing folder the clients download into, in a fresh subfolder removed at the end ('': the work folder under -data, on disk, where deleting the synced files bounds the rate)")
}

// quick shrinks what was not set on the command line: 1 minute, 20 clients,
// windows of 20 s sampled every 4 s.
func (s *SoakConfig) quick(set map[string]bool) {
	for name, apply := range map[string]func(){
		"soak-duration": func() { s.Duration = time.Minute }, "soak-clients": func() { s.Clients = 20 },
		"soak-window": func() { s.Window = 20 * time.Second }, "soak-sample": func() { s.Sample = 4 * time.Second },
	} {
		if !set[name] {
			apply()
		}
	}
}

func (s SoakConfig) validate() error {
	switch {
	case s.Clients < 1 || s.Clients > MaxSoakClients:
		return fmt.Errorf("-soak-clients: want 1..%d", MaxSoakClients)
	case !(s.Loss >= 0 && s.Loss < 1):
		return errors.New("-soak-loss: want a fraction in [0, 1)")
	case s.Size < 1 || s.Size > MaxSoakSize:
		return fmt.Errorf("-soak-size: want 1B..%s", formatSize(MaxSoakSize))
	case s.Files < 1 || s.Files > MaxFilesPerSet:
		return fmt.Errorf("-soak-files: want 1..%d", MaxFilesPerSet)
	case s.Sample < time.Second:
		return errors.New("-soak-sample: want at least 1s")
	case s.Window < s.Sample:
		return errors.New("-soak-window: want at least one -soak-sample")
	case s.Duration > MaxSoakDuration:
		return fmt.Errorf("-soak-duration: want at most %s", MaxSoakDuration)
	case s.Duration < 2*s.Window || s.Duration%s.Window != 0:
		return errors.New("-soak-duration: want a whole number of -soak-window, at least two")
	case s.Duration/s.Sample > MaxSoakSamples:
		return fmt.Errorf("-soak-duration / -soak-sample: at most %d samples", MaxSoakSamples)
	case s.FileTimeout < time.Second || s.FileTimeout > time.Hour:
		return errors.New("-soak-file-timeout: want 1s..1h")
	case s.Attempts < 1 || s.Attempts > MaxSoakAttempts:
		return fmt.Errorf("-soak-attempts: want 1..%d", MaxSoakAttempts)
	}
	return nil
}

// windowLabel names window i (0-based) of length w: "minute 3" for
// one-minute windows, else its span ("15s-30s").
func windowLabel(i int, w time.Duration) string {
	if w == time.Minute {
		return "minute " + strconv.Itoa(i+1)
	}
	return fmt.Sprintf("%s-%s", time.Duration(i)*w, time.Duration(i+1)*w)
}

// windowIndex is the window (0-based) an event at elapsed falls in: windows
// of length w cover [0, d); everything at or after d is the drain, index
// d/w. A negative elapsed counts in the first window.
func windowIndex(elapsed, w, d time.Duration) int {
	if elapsed >= d {
		return int(d / w)
	}
	return int(max(elapsed, 0) / w)
}

// --- the server side -------------------------------------------------------

// runtimeSample is one sample of a Go process's own runtime after a GC.
type runtimeSample struct {
	UnixNano   int64 `json:"unix_ns"`
	Goroutines int64 `json:"goroutines"`
	HeapLive   int64 `json:"heap_live_bytes"` // /gc/heap/live:bytes right after runtime.GC
}

// readRuntime collects garbage and reads the goroutine count and the live
// heap; -1 for a metric this Go does not have.
func readRuntime() runtimeSample {
	runtime.GC()
	ms := []metrics.Sample{{Name: "/sched/goroutines:goroutines"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(ms)
	u := func(s metrics.Sample) int64 {
		if s.Value.Kind() != metrics.KindUint64 {
			return -1
		}
		return int64(s.Value.Uint64())
	}
	return runtimeSample{UnixNano: time.Now().UnixNano(), Goroutines: u(ms[0]), HeapLive: u(ms[1])}
}

// runSoakServe runs fxsh's shell with the arguments after "--" and appends
// one runtimeSample per line to -samples every -every until the shell ends.
func runSoakServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmdSoakServe, flag.ContinueOnError)
	fs.SetOutput(stderr)
	samples := fs.String("samples", "", "file the runtime samples are written to (JSON lines)")
	every := fs.Duration("every", 10*time.Second, "sampling interval")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *samples == "" || *every < 100*time.Millisecond {
		fmt.Fprintln(stderr, cmdSoakServe+": want -samples FILE and -every of at least 100ms")
		return 2
	}
	f, err := os.OpenFile(*samples, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmdSoakServe, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		writeRuntimeSamples(ctx, f, *every, MaxSoakSamples)
	}()
	code := shell.Run(fs.Args(), os.Stdin, stdout, stderr)
	cancel()
	<-done
	if err := f.Close(); err != nil && code == 0 {
		fmt.Fprintf(stderr, "%s: closing samples: %v\n", cmdSoakServe, err)
		return 1
	}
	return code
}

// writeRuntimeSamples writes at most limit samples, one every interval,
// each in one write.
func writeRuntimeSamples(ctx context.Context, w io.Writer, every time.Duration, limit int) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range limit {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := json.Marshal(readRuntime())
		if err != nil {
			return
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return
		}
	}
}

// lineTail reads the lines appended to a file since the last call; a line
// still being written stays for the next call.
type lineTail struct {
	path    string
	off     int64
	partial []byte
}

// read returns the complete new lines, at most MaxSoakSamples at a time.
func (t *lineTail) read() ([]string, error) {
	f, err := os.Open(t.path)
	if err != nil {
		return nil, fmt.Errorf("reading samples: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, t.off, math.MaxInt64-t.off), MaxSoakSamples*MaxSoakSampleLine))
	if err != nil {
		return nil, fmt.Errorf("reading samples: %w", err)
	}
	t.off += int64(len(b))
	b = append(t.partial, b...)
	var lines []string
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(b[:i]))
		b = b[i+1:]
	}
	if len(b) > MaxSoakSampleLine {
		b = nil // not a sample: drop it rather than grow
	}
	t.partial = append([]byte(nil), b...)
	return lines, nil
}

// parseRuntimeSamples reads sample lines; it returns how many were bad.
func parseRuntimeSamples(lines []string) ([]runtimeSample, int) {
	var out []runtimeSample
	bad := 0
	for _, l := range lines {
		var s runtimeSample
		if err := json.Unmarshal([]byte(l), &s); err != nil || s.UnixNano <= 0 {
			bad++
			continue
		}
		out = append(out, s)
	}
	return out, bad
}

// parseStatus reads VmRSS (KiB) and Threads from /proc/PID/status; -1 for
// a field that is missing (a process that has ended).
func parseStatus(b []byte) (rssKiB, threads int64) {
	rssKiB, threads = -1, -1
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rssKiB = n
		case "Threads":
			threads = n
		}
	}
	return rssKiB, threads
}

func procStatus(pid string) (rssKiB, threads int64) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return -1, -1
	}
	return parseStatus(b)
}

// --- measurement -----------------------------------------------------------

// SoakSample is what the benchmark samples every -soak-sample: its own
// runtime (the clients) and the server's RSS and threads.
type SoakSample struct {
	T                float64 `json:"t_s"` // nominal seconds since the soak began
	Fetching         int64   `json:"fetching"`
	Verified         int64   `json:"verified"`
	Failed           int64   `json:"failed"`
	Bytes            int64   `json:"bytes"`
	ClientGoroutines int64   `json:"client_goroutines"`
	ClientHeapLive   int64   `json:"client_heap_live_bytes"`
	ClientRSSKiB     int64   `json:"client_rss_kib"`
	ClientThreads    int64   `json:"client_threads"`
	ServerRSSKiB     int64   `json:"server_rss_kib"`
	ServerThreads    int64   `json:"server_threads"`
}

// SoakServerSample is one of the server's own samples on the soak's clock.
type SoakServerSample struct {
	T          float64 `json:"t_s"`
	Goroutines int64   `json:"goroutines"`
	HeapLive   int64   `json:"heap_live_bytes"`
}

// SoakFailure is a download that failed (or an attempt that was retried).
type SoakFailure struct {
	T        float64 `json:"t_s"`
	Client   int     `json:"client"`
	File     string  `json:"file"`
	Attempts int     `json:"attempts"`
	Err      string  `json:"error"`
}

// SoakWindow is what happened in one window: downloads that ended in it and
// the median of each metric's samples in it.
type SoakWindow struct {
	Label    string             `json:"label"`
	From     float64            `json:"from_s"`
	To       float64            `json:"to_s"`
	Verified int                `json:"verified"`
	Failed   int                `json:"failed"`
	Resumed  int                `json:"resumed"` // verified after a failed attempt
	Bytes    int64              `json:"bytes"`
	MBps     float64            `json:"mbps"`
	Medians  map[string]float64 `json:"-"`
}

// MarshalJSON writes NaN medians as null.
func (w SoakWindow) MarshalJSON() ([]byte, error) {
	type plain SoakWindow
	m := map[string]any{}
	for k, v := range w.Medians {
		m[k] = nanNull(v)
	}
	return json.Marshal(struct {
		plain
		Medians map[string]any `json:"medians"`
	}{plain(w), m})
}

// point is one sample of one metric: seconds since the soak began, value.
type point struct{ T, V float64 }

// windowMedian is the median of the values with from < T <= to.
func windowMedian(ps []point, from, to float64) float64 {
	var vs []float64
	for _, p := range ps {
		if p.T > from && p.T <= to {
			vs = append(vs, p.V)
		}
	}
	return median(vs)
}

// MaxFitPoints bounds the points fitGrowth pairs up (a long soak's samples
// are thinned evenly to this many).
const MaxFitPoints = 400

// fitGrowth fits a line to the points with from <= T <= to by the
// Theil-Sen estimator (the median of the slopes between every two points,
// so a few spikes do not tilt it as they tilt least squares) and returns its
// rise over [from, to]; NaN with fewer than two distinct times.
func fitGrowth(ps []point, from, to float64) float64 {
	var in []point
	for _, p := range ps {
		if p.T >= from && p.T <= to && !math.IsNaN(p.V) {
			in = append(in, p)
		}
	}
	if len(in) > MaxFitPoints {
		thin := make([]point, MaxFitPoints)
		for i := range thin {
			thin[i] = in[i*len(in)/MaxFitPoints]
		}
		in = thin
	}
	var slopes []float64
	for i := range in {
		for j := i + 1; j < len(in); j++ {
			if dt := in[j].T - in[i].T; dt != 0 {
				slopes = append(slopes, (in[j].V-in[i].V)/dt)
			}
		}
	}
	return median(slopes) * (to - from)
}

// Growth is the verdict on one metric.
type Growth struct {
	Metric string  `json:"metric"`
	Unit   string  `json:"unit"`
	First  float64 `json:"first"`         // median over the first window
	Last   float64 `json:"last"`          // median over the last window
	Fitted float64 `json:"fitted_growth"` // a fitted (Theil-Sen) line's rise from the first window's end to the end
	Slack  float64 `json:"slack"`
	Limit  float64 `json:"limit"` // First × (1 + SoakTolerance) + Slack
	OK     bool    `json:"ok"`
	Why    string  `json:"why,omitempty"`
}

// MarshalJSON writes NaN as null.
func (g Growth) MarshalJSON() ([]byte, error) {
	type plain Growth
	return json.Marshal(struct {
		plain
		First  any `json:"first"`
		Last   any `json:"last"`
		Fitted any `json:"fitted_growth"`
		Limit  any `json:"limit"`
	}{plain(g), nanNull(g.First), nanNull(g.Last), nanNull(g.Fitted), nanNull(g.Limit)})
}

// checkGrowth judges one metric over a soak of end seconds with windows of
// window seconds: the first window is (0, window], the last (end-window, end].
func checkGrowth(metric, unit string, ps []point, window, end, slack float64) Growth {
	g := Growth{Metric: metric, Unit: unit, Slack: slack,
		First: windowMedian(ps, 0, window), Last: windowMedian(ps, end-window, end),
		Fitted: fitGrowth(ps, window, end)}
	g.Limit = g.First*(1+SoakTolerance) + slack
	switch {
	case math.IsNaN(g.First) || math.IsNaN(g.Last) || math.IsNaN(g.Fitted):
		g.Why = "not enough samples"
	case g.Last > g.Limit:
		g.Why = fmt.Sprintf("last window %s > limit %s", num(g.Last), num(g.Limit))
	case g.First+g.Fitted > g.Limit:
		g.Why = fmt.Sprintf("fitted growth %s > limit - first = %s", num(g.Fitted), num(g.Limit-g.First))
	default:
		g.OK = true
	}
	return g
}

// soakVerdict says whether the soak passed: no failure, at least one file
// verified, every metric within its limit.
func soakVerdict(verified, failed int, gs []Growth) (bool, string) {
	var bad []string
	if failed > 0 {
		bad = append(bad, fmt.Sprintf("%d downloads failed", failed))
	}
	if verified == 0 {
		bad = append(bad, "no file verified")
	}
	for _, g := range gs {
		if !g.OK {
			bad = append(bad, g.Metric+": "+g.Why)
		}
	}
	if len(bad) > 0 {
		return false, "FAIL: " + strings.Join(bad, "; ")
	}
	return true, fmt.Sprintf("PASS: %d files verified, 0 failed; %d metrics within %.0f%% + slack of the first window",
		verified, len(gs), SoakTolerance*100)
}

// --- the run ---------------------------------------------------------------

// soakRun is one soak: the clients and what they did.
type soakRun struct {
	cfg      SoakConfig
	seed     uint64
	set      *fileSet
	entries  []store.Entry
	dir      string
	impair   *transfer.Impair
	counters *transfer.Counters
	start    time.Time

	fetching atomic.Int64 // clients inside download.Get
	// Where the time goes, in nanoseconds summed over goroutines: the
	// clients inside download.Get and waiting to hand a download to the
	// checkers; the checkers comparing and deleting.
	inGet, inHandOver, inCompare, inDelete atomic.Int64

	finished chan soakFinished // the clients' downloads, for the checkers
	sources  map[string][]byte // the source files, mapped, by base name

	mu         sync.Mutex // guards the fields below
	windows    []SoakWindow
	verified   int
	failed     int
	resumed    int
	bytes      int64
	failures   []SoakFailure // the first MaxSoakErrors
	retried    []SoakFailure // the first MaxSoakErrors attempts that were retried
	retryCount int
}

func newSoakRun(cfg SoakConfig, seed uint64, set *fileSet, entries []store.Entry, dir string) (*soakRun, error) {
	r := &soakRun{cfg: cfg, seed: seed, set: set, entries: entries, dir: dir,
		impair: &transfer.Impair{}, counters: transfer.NewCounters(nil),
		finished: make(chan soakFinished, cfg.Clients)}
	if err := r.impair.Set(transfer.ImpairSettings{Loss: cfg.Loss}); err != nil {
		return nil, err
	}
	n := int(cfg.Duration / cfg.Window)
	for i := range n + 1 {
		w := SoakWindow{Label: windowLabel(i, cfg.Window), From: (time.Duration(i) * cfg.Window).Seconds(),
			To: (time.Duration(i+1) * cfg.Window).Seconds()}
		if i == n {
			w.Label = "drain" // To is set when the last download has ended
		}
		r.windows = append(r.windows, w)
	}
	return r, nil
}

// SoakClientsPerChecker sets the checkers, which compare the finished
// downloads with the source and delete them so that a client starts its
// next download at once: one checker per this many clients (at least one).
// Under a full CPU every system call waits its turn, so a client that
// checked and deleted its own file spent a third of its time outside
// download.Get (a 10-minute run here had a median of 58 of 100 clients
// downloading). A client hands a download over through a channel of
// -soak-clients places, so the files waiting stay bounded, and the time a
// client waits for a place is counted.
const SoakClientsPerChecker = 4

func soakCheckers(clients int) int {
	return max(1, (clients+SoakClientsPerChecker-1)/SoakClientsPerChecker)
}

// soakFinished is one download as a client hands it to the checkers.
type soakFinished struct {
	client   int
	file     string // the catalog name
	dir      string // its folder, deleted by the checker
	path     string // the received file; "" when err is set
	attempts int
	end      time.Duration // since the soak began, when download.Get returned
	err      error
	stopped  bool // the run was stopped (Ctrl-C): neither verified nor failed
}

// checker compares and deletes the downloads handed over until the channel
// is closed.
func (r *soakRun) checker(ctx context.Context) {
	buf, err := unix.Mmap(-1, 0, SoakCompareBuf, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		buf = make([]byte, SoakCompareBuf)
	} else {
		defer unix.Munmap(buf)
	}
	for f := range r.finished {
		if !f.stopped && ctx.Err() == nil {
			var got int64
			err := f.err
			if err == nil {
				t := time.Now()
				err = sameBytes(f.path, r.sources[filepath.Base(f.file)], buf)
				r.inCompare.Add(int64(time.Since(t)))
				if err == nil {
					got = r.set.Size
				}
			}
			if ctx.Err() == nil {
				r.record(f, got, err)
			}
		}
		t := time.Now()
		// The folder holds the file alone after a success; a failed
		// download leaves its partial file and state too.
		if f.path == "" || os.Remove(f.path) != nil || os.Remove(f.dir) != nil {
			os.RemoveAll(f.dir)
		}
		r.inDelete.Add(int64(time.Since(t)))
	}
}

// client downloads until more ends (the duration) or ctx (the run) does,
// each download into a folder of its own.
func (r *soakRun) client(ctx, more context.Context, id int) {
	rng := rand.New(rand.NewPCG(r.seed, uint64(id)))
	for n := 0; more.Err() == nil && ctx.Err() == nil; n++ {
		dir := filepath.Join(r.dir, fmt.Sprintf("c%03d-%07d", id, n))
		f := r.fetch(ctx, id, dir, r.entries[rng.IntN(len(r.entries))])
		t := time.Now()
		r.finished <- f
		r.inHandOver.Add(int64(time.Since(t)))
	}
}

// SoakCompareBuf is each checker's read buffer. It is mapped outside the
// Go heap, once per checker, so it does not weigh in the clients' heap.
const SoakCompareBuf = 1 << 20

// sameBytes checks that the file got holds exactly src, reading it through
// buf. Byte for byte against the source is a stronger check than a hash and
// much cheaper (SHA-256 runs at about 320 MB/s on this machine's cores,
// which would take a large share of the CPU the transfers need). The file
// is read, not mapped: mapping and unmapping a file per check from many
// threads made each check take a quarter of a second under load (page
// faults and TLB shootdowns).
func sameBytes(got string, src, buf []byte) error {
	f, err := os.Open(got)
	if err != nil {
		return fmt.Errorf("checking: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("checking: %w", err)
	}
	if st.Size() != int64(len(src)) {
		return fmt.Errorf("checking %s: %d bytes, want %d", filepath.Base(got), st.Size(), len(src))
	}
	if len(buf) == 0 {
		return errors.New("checking: no buffer")
	}
	for off := 0; off < len(src); {
		k := min(len(buf), len(src)-off)
		if _, err := io.ReadFull(f, buf[:k]); err != nil {
			return fmt.Errorf("checking %s: %w", filepath.Base(got), err)
		}
		if !bytes.Equal(buf[:k], src[off:off+k]) {
			return fmt.Errorf("%s differs from the source in bytes %d..%d: %w", filepath.Base(got), off, off+k, errMismatch)
		}
		off += k
	}
	return nil
}

// mapSources maps set's files read-only, outside the Go heap so that they
// do not weigh in the clients' heap figures; unmap with unmapSources.
func mapSources(set *fileSet) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, name := range set.Names {
		f, err := os.Open(set.path(name))
		if err != nil {
			unmapSources(out)
			return nil, fmt.Errorf("mapping sources: %w", err)
		}
		m, err := unix.Mmap(int(f.Fd()), 0, int(set.Size), unix.PROT_READ, unix.MAP_SHARED)
		f.Close()
		if err != nil {
			unmapSources(out)
			return nil, fmt.Errorf("mapping %s: %w", name, err)
		}
		out[name] = m
	}
	return out, nil
}

func unmapSources(m map[string][]byte) {
	for _, b := range m {
		unix.Munmap(b)
	}
}

// fetch runs one download with its attempts, within -soak-file-timeout.
func (r *soakRun) fetch(ctx context.Context, id int, dir string, e store.Entry) soakFinished {
	fctx, cancel := context.WithTimeout(ctx, r.cfg.FileTimeout)
	defer cancel()
	f := soakFinished{client: id, file: e.Name, dir: dir}
	for f.attempts < r.cfg.Attempts {
		f.attempts++
		if f.err = os.MkdirAll(dir, 0o755); f.err != nil {
			break
		}
		r.fetching.Add(1)
		t := time.Now()
		var res download.Result
		res, f.err = download.Get(fctx, download.Request{Entry: e, Dir: dir, Impair: r.impair, Counters: r.counters})
		r.inGet.Add(int64(time.Since(t)))
		r.fetching.Add(-1)
		if f.err == nil {
			f.path = filepath.Join(dir, res.Path)
			break
		}
		if fctx.Err() != nil {
			break
		}
		r.recordRetry(id, e.Name, f.attempts, f.err)
	}
	f.end = time.Since(r.start)
	f.stopped = ctx.Err() != nil
	if f.err != nil && fctx.Err() != nil {
		f.err = fmt.Errorf("time limit %s: %w", r.cfg.FileTimeout, f.err)
	}
	return f
}

func (r *soakRun) recordRetry(id int, file string, attempts int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retryCount++
	if len(r.retried) < MaxSoakErrors {
		r.retried = append(r.retried, SoakFailure{T: time.Since(r.start).Seconds(), Client: id, File: file, Attempts: attempts, Err: err.Error()})
	}
}

// record counts a checked download in the window its download.Get ended in.
func (r *soakRun) record(f soakFinished, got int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &r.windows[windowIndex(f.end, r.cfg.Window, r.cfg.Duration)]
	if err != nil {
		r.failed++
		w.Failed++
		if len(r.failures) < MaxSoakErrors {
			r.failures = append(r.failures, SoakFailure{T: f.end.Seconds(), Client: f.client, File: f.file, Attempts: f.attempts, Err: err.Error()})
		}
		return
	}
	r.verified++
	r.bytes += got
	w.Verified++
	w.Bytes += got
	if f.attempts > 1 {
		r.resumed++
		w.Resumed++
	}
}

// sample takes one SoakSample at nominal time t.
func (r *soakRun) sample(t time.Duration, serverPID string) SoakSample {
	rt := readRuntime()
	s := SoakSample{T: t.Seconds(), Fetching: r.fetching.Load(), ClientGoroutines: rt.Goroutines, ClientHeapLive: rt.HeapLive}
	s.ClientRSSKiB, s.ClientThreads = procStatus("self")
	s.ServerRSSKiB, s.ServerThreads = procStatus(serverPID)
	r.mu.Lock()
	s.Verified, s.Failed, s.Bytes = int64(r.verified), int64(r.failed), r.bytes
	r.mu.Unlock()
	return s
}

// soakServer is the running server: its process and its samples.
type soakServer struct {
	*server
	tail *lineTail
}

// startSoakServer runs fxsh's shell in a child (`serve master; share DIR`
// on loopback) and waits for its "sharing" line.
func (b *bench) startSoakServer(ctx context.Context, set *fileSet) (*soakServer, error) {
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	uport, err := freePort()
	if err != nil {
		return nil, err
	}
	master := net.JoinHostPort("127.0.0.1", strconv.Itoa(mport))
	udp := net.JoinHostPort("127.0.0.1", strconv.Itoa(uport))
	folder, err := scriptQuote(set.Dir)
	if err != nil {
		return nil, err
	}
	dir := b.tempDir("soak-server")
	samples := filepath.Join(dir, "runtime-samples.jsonl")
	script := fmt.Sprintf("serve master %s; share %s --udp %s", master, folder, udp)
	if b.cfg.FxshServerCmds != "" {
		script = b.cfg.FxshServerCmds + "; " + script
	}
	argv := []string{b.self, cmdSoakServe, "-samples", samples, "-every", b.cfg.Soak.Sample.String(), "--",
		"--master", master, "--dir", dir, "-c", script}
	p, err := b.start(ctx, "soak server", argv, b.fxshEnv())
	if err != nil {
		return nil, err
	}
	if _, err := p.waitLine(ctx, reFxshShare, ServerReadyLimit); err != nil {
		p.stop()
		return nil, fmt.Errorf("soak server not ready: %w", err)
	}
	return &soakServer{server: &server{impl: implFxsh, p: p, addr: master, set: set}, tail: &lineTail{path: samples}}, nil
}

// soakEntries asks the master for the share's files, waiting (bounded) until
// all of set's files are listed; their hashes are taken as the catalog has
// them, opaque.
func soakEntries(ctx context.Context, master string, set *fileSet) ([]store.Entry, error) {
	c, err := masterclient.Dial(ctx, masterclient.Config{Masters: []string{master}})
	if err != nil {
		return nil, fmt.Errorf("dialling the master: %w", err)
	}
	defer c.Close()
	deadline := time.Now().Add(SoakListLimit)
	for {
		es, _, err := c.List(ctx, "", MaxFilesPerSet+1)
		if err == nil {
			err = checkSoakEntries(es, set)
			if err == nil {
				return es, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("listing the share: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkSoakEntries checks that es are exactly set's files, each offered.
func checkSoakEntries(es []store.Entry, set *fileSet) error {
	if len(es) != len(set.Names) {
		return fmt.Errorf("%d files listed, want %d", len(es), len(set.Names))
	}
	seen := map[string]bool{}
	for _, e := range es {
		base := filepath.Base(e.Name)
		if _, ok := set.Hashes[base]; !ok || seen[base] {
			return fmt.Errorf("unexpected file %q listed", e.Name)
		}
		seen[base] = true
		if e.Size != set.Size || len(e.Servers) == 0 {
			return fmt.Errorf("%q listed with %d bytes on %d servers, want %d bytes", e.Name, e.Size, len(e.Servers), set.Size)
		}
	}
	return nil
}

func mib(bytes int64) float64 {
	if bytes < 0 {
		return math.NaN()
	}
	return float64(bytes) / (1 << 20)
}

func (b *bench) caseSoak(ctx context.Context) (CaseResult, error) {
	sc := b.cfg.Soak
	cr := CaseResult{Extra: map[string]any{}}
	cr.Info = append(cr.Info, fmt.Sprintf("one file server (fxsh's shell in its own process: serve master; share), %d clients in this process downloading at once for %s, set loss %g on the clients (each way)%s; %d files of %s, each download compared byte for byte with the source and deleted; up to %d attempts (resumes) within %s per download",
		sc.Clients, sc.Duration, sc.Loss, serverCmdsNote(b.cfg.FxshServerCmds), sc.Files, formatSize(sc.Size), sc.Attempts, sc.FileTimeout))
	set, err := ensureFiles(ctx, b.cfg.DataDir, sc.Size, sc.Files)
	if err != nil {
		return cr, err
	}
	srv, err := b.startSoakServer(ctx, set)
	if err != nil {
		return cr, err
	}
	defer srv.p.stop()
	entries, err := soakEntries(ctx, srv.addr, set)
	if err != nil {
		return cr, err
	}
	dl := b.tempDir("soak-clients")
	if sc.DownloadDir != "" {
		if dl, err = os.MkdirTemp(sc.DownloadDir, "fxsh-soak-"); err != nil {
			return cr, fmt.Errorf("-soak-download-dir: %w", err)
		}
		defer os.RemoveAll(dl)
	}
	fsType, _ := fsName(dl)
	cr.Info = append(cr.Info, fmt.Sprintf("downloads into %s (%s)", dl, fsType))
	r, err := newSoakRun(sc, b.cfg.Seed, set, entries, dl)
	if err != nil {
		return cr, err
	}
	if r.sources, err = mapSources(set); err != nil {
		return cr, err
	}
	defer unmapSources(r.sources)
	samples, serverSamples, badLines := b.soak(ctx, r, srv)
	if err := ctx.Err(); err != nil {
		return cr, err
	}
	if srv.p.exited() {
		return cr, fmt.Errorf("the server exited during the soak: %s", srv.p.tail(8))
	}
	if badLines > 0 {
		cr.Info = append(cr.Info, fmt.Sprintf("%d of the server's sample lines were unreadable", badLines))
	}
	b.soakResult(&cr, r, samples, serverSamples)
	return cr, nil
}

func serverCmdsNote(cmds string) string {
	if cmds == "" {
		return ", none on the server"
	}
	return "; server runs " + strconv.Quote(cmds) + " first"
}

// soak runs the clients for the duration, sampling, then lets the
// downloads under way finish.
func (b *bench) soak(ctx context.Context, r *soakRun, srv *soakServer) ([]SoakSample, []SoakServerSample, int) {
	sc := r.cfg
	more, stopMore := context.WithCancel(ctx)
	defer stopMore()
	var wg, checkers sync.WaitGroup
	for range soakCheckers(sc.Clients) {
		checkers.Go(func() { r.checker(ctx) })
	}
	finish := sync.OnceFunc(func() {
		close(r.finished)
		checkers.Wait()
	})
	defer finish()
	r.start = time.Now()
	for id := range sc.Clients {
		wg.Go(func() { r.client(ctx, more, id) })
	}
	pid := strconv.Itoa(srv.p.cmd.Process.Pid)
	var samples []SoakSample
	var serverSamples []SoakServerSample
	bad := 0
	readServer := func() {
		lines, err := srv.tail.read()
		if err != nil {
			bad++
			return
		}
		rs, n := parseRuntimeSamples(lines)
		bad += n
		for _, s := range rs {
			serverSamples = append(serverSamples, SoakServerSample{T: float64(s.UnixNano-r.start.UnixNano()) / 1e9,
				Goroutines: s.Goroutines, HeapLive: s.HeapLive})
		}
	}
	last := SoakSample{}
	n := int((sc.Duration + sc.Sample - 1) / sc.Sample)
	for k := 1; k <= n && ctx.Err() == nil && !srv.p.exited(); k++ {
		nominal := min(time.Duration(k)*sc.Sample, sc.Duration)
		select {
		case <-ctx.Done():
			continue
		case <-time.After(time.Until(r.start.Add(nominal))):
		}
		s := r.sample(nominal, pid)
		readServer()
		samples = append(samples, s)
		srvG, srvH := int64(-1), int64(-1)
		if len(serverSamples) > 0 {
			srvG, srvH = serverSamples[len(serverSamples)-1].Goroutines, serverSamples[len(serverSamples)-1].HeapLive
		}
		b.logf("%5.0fs fetching %3d verified %6d failed %d %5s MB/s | clients: %d goroutines, heap %s MiB, rss %s MiB | server: %d goroutines, heap %s MiB, rss %s MiB, %d threads",
			s.T, s.Fetching, s.Verified, s.Failed, num(mbps(s.Bytes-last.Bytes, s.T-last.T)),
			s.ClientGoroutines, num(mib(s.ClientHeapLive)), num(mib(s.ClientRSSKiB<<10)),
			srvG, num(mib(srvH)), num(mib(s.ServerRSSKiB<<10)), s.ServerThreads)
		last = s
	}
	stopMore()
	b.logf("duration over: no new downloads; waiting for %d under way (each within %s)", r.fetching.Load(), sc.FileTimeout)
	wg.Wait()
	finish()
	r.mu.Lock()
	r.windows[len(r.windows)-1].To = time.Since(r.start).Seconds()
	r.mu.Unlock()
	readServer()
	return samples, serverSamples, bad
}

// soakSeries turns the samples into one series of points per metric.
func soakSeries(samples []SoakSample, serverSamples []SoakServerSample) map[string][]point {
	series := map[string][]point{}
	for _, s := range samples {
		add := func(k string, v int64, scale float64) {
			if v >= 0 {
				series[k] = append(series[k], point{s.T, float64(v) / scale})
			}
		}
		add("client goroutines", s.ClientGoroutines, 1)
		add("client heap", s.ClientHeapLive, 1<<20)
		add("client RSS", s.ClientRSSKiB, 1<<10)
		add("client threads", s.ClientThreads, 1)
		add("server RSS", s.ServerRSSKiB, 1<<10)
		add("server threads", s.ServerThreads, 1)
		add("fetching", s.Fetching, 1)
	}
	for _, s := range serverSamples {
		if s.Goroutines >= 0 {
			series["server goroutines"] = append(series["server goroutines"], point{s.T, float64(s.Goroutines)})
		}
		if s.HeapLive >= 0 {
			series["server heap"] = append(series["server heap"], point{s.T, float64(s.HeapLive) / (1 << 20)})
		}
	}
	return series
}

// soakGrowths checks the series that must not grow over the soak, with
// the window w and the end of the run (seconds).
func soakGrowths(series map[string][]point, w, end float64) []Growth {
	checked := []struct {
		metric, unit string
		slack        float64
	}{
		{"client goroutines", "goroutines", SoakSlackGoroutines},
		{"client heap", "MiB", SoakSlackHeapMiB},
		{"server goroutines", "goroutines", SoakSlackGoroutines},
		{"server heap", "MiB", SoakSlackHeapMiB},
		{"server RSS", "MiB", SoakSlackRSSMiB},
	}
	var gs []Growth
	for _, c := range checked {
		gs = append(gs, checkGrowth(c.metric, c.unit, series[c.metric], w, end, c.slack))
	}
	return gs
}

// growthRows are the report's rows for the checked growths: the last
// window against the first, and the fitted rise, each with its limit.
func growthRows(gs []Growth, firstL, lastL string) []Row {
	one := func(v float64) []float64 { return []float64{v} }
	round := func(x float64) float64 { return math.Round(x*100) / 100 }
	var rows []Row
	for _, g := range gs {
		lim, fit := Target{Of: "fxsh", Op: "<=", Value: round(g.Limit)}, Target{Of: "fxsh", Op: "<=", Value: round(g.Limit - g.First)}
		if math.IsNaN(g.Limit) {
			lim, fit = Target{Of: "fxsh", Op: "<=", Value: 0}, Target{Of: "fxsh", Op: "<=", Value: 0}
		}
		rows = append(rows,
			Row{Case: g.Metric + ", " + lastL + " vs " + firstL, Unit: g.Unit, Fxsh: one(g.Last), Ref: one(g.First), RefIs: firstL, Target: lim},
			Row{Case: g.Metric + ", fitted rise after " + firstL, Unit: g.Unit, Fxsh: one(g.Fitted), Target: fit})
	}
	return rows
}

// clientInfo says where the clients spent their time and what their
// datagrams did, from the run's clocks and counters and the series of
// clients inside download.Get.
func (r *soakRun) clientInfo(fetchingSeries []point) []string {
	sc := r.cfg
	var info []string
	get, cmp, hand, del := time.Duration(r.inGet.Load()), time.Duration(r.inCompare.Load()), time.Duration(r.inHandOver.Load()), time.Duration(r.inDelete.Load())
	var fetching []float64
	for _, p := range fetchingSeries {
		fetching = append(fetching, p.V)
	}
	lo, _ := minMax(fetching)
	info = append(info, fmt.Sprintf("clients inside download.Get at the samples: median %s, fewest %s, of %d",
		num(median(fetching)), num(lo), sc.Clients))
	if all := get + hand; all > 0 {
		info = append(info, fmt.Sprintf("the clients' time: %.1f%% in download.Get, %.1f%% waiting for a place in the checkers' queue; the %d checkers spent %.0f s comparing, %.0f s deleting",
			100*float64(get)/float64(all), 100*float64(hand)/float64(all), soakCheckers(sc.Clients), cmp.Seconds(), del.Seconds()))
	}
	st := r.counters.Snapshot()
	if all := st.DatagramsSent + st.DatagramsReceived + st.ImpairDrops; all > 0 {
		info = append(info, fmt.Sprintf("the clients' datagrams: %d sent, %d received, %d dropped by set loss (%.2f%%), %d duplicates, %d timeouts",
			st.DatagramsSent, st.DatagramsReceived, st.ImpairDrops, 100*float64(st.ImpairDrops)/float64(all), st.Duplicates, st.Timeouts))
	}
	return info
}

// soakResult fills in the case's windows, verdict, rows and JSON.
func (b *bench) soakResult(cr *CaseResult, r *soakRun, samples []SoakSample, serverSamples []SoakServerSample) {
	sc := r.cfg
	w, end := sc.Window.Seconds(), sc.Duration.Seconds()
	series := soakSeries(samples, serverSamples)
	gs := soakGrowths(series, w, end)

	r.mu.Lock()
	verified, failed, resumed, bytes := r.verified, r.failed, r.resumed, r.bytes
	windows := append([]SoakWindow(nil), r.windows...)
	failures, retried, retryCount := r.failures, r.retried, r.retryCount
	r.mu.Unlock()
	nw := len(windows) - 1
	var durBytes int64
	for i := range windows {
		win := &windows[i]
		if i < nw {
			win.MBps = mbps(win.Bytes, w)
			durBytes += win.Bytes
		}
		win.Medians = map[string]float64{}
		for k, ps := range series {
			if i < nw {
				win.Medians[k] = windowMedian(ps, win.From, win.To)
			}
		}
	}
	ok, verdict := soakVerdict(verified, failed, gs)
	firstL, lastL := windows[0].Label, windows[nw-1].Label
	cr.Info = append(cr.Info,
		fmt.Sprintf("%d verified (%s), %d failed, %d needed a resume (%d attempts retried), %s MB/s over the duration; %d finished after it (drain)",
			verified, formatBytes(bytes), failed, resumed, retryCount, num(mbps(durBytes, end)), windows[nw].Verified+windows[nw].Failed),
		fmt.Sprintf("growth limit: %s median <= %s median × %.2f + slack (%d goroutines, %d MiB heap, %d MiB RSS), and so is %s + a fitted line's rise from %s to %s",
			lastL, firstL, 1+SoakTolerance, SoakSlackGoroutines, SoakSlackHeapMiB, SoakSlackRSSMiB, firstL, time.Duration(w*float64(time.Second)), sc.Duration))
	for _, f := range failures {
		cr.Info = append(cr.Info, fmt.Sprintf("FAILED at %.0fs client %d %s after %d attempts: %s", f.T, f.Client, f.File, f.Attempts, f.Err))
	}
	if failed > len(failures) {
		cr.Info = append(cr.Info, fmt.Sprintf("… and %d more failures", failed-len(failures)))
	}
	cr.Info = append(cr.Info, r.clientInfo(series["fetching"])...)
	get, cmp, hand, del := time.Duration(r.inGet.Load()), time.Duration(r.inCompare.Load()), time.Duration(r.inHandOver.Load()), time.Duration(r.inDelete.Load())
	cr.Info = append(cr.Info, "verdict: "+verdict)

	one := func(v float64) []float64 { return []float64{v} }
	label := fmt.Sprintf("%d clients × %s, loss %g", sc.Clients, sc.Duration, sc.Loss)
	cr.Rows = append(cr.Rows,
		Row{Case: "files verified, " + label, Unit: "files", Fxsh: one(float64(verified)), Target: Target{Of: "fxsh", Op: ">=", Value: 1}},
		Row{Case: "downloads failed", Unit: "files", Fxsh: one(float64(failed)), Target: Target{Of: "fxsh", Op: "<=", Value: 0}},
		Row{Case: "downloads resumed after a failed attempt", Unit: "files", Fxsh: one(float64(resumed))},
		Row{Case: "throughput, " + lastL + " vs " + firstL, Unit: "MB/s", Fxsh: one(windows[nw-1].MBps), Ref: one(windows[0].MBps), RefIs: firstL},
	)
	cr.Rows = append(cr.Rows, growthRows(gs, firstL, lastL)...)
	for _, k := range []struct{ metric, unit string }{{"client RSS", "MiB"}, {"server threads", "threads"}, {"client threads", "threads"}} {
		ps := series[k.metric]
		cr.Rows = append(cr.Rows, Row{Case: k.metric + ", " + lastL + " vs " + firstL, Unit: k.unit,
			Fxsh: one(windowMedian(ps, end-w, end)), Ref: one(windowMedian(ps, 0, w)), RefIs: firstL})
	}
	cr.Extra["verdict"] = map[string]any{"pass": ok, "text": verdict, "tolerance": SoakTolerance,
		"slack": map[string]float64{"goroutines": SoakSlackGoroutines, "heap_mib": SoakSlackHeapMiB, "rss_mib": SoakSlackRSSMiB}}
	cr.Extra["growth"] = gs
	cr.Extra["windows"] = windows
	cr.Extra["samples"] = samples
	cr.Extra["server_samples"] = serverSamples
	cr.Extra["failures"] = failures
	cr.Extra["retried_attempts"] = retried
	cr.Extra["client_counters"] = r.counters.Snapshot()
	cr.Extra["client_seconds"] = map[string]float64{"get": get.Seconds(), "compare": cmp.Seconds(), "hand_over": hand.Seconds(), "delete": del.Seconds()}
	cr.Extra["totals"] = map[string]any{"verified": verified, "failed": failed, "resumed": resumed,
		"retried_attempts": retryCount, "bytes": bytes, "duration_bytes": durBytes, "duration_mbps": nanNull(mbps(durBytes, end))}
	for _, win := range windows[:nw] {
		b.logf("%-10s verified %5d failed %d resumed %3d %s MB/s", win.Label, win.Verified, win.Failed, win.Resumed, num(win.MBps))
	}
}

// formatBytes prints a byte count in GB or MB (10^9, 10^6).
func formatBytes(n int64) string {
	if n >= 1e9 {
		return num(float64(n)/1e9) + " GB"
	}
	return num(float64(n)/1e6) + " MB"
}
