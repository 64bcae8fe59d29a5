// Package shell is fxsh's face: the REPL, its command table, the input modes
// (an interactive readline prompt, or scripts and pipes read line by line),
// the job table shared by every background task, and the rendering of
// tables, progress bars and background events.
//
// Main and Run (run.go) parse the global flags (flags.go) and run a Shell
// (shell.go: its state, its roles, the printer of background lines). A
// Shell reads lines from a UI (ui.go, complete.go), splits them into
// commands (parse.go) and runs them (loop.go) through the command table:
// commands.go lists every area's commands in order, one cmd_*.go file per
// area (index, master, share, get, push with cmd_send.go, jobs, demo; the
// demo's steps are demo_steps.go), plus rc.go (the start-up file) and discover.go (finding
// the master). The network roles live in netproto/ and never print: the
// shell renders what they report — trace.go the protocol trace lines of
// both protocols, capture.go the pcap capture, counters.go the protocol
// counters of jobs -v and stats, jobs.go and render.go the job table and
// tables — through one printer goroutine, so a background event never
// corrupts the line being typed.
package shell

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/netproto/push"
	"github.com/fxshell/fxsh/netproto/seed"
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
	// syntax is how command lines are read (a backslash is an escape, or,
	// on Windows, a character): NativeSyntax; tests set the other.
	syntax Syntax
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
	asking      string             // the prompt of a question being asked (leave.go), or ""
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
	grp      groupTable         // folder downloads' job groups (jobgroup.go)

	pushSender *push.Sender // serves and offers pushed files; made by the first send (cmd_push.go); under mu

	capture capture // trace --pcap FILE (capture.go)
	tr      tracing // trace on|all|off (trace.go)

	disc *discoveryState // what mDNS found (discover.go)
	rc   rcState         // the start-up file being run (rc.go)
}

// errReported marks an error already printed, so callers only stop.
var errReported = errors.New("reported")

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
		syntax:     NativeSyntax,

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
	msg     string
	err     bool
	printed chan struct{} // if not nil, closed once msg is on the screen
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

// notifySync queues a background message and returns once it is printed,
// so a job's end line comes before anything a later command prints (`get
// x; wait; stats` in a script shows the done line above the statistics).
func (s *Shell) notifySync(msg string, isErr bool) {
	ev := event{msg: msg, err: isErr, printed: make(chan struct{})}
	select {
	case s.events <- ev: // queued even if the session is ending: the printer drains
	default:
		select {
		case s.events <- ev:
		case <-s.ctx.Done():
			return
		}
	}
	select {
	case <-ev.printed:
	case <-s.evDone:
	}
}

// printAbove prints a message, first erasing a live block drawn by `wait`.
func (s *Shell) printAbove(ev event) {
	if ev.printed != nil {
		defer close(ev.printed)
	}
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
	defer s.groupJobEnded(ev.Job.ID) // after the job's own line
	sn := ev.Snap
	switch sn.State {
	case JobDone:
		s.notifySync(fmt.Sprintf("%s job %d done: %s %s in %s (%s)", s.pal.ok.Sprint("✓"), sn.ID, sn.Name,
			humanBytes(sn.Done), humanDuration(sn.Elapsed), humanRate(sn.Rate)), false)
	case JobFailed:
		if !ev.Job.MayFail {
			s.failed.Store(true)
		}
		s.notifySync(fmt.Sprintf("%s job %d failed: %s: %v", s.epal.err.Sprint("✗"), sn.ID, sn.Name, sn.Err), true)
	case JobCancelled:
		// A cancelled job did not do what was asked: the exit status says so.
		if !ev.Job.MayFail {
			s.failed.Store(true)
		}
		s.notifySync(fmt.Sprintf("%s job %d cancelled: %s (%s kept for resume)", s.pal.warn.Sprint("-"), sn.ID, sn.Name, humanBytes(sn.Done)), false)
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
