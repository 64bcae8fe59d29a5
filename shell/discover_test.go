package shell

import (
	"context"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/discovery"
)

// fakeMasters are what a fake browse finds.
var fakeMasters = []discovery.Master{
	{Instance: "fxsh master on lab1 port 1234 [aaaa]", Addr: netip.MustParseAddrPort("192.0.2.1:1234"),
		Info: discovery.Info{Version: "0.1.0", Catalog: "memory"}, After: 3 * time.Millisecond},
	{Instance: "fxsh master on lab2 port 1234 [bbbb]", Addr: netip.MustParseAddrPort("192.0.2.2:1234"),
		Info: discovery.Info{Version: "0.1.0", KeyRequired: true, Catalog: "etcd"}, After: 5 * time.Millisecond},
}

// discoveryShell is a test shell whose master is left to discovery, with
// a browse that returns found and counts its calls.
func discoveryShell(t *testing.T, ui UI, found []discovery.Master, err error) (*Shell, *int) {
	t.Helper()
	s := testShell(t, ui)
	s.opts.Discover = true
	calls := 0
	s.disc.browse = func(context.Context) ([]discovery.Master, error) {
		calls++
		return found, err
	}
	return s, &calls
}

func TestDiscoveryChoosesMaster(t *testing.T) {
	ctx := context.Background()
	t.Run("one master is used and named, once", func(t *testing.T) {
		ui := newFakeUI(false)
		s, calls := discoveryShell(t, ui, fakeMasters[:1], nil)
		for range 2 {
			got, err := s.resolveMasters(ctx)
			if err != nil || len(got) != 1 || got[0] != "192.0.2.1:1234" {
				t.Fatalf("resolveMasters = %v, %v", got, err)
			}
		}
		if *calls != 1 {
			t.Errorf("browsed %d times, want 1", *calls)
		}
		if e := ui.stderr(); !strings.Contains(e, `using master 192.0.2.1:1234 found on mDNS in 3.0ms: "fxsh master on lab1 port 1234 [aaaa]" (fxsh 0.1.0, open network, catalog memory)`) {
			t.Errorf("stderr = %q", e)
		}
	})
	t.Run("none falls back and says so", func(t *testing.T) {
		ui := newFakeUI(false)
		s, _ := discoveryShell(t, ui, nil, nil)
		got, err := s.resolveMasters(ctx)
		if err != nil || len(got) != 1 || got[0] != DefaultMaster {
			t.Fatalf("resolveMasters = %v, %v", got, err)
		}
		if e := ui.stderr(); !strings.Contains(e, "no master answered on mDNS (_fxsh._tcp) within 1s; using 127.0.0.1:1234") {
			t.Errorf("stderr = %q", e)
		}
	})
	t.Run("a failed browse falls back with a warning", func(t *testing.T) {
		ui := newFakeUI(false)
		s, _ := discoveryShell(t, ui, nil, discovery.ErrNoSocket)
		got, err := s.resolveMasters(ctx)
		if err != nil || got[0] != DefaultMaster {
			t.Fatalf("resolveMasters = %v, %v", got, err)
		}
		if e := ui.stderr(); !strings.Contains(e, "warning: mDNS discovery failed (no mDNS socket); using 127.0.0.1:1234") {
			t.Errorf("stderr = %q", e)
		}
	})
	t.Run("several fail a script, listing them", func(t *testing.T) {
		ui := newFakeUI(false)
		s, calls := discoveryShell(t, ui, fakeMasters, nil)
		if runLines(t, s, "master", "echo never") {
			t.Fatal("script went on")
		}
		out, e := ui.stdout(), ui.stderr()
		for _, want := range []string{"1. 192.0.2.1:1234", "2. 192.0.2.2:1234  \"fxsh master on lab2 port 1234 [bbbb]\" (fxsh 0.1.0, key required, catalog etcd; answered in 5.0ms)"} {
			if !strings.Contains(out, want) || !strings.Contains(e, want) {
				t.Errorf("%q missing from stdout %q or stderr %q", want, out, e)
			}
		}
		if !strings.Contains(e, "line 1: master: 2 masters answer on mDNS; choose one with --master HOST:PORT") {
			t.Errorf("stderr = %q", e)
		}
		if strings.Contains(out, "never") {
			t.Error("the script went on")
		}
		// A later command browses again (the LAN may have changed).
		s.resolveMasters(ctx)
		if *calls != 2 {
			t.Errorf("browsed %d times, want 2", *calls)
		}
	})
	t.Run("several are offered at the prompt", func(t *testing.T) {
		ui := newFakeUI(true)
		s, _ := discoveryShell(t, ui, fakeMasters, nil)
		ui.in <- fakeInput{line: "7"}
		ui.in <- fakeInput{line: "2"}
		got, err := s.resolveMasters(ctx)
		if err != nil || got[0] != "192.0.2.2:1234" {
			t.Fatalf("resolveMasters = %v, %v", got, err)
		}
		if out := ui.stdout(); !strings.Contains(out, "2 masters answer on mDNS:") || !strings.Contains(out, "using master 192.0.2.2:1234") {
			t.Errorf("stdout = %q", out)
		}
		e := ui.stderr()
		if !strings.Contains(e, "type a number from 1 to 2") {
			t.Errorf("stderr = %q", e)
		}
		if !strings.Contains(e, "requires a key") {
			t.Errorf("no key warning for a keyed master: %q", e)
		}
	})
	t.Run("our own master is used without browsing", func(t *testing.T) {
		t.Setenv("FXSH_DISCOVERY", "") // a loopback master is not announced: nothing is sent
		ui := newFakeUI(false)
		s, calls := discoveryShell(t, ui, fakeMasters, nil)
		if !runLines(t, s, "serve master 127.0.0.1:0", "master", "status") {
			t.Fatalf("script failed: %s", ui.stderr())
		}
		out := ui.stdout()
		if *calls != 0 || !strings.Contains(out, "discovery: not needed, this shell serves the master it uses") ||
			!strings.Contains(out, "(this shell's own)") || !strings.Contains(out, "not announced on the LAN: it listens on loopback only") {
			t.Errorf("browsed %d times; stdout %q", *calls, out)
		}
		s.closeRoles()
	})
	t.Run("a master given is never browsed for", func(t *testing.T) {
		ui := newFakeUI(false)
		s, calls := discoveryShell(t, ui, fakeMasters, nil)
		if !runLines(t, s, "master 198.51.100.1:1234", "master") {
			t.Fatalf("script failed: %s", ui.stderr())
		}
		if *calls != 0 || !strings.Contains(ui.stdout(), "198.51.100.1:1234") {
			t.Errorf("browsed %d times; stdout %q", *calls, ui.stdout())
		}
	})
}

func TestFlagsDiscovery(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		args            []string
		env             map[string]string
		discover, given bool
		firstMaster     string
	}{
		{nil, nil, true, false, DefaultMaster},
		{[]string{"--master", "auto"}, nil, true, false, DefaultMaster},
		{[]string{"--master", "h:1"}, nil, false, true, "h:1"},
		{nil, map[string]string{"FXSH_MASTER": "h:2"}, false, true, "h:2"},
		{nil, map[string]string{"FXSH_MASTER": "auto"}, true, false, DefaultMaster},
		{nil, map[string]string{"FXSH_DISCOVERY": "off"}, false, false, DefaultMaster},
	}
	for _, tt := range tests {
		fl, err := parseFlags(tt.args, env(tt.env))
		if err != nil {
			t.Fatal(err)
		}
		if fl.opts.Discover != tt.discover || fl.opts.MasterGiven != tt.given || fl.opts.Masters[0] != tt.firstMaster {
			t.Errorf("%v %v: discover %v given %v masters %v", tt.args, tt.env, fl.opts.Discover, fl.opts.MasterGiven, fl.opts.Masters)
		}
	}
}

// TestRCInteractive: at the prompt a bad start-up line is a warning, the
// lines before it ran, and the prompt starts; a key line is kept out of
// the history.
func TestRCInteractive(t *testing.T) {
	path := tempRCPath(t)
	if err := os.WriteFile(path, []byte("set parallel 9\nset nosuch 1\necho after\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ui := newFakeUI(true)
	s := testShell(t, ui)
	if !s.runRC(context.Background(), true) {
		t.Fatal("runRC stopped an interactive start")
	}
	if s.failed.Load() {
		t.Error("an interactive start-up warning counted as a failure")
	}
	if got := s.set.Get("parallel"); got != "9" {
		t.Errorf("parallel = %s, want the line before the bad one to have run", got)
	}
	e := ui.stderr()
	if !strings.Contains(e, "warning: fxshrc line 2: ") || !strings.Contains(e, "the rest of "+path+" is skipped") {
		t.Errorf("stderr = %q", e)
	}
	if strings.Contains(ui.stdout(), "after") {
		t.Error("the rc went on after the bad line")
	}

	ui.in <- fakeInput{line: "key s3cret-s3cret-s3cret"}
	ui.in <- fakeInput{line: "key"}
	close(ui.in)
	s.interactive(context.Background())
	if !strings.Contains(ui.stdout(), "key: set") {
		t.Errorf("stdout = %q", ui.stdout())
	}
	for _, h := range ui.history {
		if strings.Contains(h, "s3cret") {
			t.Errorf("history holds the key: %q", ui.history)
		}
	}
}

// TestRCKeyMode: a key in a start-up file open to others is refused
// (except on Windows, where there are no such mode bits).
func TestRCKeyMode(t *testing.T) {
	path := tempRCPath(t)
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o644, false}, {0o604, false}, {0o660, false}} {
		if runtime.GOOS == "windows" {
			// No group/other bits (Chmod sets only the read-only
			// attribute): every mode is accepted.
			tt.ok = true
		}
		if err := os.WriteFile(path, []byte("key abcdefabcdefabcdef\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		ui := newFakeUI(false)
		s := testShell(t, ui)
		ok := s.runRC(context.Background(), false)
		// Writable again for the next round (0400 is read-only, which
		// Windows also applies to the owner).
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		if ok != tt.ok || (s.opts.Key != "") != tt.ok {
			t.Errorf("mode %04o: runRC %v, key set %v; stderr %q", tt.mode, ok, s.opts.Key != "", ui.stderr())
		}
		if !tt.ok && !strings.Contains(ui.stderr(), "fxsh: fxshrc line 1: key: refused: ") {
			t.Errorf("mode %04o: stderr %q", tt.mode, ui.stderr())
		}
		if strings.Contains(ui.stderr(), "abcdef") {
			t.Errorf("the key was printed: %q", ui.stderr())
		}
	}
	// The key cannot change under a running job or role.
	ui := newFakeUI(false)
	s := testShell(t, ui)
	s.addRole("master", fakeRole{})
	err := s.exec(context.Background(), Command{Words: []string{"key", "abcdefabcdefabcdef"}})
	if err == nil || !strings.Contains(err.Error(), "stop the roles and jobs first") || s.opts.Key != "" {
		t.Errorf("key with a role running: %v", err)
	}
	s.removeRole("master")
}

type fakeRole struct{}

func (fakeRole) Describe() string                { return "fake" }
func (fakeRole) Close(ctx context.Context) error { return nil }
