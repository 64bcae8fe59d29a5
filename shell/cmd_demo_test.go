package shell

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoAtThePrompt checks that at the prompt the demo's master and
// servers stay up for the user to explore, with the shell pointed at that
// master, until demo off removes them and their folder.
func TestDemoAtThePrompt(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	ui := newFakeUI(true)
	s := testShell(t, ui)
	s.opts.DemoPause = 10 * time.Millisecond
	t.Cleanup(s.closeRoles)
	before := s.masters()
	if !runLines(t, s, "demo", "status", "list") {
		t.Fatalf("demo failed: %s", ui.stderr())
	}
	out := ui.stdout()
	m := regexp.MustCompile(`files in (\S+) \(demo off`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("status does not show the demo:\n%s", out)
	}
	dir := m[1]
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("demo folder: %v", err)
	}
	if !strings.Contains(out, "readme.txt") || !strings.Contains(out, "Your turn") {
		t.Errorf("list after the demo does not show its files:\n%s", out)
	}
	// Servers are labelled by what they share, whatever order the
	// master lists them in.
	for _, x := range []string{"A", "B"} {
		started := regexp.MustCompile(`Server ` + x + ` shares \w+/ on UDP (\S+):`).FindStringSubmatch(out)
		delivered := regexp.MustCompile(`server ` + x + ` \((\S+)\) delivered`).FindStringSubmatch(out)
		if started == nil || delivered == nil || started[1] != delivered[1] {
			t.Errorf("server %s: started as %v, delivered as %v", x, started, delivered)
		}
	}
	if s.set.Get("loss") != "0" || s.set.Get("rate") != "unlimited" {
		t.Errorf("settings not restored: loss %s rate %s", s.set.Get("loss"), s.set.Get("rate"))
	}
	if !runLines(t, s, "demo off") {
		t.Fatalf("demo off: %s", ui.stderr())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("demo folder still there after demo off: %v", err)
	}
	if got := s.masters(); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Errorf("masters after demo off = %v, want %v", got, before)
	}
	if runLines(t, s, "demo off") || !strings.Contains(ui.stderr(), "no demo is running") {
		t.Errorf("second demo off: %s", ui.stderr())
	}
	if runLines(t, s, "demo now") || !strings.Contains(ui.stderr(), "usage: demo") {
		t.Errorf("demo now: %s", ui.stderr())
	}
}

// TestNarratorPause: at the prompt the demo pauses between steps (not
// before the first), in a script it does not, and an interrupt ends the
// pause.
func TestNarratorPause(t *testing.T) {
	const pause = 50 * time.Millisecond
	n := &narrator{s: testShell(t, newFakeUI(true)), pause: pause}
	start := time.Now()
	if !n.wait(context.Background()) || time.Since(start) >= pause {
		t.Errorf("paused before the first step")
	}
	n.step("one")
	start = time.Now()
	if !n.wait(context.Background()) || time.Since(start) < pause {
		t.Errorf("did not pause between steps (%v)", time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n.wait(ctx) {
		t.Error("an interrupted pause reported true")
	}
	n.pause = 0
	start = time.Now()
	if !n.wait(context.Background()) || time.Since(start) >= pause {
		t.Error("paused without a pause (a script)")
	}
	if !strings.Contains(n.s.ui.(*fakeUI).stdout(), "1. one") {
		t.Errorf("step not printed")
	}
}
