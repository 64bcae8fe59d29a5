// Package shell is fxsh's face: the REPL, its command table, the input modes
// (an interactive readline prompt, or scripts and pipes read line by line),
// the job table shared by every background task, and the rendering of
// tables, progress bars and background events.
//
// Main parses the global flags and runs a Shell. A Shell reads lines from a
// UI (ui.go), splits them into commands (parse.go), dispatches them through
// the command table (commands.go and the cmd_*.go files, one per area), and
// renders what the network roles report. Roles never print: they report
// through values and callbacks that the shell turns into lines, printed by
// one printer goroutine so a background event never corrupts the line being
// typed.
package shell

import (
	"context"
	"errors"
	"fmt"
	"github.com/fxshell/fxsh/netproto/seed"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/netproto/push"
	"github.com/fxshell/fxsh/netproto/transfer"
)

// ExitInterrupted is the exit status of a script or session ended by
// SIGINT or SIGTERM before its end (a shell's 128 + SIGINT). A signal that
// stops a finished script's serving is its normal end, not an interruption.
const ExitInterrupted = 130

// MaxSourceDepth bounds `source` nesting, so a script that sources itself
// fails cleanly instead of recursing forever.
const MaxSourceDepth = 16

// Options are the global flags.
type Options struct {
	Masters []string // master addresses, tried in order
	// MasterGiven: --master or FXSH_MASTER was given, so serve master
	// does not make this shell use its own master.
	MasterGiven bool
	// Discover: with no master given, browse the LAN for one (mDNS) the
	// first time a master is needed (discover.go).
	Discover bool
	NoRC     bool   // --norc: skip the start-up file (rc.go)
	Dir      string // download folder
	Key      string // shared secret ("" = open network)
	Color    bool   // colour on standard output
	ErrColor bool   // colour on standard error
	// LiveOut: standard output is a terminal, so `wait` draws live
	// progress even for a script (fxsh -c 'get big; wait').
	LiveOut bool
	// DemoPause is the pause between the demo's steps at the prompt
	// (0: DefaultDemoPause; negative: none).
	DemoPause time.Duration
}

// role is a network role running in this process (master, share, receive).
type role interface {
	// Describe returns a one-line description for `status`.
	Describe() string
	// Close stops the role cleanly (BYE to the master, close sockets).
	Close(ctx context.Context) error
}

// Shell is one fxsh session.
type Shell struct {
	opts   Options
	ui     UI
	pal    *palette // for standard output
	epal   *palette // for standard error
	set    *Settings
	jobs   *JobTable
	cmds   []*cmdSpec
	byName map[string]*cmdSpec
	ctx    context.Context // the session's lifetime
	stop   context.CancelFunc

	failed atomic.Bool // some command or job failed: exit status 1

	events     chan event    // background messages, printed by one goroutine
	promptPoke chan struct{} // a job ended: redraw the prompt's summary now
	evDone     chan struct{} // closed when the printer has drained events
	outMu      sync.Mutex    // protects liveText: the live block drawn by `wait`
	liveText   string        // what the block printed, to erase it by screen rows

	mu        sync.Mutex // protects the fields below
	roles     map[string]role
	roleOrder []string
	lastNames []string // remote names from the last catalog answer (completion)
	// remoteCache: every remote name, fetched for completion at remoteAt.
	remoteCache []string
	remoteAt    time.Time
	fgCancel    context.CancelFunc // cancels the foreground command (Ctrl-C / SIGINT)
	quit        bool               // quit was asked
	quitForce   bool
	depth       int  // source nesting
	shareDown   bool // the share lost its master (reported once until it is back)
	// shareSeen: the share has registered at least once (so losing the
	// master is "lost", before that "not reachable"); shareListed: the
	// address the master lists it under; shareFirst is closed at the
	// first registration or failure (cmd_share.go).
	shareSeen   bool
	shareListed string
	shareFirst  chan struct{}

	mclient *masterclient.Client // connection for queries, dialled on first use
	seed    *seed.Seeder         // the seeding role (seed.go), started by the first download
	seedMu  sync.Mutex           // serializes starting it (held without mu)

	impair   *transfer.Impair   // demo impairment shared by every role (set loss …)
	counters *transfer.Counters // the whole process's protocol counters (stats)
	suspects *download.Suspects // sources whose bytes failed a whole-file check, left out of later downloads

	pushSender *push.Sender // serves and offers pushed files; made by the first send (cmd_push.go); under mu

	capture capture // trace --pcap FILE (capture.go)
	tr      tracing // trace on|all|off (trace.go)

	disc *discoveryState // what mDNS found (discover.go)
	rc   rcState         // the start-up file being run (rc.go)
}

// errReported marks an error already printed, so callers only stop.
var errReported = errors.New("reported")

// Main runs fxsh with the process's arguments and returns its exit status.
func Main() int {
	return Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// newShell builds a session around ui.
func newShell(ctx context.Context, opts Options, ui UI) *Shell {
	ctx, stop := context.WithCancel(ctx)
	s := &Shell{
		opts:       opts,
		ui:         ui,
		pal:        newPalette(opts.Color),
		epal:       newPalette(opts.ErrColor),
		set:        newSettings(),
		ctx:        ctx,
		stop:       stop,
		events:     make(chan event, 256),
		promptPoke: make(chan struct{}, 1),
		evDone:     make(chan struct{}),
		roles:      map[string]role{},

		impair:   &transfer.Impair{},
		counters: transfer.NewCounters(nil),
		suspects: download.NewSuspects(),
		disc:     newDiscoveryState(),
	}
	s.jobs = NewJobTable(ctx, s.set.Int("parallel"), s.jobEnded)
	s.set.OnChange(s.applySetting)
	s.setTraceLevel("off")
	s.cmds = s.commandTable()
	s.byName = map[string]*cmdSpec{}
	for _, c := range s.cmds {
		s.byName[c.name] = c
		for _, a := range c.aliases {
			s.byName[a] = c
		}
	}
	go s.printer()
	return s
}

// applySetting pushes a changed setting into the parts that use it.
func (s *Shell) applySetting(key, val string) {
	switch key {
	case "parallel":
		s.jobs.SetParallel(s.set.Int("parallel"))
	case "trace":
		s.setTraceLevel(val)
	case "color":
		s.pal.set(val == "on" && s.opts.Color)
		s.epal.set(val == "on" && s.opts.ErrColor)
	case "seed":
		if val == "off" {
			s.stopSeeding()
		}
	case "loss", "dup", "reorder", "delay", "rate":
		if err := s.applyImpair(); err != nil {
			s.warn("%s: %v", key, err)
		}
	}
}

// event is one background message; err ones go to standard error.
type event struct {
	msg string
	err bool
}

// notify queues a background message; it is printed above the prompt.
func (s *Shell) notify(msg string) {
	select {
	case s.events <- event{msg: msg}:
	case <-s.ctx.Done():
	}
}

// notifyErr queues a background error message (standard error).
func (s *Shell) notifyErr(msg string) {
	select {
	case s.events <- event{msg: msg, err: true}:
	case <-s.ctx.Done():
	}
}

// printer is the one goroutine that prints background messages.
func (s *Shell) printer() {
	defer close(s.evDone)
	for {
		select {
		case ev := <-s.events:
			s.printAbove(ev)
		case <-s.ctx.Done():
			for {
				select {
				case ev := <-s.events:
					s.printAbove(ev)
				default:
					return
				}
			}
		}
	}
}

// printAbove prints a message, first erasing a live block drawn by `wait`.
func (s *Shell) printAbove(ev event) {
	msg := ev.msg
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.eraseLiveLocked()
	if ev.err {
		s.ui.PrintErr(msg)
	} else {
		s.ui.Print(msg)
	}
}

// eraseLiveLocked erases the live block drawn by `wait`, counting the rows
// its lines take at the width the terminal has now: a window made narrower
// since the block was drawn has wrapped its lines onto more rows. The
// caller holds outMu.
func (s *Shell) eraseLiveLocked() {
	if s.liveText == "" {
		return
	}
	s.ui.Print(eraseLines(screenRows(s.liveText, s.ui.Width())))
	s.liveText = ""
}

// eraseLines moves the cursor up n lines, clearing them.
func eraseLines(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("\x1b[1A\x1b[2K")
	}
	b.WriteString("\r")
	return b.String()
}

// jobEnded reports a job that finished, failed or was cancelled.
func (s *Shell) jobEnded(ev JobEvent) {
	defer s.pokePrompt()
	sn := ev.Snap
	switch sn.State {
	case JobDone:
		s.notify(fmt.Sprintf("%s job %d done: %s %s in %s (%s)", s.pal.ok.Sprint("✓"), sn.ID, sn.Name,
			humanBytes(sn.Done), humanDuration(sn.Elapsed), humanRate(sn.Rate)))
	case JobFailed:
		if !ev.Job.MayFail {
			s.failed.Store(true)
		}
		s.notifyErr(fmt.Sprintf("%s job %d failed: %s: %v", s.epal.err.Sprint("✗"), sn.ID, sn.Name, sn.Err))
	case JobCancelled:
		// A cancelled job did not do what was asked: the exit status says so.
		if !ev.Job.MayFail {
			s.failed.Store(true)
		}
		s.notify(fmt.Sprintf("%s job %d cancelled: %s (%s kept for resume)", s.pal.warn.Sprint("-"), sn.ID, sn.Name, humanBytes(sn.Done)))
	}
}

// pokePrompt asks the prompt updater to redraw the job summary now.
func (s *Shell) pokePrompt() {
	select {
	case s.promptPoke <- struct{}{}:
	default:
	}
}

// out prints command output on standard output.
func (s *Shell) out(format string, a ...any) {
	s.ui.Print(fmt.Sprintf(format, a...))
}

// warn prints a warning on standard error.
func (s *Shell) warn(format string, a ...any) {
	s.ui.PrintErr(s.epal.warn.Sprint("warning: ") + fmt.Sprintf(format, a...) + "\n")
}

// addRole records a running role under name.
func (s *Shell) addRole(name string, r role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.roles[name]; !ok {
		s.roleOrder = append(s.roleOrder, name)
	}
	s.roles[name] = r
}

// removeRole forgets a role (already closed).
func (s *Shell) removeRole(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.roles, name)
	for i, n := range s.roleOrder {
		if n == name {
			s.roleOrder = append(s.roleOrder[:i], s.roleOrder[i+1:]...)
			break
		}
	}
}

// role returns a running role, or nil.
func (s *Shell) role(name string) role {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roles[name]
}

// serving reports whether any role is running.
func (s *Shell) serving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.roles) > 0
}

// closeRoles stops every role, newest first, within a bounded time.
func (s *Shell) closeRoles() {
	s.mu.Lock()
	order := append([]string(nil), s.roleOrder...)
	s.mu.Unlock()
	for i := len(order) - 1; i >= 0; i-- {
		r := s.role(order[i])
		if r == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.Close(ctx); err != nil {
			s.warn("stopping %s: %v", order[i], err)
		}
		cancel()
		s.removeRole(order[i])
	}
}

// setLastNames remembers remote names for completion.
func (s *Shell) setLastNames(names []string) {
	sort.Strings(names)
	s.mu.Lock()
	s.lastNames = names
	s.mu.Unlock()
}

// lookup finds a command by name or alias.
func (s *Shell) lookup(name string) (*cmdSpec, error) {
	if c, ok := s.byName[name]; ok {
		return c, nil
	}
	msg := fmt.Sprintf("unknown command %q", name)
	var names []string
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	if sug := suggest(name, names); sug != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", sug)
	} else {
		msg += " (type help for the list)"
	}
	return nil, errors.New(msg)
}

// cmdError is a command's failure, named by the command.
type cmdError struct {
	cmd string
	err error
}

func (e *cmdError) Error() string { return e.cmd + ": " + e.err.Error() }
func (e *cmdError) Unwrap() error { return e.err }

// exec runs one command in the foreground. Ctrl-C (SIGINT) cancels ctx.
func (s *Shell) exec(ctx context.Context, c Command) error {
	spec, err := s.lookup(c.Words[0])
	if err != nil {
		return err
	}
	args := c.Words[1:]
	asJSON := false
	if spec.json {
		args, asJSON = takeJSONFlag(args)
		asJSON = asJSON || s.set.Get("format") == "json"
	}
	if len(args) < spec.minArgs || spec.maxArgs >= 0 && len(args) > spec.maxArgs {
		return &cmdError{spec.name, fmt.Errorf("usage: %s", spec.usage)}
	}
	err = s.foreground(ctx, func(ctx context.Context) error {
		return spec.run(ctx, s, &call{s: s, cmd: c, spec: spec, args: args, json: asJSON})
	})
	if err != nil {
		if errors.Is(err, errReported) {
			return err
		}
		return &cmdError{spec.name, err}
	}
	return nil
}

// foreground runs fn as the foreground command: Ctrl-C (SIGINT) cancels
// its context, so nothing the prompt runs is without a way out.
func (s *Shell) foreground(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.fgCancel = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.fgCancel = nil
		s.mu.Unlock()
	}()
	return fn(ctx)
}

// interruptForeground cancels the running foreground command, if any.
func (s *Shell) interruptForeground() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fgCancel != nil {
		s.fgCancel()
		return true
	}
	return false
}

// quitting reports whether quit was asked.
func (s *Shell) quitting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quit
}

// lineReader yields a script's lines.
type lineReader interface {
	ReadLine() (string, error)
}

// runScript runs every line of r. where names a place in error messages
// from the line number and the command's number in the whole script.
// It returns false if the script stopped on a failure.
func (s *Shell) runScript(ctx context.Context, r lineReader, where func(line, cmd int) string) bool {
	k := 0
	for n := 1; ; n++ {
		if s.quitting() || ctx.Err() != nil {
			return true
		}
		line, err := r.ReadLine()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil && !errors.Is(err, errLongLine) {
			s.reportAt(where(n, k+1), fmt.Errorf("reading: %w", err))
			s.failed.Store(true)
			return false
		}
		var cmds []Command
		if err == nil {
			cmds, err = ParseLine(line)
		}
		if err != nil {
			s.reportAt(where(n, k+1), err)
			s.failed.Store(true)
			if s.set.On("errexit") {
				return false
			}
			continue
		}
		for _, c := range cmds {
			k++
			if err := s.exec(ctx, c); err != nil {
				if !errors.Is(err, errReported) {
					s.reportAt(where(n, k), err)
				}
				if c.MayFail {
					continue
				}
				s.failed.Store(true)
				if s.set.On("errexit") {
					return false
				}
			}
			if s.quitting() {
				return true
			}
		}
	}
}

// reportAt prints an error for a script line.
func (s *Shell) reportAt(where string, err error) {
	prefix := "fxsh: "
	if where != "" {
		prefix += where + ": "
	}
	s.ui.PrintErr(s.epal.err.Sprint(prefix) + err.Error() + "\n")
}

// report prints an error at the prompt.
func (s *Shell) report(err error) {
	s.ui.PrintErr(s.epal.err.Sprint("error: ") + err.Error() + "\n")
}

// interactive runs the prompt until quit or Ctrl-D.
func (s *Shell) interactive(ctx context.Context) {
	s.ui.SetPrompt(s.prompt())
	stopPrompt := s.promptUpdater(ctx)
	defer stopPrompt()
	for !s.quitting() && ctx.Err() == nil {
		s.pokePrompt() // the last command may have started or ended jobs
		line, err := s.ui.ReadLine()
		if errors.Is(err, ErrInterrupt) {
			continue // Ctrl-C drops the line
		}
		if errors.Is(err, io.EOF) {
			// Ctrl-D is quit, run as a foreground command so that
			// Ctrl-C during its wait for jobs returns to the prompt.
			s.out("quit\n")
			if err := s.foreground(ctx, func(ctx context.Context) error {
				return s.cmdQuitNow(ctx, false)
			}); err != nil {
				s.report(err)
			}
			continue
		}
		if err != nil {
			s.report(err)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		cmds, err := ParseLine(line)
		if err != nil {
			s.report(err)
			continue
		}
		if len(cmds) > 0 && !hasKeyCommand(cmds) {
			s.ui.SaveHistory(line)
		}
		for _, c := range cmds {
			if err := s.exec(ctx, c); err != nil && !errors.Is(err, errReported) {
				s.report(err)
			}
			if s.quitting() {
				break
			}
		}
	}
}

// prompt returns the prompt, with a short job summary when jobs run.
func (s *Shell) prompt() string {
	p := s.pal.prompt.Sprint("fxsh>") + " "
	active := s.jobs.Active()
	if len(active) == 0 {
		return p
	}
	var done, total int64
	var rate float64
	now := time.Now()
	for _, j := range active {
		sn := j.Snapshot(now)
		done += sn.Done
		if sn.Total > 0 {
			total += sn.Total
		}
		rate += sn.Rate
	}
	pct := ""
	if total > 0 {
		pct = fmt.Sprintf(" %.0f%%", 100*float64(done)/float64(total))
	}
	// The summary must leave room to type: at least promptRoom cells
	// after it at the current width. It loses the rate first, then the
	// percentage, then goes.
	width := s.ui.Width()
	n := plural(len(active), "job", "jobs")
	for _, sum := range []string{
		fmt.Sprintf("[%s%s %s]", n, pct, humanRate(rate)),
		fmt.Sprintf("[%s%s]", n, pct),
		fmt.Sprintf("[%s]", n),
	} {
		if width <= 0 || cells(sum)+1+cells("fxsh> ")+promptRoom <= width {
			return s.pal.dim.Sprint(sum) + " " + p
		}
	}
	return p
}

// promptRoom is how many cells the prompt's job summary leaves for typing.
const promptRoom = 20

// promptUpdater refreshes the prompt's job summary once a second, and at
// once when a job ends (pokePrompt), so it never shows jobs that are gone.
func (s *Shell) promptUpdater(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := ""
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-s.promptPoke:
			}
			if p := s.prompt(); p != last {
				s.ui.SetPrompt(p)
				last = p
			}
		}
	}()
	return func() { cancel(); <-done }
}

// cmdQuitNow ends the session: it waits for downloads (or cancels them with
// force), then stops the roles.
func (s *Shell) cmdQuitNow(ctx context.Context, force bool) error {
	if force {
		s.jobs.CancelAll()
	}
	if active := s.jobs.Active(); len(active) > 0 {
		hint := "quit -f cancels them"
		if s.ui.IsTerminal() {
			hint = "Ctrl-C returns to the prompt; quit -f cancels them"
		}
		s.ui.PrintErr(fmt.Sprintf("waiting for %s to end (%s)\n", plural(len(active), "job", "jobs"), hint))
		if err := s.waitJobs(ctx, active); err != nil && errors.Is(err, context.Canceled) {
			n := len(s.jobs.Active())
			return fmt.Errorf("not quitting: %s still running (quit -f cancels them)", plural(n, "job", "jobs"))
		}
	}
	s.mu.Lock()
	s.quit = true
	s.quitForce = force
	s.mu.Unlock()
	return nil
}

// Run runs fxsh with args and the given standard streams, returning the
// exit status: 0 if every command and job succeeded, 1 if any failed, 2 for
// bad flags, 130 if interrupted.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl, err := parseFlags(args, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "fxsh: %v\n", err)
		fmt.Fprintln(stderr, "usage: fxsh [--master HOST:PORT|auto] [--dir DIR] [--key SECRET] [--no-color] [--norc] [-c 'CMD; CMD' | SCRIPT]")
		return 2
	}
	if fl.version {
		fmt.Fprint(stdout, versionText())
		return 0
	}
	if fl.help {
		s := newShell(context.Background(), fl.opts, newPlainUI(strings.NewReader(""), stdout, stderr))
		w := termWidth(stdout)
		if w <= 0 {
			w = helpWidth
		}
		fmt.Fprint(stdout, wrapLines(usageText, w))
		fmt.Fprint(stdout, s.helpText(w))
		s.stop()
		return 0
	}
	stdinTTY, stdoutTTY := isTerminal(stdin), isTerminal(stdout)
	noColor := fl.noColor || os.Getenv("NO_COLOR") != ""
	fl.opts.Color = stdoutTTY && !noColor
	fl.opts.LiveOut = stdoutTTY
	fl.opts.ErrColor = isTerminal(stderr) && !noColor

	var ui UI
	interactive := fl.command == "" && fl.script == "" && stdinTTY && stdoutTTY
	if interactive {
		var sh *Shell
		tui, err := newTermUI("fxsh> ", &completer{get: func() *Shell { return sh }})
		if err != nil {
			fmt.Fprintf(stderr, "fxsh: terminal: %v\n", err)
			return 1
		}
		ui = tui
		sh = newShell(context.Background(), fl.opts, ui)
		return sh.main(interactive, fl)
	}
	ui = newPlainUI(stdin, stdout, stderr)
	return newShell(context.Background(), fl.opts, ui).main(false, fl)
}

// main runs the session in its mode and returns the exit status.
func (s *Shell) main(interactive bool, fl flags) int {
	defer s.ui.Close()
	ignoreStop() // Ctrl-Z must not stop a process that serves others
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// runCtx ends the script early on SIGINT/SIGTERM (scripts) or SIGTERM
	// (interactive); SIGINT interactively only stops the foreground command.
	runCtx, endRun := context.WithCancel(s.ctx)
	defer endRun()
	interrupted := atomic.Bool{}
	// serving: the script has ended and fxsh only serves; SIGINT/SIGTERM
	// is then the normal way to stop, not an interruption.
	serving := atomic.Bool{}
	sigDone := make(chan struct{})
	defer close(sigDone)
	serveStop := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-sigDone:
				return
			case sig := <-sigs:
				if interactive && sig == syscall.SIGINT {
					s.interruptForeground()
					continue
				}
				if !serving.Load() && !interrupted.Swap(true) {
					endRun()
					s.interruptForeground()
				}
				select {
				case serveStop <- struct{}{}:
				default:
				}
			}
		}
	}()

	ok := true
	if interactive {
		s.out("fxsh %s — type help for commands, Ctrl-D to quit\n", Version)
	}
	if !s.opts.NoRC && !s.runRC(runCtx, interactive) {
		fl.command, fl.script, ok = "", "", false // a script does not start
	}
	switch {
	case !ok:
	case interactive:
		s.interactive(runCtx)
	case fl.command != "":
		ok = s.runScript(runCtx, &splitReader{text: fl.command}, func(_, k int) string {
			return fmt.Sprintf("-c: command %d", k)
		})
	case fl.script != "":
		f, err := os.Open(fl.script)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fxsh: %v\n", err)
			s.stop()
			return 1
		}
		defer f.Close()
		ok = s.runScript(runCtx, newPlainUI(f, io.Discard, io.Discard), func(n, _ int) string {
			return fmt.Sprintf("%s: line %d", fl.script, n)
		})
	default:
		ok = s.runScript(runCtx, s.ui, func(n, _ int) string { return fmt.Sprintf("line %d", n) })
	}
	_ = ok

	// End of input: wait for downloads (a script must not leave them
	// half-done), then keep serving until a signal if a role runs.
	if interrupted.Load() {
		msg := "fxsh: interrupted"
		if n := len(s.jobs.Active()); n > 0 {
			msg += fmt.Sprintf("; %s cancelled (partial files kept for a resume)", plural(n, "job", "jobs"))
		}
		s.ui.PrintErr(msg + "\n")
		s.jobs.CancelAll()
	}
	if active := s.jobs.Active(); len(active) > 0 {
		if err := s.waitJobs(runCtx, active); err != nil {
			s.jobs.CancelAll()
			s.jobs.Wait(context.Background(), active)
		}
	}
	if ok && !s.quitting() && !interrupted.Load() && s.serving() {
		serving.Store(true)
		if !interrupted.Load() {
			s.ui.PrintErr(s.epal.dim.Sprint("fxsh: end of script; still serving (Ctrl-C or SIGTERM stops)") + "\n")
			select {
			case <-serveStop:
			case <-s.ctx.Done():
			}
		}
	}
	s.stopSeeding()
	s.dropClient()
	s.closeRoles()
	s.closeCapture()
	s.stop()
	<-s.evDone
	switch {
	case interrupted.Load():
		return ExitInterrupted // the shell's convention: 128 + SIGINT
	case s.failed.Load():
		return 1
	}
	return 0
}

// splitReader yields the commands of -c one line at a time; ';' already
// separates commands within a line, so the whole text is one line per
// newline.
type splitReader struct {
	text string
	done bool
}

func (r *splitReader) ReadLine() (string, error) {
	if r.done || r.text == "" {
		return "", io.EOF
	}
	i := strings.IndexByte(r.text, '\n')
	if i < 0 {
		r.done = true
		return r.text, nil
	}
	line := r.text[:i]
	r.text = r.text[i+1:]
	return line, nil
}

// masterChanged drops connections to the old master(s), so the next query
// or registration uses the new ones.
func (s *Shell) masterChanged() {
	s.dropClient()
}
