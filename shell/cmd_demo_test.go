package shell

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDemoAtThePrompt checks that at the prompt the demo's master and
// servers stay up for the user to explore, with the shell pointed at that
// master, until demo off removes them and their folder.
func TestDemoAtThePrompt(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	ui := newFakeUI(true)
	s := testShell(t, ui)
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
