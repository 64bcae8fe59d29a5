package shell

// Leaving the prompt while others download from this shell's share: quit
// and Ctrl-D warn and ask first (quit -f does not); Ctrl-C on an empty line
// while the shell serves says how to stop it, and a second Ctrl-C does.
// Whatever way the share stops, its clients are told (ERROR leaving, see
// netproto/transfer) and fail over or fail at once.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CtrlCAgain is how soon a second Ctrl-C on an empty line must follow the
// first to stop a serving shell: later, it is a fresh first one (a user who
// comes back to the prompt and clears it does not quit by surprise).
const CtrlCAgain = 5 * time.Second

// leaveQuestion is the prompt of the question quit asks.
const leaveQuestion = "leave anyway? [y/N] "

// shareDownloads reports the downloads running from this shell's share
// and from how many hosts (0, 0 when it does not share).
func (s *Shell) shareDownloads() (n, hosts int) {
	r, ok := s.role("share").(*shareRole)
	if !ok {
		return 0, 0
	}
	return r.srv.Downloads()
}

// downloadsText says "2 downloads from your share are running (1 host)".
func downloadsText(n, hosts int) string {
	verb := "are"
	if n == 1 {
		verb = "is"
	}
	return fmt.Sprintf("%s from your share %s running (%s)", plural(n, "download", "downloads"), verb, plural(hosts, "host", "hosts"))
}

// confirmLeave asks the user at the prompt before a quit cuts downloads
// from this shell's share. It returns nil to leave, or why not. Scripts
// and pipes are never asked (their end is the way to stop serving).
func (s *Shell) confirmLeave() error {
	if !s.ui.IsTerminal() {
		return nil
	}
	n, hosts := s.shareDownloads()
	if n == 0 {
		return nil
	}
	s.ui.PrintErr(s.epal.warn.Sprint(downloadsText(n, hosts)+"; quit -f leaves anyway") + "\n")
	answer, err := s.ask(leaveQuestion)
	if err == nil && (strings.EqualFold(strings.TrimSpace(answer), "y") || strings.EqualFold(strings.TrimSpace(answer), "yes")) {
		return nil
	}
	return errors.New("not quitting: your share keeps serving")
}

// ask reads one answer at the prompt, the question as the prompt. Ctrl-C
// and Ctrl-D are an error (no answer).
func (s *Shell) ask(question string) (string, error) {
	s.mu.Lock()
	s.asking = question
	s.mu.Unlock()
	s.ui.SetPrompt(question)
	defer func() {
		s.mu.Lock()
		s.asking = ""
		s.mu.Unlock()
		s.ui.SetPrompt(s.prompt())
	}()
	return s.ui.ReadLine()
}

// interruptAtPrompt handles Ctrl-C at the prompt: it drops the line, and on
// an empty line of a shell that serves it says how to stop serving; a
// second one within CtrlCAgain stops it (quit: this shell's own downloads
// are waited for, the share's clients are told). It reports whether the
// next Ctrl-C is such a second one.
func (s *Shell) interruptAtPrompt(ctx context.Context, line string, armed bool) bool {
	if strings.TrimSpace(line) != "" || !s.serving() {
		return false
	}
	if armed {
		s.out("quit\n")
		if err := s.foreground(ctx, func(ctx context.Context) error {
			return s.quitNow(ctx, false, false)
		}); err != nil {
			s.report(err)
		}
		return false
	}
	what := "this shell serves (" + strings.Join(s.roleNames(), ", ") + ")"
	if n, hosts := s.shareDownloads(); n > 0 {
		what = downloadsText(n, hosts)
	}
	s.ui.PrintErr(s.epal.dim.Sprint(fmt.Sprintf("%s: Ctrl-C again stops serving and quits (or type quit)", what)) + "\n")
	return true
}

// roleNames lists the running roles, oldest first.
func (s *Shell) roleNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.roleOrder...)
}
