package shell

// The loop: a command is looked up in the table and run in the foreground
// (Ctrl-C interrupts it); a script runs line by line and stops at the
// first failure; the prompt reads, runs and redraws.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

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
			cmds, err = s.syntax.Parse(line)
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
	var armedAt time.Time // a Ctrl-C on an empty line said how to stop serving
	for !s.quitting() && ctx.Err() == nil {
		s.pokePrompt() // the last command may have started or ended jobs
		line, err := s.ui.ReadLine()
		if errors.Is(err, ErrInterrupt) {
			// Ctrl-C drops the line; on an empty one, a serving shell
			// says how to stop, and a second one stops it.
			armed := !armedAt.IsZero() && time.Since(armedAt) < CtrlCAgain
			armedAt = time.Time{}
			if s.interruptAtPrompt(ctx, line, armed) {
				armedAt = time.Now()
			}
			continue
		}
		armedAt = time.Time{}
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
		cmds, err := s.syntax.Parse(line)
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
	s.mu.Lock()
	q := s.asking
	s.mu.Unlock()
	if q != "" {
		return q
	}
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
// force), asks before cutting others' downloads from the share (at the
// prompt, without force), then stops the roles.
func (s *Shell) cmdQuitNow(ctx context.Context, force bool) error {
	return s.quitNow(ctx, force, !force)
}

// quitNow is cmdQuitNow; ask says whether to ask before cutting others'
// downloads (confirmLeave).
func (s *Shell) quitNow(ctx context.Context, force, ask bool) error {
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
	if ask {
		if err := s.confirmLeave(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.quit = true
	s.quitForce = force
	s.mu.Unlock()
	return nil
}
