package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-runewidth"
)

// widthFixture is a master and a slow file server sharing four 600 kB
// files, a name of 90 characters and one of CJK and emoji.
type widthFixture struct {
	bin, work, addr string
}

const (
	longName = "a-very-long-file-name-that-goes-on-and-on-about-lectures-and-slides-and-notes-week-03.pdf"
	cjkName  = "講義ノート📦第3週.txt"
)

func newWidthFixture(t *testing.T) *widthFixture {
	t.Helper()
	bin := buildFxsh(t)
	work := t.TempDir()
	share := filepath.Join(work, "share")
	os.MkdirAll(share, 0o755)
	for i := 1; i <= 4; i++ {
		b := make([]byte, 600<<10)
		for k := range b {
			b[k] = byte(k*i + k>>9)
		}
		os.WriteFile(filepath.Join(share, fmt.Sprintf("f%d.bin", i)), b, 0o644)
	}
	os.WriteFile(filepath.Join(share, longName), []byte("long"), 0o644)
	os.WriteFile(filepath.Join(share, cjkName), []byte("cjk"), 0o644)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := func(args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+work, "GORACE=atexit_sleep_ms=0")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	}
	start("-c", "serve master "+addr)
	// At most 600 kB/s for all four files: a wait lasts a few seconds.
	start("--master", addr, "-c", "set rate 600kB/s; set chunk 8192; share "+share)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := exec.Command(bin, "--master", addr, "-c", "list").CombinedOutput()
		if strings.Contains(string(out), "f4.bin") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the files never appeared: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &widthFixture{bin: bin, work: work, addr: addr}
}

// shell opens fxsh at the prompt in a tmux window of width × height.
func (f *widthFixture) shell(t *testing.T, width, height int) *tmux {
	t.Helper()
	tm := newTmux(t, width, height, []string{"-u", "NO_COLOR", "XDG_STATE_HOME=" + f.work, "XDG_CACHE_HOME=" + f.work,
		"TERM=xterm-256color", "HOME=" + f.work, "GORACE=atexit_sleep_ms=0"},
		"sh", "-c", "cd "+f.work+" && exec "+f.bin+" --master "+f.addr)
	tm.waitScreen("the prompt", func(s string) bool { return strings.Contains(s, "fxsh>") })
	return tm
}

// history returns the whole pane with its scrollback.
func (tm *tmux) history() string {
	out, _ := exec.Command("tmux", "-S", tm.socket, "capture-pane", "-p", "-J", "-S", "-1000", "-t", tm.session).CombinedOutput()
	return string(out)
}

func screenLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n "), "\n") {
		out = append(out, strings.TrimRight(l, " "))
	}
	return out
}

var (
	jobRow     = regexp.MustCompile(`^\[[1-4]\] (running|queued) `)
	summaryRow = regexp.MustCompile(`^total: `)
	doneRow    = regexp.MustCompile(`(?m)job [1-4] done: f[1-4]\.bin`)
)

// TestTerminalWidths: at 60, 80 and 200 columns, list aligns a 90-character
// name and a CJK+emoji name; a 4-job wait shows exactly the 4 job lines and
// the summary, every one a single row, redrawn in place; help breaks no
// word and no line is wider than the window.
func TestTerminalWidths(t *testing.T) {
	f := newWidthFixture(t)
	for _, width := range []int{60, 80, 200} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			tm := f.shell(t, width, 24)

			// list: every row fits, and the SIZE column (right-aligned)
			// ends in the same cell on every row.
			tm.text("list")
			tm.keys("Enter")
			screen := tm.waitScreen("the listing", func(s string) bool { return strings.Contains(s, "f4.bin") })
			sizeEnd := regexp.MustCompile(`\d B|kB|MB`)
			col := -1
			rows := 0
			for _, l := range screenLines(screen) {
				if runewidth.StringWidth(l) > width-1 {
					t.Errorf("list row wider than %d-1 cells: %q", width, l)
				}
				if !strings.Contains(l, ".bin") && !strings.Contains(l, ".pdf") && !strings.Contains(l, ".txt") {
					continue
				}
				loc := sizeEnd.FindStringIndex(l)
				if loc == nil {
					t.Errorf("no size in %q", l)
					continue
				}
				c := runewidth.StringWidth(l[:loc[1]])
				if col >= 0 && c != col {
					t.Errorf("misaligned row %q: size ends at cell %d, want %d\n%s", l, c, col, screen)
				}
				col = c
				rows++
			}
			if rows != 6 {
				t.Errorf("%d file rows, want 6:\n%s", rows, screen)
			}
			if !strings.Contains(screen, "講義ノー") {
				t.Errorf("the CJK name is missing:\n%s", screen)
			}
			if width == 200 && !strings.Contains(screen, longName) {
				t.Errorf("at 200 columns the long name should be whole:\n%s", screen)
			}
			if width < 200 && !strings.Contains(screen, "…") {
				t.Errorf("at %d columns the long name should be shortened:\n%s", width, screen)
			}
			tm.keys("C-l")

			// A 4-job wait: exactly 4 job lines and the summary, however
			// long it runs (lines never pile up).
			dl := fmt.Sprintf("dl%d", width)
			tm.text("get f1.bin f2.bin f3.bin f4.bin -o " + dl + "; wait")
			tm.keys("Enter")
			tm.waitScreen("the live block", func(s string) bool { return strings.Contains(s, "total: 4 running") })
			checks := 0
			for i := 0; i < 10; i++ {
				s := tm.screen(false)
				if strings.Contains(s, "done:") || !strings.Contains(s, "total: 4 running") {
					break // a job ended: the block shrinks
				}
				lines := screenLines(s)
				var jobs, sums int
				for _, l := range lines {
					if runewidth.StringWidth(l) > width-1 {
						t.Errorf("a live line wider than %d-1 cells: %q", width, l)
					}
					switch {
					case jobRow.MatchString(l):
						jobs++
					case summaryRow.MatchString(l):
						sums++
					}
				}
				// The block is the last five rows on the screen.
				tail := lines[max(0, len(lines)-5):]
				for k, l := range tail {
					re := jobRow
					if k == 4 {
						re = summaryRow
					}
					if !re.MatchString(l) {
						t.Errorf("row %d of the block is %q; screen:\n%s", k, l, s)
					}
				}
				if jobs != 4 || sums != 1 {
					t.Fatalf("%d job lines and %d summaries on screen, want 4 and 1:\n%s", jobs, sums, s)
				}
				checks++
				time.Sleep(150 * time.Millisecond)
			}
			if checks < 2 {
				t.Errorf("only %d checks of the live block before a job ended", checks)
			}
			// The jobs end in any order (a job may take chunks from
			// another as a peer): wait for all four end lines.
			tm.waitScreen("the jobs done", func(s string) bool { return len(doneRow.FindAllString(s, -1)) == 4 })
			s := tm.screen(false)
			if n := strings.Count(s, "total: "); n != 0 {
				t.Errorf("the live block was not erased (%d summaries left):\n%s", n, s)
			}

			// help: wrapped to the window, no word broken (the words are
			// those of help into a pipe, in the same order).
			tm.keys("C-l")
			tm.text("help")
			tm.keys("Enter")
			tm.waitScreen("help", func(s string) bool { return strings.Contains(s, "Type help CMD for details") })
			want, err := exec.Command(f.bin, "-c", "help").Output()
			if err != nil {
				t.Fatal(err)
			}
			h := tm.history()
			i := strings.LastIndex(h, "fxsh> help")
			if i < 0 {
				t.Fatalf("no help command in the history:\n%s", h)
			}
			got := h[i+len("fxsh> help"):]
			got = got[:strings.LastIndex(got, "fxsh>")]
			for _, l := range screenLines(got) {
				if runewidth.StringWidth(l) > width-1 {
					t.Errorf("help line wider than %d-1 cells: %q", width, l)
				}
			}
			if g, w := strings.Join(strings.Fields(got), " "), strings.Join(strings.Fields(string(want)), " "); g != w {
				t.Errorf("help at %d columns has other words than help into a pipe:\n%s\n---\n%s", width, g, w)
			}
			tm.text("quit")
			tm.keys("Enter")
		})
	}
}

// TestTerminalQuitWait: Ctrl-D with a job running waits for it and says
// how to get out; Ctrl-C returns to the prompt with the job still running;
// and fxsh -c 'get; wait' on a terminal shows live progress.
func TestTerminalQuitWait(t *testing.T) {
	f := newWidthFixture(t)
	tm := f.shell(t, 80, 24)
	tm.text("get f1.bin f2.bin f3.bin -o q")
	tm.keys("Enter")
	tm.waitScreen("the jobs", func(s string) bool { return strings.Contains(s, "job 3: f3.bin") })
	tm.keys("C-d")
	tm.waitScreen("the exit wait", func(s string) bool {
		return strings.Contains(s, "waiting for 3 jobs to end (Ctrl-C returns to the prompt; quit -f cancels them)")
	})
	tm.waitScreen("the live block", func(s string) bool { return strings.Contains(s, "total: 3 running") })
	tm.keys("C-c")
	screen := tm.waitScreen("the prompt again", func(s string) bool {
		return strings.Contains(s, "not quitting: 3 jobs still running") && strings.HasSuffix(lastLine(s), "fxsh>")
	})
	if strings.Contains(screen, "cancelled") {
		t.Fatalf("Ctrl-C in the exit wait cancelled jobs:\n%s", screen)
	}
	tm.text("echo alive")
	tm.keys("Enter")
	tm.waitScreen("a command after Ctrl-C", func(s string) bool { return strings.Contains(s, "\nalive\n") })
	tm.text("quit -f")
	tm.keys("Enter")

	// A script on a terminal: progress is drawn live.
	tm2 := newTmux(t, 80, 24, []string{"-u", "NO_COLOR", "XDG_CACHE_HOME=" + f.work, "GORACE=atexit_sleep_ms=0"},
		"sh", "-c", "cd "+f.work+" && "+f.bin+" --master "+f.addr+" -c 'get f4.bin -o s; wait'; echo status=$?; sleep 60")
	tm2.waitScreen("live progress from fxsh -c", func(s string) bool { return jobRow.MatchString(lastLine(s)) || strings.Contains(s, "\n[1] running") })
	tm2.waitScreen("the script's end", func(s string) bool { return strings.Contains(s, "status=0") })
	if s := tm2.screen(false); strings.Contains(s, "total:") {
		t.Errorf("the live block was left on screen:\n%s", s)
	}
}

// TestTerminalRemoteCompletion: remote names complete on Tab from the
// master before any list, and inside an open quote to a quoted word that
// works.
func TestTerminalRemoteCompletion(t *testing.T) {
	f := newWidthFixture(t)
	tm := f.shell(t, 140, 24)
	tm.text("get f3")
	tm.keys("Tab")
	tm.waitScreen("remote completion before any list", func(s string) bool {
		return strings.HasSuffix(lastLine(s), "fxsh> get f3.bin")
	})
	tm.keys("C-c")
	tm.text("get 'a-very-long")
	tm.keys("Tab")
	tm.waitScreen("completion inside quotes", func(s string) bool {
		return strings.HasSuffix(lastLine(s), "fxsh> get '"+longName+"'")
	})
	tm.text(" -o cq")
	tm.keys("Enter")
	tm.waitScreen("the download of the quoted completion", func(s string) bool {
		return strings.Contains(s, "job 1 done: a-very-long")
	})
	tm.text("quit")
	tm.keys("Enter")
}
