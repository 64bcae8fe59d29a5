package shell

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// cmdSpec is one entry of the command table.
type cmdSpec struct {
	name     string
	aliases  []string
	group    string
	usage    string
	summary  string
	detail   string
	example  string
	minArgs  int
	maxArgs  int // -1: any number
	run      func(ctx context.Context, s *Shell, c *call) error
	complete func(s *Shell, c *compCtx) []string
	// json: the command takes --json (and honours `set format json`):
	// it prints one JSON document instead of its text (jsonout.go).
	json bool
}

// call is one invocation of a command.
type call struct {
	s    *Shell
	cmd  Command
	spec *cmdSpec
	args []string
	json bool // print one JSON document (--json, or set format json)
}

// flags splits c.args into positional words and flags. spec maps each flag
// (e.g. "-o", "--udp") to whether it takes a value. "--" ends flags.
func (c *call) flags(spec map[string]bool) (pos []string, set map[string]string, err error) {
	set = map[string]string{}
	for i := 0; i < len(c.args); i++ {
		a := c.args[i]
		if a == "--" {
			return append(pos, c.args[i+1:]...), set, nil
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		takes, ok := spec[name]
		if !ok {
			var known []string
			for k := range spec {
				known = append(known, k)
			}
			sort.Strings(known)
			if len(known) == 0 {
				return nil, nil, fmt.Errorf("unknown flag %q (usage: %s)", a, c.spec.usage)
			}
			return nil, nil, fmt.Errorf("unknown flag %q (flags: %s)", a, strings.Join(known, " "))
		}
		switch {
		case takes && !hasVal:
			if i+1 >= len(c.args) {
				return nil, nil, fmt.Errorf("flag %s needs a value", name)
			}
			i++
			val = c.args[i]
		case !takes && hasVal:
			return nil, nil, fmt.Errorf("flag %s takes no value", name)
		}
		set[name] = val
	}
	return pos, set, nil
}

// groups orders the help listing.
var groups = []string{"Index", "Transfers", "Jobs", "Shell"}

// commandTable is every command, area by area, in this order: the shell's
// own, jobs, then the network areas (cmd_*.go) and the start-up file's
// (rc.go). A new area is added here; nothing registers itself.
func (s *Shell) commandTable() []*cmdSpec {
	var t []*cmdSpec
	for _, area := range []func() []*cmdSpec{
		shellCommands,
		jobCommands,
		demoCommands,   // cmd_demo.go
		getCommands,    // cmd_get.go: get, stats, trace
		mirrorCommands, // cmd_mirror.go: mirror (and get -r, list FOLDER/, "**")
		indexCommands,  // cmd_index.go: list, search, peers
		masterCommands, // cmd_master.go: serve, master
		pushCommands,   // cmd_push.go: receive, send, offers, accept, refuse
		shareCommands,  // cmd_share.go: share, unshare, rescan
		rcCommands,     // rc.go
	} {
		t = append(t, area()...)
	}
	return t
}

func shellCommands() []*cmdSpec {
	return []*cmdSpec{
		{
			name: "help", group: "Shell", usage: "help [CMD]", maxArgs: 1,
			summary: "list the commands, or show one in full",
			example: "help get",
			run:     cmdHelp,
			complete: func(s *Shell, c *compCtx) []string {
				if c.argIndex == 0 {
					return s.commandNames()
				}
				return nil
			},
		},
		{
			name: "set", group: "Shell", usage: "set [KEY [VALUE]]", maxArgs: 2,
			summary: "list the settings, show one, or change one",
			detail:  "Values are checked before they are taken; an unknown key or a bad value is an error.",
			example: "set parallel 8",
			run:     cmdSet,
			complete: func(s *Shell, c *compCtx) []string {
				switch c.argIndex {
				case 0:
					return s.set.Names()
				case 1:
					if d, ok := s.set.defs[c.prev[0]]; ok {
						return d.values
					}
				}
				return nil
			},
		},
		{
			name: "status", group: "Shell", usage: "status [--json]", maxArgs: 0, json: true,
			summary: "roles running, their addresses, the master in use",
			run:     cmdStatus,
		},
		{
			name: "source", group: "Shell", usage: "source FILE", minArgs: 1, maxArgs: 1,
			summary: "run the commands in FILE",
			detail:  "The file's commands run as a script: the first failure stops it (unless errexit is off).",
			example: "source setup.fxsh",
			run:     cmdSource,
			complete: func(s *Shell, c *compCtx) []string {
				return localPaths(c.cur)
			},
		},
		{
			name: "echo", group: "Shell", usage: "echo [WORD...]", maxArgs: -1,
			summary: "print the words (for scripts and demos)",
			run: func(_ context.Context, s *Shell, c *call) error {
				s.out("%s\n", strings.Join(c.args, " "))
				return nil
			},
		},
		{
			name: "sleep", group: "Shell", usage: "sleep DURATION", minArgs: 1, maxArgs: 1,
			summary: "pause a script (e.g. 500ms, 2s); Ctrl-C stops it",
			run:     cmdSleep,
		},
		{
			name: "quit", aliases: []string{"exit", "bye"}, group: "Shell", usage: "quit [-f]", maxArgs: 1,
			summary: "wait for downloads, stop serving and leave (at the prompt, asks first if others download from your share); -f cancels downloads (partial files kept) and does not ask",
			run: func(ctx context.Context, s *Shell, c *call) error {
				_, f, err := c.flags(map[string]bool{"-f": false})
				if err != nil {
					return err
				}
				_, force := f["-f"]
				return s.cmdQuitNow(ctx, force)
			},
		},
	}
}

// commandNames returns every command name, sorted.
func (s *Shell) commandNames() []string {
	var out []string
	for _, c := range s.cmds {
		out = append(out, c.name)
	}
	sort.Strings(out)
	return out
}

const usageText = `fxsh — a file-sharing shell

usage: fxsh [flags]                 interactive prompt (or read commands from a pipe)
       fxsh [flags] -c 'CMD; CMD'   run these commands
       fxsh [flags] SCRIPT          run a script file

flags:
  --master HOST:PORT[,HOST:PORT]  master(s) to use (env FXSH_MASTER); default or "auto": find it on
                                  the LAN (mDNS), else 127.0.0.1:1234 (FXSH_DISCOVERY=off: no mDNS;
                                  =IFACE[,IFACE]: only there)
  --dir DIR                       download folder (default .)
  --key SECRET                    shared key (env FXSH_KEY); without one the network is open
  --no-color                      no colour (also NO_COLOR=1)
  --norc                          do not run the start-up file (CONFIG/fxsh/fxshrc)
  --version                       print the version
  --help                          this text

Scripts stop at the first failed command (exit status 1); write -cmd to let a command fail.
At the end of a script fxsh waits for downloads, then keeps serving until Ctrl-C if a role runs.

`

// helpOrder ranks commands within their group in `help` (others follow).
var helpOrder = map[string]int{
	"serve": 1, "master": 2, "share": 3, "unshare": 4, "rescan": 5, "list": 6, "search": 7, "peers": 8,
	"get": 1, "send": 2, "receive": 3, "offers": 4, "accept": 5, "refuse": 6, "stats": 7, "trace": 8, "demo": 9,
}

// helpUsageWidth is the widest usage shown beside its summary; a longer one
// gets a line of its own.
const helpUsageWidth = 30

// helpWidth is the width help text is wrapped to when standard output is
// not a terminal (a pipe, a file): the width most terminals open at.
const helpWidth = 80

// textWidth is the width to wrap prose to: the terminal's, or helpWidth.
func (s *Shell) textWidth() int {
	if w := s.ui.Width(); w > 0 {
		return w
	}
	return helpWidth
}

// helpText lists the commands by group, wrapped to width cells: a summary
// that does not fit continues under itself, and a usage too long to sit
// beside the summaries gets a line of its own.
func (s *Shell) helpText(width int) string {
	var b strings.Builder
	for _, g := range groups {
		var rows []*cmdSpec
		for _, c := range s.cmds {
			if c.group == g {
				rows = append(rows, c)
			}
		}
		if len(rows) == 0 {
			continue
		}
		sort.SliceStable(rows, func(i, j int) bool {
			ri, rj := helpOrder[rows[i].name], helpOrder[rows[j].name]
			if ri == 0 {
				ri = 100
			}
			if rj == 0 {
				rj = 100
			}
			return ri < rj
		})
		b.WriteString(s.pal.head.Sprint(g) + "\n")
		usageW := min(helpUsageWidth, max(12, width/3))
		w := 0
		for _, c := range rows {
			if cells(c.usage) <= usageW {
				w = max(w, cells(c.usage))
			}
		}
		indent := strings.Repeat(" ", 2+w+2)
		for _, c := range rows {
			if cells(c.usage) > w {
				b.WriteString("  " + wrapText(c.usage, width-1, "    ") + "\n" + indent)
			} else {
				b.WriteString("  " + padCells(c.usage, w) + "  ")
			}
			b.WriteString(wrapText(c.summary, width-1, indent) + "\n")
		}
	}
	return b.String()
}

// wrapLines wraps each line of a hand-laid-out text (usageText) to width
// cells; a line that overflows continues under its second column (the text
// after its first run of two spaces), or under its own indent.
func wrapLines(text string, width int) string {
	var b strings.Builder
	for i, l := range strings.Split(text, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		if cells(l) <= width-1 {
			b.WriteString(l)
			continue
		}
		lead := len(l) - len(strings.TrimLeft(l, " "))
		col := lead
		if k := strings.Index(l[lead:], "  "); k > 0 {
			rest := l[lead+k:]
			col = lead + k + len(rest) - len(strings.TrimLeft(rest, " "))
		}
		if col > width/2 {
			col = lead
		}
		head := l[:col]
		b.WriteString(head + wrapText(l[col:], width-1, strings.Repeat(" ", cells(head))))
	}
	return b.String()
}

func cmdHelp(_ context.Context, s *Shell, c *call) error {
	width := s.textWidth()
	if len(c.args) == 0 {
		s.out("%s", s.helpText(width))
		s.out("%s\n", wrapText("Type help CMD for details. Write -CMD in a script to let it fail without stopping.", width-1, ""))
		s.out("%s\n", wrapText(s.syntax.help(), width-1, ""))
		return nil
	}
	spec, err := s.lookup(c.args[0])
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n  %s\n", s.pal.head.Sprint("usage:"), wrapText(spec.usage, width-1, "       "),
		wrapText(spec.summary, width-1, "  "))
	if spec.detail != "" {
		fmt.Fprintf(&b, "\n  %s\n", wrapText(spec.detail, width-1, "  "))
	}
	if len(spec.aliases) > 0 {
		fmt.Fprintf(&b, "\n  also: %s\n", strings.Join(spec.aliases, ", "))
	}
	if spec.example != "" {
		fmt.Fprintf(&b, "\n%s\n  %s\n", s.pal.head.Sprint("example:"), spec.example)
	}
	s.out("%s", b.String())
	return nil
}

func cmdSet(_ context.Context, s *Shell, c *call) error {
	switch len(c.args) {
	case 0:
		rows := [][]string{{"SETTING", "VALUE", "DEFAULT", "MEANING"}}
		for _, n := range s.set.Names() {
			d := s.set.defs[n]
			rows = append(rows, []string{n, s.set.Get(n), d.def, d.help})
		}
		s.out("%s", fitTable(s.pal, rows, tableFit{width: s.ui.Width(), shrink: -1, drop: []int{2}}))
		return nil
	case 1:
		d, ok := s.set.defs[c.args[0]]
		if !ok {
			_, err := s.set.Set(c.args[0], "")
			return err
		}
		s.out("%s\n", wrapText(fmt.Sprintf("%s %s  (%s; default %s)", d.name, s.set.Get(d.name), d.help, d.def), s.ui.Width()-1, "  "))
		return nil
	}
	v, err := s.set.Set(c.args[0], c.args[1])
	if err != nil {
		return err
	}
	if s.ui.IsTerminal() {
		s.out("%s = %s\n", c.args[0], v)
	}
	return nil
}

func cmdStatus(_ context.Context, s *Shell, c *call) error {
	if c.json {
		return s.outJSON(s.statusJSON())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "master:    %s\n", s.masterStatus())
	fmt.Fprintf(&b, "downloads: %s\n", s.opts.Dir)
	if s.opts.Key == "" {
		fmt.Fprintf(&b, "key:       none (open network: anyone can join)\n")
	} else {
		fmt.Fprintf(&b, "key:       set (HMAC challenge-response)\n")
	}
	s.mu.Lock()
	order := append([]string(nil), s.roleOrder...)
	s.mu.Unlock()
	if len(order) == 0 {
		b.WriteString("roles:     none (a client only)\n")
	}
	for _, name := range order {
		if r := s.role(name); r != nil {
			fmt.Fprintf(&b, "%-10s %s\n", name+":", r.Describe())
		}
	}
	if st := s.seedStatus(); st != "" {
		fmt.Fprintf(&b, "seeding:   %s\n", st)
	}
	active := s.jobs.Active()
	fmt.Fprintf(&b, "jobs:      %d active, %d in all\n", len(active), len(s.jobs.List()))
	s.out("%s", b.String())
	return nil
}

func cmdSource(ctx context.Context, s *Shell, c *call) error {
	s.mu.Lock()
	if s.depth >= MaxSourceDepth {
		s.mu.Unlock()
		return fmt.Errorf("sources nested more than %d deep", MaxSourceDepth)
	}
	s.depth++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.depth--
		s.mu.Unlock()
	}()
	name, err := ExpandPath(c.args[0])
	if err != nil {
		return err
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	failedBefore := s.failed.Load()
	ok := s.runScript(ctx, newPlainUI(f, nil, nil), func(n, _ int) string {
		return fmt.Sprintf("%s: line %d", name, n)
	})
	if !ok {
		return errReported
	}
	if !failedBefore && s.failed.Load() {
		// errexit off: the file carried on, but report the failure upward.
		return errReported
	}
	return nil
}

func cmdSleep(ctx context.Context, s *Shell, c *call) error {
	t := c.args[0]
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		t += "s"
	}
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 || d > 24*time.Hour {
		return fmt.Errorf("bad duration %q (e.g. 500ms, 2s, 1m)", c.args[0])
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return errors.New("interrupted")
	}
}
