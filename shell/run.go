package shell

// The process: Main and Run parse the flags and pick the mode; main runs a
// session from its first line to its exit status.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
)

// Main runs fxsh with the process's arguments and returns its exit status.
func Main() int {
	return Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
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

// main runs the session in its mode and returns the exit status: the
// signals are watched, the input is run, then the session ends (finish).
func (s *Shell) main(interactive bool, fl flags) int {
	defer s.ui.Close()
	ignoreStop() // Ctrl-Z must not stop a process that serves others
	// runCtx ends the script early on SIGINT/SIGTERM (scripts) or SIGTERM
	// (interactive); SIGINT interactively only stops the foreground command.
	runCtx, endRun := context.WithCancel(s.ctx)
	defer endRun()
	sg := s.watchSignals(interactive, endRun)
	defer sg.stop()
	ok, status, stop := s.runInput(runCtx, interactive, fl)
	if stop {
		return status
	}
	return s.finish(runCtx, sg, ok)
}

// signals is what SIGINT and SIGTERM did to a session.
type signals struct {
	sigs        chan os.Signal
	done        chan struct{} // closed by stop: the watcher ends
	interrupted atomic.Bool   // the input was cut short
	// serving: the input has ended and fxsh only serves; SIGINT/SIGTERM
	// is then the normal way to stop, not an interruption.
	serving   atomic.Bool
	serveStop chan struct{} // a signal came while serving
}

// watchSignals handles SIGINT and SIGTERM until stop: interactively SIGINT
// interrupts the foreground command; otherwise the first signal ends the
// input (endRun) and marks the session interrupted, unless it only serves.
func (s *Shell) watchSignals(interactive bool, endRun func()) *signals {
	sg := &signals{sigs: make(chan os.Signal, 4), done: make(chan struct{}), serveStop: make(chan struct{}, 1)}
	signal.Notify(sg.sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for {
			select {
			case <-sg.done:
				return
			case sig := <-sg.sigs:
				if interactive && sig == syscall.SIGINT {
					s.interruptForeground()
					continue
				}
				if !sg.serving.Load() && !sg.interrupted.Swap(true) {
					endRun()
					s.interruptForeground()
				}
				select {
				case sg.serveStop <- struct{}{}:
				default:
				}
			}
		}
	}()
	return sg
}

func (sg *signals) stop() {
	close(sg.done)
	signal.Stop(sg.sigs)
}

// runInput runs the start-up file and then the input of the session's
// mode: the prompt, -c, a script file or standard input. ok is false if a
// script stopped on a failure; stop says the session must end at once with
// status (the script file could not be opened).
func (s *Shell) runInput(ctx context.Context, interactive bool, fl flags) (ok bool, status int, stop bool) {
	ok = true
	if interactive {
		s.out("%s\n", banner(Version, s.ui.Width()))
	}
	if !s.opts.NoRC && !s.runRC(ctx, interactive) {
		fl.command, fl.script, ok = "", "", false // a script does not start
	}
	switch {
	case !ok:
	case interactive:
		s.interactive(ctx)
	case fl.command != "":
		ok = s.runScript(ctx, &splitReader{text: fl.command}, func(_, k int) string {
			return fmt.Sprintf("-c: command %d", k)
		})
	case fl.script != "":
		f, err := os.Open(fl.script)
		if err != nil {
			s.ui.PrintErr(fmt.Sprintf("fxsh: %v\n", err))
			s.stop()
			return false, 1, true
		}
		defer f.Close()
		ok = s.runScript(ctx, newPlainUI(f, io.Discard, io.Discard), func(n, _ int) string {
			return fmt.Sprintf("%s: line %d", fl.script, n)
		})
	default:
		ok = s.runScript(ctx, s.ui, func(n, _ int) string { return fmt.Sprintf("line %d", n) })
	}
	return ok, 0, false
}

// finish ends a session whose input has ended: it waits for downloads (a
// script must not leave them half-done), keeps serving until a signal if
// a role runs, stops everything and returns the exit status.
func (s *Shell) finish(ctx context.Context, sg *signals, ok bool) int {
	if sg.interrupted.Load() {
		msg := "fxsh: interrupted"
		if n := len(s.jobs.Active()); n > 0 {
			msg += fmt.Sprintf("; %s cancelled (partial files kept for a resume)", plural(n, "job", "jobs"))
		}
		s.ui.PrintErr(msg + "\n")
		s.jobs.CancelAll()
	}
	if active := s.jobs.Active(); len(active) > 0 {
		if err := s.waitJobs(ctx, active); err != nil {
			s.jobs.CancelAll()
			s.jobs.Wait(context.Background(), active)
		}
	}
	if ok && !s.quitting() && !sg.interrupted.Load() && s.serving() {
		sg.serving.Store(true)
		if !sg.interrupted.Load() {
			s.ui.PrintErr(s.epal.dim.Sprint("fxsh: end of script; still serving (Ctrl-C or SIGTERM stops)") + "\n")
			select {
			case <-sg.serveStop:
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
	case sg.interrupted.Load():
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

// banner is the first line of an interactive session, fitted to width
// cells (0: no limit): a version stamped from a git checkout
// (0.0.0-20261204140541-2d30e700f4db) leaves the long form no room at 60
// columns, so the hint is shortened, then the version in its middle.
func banner(version string, width int) string {
	for _, hint := range []string{"type help for commands, Ctrl-D to quit", "help: commands, Ctrl-D: quit", "help"} {
		if b := "fxsh " + version + " — " + hint; width <= 0 || cells(b) <= width-1 {
			return b
		}
	}
	return "fxsh " + shortenMiddle(version, max(8, width-1-cells("fxsh  — help"))) + " — help"
}
