//go:build linux

// Command bench is fxsh's benchmark suite (issue 5): fxsh against a
// reference in the same run, alternating, round after round, with medians
// and the ratio per round, printed as tables and written as JSON.
//
//	go run ./integration/bench [-case loopback,concurrency,lossy,cost,master] [-quick] [-rounds 3] …
//
// It needs root (network namespaces, TUN devices) for the lossy case only,
// and it is not run by CI. The parts:
//
//   - main.go: flags (Config), the run (bench), cleanup on exit and Ctrl-C.
//   - cases.go: the five cases and the forwarder's ceiling.
//   - soak.go: the soak case (issue 7): one server, many clients for
//     minutes with loss, every file verified, no goroutine or memory growth.
//   - drive.go: starting fxsh and the TCP reference, one client process per
//     download, timing, rusage, and SHA-256 verification of what arrived.
//   - tcpcopy.go: the reference TCP copy (hidden subcommands of this binary,
//     so it is measured as a child process like fxsh); blast.go: the UDP
//     flood that measures the forwarder.
//   - netns.go: the lossy path (two namespaces, two TUN devices);
//     forward.go: the forwarder between them (delay queue, random loss).
//   - child.go: child processes (output lines, stop, /proc and rusage).
//   - files.go: random source files on disk, reused across runs.
//   - stats.go, report.go: medians, ratios, targets, the table, the JSON.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config is the run's settings, from flags.
type Config struct {
	Cases          []string      `json:"cases"`
	DataDir        string        `json:"data_dir"`
	Out            string        `json:"out"`
	Rounds         int           `json:"rounds"`
	Quick          bool          `json:"quick"`
	Size           int64         `json:"size"`
	ConcSize       int64         `json:"conc_size"`
	ManySize       int64         `json:"many_size"`
	Clients        int           `json:"clients"`
	LossySize      int64         `json:"lossy_size"`
	Losses         []float64     `json:"losses_percent"`
	Limits         []int         `json:"limits"` // packets the forwarder holds per direction; 0 unbounded
	ShareSize      int64         `json:"share_size"`
	ShareLimits    []int         `json:"share_limits"`
	Key            string        `json:"-"` // the shared key of the --key rows
	Delay          time.Duration `json:"delay_ns"`
	Timeout        time.Duration `json:"timeout_ns"`
	LossyTimeout   time.Duration `json:"lossy_timeout_ns"`
	Fxsh           string        `json:"fxsh"`
	SkipFxsh       bool          `json:"skip_fxsh"`
	LoopbackCC     string        `json:"loopback_cc"`
	TCPFsync       bool          `json:"tcp_fsync"`
	Seed           uint64        `json:"seed"`
	FxshServerCmds string        `json:"fxsh_server_cmds"`
	FxshClientCmds string        `json:"fxsh_client_cmds"`
	MasterPkg      string        `json:"master_pkg"`
	SearchOps      int           `json:"search_ops"`
	Soak           SoakConfig    `json:"soak"`
}

// Limits on the flags.
const (
	MaxRounds  = 50
	MaxClients = 100
	MaxLosses  = 10
	MaxLimits  = 5
)

var allCases = []string{"loopback", "concurrency", "lossy", "share", "cost", "master"}

// extraCases run only when named: ceiling (the forwarder alone) and soak
// (10 minutes by default, soak.go).
var extraCases = []string{"ceiling", "soak", "classroom"}

// sizeFlag is an int64 flag written as a size ("64MiB").
type sizeFlag struct{ p *int64 }

func (s sizeFlag) String() string {
	if s.p == nil {
		return ""
	}
	return formatSize(*s.p)
}

func (s sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s.p = n
	return nil
}

// parseLimits reads a comma-separated list of forwarder limits (packets
// held per direction, 0 unbounded).
func parseLimits(flag, v string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > RingSlots {
			return nil, fmt.Errorf("%s: %q is not a packet count in 0..%d", flag, f, RingSlots)
		}
		out = append(out, n)
	}
	if len(out) == 0 || len(out) > MaxLimits {
		return nil, fmt.Errorf("%s: want 1..%d limits", flag, MaxLimits)
	}
	return out, nil
}

// parseFlags reads the bench's command line into a Config: the flags with
// their defaults, -quick's smaller defaults for the flags not given, and the
// checks of every value against its named limit.
//
// Kept whole: one flat list of flags a reader scans for a name, then the
// checks in the same order.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	c := Config{Rounds: 3, Size: 1 << 30, ConcSize: 256 << 20, ManySize: 64 << 20, Clients: 20,
		LossySize: 256 << 20, Delay: 10 * time.Millisecond, Timeout: 10 * time.Minute,
		LossyTimeout: 60 * time.Second, LoopbackCC: "cubic", TCPFsync: true, Seed: 1,
		MasterPkg: "./store/memcat", SearchOps: 20000, Soak: defaultSoak(), ShareSize: 1 << 30,
		Key: "fxsh-bench-shared-key-0123456789"}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cases := fs.String("case", strings.Join(allCases, ","), "cases to run, comma-separated: "+strings.Join(allCases, ",")+" (only when named: ceiling, the lossy path's forwarder alone; soak, many clients for 10 minutes)")
	fs.StringVar(&c.DataDir, "data", "/var/tmp/fxsh-bench", "folder for source files and downloads (on disk, not tmpfs)")
	fs.StringVar(&c.Out, "out", "bench-results.json", "JSON results file")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "rounds per case")
	fs.BoolVar(&c.Quick, "quick", false, "every case small and once: a smoke test in under 2 minutes")
	fs.Var(sizeFlag{&c.Size}, "size", "file size of the loopback and cost cases; caps the other cases' sizes")
	fs.Var(sizeFlag{&c.ConcSize}, "conc-size", "size of each of the three concurrent files")
	fs.Var(sizeFlag{&c.ManySize}, "many-size", "size each of the many clients downloads")
	fs.IntVar(&c.Clients, "clients", c.Clients, "clients downloading at once in the concurrency case")
	fs.Var(sizeFlag{&c.LossySize}, "lossy-size", "file size on the lossy path")
	losses := fs.String("loss", "0,1,5", "loss rates of the lossy path in percent, comma-separated")
	limits := fs.String("limits", "0,1000,200", "packets the lossy path's forwarder holds per direction, tail-dropping beyond (netem's limit), comma-separated; 0 is unbounded")
	fs.Var(sizeFlag{&c.ShareSize}, "share-size", "file size of each flow in the share case (one fxsh and one TCP bbr download at once)")
	shareLimits := fs.String("share-limits", "1000,200", "forwarder limits of the share case, comma-separated")
	fs.DurationVar(&c.Delay, "delay", c.Delay, "one-way delay of the lossy path, each way")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "time limit of one download on loopback")
	fs.DurationVar(&c.LossyTimeout, "lossy-timeout", c.LossyTimeout, "time limit of one download on the lossy path (TCP reports the bytes it got)")
	fs.StringVar(&c.Fxsh, "fxsh", "", "fxsh binary (default: go build the module into the work folder)")
	fs.BoolVar(&c.SkipFxsh, "skip-fxsh", false, "run the references only")
	fs.StringVar(&c.LoopbackCC, "loopback-cc", c.LoopbackCC, "congestion control of the TCP reference on loopback")
	fs.BoolVar(&c.TCPFsync, "tcp-fsync", c.TCPFsync, "the TCP reference fsyncs each file, as fxsh does before renaming")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the random loss")
	fs.StringVar(&c.FxshServerCmds, "fxsh-server-cmds", "", "fxsh commands run by the server before serving (e.g. 'set rate 50MB/s')")
	fs.StringVar(&c.FxshClientCmds, "fxsh-client-cmds", "", "fxsh commands run by each client before get")
	fs.StringVar(&c.MasterPkg, "master-pkg", c.MasterPkg, "package whose BenchmarkSearch/BenchmarkRegister the master case runs")
	fs.IntVar(&c.SearchOps, "search-ops", c.SearchOps, "searches per round in the master case")
	c.Soak.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Quick {
		for name, apply := range map[string]func(){
			"rounds": func() { c.Rounds = 1 }, "size": func() { c.Size = 64 << 20 },
			"conc-size": func() { c.ConcSize = 32 << 20 }, "many-size": func() { c.ManySize = 8 << 20 },
			"lossy-size": func() { c.LossySize = 16 << 20 }, "lossy-timeout": func() { c.LossyTimeout = 8 * time.Second },
			"share-size": func() { c.ShareSize = 32 << 20 },
			"search-ops": func() { c.SearchOps = 2000 }, "timeout": func() { c.Timeout = time.Minute },
		} {
			if !set[name] {
				apply()
			}
		}
		c.Soak.quick(set)
	}
	if set["size"] {
		for name, p := range map[string]*int64{"conc-size": &c.ConcSize, "many-size": &c.ManySize, "lossy-size": &c.LossySize, "share-size": &c.ShareSize} {
			if !set[name] {
				*p = min(*p, c.Size)
			}
		}
	}
	for _, name := range strings.Split(*cases, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(allCases, name) && !slices.Contains(extraCases, name) {
			return c, fmt.Errorf("-case: unknown case %q (have %s)", name, strings.Join(append(slices.Clone(allCases), extraCases...), ","))
		}
		if !slices.Contains(c.Cases, name) {
			c.Cases = append(c.Cases, name)
		}
	}
	for _, l := range strings.Split(*losses, ",") {
		p, err := strconv.ParseFloat(strings.TrimSpace(l), 64)
		if err != nil || p < 0 || p >= 100 {
			return c, fmt.Errorf("-loss: %q is not a percentage in [0, 100)", l)
		}
		c.Losses = append(c.Losses, p)
	}
	var err error
	if c.Limits, err = parseLimits("-limits", *limits); err != nil {
		return c, err
	}
	if c.ShareLimits, err = parseLimits("-share-limits", *shareLimits); err != nil {
		return c, err
	}
	switch {
	case len(c.Cases) == 0:
		return c, errors.New("-case: no case")
	case c.Rounds < 1 || c.Rounds > MaxRounds:
		return c, fmt.Errorf("-rounds: want 1..%d", MaxRounds)
	case c.Clients < 1 || c.Clients > MaxClients:
		return c, fmt.Errorf("-clients: want 1..%d", MaxClients)
	case len(c.Losses) > MaxLosses:
		return c, fmt.Errorf("-loss: at most %d rates", MaxLosses)
	case c.Delay < 0 || c.Delay > time.Second:
		return c, errors.New("-delay: want 0..1s")
	case c.Timeout <= 0 || c.LossyTimeout <= 0:
		return c, errors.New("-timeout, -lossy-timeout: want a positive duration")
	case c.SearchOps < 1 || c.SearchOps > 10_000_000:
		return c, errors.New("-search-ops: want 1..10000000")
	}
	if err := c.Soak.validate(); err != nil {
		return c, err
	}
	if !filepath.IsAbs(c.DataDir) {
		abs, err := filepath.Abs(c.DataDir)
		if err != nil {
			return c, fmt.Errorf("-data: %w", err)
		}
		c.DataDir = abs
	}
	return c, nil
}

// bench is one run.
type bench struct {
	cfg   Config
	out   io.Writer
	facts Facts
	root  string // module root
	self  string // this binary, for the hidden subcommands
	fxsh  string
	work  string // per-run temporary folder under DataDir, removed at exit

	mu    sync.Mutex // guards procs and seq
	procs []*proc
	seq   int

	path      *lossyPath  // the lossy path, once built
	loopback  []Transfer  // loopback transfers, reused by the cost case
	many      []Transfer  // the many-clients transfers, reused by the cost case
	manyCPU   [][]float64 // server CPU per round per impl: [round]{fxsh, tcp}
	ceilingMB float64     // forwarder ceiling, MB/s, once measured
}

// start starts a child process and keeps it for cleanup.
func (b *bench) start(ctx context.Context, name string, argv, env []string) (*proc, error) {
	p, err := startProc(ctx, name, argv, env)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	return p, nil
}

// stopAll stops every child still running, each by its own process group.
func (b *bench) stopAll() {
	b.mu.Lock()
	ps := b.procs
	b.procs = nil
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.stop)
	}
	wg.Wait()
}

// tempDir makes a fresh folder under the run's work folder.
func (b *bench) tempDir(prefix string) string {
	b.mu.Lock()
	b.seq++
	n := b.seq
	b.mu.Unlock()
	d := filepath.Join(b.work, fmt.Sprintf("%s-%d", prefix, n))
	os.MkdirAll(d, 0o755)
	return d
}

// moduleRoot finds fxsh's module root with the go command.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("finding the module: run from inside the fxsh module")
	}
	return filepath.Dir(gomod), nil
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case cmdTCPServe:
			os.Exit(runTCPServe(os.Args[2:], os.Stdout, os.Stderr))
		case cmdTCPGet:
			os.Exit(runTCPGet(os.Args[2:], os.Stdout, os.Stderr))
		case cmdUDPBlast:
			os.Exit(runUDPBlast(os.Args[2:], os.Stdout, os.Stderr))
		case cmdUDPSink:
			os.Exit(runUDPSink(os.Args[2:], os.Stdout, os.Stderr))
		case cmdSoakServe:
			os.Exit(runSoakServe(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: cfg, out: stdout}
	err = b.run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}

// run prepares the run, runs the cases and always cleans up.
func (b *bench) run(ctx context.Context) (err error) {
	if err := os.MkdirAll(b.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if fs, bad := fsName(b.cfg.DataDir); bad {
		return fmt.Errorf("data folder %s is on %s: the files must be on disk (-data)", b.cfg.DataDir, fs)
	}
	lock, err := os.OpenFile(filepath.Join(b.cfg.DataDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("locking the data folder: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("another benchmark is using %s: %w", b.cfg.DataDir, err)
	}
	// Leftovers of a run that crashed: its work folder and namespaces.
	b.work = filepath.Join(b.cfg.DataDir, "work")
	if err := os.RemoveAll(b.work); err != nil {
		return fmt.Errorf("removing old work folder: %w", err)
	}
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		return fmt.Errorf("work folder: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := removeNamespaces(ctx); err != nil {
			return err
		}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		b.stopAll()
		if b.path != nil {
			if cerr := b.path.close(cctx); cerr != nil {
				err = errors.Join(err, fmt.Errorf("removing the lossy path: %w", cerr))
			}
		}
		os.RemoveAll(b.work)
	}()

	if b.root, err = moduleRoot(ctx); err != nil {
		return err
	}
	if b.self, err = os.Executable(); err != nil {
		return fmt.Errorf("finding this binary: %w", err)
	}
	b.facts = gatherFacts(ctx, b.root, b.cfg.DataDir)
	if err := b.prepareFxsh(ctx); err != nil {
		return err
	}
	if b.cfg.Fxsh != "" {
		// The tree's commit says nothing about a binary given with -fxsh.
		b.facts.FxshCommit = givenFxsh(ctx, b.fxsh, b.facts.FxshCommit)
	}
	b.facts.print(b.out)
	res := &Results{Started: time.Now().UTC(), Command: os.Args, Facts: b.facts, Config: b.cfg}
	if err := writeJSON(b.cfg.Out, res); err != nil { // a bad -out fails now, not after the run
		return err
	}
	for _, name := range b.cfg.Cases {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		cr := b.runCase(ctx, name)
		cr.Seconds = time.Since(start).Seconds()
		for i := range cr.Rows {
			cr.Rows[i].finish()
		}
		printCase(b.out, cr)
		res.Cases = append(res.Cases, cr)
		if err := writeJSON(b.cfg.Out, res); err != nil {
			return err
		}
	}
	b.summary(res)
	fmt.Fprintf(b.out, "\nresults: %s\n", b.cfg.Out)
	return ctx.Err()
}

// prepareFxsh builds fxsh unless a binary was given or fxsh is skipped.
func (b *bench) prepareFxsh(ctx context.Context) error {
	if b.cfg.SkipFxsh {
		fmt.Fprintln(b.out, "fxsh: skipped (-skip-fxsh): references only")
		return nil
	}
	if b.cfg.Fxsh != "" {
		abs, err := filepath.Abs(b.cfg.Fxsh)
		if err != nil {
			return fmt.Errorf("-fxsh: %w", err)
		}
		b.fxsh = abs
		return nil
	}
	b.fxsh = filepath.Join(b.work, "fxsh")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.fxsh, ".")
	cmd.Dir = b.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building fxsh: %w: %s", err, out)
	}
	fmt.Fprintf(b.out, "fxsh: built %s\n", b.fxsh)
	return nil
}

func (b *bench) runCase(ctx context.Context, name string) CaseResult {
	var cr CaseResult
	var err error
	switch name {
	case "loopback":
		cr, err = b.caseLoopback(ctx)
	case "concurrency":
		cr, err = b.caseConcurrency(ctx)
	case "lossy":
		cr, err = b.caseLossy(ctx)
	case "share":
		cr, err = b.caseShare(ctx)
	case "ceiling":
		cr, err = b.caseCeiling(ctx)
	case "cost":
		cr, err = b.caseCost(ctx)
	case "master":
		cr, err = b.caseMaster(ctx)
	case "soak":
		cr, err = b.caseSoak(ctx)
	case "classroom":
		cr, err = b.caseClassroom(ctx)
	}
	cr.Name = name
	if err != nil {
		cr.Err = err.Error()
	}
	return cr
}

// summary prints every row with a target once more, at the end.
func (b *bench) summary(res *Results) {
	var all CaseResult
	all.Name = "summary: every target"
	for _, c := range res.Cases {
		for _, r := range c.Rows {
			if r.Target.Op != "" {
				all.Rows = append(all.Rows, r)
			}
		}
	}
	if len(all.Rows) > 0 {
		printCase(b.out, all)
	}
}
