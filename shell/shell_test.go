package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	// win is what SyntaxWindows reads where it differs from want (the
	// POSIX reading); winErr: only SyntaxWindows fails.
	tests := []struct {
		in          string
		want, win   [][]string
		may         []bool
		err, winErr bool
	}{
		{in: "", want: nil},
		{in: "   # only a comment", want: nil},
		{in: "help", want: [][]string{{"help"}}},
		{in: "get a b  c", want: [][]string{{"get", "a", "b", "c"}}},
		{in: `get "a b.txt" 'c d'`, want: [][]string{{"get", "a b.txt", "c d"}}},
		{in: `get a\ b`, want: [][]string{{"get", "a b"}}, win: [][]string{{"get", `a\`, "b"}}},
		{in: `echo "x\"y" 'it''s'`, want: [][]string{{"echo", `x"y`, "its"}}, winErr: true},
		{in: `echo 'say "hi" '"it's"`, want: [][]string{{"echo", `say "hi" it's`}}},
		{in: `echo "tab\there"`, want: [][]string{{"echo", "tab\there"}}, win: [][]string{{"echo", `tab\there`}}},
		{in: `echo a#b # comment`, want: [][]string{{"echo", "a#b"}}},
		{in: `echo "#not a comment"`, want: [][]string{{"echo", "#not a comment"}}},
		{in: "a; b c ;; d", want: [][]string{{"a"}, {"b", "c"}, {"d"}}},
		{in: `echo ";"`, want: [][]string{{"echo", ";"}}},
		{in: `echo ""`, want: [][]string{{"echo", ""}}},
		{in: "-get x", want: [][]string{{"get", "x"}}, may: []bool{true}},
		{in: "- x", want: [][]string{{"-", "x"}}, may: []bool{false}},
		{in: "emoji 📦 名前", want: [][]string{{"emoji", "📦", "名前"}}},
		// Windows paths, as a Windows user types them.
		{in: `send C:\Users\me\f.txt bob`, want: [][]string{{"send", `C:Usersmef.txt`, "bob"}},
			win: [][]string{{"send", `C:\Users\me\f.txt`, "bob"}}},
		{in: `share C:\x; get x -o C:\dl\`, want: [][]string{{"share", "C:x"}, {"get", "x", "-o", "C:dl"}},
			win: [][]string{{"share", `C:\x`}, {"get", "x", "-o", `C:\dl\`}}},
		{in: `share "C:\Program Files\new\"`, err: true,
			win: [][]string{{"share", `C:\Program Files\new\`}}},
		{in: `share 'C:\Program Files\new\'`, want: [][]string{{"share", `C:\Program Files\new\`}}},
		{in: `share C:\Program" Files\"x`, err: true, // \" does not close
			win: [][]string{{"share", `C:\Program Files\x`}}},
		{in: `get \\server\share\f`, want: [][]string{{"get", `\serversharef`}},
			win: [][]string{{"get", `\\server\share\f`}}},
		{in: `echo "open`, err: true},
		{in: `echo 'open`, err: true},
		{in: strings.Repeat("x", MaxCommandLine+1), err: true},
	}
	for _, sy := range []Syntax{SyntaxPOSIX, SyntaxWindows} {
		for _, tt := range tests {
			want, wantErr := tt.want, tt.err
			if sy == SyntaxWindows {
				if tt.win != nil {
					want, wantErr = tt.win, false
				}
				wantErr = wantErr || tt.winErr
			}
			t.Run(fmt.Sprintf("%d/%s", sy, tt.in), func(t *testing.T) {
				got, err := sy.Parse(tt.in)
				if wantErr {
					if err == nil {
						t.Fatalf("Parse(%q) = %v, want an error", tt.in, got)
					}
					return
				}
				if err != nil {
					t.Fatalf("Parse(%q): %v", tt.in, err)
				}
				var words [][]string
				for i, c := range got {
					words = append(words, c.Words)
					if tt.may != nil && c.MayFail != tt.may[i] {
						t.Errorf("command %d MayFail = %v, want %v", i, c.MayFail, tt.may[i])
					}
				}
				if !reflect.DeepEqual(words, want) {
					t.Errorf("Parse(%q) = %q, want %q", tt.in, words, want)
				}
			})
		}
	}
	if got, _ := ParseLine(`x C:\a`); NativeSyntax == SyntaxWindows && got[0].Words[1] != `C:\a` {
		t.Errorf("ParseLine on Windows read %q", got[0].Words)
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, sy := range []Syntax{SyntaxPOSIX, SyntaxWindows} {
		for _, w := range []string{"plain", "a b", "it's", `back\slash`, `C:\Program Files\`, "x\ny", "semi;colon", "#hash", "",
			`"q"`, `say "hi" it's`, `'"'"`, "tab\tx", "émoji 📦"} {
			cmds, err := sy.Parse("echo " + sy.Quote(w))
			if err != nil || len(cmds) != 1 || len(cmds[0].Words) != 2 || cmds[0].Words[1] != w {
				t.Errorf("syntax %d: Quote(%q) = %s: parsed back as %v, %v", sy, w, sy.Quote(w), cmds, err)
			}
		}
	}
	// Plain words and Windows paths stay as they are on Windows.
	for w, want := range map[string]string{`C:\Users\me\f.txt`: `C:\Users\me\f.txt`, "a b": `"a b"`, "it's": `"it's"`, `say "hi"`: `'say "hi"'`} {
		if got := SyntaxWindows.Quote(w); got != want {
			t.Errorf("SyntaxWindows.Quote(%q) = %s, want %s", w, got, want)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"get a b", `"x y" 'z'`, "a;b # c", `\\ \"`, "-cmd", Quote("a'b\"c"), `C:\x "C:\a b\"`, `'a"'"b'"'c`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, sy := range []Syntax{SyntaxPOSIX, SyntaxWindows} {
			cmds, err := sy.Parse(line)
			if err != nil {
				continue
			}
			// Every command re-quoted parses back to the same words.
			for _, c := range cmds {
				var parts []string
				for _, w := range c.Words {
					parts = append(parts, sy.Quote(w))
				}
				back, err := sy.Parse(strings.Join(parts, " "))
				if err != nil {
					t.Fatalf("syntax %d: re-quoted %q: %v", sy, c.Words, err)
				}
				if len(c.Words) == 0 {
					t.Fatalf("syntax %d: empty command from %q", sy, line)
				}
				if len(back) != 1 || !reflect.DeepEqual(back[0].Words[1:], c.Words[1:]) {
					t.Fatalf("syntax %d: round trip of %q gave %v", sy, c.Words, back)
				}
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
	// Typed with /, which every system takes, so that one line reads the
	// same in both syntaxes (a C:\… path would not in SyntaxPOSIX).
	d := filepath.ToSlash(dir)
	names := []string{"alpha.txt", "beta file.bin", "alps.jpg", `say "hi".txt`, "it's.txt"}
	type tcase struct {
		line      string
		want, win []string // win: SyntaxWindows's, where it differs
	}
	tests := []tcase{
		{line: "he", want: []string{"help "}},
		{line: "-ec", want: []string{"-echo "}},
		{line: "set par", want: []string{"parallel "}},
		{line: "set errexit o", want: []string{"off ", "on "}}, // the second argument
		{line: "help ca", want: []string{"cancel "}},
		{line: "source " + d + "/f", want: []string{d + "/file.txt "}},
		{line: "source " + d + "/s", want: []string{escapeWord(d+"/sub dir") + "/"}, win: []string{d + `/sub" dir/`}},
		{line: "x; set col", want: []string{"color "}},
		{line: `source "` + d + "/s", want: []string{`"` + d + "/sub dir/"}}, // a folder: still open
	}
	get := []tcase{
		{line: "get alpha.txt al", want: []string{"alpha.txt ", "alps.jpg "}}, // every argument
		{line: "get b", want: []string{`beta\ file.bin `}, win: []string{`beta" file.bin" `}},
		// Inside quotes: the word stays quoted and is closed.
		{line: "get 'beta f", want: []string{`'beta file.bin' `}},
		{line: `get "beta f`, want: []string{`"beta file.bin" `}},
		{line: `get beta\ f`, want: []string{`beta\ file.bin `}, win: []string{}}, // Windows: \ is not an escape
		{line: `get "say`, want: []string{`"say \"hi\".txt" `}, win: []string{`"say "'"hi".txt' `}},
		{line: `get 'say`, want: []string{`'say "hi".txt' `}},
		{line: `get 'it`, want: nil, win: []string{`'it'"'s.txt" `}}, // POSIX: no ' inside '…'
		{line: `get it`, want: []string{`it\'s.txt `}, win: []string{`it"'s.txt" `}},
	}
	for _, sy := range []Syntax{SyntaxPOSIX, SyntaxWindows} {
		ui := newFakeUI(true)
		s := testShell(t, ui)
		s.syntax = sy
		s.setLastNames(names)
		s.remoteAt = time.Now() // no master: the names above are all there is
		all := tests
		if _, ok := s.byName["get"]; ok {
			all = append(all, get...)
		}
		for _, tt := range all {
			want := tt.want
			if sy == SyntaxWindows && tt.win != nil {
				want = tt.win
			}
			if len(want) == 0 {
				want = nil
			}
			got, raw := s.completions(tt.line)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("syntax %d: completions(%q) = %q, want %q", sy, tt.line, got, want)
			}
			// Each completed line parses, its last word being the
			// candidate itself, quotes removed.
			for _, g := range got {
				if isFolderWord(g) {
					continue
				}
				line := strings.TrimSuffix(tt.line, raw) + g
				cmds, err := sy.Parse(line)
				if err != nil || len(cmds) == 0 {
					t.Errorf("syntax %d: completed line %q: %v", sy, line, err)
					continue
				}
				ws := cmds[len(cmds)-1].Words
				if last := ws[len(ws)-1]; strings.ContainsAny(last, ` '"`) && !slices.Contains(names, last) {
					t.Errorf("syntax %d: completed line %q reads back as %q", sy, line, last)
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
	// A folder ends in the separator the typed path uses: \ on Windows
	// unless the path is written with /.
	if got := localPaths(dir + string(filepath.Separator) + "s"); len(got) != 1 || got[0] != filepath.Join(dir, "sub dir")+string(filepath.Separator) {
		t.Errorf("localPaths(%q) = %q", dir+string(filepath.Separator)+"s", got)
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

// TestQuoteArg: the name in a "get NAME --as NEWNAME" hint reads back as
// that name in this system's syntax (a Linux server's a\b on Windows too).
func TestQuoteArg(t *testing.T) {
	for _, n := range []string{"plain.txt", `a\b.txt`, "it's.txt", `say "hi".txt`, "a b;c#d", `C:\x`} {
		cmds, err := ParseLine("get " + quoteArg(n) + " --as x")
		if err != nil || len(cmds) != 1 || len(cmds[0].Words) != 4 || cmds[0].Words[1] != n {
			t.Errorf("quoteArg(%q) = %s: reads back as %v, %v", n, quoteArg(n), cmds, err)
		}
	}
	if got := quoteArg("a\nb"); got != `"a\nb"` {
		t.Errorf("quoteArg of a control character = %s", got)
	}
}

// TestHelpQuoting: help ends with the quoting rule of the shell's syntax.
func TestHelpQuoting(t *testing.T) {
	for sy, want := range map[Syntax]string{
		SyntaxPOSIX:   `\ escapes the next character`,
		SyntaxWindows: `\ is an ordinary character`,
	} {
		ui := newFakeUI(false)
		s := testShell(t, ui)
		s.syntax = sy
		if !runLines(t, s, "help") {
			t.Fatalf("help: %s", ui.stderr())
		}
		if out := strings.Join(strings.Fields(ui.stdout()), " "); !strings.Contains(out, "Quoting: ") || !strings.Contains(out, want) {
			t.Errorf("syntax %d: help does not say %q:\n%s", sy, want, ui.stdout())
		}
	}
}
