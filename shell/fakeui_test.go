package shell

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeUI replays input lines (or errors) and records what the shell prints,
// in the manner of pprof's proftest UI.
type fakeUI struct {
	in       chan fakeInput
	terminal bool
	width    int // cells; 0: not a terminal, no limit

	mu      sync.Mutex // protects the fields below
	out     strings.Builder
	errOut  strings.Builder
	prompt  string
	history []string
	reading bool
}

type fakeInput struct {
	line string
	err  error
}

func newFakeUI(terminal bool) *fakeUI {
	return &fakeUI{in: make(chan fakeInput, 64), terminal: terminal}
}

func (u *fakeUI) ReadLine() (string, error) {
	u.mu.Lock()
	u.reading = true
	u.mu.Unlock()
	in, ok := <-u.in
	u.mu.Lock()
	u.reading = false
	u.mu.Unlock()
	if !ok {
		return "", io.EOF
	}
	return in.line, in.err
}

func (u *fakeUI) Print(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.out.WriteString(s)
}

func (u *fakeUI) PrintErr(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.errOut.WriteString(s)
}

func (u *fakeUI) IsTerminal() bool { return u.terminal }
func (u *fakeUI) Width() int       { return u.width }
func (u *fakeUI) SetPrompt(p string) {
	u.mu.Lock()
	u.prompt = p
	u.mu.Unlock()
}
func (u *fakeUI) SaveHistory(l string) {
	u.mu.Lock()
	u.history = append(u.history, l)
	u.mu.Unlock()
}
func (u *fakeUI) Close() error { return nil }

func (u *fakeUI) stdout() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.out.String()
}

func (u *fakeUI) stderr() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.errOut.String()
}

// waitFor polls until cond holds or fails the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testShell(t *testing.T, ui UI) *Shell {
	t.Helper()
	s := newShell(context.Background(), Options{Masters: []string{DefaultMaster}, Dir: t.TempDir()}, ui)
	t.Cleanup(func() {
		s.jobs.CancelAll()
		s.stop()
		<-s.evDone
	})
	return s
}
