package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		in   string
		want [][]string
		may  []bool
		err  bool
	}{
		{in: "", want: nil},
		{in: "   # only a comment", want: nil},
		{in: "help", want: [][]string{{"help"}}},
		{in: "get a b  c", want: [][]string{{"get", "a", "b", "c"}}},
		{in: `get "a b.txt" 'c d'`, want: [][]string{{"get", "a b.txt", "c d"}}},
		{in: `get a\ b`, want: [][]string{{"get", "a b"}}},
		{in: `echo "x\"y" 'it''s'`, want: [][]string{{"echo", `x"y`, "its"}}},
		{in: `echo "tab\there"`, want: [][]string{{"echo", "tab\there"}}},
		{in: `echo a#b # comment`, want: [][]string{{"echo", "a#b"}}},
		{in: `echo "#not a comment"`, want: [][]string{{"echo", "#not a comment"}}},
		{in: "a; b c ;; d", want: [][]string{{"a"}, {"b", "c"}, {"d"}}},
		{in: `echo ";"`, want: [][]string{{"echo", ";"}}},
		{in: `echo ""`, want: [][]string{{"echo", ""}}},
		{in: "-get x", want: [][]string{{"get", "x"}}, may: []bool{true}},
		{in: "- x", want: [][]string{{"-", "x"}}, may: []bool{false}},
		{in: "emoji 📦 名前", want: [][]string{{"emoji", "📦", "名前"}}},
		{in: `echo "open`, err: true},
		{in: `echo 'open`, err: true},
		{in: strings.Repeat("x", MaxCommandLine+1), err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLine(tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("ParseLine(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tt.in, err)
			}
			var words [][]string
			for i, c := range got {
				words = append(words, c.Words)
				if tt.may != nil && c.MayFail != tt.may[i] {
					t.Errorf("command %d MayFail = %v, want %v", i, c.MayFail, tt.may[i])
				}
			}
			if !reflect.DeepEqual(words, tt.want) {
				t.Errorf("ParseLine(%q) = %q, want %q", tt.in, words, tt.want)
			}
		})
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, w := range []string{"plain", "a b", "it's", `back\slash`, "x\ny", "semi;colon", "#hash", "", `"q"`, "tab\tx", "émoji 📦"} {
		cmds, err := ParseLine("echo " + Quote(w))
		if err != nil || len(cmds) != 1 || len(cmds[0].Words) != 2 || cmds[0].Words[1] != w {
			t.Errorf("Quote(%q) = %s: parsed back as %v, %v", w, Quote(w), cmds, err)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"get a b", `"x y" 'z'`, "a;b # c", `\\ \"`, "-cmd", Quote("a'b\"c")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmds, err := ParseLine(line)
		if err != nil {
			return
		}
		// Every command re-quoted parses back to the same words.
		for _, c := range cmds {
			var parts []string
			for _, w := range c.Words {
				parts = append(parts, Quote(w))
			}
			back, err := ParseLine(strings.Join(parts, " "))
			if err != nil {
				t.Fatalf("re-quoted %q: %v", c.Words, err)
			}
			if len(c.Words) == 0 {
				t.Fatalf("empty command from %q", line)
			}
			if len(back) != 1 || !reflect.DeepEqual(back[0].Words[1:], c.Words[1:]) {
				t.Fatalf("round trip of %q gave %v", c.Words, back)
			}
		}
	})
}

func runLines(t *testing.T, s *Shell, lines ...string) bool {
	t.Helper()
	r := newPlainUI(strings.NewReader(strings.Join(lines, "\n")+"\n"), nil, nil)
	return s.runScript(context.Background(), r, func(n, _ int) string { return fmt.Sprintf("line %d", n) })
}

func TestScriptSemantics(t *testing.T) {
	t.Run("errexit stops at the failing line", func(t *testing.T) {
		ui := newFakeUI(false)
		s := testShell(t, ui)
		if runLines(t, s, "echo one", "bogus", "echo two") {
			t.Fatal("script did not stop")
		}
		if got := ui.stdout(); got != "one\n" {
			t.Errorf("stdout = %q", got)
		}
		if e := ui.stderr(); !strings.Contains(e, "line 2: unknown command \"bogus\"") {
			t.Errorf("stderr = %q", e)
		}
		if !s.failed.Load() {
			t.Error("failure not recorded")
		}
	})
	t.Run("-cmd may fail", func(t *testing.T) {
		ui := newFakeUI(false)
		s := testShell(t, ui)
		if !runLines(t, s, "-bogus", "echo two") {
			t.Fatal("script stopped")
		}
		if ui.stdout() != "two\n" || s.failed.Load() {
			t.Errorf("stdout = %q failed = %v", ui.stdout(), s.failed.Load())
		}
	})
	t.Run("errexit off carries on but reports", func(t *testing.T) {
		ui := newFakeUI(false)
		s := testShell(t, ui)
		if !runLines(t, s, "set errexit off", "bogus", "echo two") {
			t.Fatal("script stopped")
		}
		if ui.stdout() != "two\n" || !s.failed.Load() {
			t.Errorf("stdout = %q failed = %v", ui.stdout(), s.failed.Load())
		}
	})
	t.Run("syntax error names the line", func(t *testing.T) {
		ui := newFakeUI(false)
		s := testShell(t, ui)
		runLines(t, s, "echo ok", `echo "open`)
		if e := ui.stderr(); !strings.Contains(e, "line 2: unterminated quote") {
			t.Errorf("stderr = %q", e)
		}
	})
	t.Run("usage error", func(t *testing.T) {
		ui := newFakeUI(false)
		s := testShell(t, ui)
		runLines(t, s, "cancel")
		if e := ui.stderr(); !strings.Contains(e, "line 1: cancel: usage: cancel ID...") {
			t.Errorf("stderr = %q", e)
		}
	})
	t.Run("source runs a file and stops on its failure", func(t *testing.T) {
		dir := t.TempDir()
		f := filepath.Join(dir, "inner.fxsh")
		os.WriteFile(f, []byte("echo inner\n# comment\n\nbogus\necho after\n"), 0o644)
		ui := newFakeUI(false)
		s := testShell(t, ui)
		if runLines(t, s, "source "+Quote(f), "echo outer") {
			t.Fatal("outer script did not stop")
		}
		if ui.stdout() != "inner\n" {
			t.Errorf("stdout = %q", ui.stdout())
		}
		if e := ui.stderr(); !strings.Contains(e, "inner.fxsh: line 4: unknown command") || strings.Count(e, "unknown command") != 1 {
			t.Errorf("stderr = %q", e)
		}
	})
	t.Run("source recursion is bounded", func(t *testing.T) {
		dir := t.TempDir()
		f := filepath.Join(dir, "self.fxsh")
		os.WriteFile(f, []byte("source "+Quote(f)+"\n"), 0o644)
		ui := newFakeUI(false)
		s := testShell(t, ui)
		runLines(t, s, "source "+Quote(f))
		if e := ui.stderr(); !strings.Contains(e, "nested more than 16 deep") {
			t.Errorf("stderr = %q", e)
		}
	})
	t.Run("quit stops reading", func(t *testing.T) {
		ui := newFakeUI(false)
		s := testShell(t, ui)
		runLines(t, s, "echo a", "quit", "echo b")
		if ui.stdout() != "a\n" {
			t.Errorf("stdout = %q", ui.stdout())
		}
	})
}

func TestSettings(t *testing.T) {
	s := newSettings()
	for _, tt := range []struct{ key, val, want string }{
		{"parallel", "8", "8"},
		{"loss", "0.2", "0.2"},
		{"loss", "20%", "0.2"},
		{"delay", "50", "50ms"},
		{"rate", "20MB/s", "20MB/s"},
		{"rate", "off", "unlimited"},
		{"errexit", "no", "off"},
		{"chunk", "64KiB", "65536"},
	} {
		got, err := s.Set(tt.key, tt.val)
		if tt.key == "chunk" {
			if err == nil {
				t.Errorf("set chunk 64KiB accepted (max %d)", MaxChunk)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Set(%s, %s) = %q, %v; want %q", tt.key, tt.val, got, err, tt.want)
		}
	}
	for _, bad := range [][2]string{{"parallel", "0"}, {"parallel", "x"}, {"loss", "1.5"}, {"loss", "NaN"}, {"delay", "-1s"}, {"rate", "5"}, {"color", "maybe"}, {"nosuch", "1"}} {
		if _, err := s.Set(bad[0], bad[1]); err == nil {
			t.Errorf("Set(%s, %s) accepted", bad[0], bad[1])
		}
	}
	if _, err := s.Set("paralel", "2"); err == nil || !strings.Contains(err.Error(), `did you mean "parallel"`) {
		t.Errorf("typo error = %v", err)
	}
}

func TestJobTable(t *testing.T) {
	done := make(chan struct{}, 16)
	tab := NewJobTable(context.Background(), 2, func(ev JobEvent) { done <- struct{}{} })
	release := make(chan struct{})
	started := make(chan int, 16)
	run := func(ctx context.Context, j *Job) error {
		started <- j.ID
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		if j.Name == "bad" {
			return errors.New("boom")
		}
		return nil
	}
	j1 := tab.Start("get", "a", false, run)
	j2 := tab.Start("get", "bad", false, run)
	j3 := tab.Start("get", "c", false, run)
	<-started
	<-started
	if st, _ := j3.State(); st != JobQueued {
		t.Fatalf("third job %v, want queued (parallel 2)", st)
	}
	if err := tab.Cancel(j3.ID); err != nil {
		t.Fatal(err)
	}
	<-done
	close(release)
	tab.Wait(context.Background(), []*Job{j1, j2, j3})
	for j, want := range map[*Job]JobState{j1: JobDone, j2: JobFailed, j3: JobCancelled} {
		if st, _ := j.State(); st != want {
			t.Errorf("job %d: %v, want %v", j.ID, st, want)
		}
	}
	if err := tab.Cancel(j1.ID); err == nil {
		t.Error("cancel of an ended job succeeded")
	}
	j4 := tab.Start("get", "d", false, func(context.Context, *Job) error { return nil })
	if j4.ID != 4 {
		t.Errorf("new job id %d, want 4 (ids are not reused)", j4.ID)
	}
	<-j4.Done()
}

func TestInteractive(t *testing.T) {
	ui := newFakeUI(true)
	s := testShell(t, ui)
	finished := make(chan struct{})
	go func() { s.interactive(context.Background()); close(finished) }()

	// Ctrl-C drops the line; a parse error is reported and not saved.
	ui.in <- fakeInput{err: ErrInterrupt}
	ui.in <- fakeInput{line: `echo "open`}
	ui.in <- fakeInput{line: "echo hello"}
	waitFor(t, "echo output", func() bool { return strings.Contains(ui.stdout(), "hello\n") })
	if e := ui.stderr(); !strings.Contains(e, "error: unterminated quote") {
		t.Errorf("stderr = %q", e)
	}
	ui.mu.Lock()
	hist := append([]string(nil), ui.history...)
	ui.mu.Unlock()
	if !reflect.DeepEqual(hist, []string{"echo hello"}) {
		t.Errorf("history = %q, want only the line that parsed", hist)
	}

	// A background event is printed while the prompt waits for input.
	waitFor(t, "reading", func() bool { ui.mu.Lock(); defer ui.mu.Unlock(); return ui.reading })
	s.notify("peer 127.0.0.1:9 gone")
	waitFor(t, "background message", func() bool { return strings.Contains(ui.stdout(), "peer 127.0.0.1:9 gone\n") })

	// Jobs put a summary in the prompt.
	release := make(chan struct{})
	j := s.jobs.Start("get", "x", false, func(ctx context.Context, j *Job) error {
		j.SetTotal(100)
		j.SetDone(50)
		<-release
		return nil
	})
	waitFor(t, "prompt summary", func() bool {
		ui.mu.Lock()
		defer ui.mu.Unlock()
		return strings.Contains(ui.prompt, "[1 job 50%")
	})
	close(release)
	<-j.Done()
	waitFor(t, "job done event", func() bool { return strings.Contains(ui.stdout(), "job 1 done: x") })

	// Ctrl-D on an empty line is quit.
	ui.in <- fakeInput{err: io.EOF}
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-D did not quit")
	}
}

func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "sub dir"), 0o755)
	os.WriteFile(filepath.Join(dir, "file.txt"), nil, 0o644)
	ui := newFakeUI(true)
	s := testShell(t, ui)
	s.setLastNames([]string{"alpha.txt", "beta file.bin", "alps.jpg", `say "hi".txt`, "it's.txt"})
	s.remoteAt = time.Now() // no master: the names above are all there is
	tests := []struct {
		line string
		want []string
	}{
		{"he", []string{"help "}},
		{"-ec", []string{"-echo "}},
		{"set par", []string{"parallel "}},
		{"set errexit o", []string{"off ", "on "}}, // the second argument
		{"help ca", []string{"cancel "}},
		{"source " + dir + "/f", []string{dir + "/file.txt "}},
		{"source " + dir + "/s", []string{escapeWord(dir+"/sub dir") + "/"}},
		{"x; set col", []string{"color "}},
	}
	if _, ok := s.byName["get"]; ok {
		tests = append(tests,
			struct {
				line string
				want []string
			}{"get alpha.txt al", []string{"alpha.txt ", "alps.jpg "}}, // every argument
			struct {
				line string
				want []string
			}{"get b", []string{`beta\ file.bin `}},
			// Inside quotes: the word stays quoted and is closed.
			struct {
				line string
				want []string
			}{"get 'beta f", []string{`'beta file.bin' `}},
			struct {
				line string
				want []string
			}{`get "beta f`, []string{`"beta file.bin" `}},
			struct {
				line string
				want []string
			}{`get beta\ f`, []string{`beta\ file.bin `}},
			struct {
				line string
				want []string
			}{`get "say`, []string{`"say \"hi\".txt" `}},
			struct {
				line string
				want []string
			}{`get 'say`, []string{`'say "hi".txt' `}},
			struct {
				line string
				want []string
			}{`get 'it`, nil}, // a ' cannot be written inside '…'
			struct {
				line string
				want []string
			}{`get it`, []string{`it\'s.txt `}},
			struct {
				line string
				want []string
			}{`source "` + dir + "/s", []string{`"` + dir + "/sub dir/"}}, // a folder: still open
		)
	}
	for _, tt := range tests {
		got, raw := s.completions(tt.line)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("completions(%q) = %q, want %q", tt.line, got, tt.want)
		}
		// Each completed line parses, its last word being the candidate.
		for _, g := range got {
			if strings.HasSuffix(g, "/") {
				continue
			}
			line := strings.TrimSuffix(tt.line, raw) + g
			cmds, err := ParseLine(line)
			if err != nil || len(cmds) == 0 {
				t.Errorf("completed line %q: %v", line, err)
			}
		}
	}
	// Through the readline interface: suffixes after the partial word.
	c := &completer{get: func() *Shell { return s }}
	line := []rune("set errexit o")
	cands, n := c.Do(line, len(line))
	if n != 1 || len(cands) != 2 || string(cands[0]) != "ff " {
		t.Errorf("Do = %q, %d", cands, n)
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	ui := newFakeUI(false)
	s := testShell(t, ui)
	h := strings.Join(strings.Fields(s.helpText(helpWidth)), " ")
	for _, c := range s.cmds {
		if !strings.Contains(h, c.usage) {
			t.Errorf("help does not list %s", c.name)
		}
		if c.summary == "" || c.group == "" {
			t.Errorf("command %s lacks a summary or group", c.name)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 1536: "1.5 kB", 64 << 20: "67.1 MB", 1 << 30: "1.1 GB", 999_999: "1.0 MB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for in, want := range map[string]int64{"1500": 1500, "64k": 64000, "64KiB": 65536, "1.5MB": 1500000, "20MB/s": 20_000_000, "1GiB": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "5 parsecs", "1e300GB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}
