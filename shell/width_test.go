package shell

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCells(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"abc", 3},
		{"名前", 4},
		{"📦", 2},
		{"e\u0301", 1}, // e + combining acute
		{"\x1b[1mbold\x1b[0m", 4},
	} {
		if got := cells(tc.in); got != tc.want {
			t.Errorf("cells(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestShortenMiddle(t *testing.T) {
	long := strings.Repeat("lecture-", 10) + "final.pdf"
	for _, w := range []int{1, 2, 5, 16, 40} {
		got := shortenMiddle(long, w)
		if cells(got) != w {
			t.Errorf("shortenMiddle(_, %d) = %q: %d cells", w, got, cells(got))
		}
		if w >= 7 && (!strings.HasPrefix(got, "lec") || !strings.Contains(got, "…") || !strings.HasSuffix(got, "df")) {
			t.Errorf("shortenMiddle(_, %d) = %q: want the start, …, and the end", w, got)
		}
	}
	// Wide runes: never more than w cells, padded to exactly w.
	cjk := "講義資料第三週のスライド最終版.pdf"
	for w := 1; w < 20; w++ {
		if got := shortenMiddle(cjk, w); cells(got) != w {
			t.Errorf("shortenMiddle(cjk, %d) = %q: %d cells", w, got, cells(got))
		}
	}
	if got := shortenMiddle("short", 10); got != "short" {
		t.Errorf("a short name was changed: %q", got)
	}
}

func TestWrapText(t *testing.T) {
	text := "Folders are indexed recursively; one folder's contents appear at the top of the index,\n" +
		"several folders each under their own name.\n\nA second paragraph."
	for _, w := range []int{20, 60, 80} {
		got := wrapText(text, w, "  ")
		for _, l := range strings.Split(got, "\n") {
			if cells(l) > w {
				t.Errorf("width %d: line %q is %d cells", w, l, cells(l))
			}
		}
		// No word is broken: the words come back in order.
		if a, b := strings.Fields(got), strings.Fields(text); strings.Join(a, " ") != strings.Join(b, " ") {
			t.Errorf("width %d: words changed:\n%q\n%q", w, a, b)
		}
		if !strings.Contains(got, "\n\n  A second") {
			t.Errorf("width %d: paragraph lost: %q", w, got)
		}
	}
	// A word longer than the line is cut rather than overflowing.
	if got := wrapText(strings.Repeat("x", 30), 10, ""); strings.Count(got, "\n") != 2 {
		t.Errorf("long word: %q", got)
	}
	if got := wrapText("a\nb", 0, ""); got != "a b" {
		t.Errorf("no limit: %q", got)
	}
}

func TestScreenRows(t *testing.T) {
	if got := screenRows("abc\n"+strings.Repeat("x", 81)+"\n名前\n", 80); got != 4 {
		t.Errorf("screenRows = %d, want 4 (one line wraps)", got)
	}
	if got := screenRows("a\nb\n", 0); got != 2 {
		t.Errorf("screenRows without a width = %d", got)
	}
}

// TestRenderJobWidths: a job line fits every width, keeps id, state and
// percentage, shortens the name in the middle, and drops fields in the
// stated order.
func TestRenderJobWidths(t *testing.T) {
	p := newPalette(false)
	sn := JobSnapshot{
		ID: 12, Kind: "get", Name: "lectures/week-03/" + strings.Repeat("very-long-name-", 5) + "slides.pdf",
		State: JobRunning, Done: 45 << 20, Total: 100 << 20, Rate: 3.2e6, ETA: 17 * time.Second,
		Sources: []string{"127.0.0.1:41229", "127.0.0.1:41230"},
	}
	full := renderJob(p, sn, 0)
	for _, want := range []string{"[12] running   get [#########...........]  45% 47.2 MB/105 MB 3.2MB/s eta 17.0s  lectures/", "from 127.0.0.1:41229,127.0.0.1:41230"} {
		if !strings.Contains(full, want) {
			t.Errorf("full line %q lacks %q", full, want)
		}
	}
	for _, w := range []int{30, 40, 60, 80, 120, 200, 300} {
		l := renderJob(p, sn, w)
		if cells(l) > w-1 {
			t.Errorf("width %d: %d cells: %q", w, cells(l), l)
		}
		for _, want := range []string{"[12] running", "45%"} {
			if !strings.Contains(l, want) {
				t.Errorf("width %d: %q lacks %q", w, l, want)
			}
		}
		if w >= 60 && !strings.Contains(l, "…") && !strings.Contains(l, sn.Name) {
			t.Errorf("width %d: name neither whole nor shortened: %q", w, l)
		}
	}
	// Drop order: at 80 the sources and ETA go first; the bar stays.
	l80 := renderJob(p, sn, 80)
	if strings.Contains(l80, "from ") || strings.Contains(l80, "eta") || !strings.Contains(l80, "[###") {
		t.Errorf("width 80: want no sources, no eta, a bar: %q", l80)
	}
	if l := renderJob(p, sn, 300); !strings.Contains(l, sn.Name) || !strings.Contains(l, "from 127") {
		t.Errorf("width 300: want everything: %q", l)
	}
	// A failed job's error wraps under it.
	sn.State, sn.Err = JobFailed, errors.New(strings.Repeat("the source went away ", 10))
	for _, l := range strings.Split(renderJob(p, sn, 60), "\n") {
		if cells(l) > 59 {
			t.Errorf("failed job line %q is %d cells", l, cells(l))
		}
	}
}

// TestFitTable: CJK and emoji names line up by cells, a long name is
// shortened in the middle, and a long last column wraps under itself.
func TestFitTable(t *testing.T) {
	p := newPalette(false)
	long := strings.Repeat("n", 80) + "-end.bin"
	rows := [][]string{
		{"NAME", "SIZE", "SERVERS"},
		{"a.txt", "8 B", "127.0.0.1:1"},
		{"名前📦.txt", "1.2 kB", "127.0.0.1:1"},
		{long, "3 MB", "127.0.0.1:1"},
	}
	for _, w := range []int{0, 60, 80, 200} {
		out := fitTable(p, rows, tableFit{width: w, shrink: 0, right: []int{1}})
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		col := -1
		for _, l := range lines {
			if w > 0 && cells(l) > w-1 {
				t.Errorf("width %d: %q is %d cells", w, l, cells(l))
			}
			// The SERVERS column starts at the same cell on every row.
			i := strings.Index(l, "127.0.0.1")
			if i < 0 {
				continue
			}
			c := cells(l[:i])
			if col >= 0 && c != col {
				t.Errorf("width %d: misaligned row %q (column at %d, want %d)", w, l, c, col)
			}
			col = c
		}
		if w == 80 && !strings.Contains(out, "nnn…nnn") {
			t.Errorf("width 80: long name not shortened in the middle:\n%s", out)
		}
		if w == 0 && !strings.Contains(out, long) {
			t.Errorf("no limit: long name changed:\n%s", out)
		}
	}
	// The last column wraps.
	set := [][]string{{"SETTING", "VALUE", "MEANING"}, {"parallel", "4", strings.Repeat("how many downloads run at once ", 4)}}
	out := fitTable(p, set, tableFit{width: 60, shrink: -1})
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if cells(l) > 59 {
			t.Errorf("wrapped table line %q is %d cells", l, cells(l))
		}
	}
	if strings.Count(out, "\n") < 4 {
		t.Errorf("the last column did not wrap:\n%s", out)
	}
}

// TestPromptSummaryFits: the prompt's job summary leaves room to type and
// loses the rate first.
func TestPromptSummaryFits(t *testing.T) {
	ui := newFakeUI(true)
	s := testShell(t, ui)
	release := make(chan struct{})
	defer close(release)
	for range 2 {
		s.jobs.Start("get", "x", false, func(ctx context.Context, j *Job) error {
			j.SetTotal(100)
			j.SetDone(50)
			<-release
			return nil
		})
	}
	waitFor(t, "two jobs half done", func() bool { return strings.HasPrefix(s.prompt(), "[2 jobs 50%") })
	for _, tc := range []struct {
		width int
		want  string
	}{
		{0, "[2 jobs 50% "},
		{200, "[2 jobs 50% "},
		{40, "[2 jobs 50%] fxsh> "},
		{30, "fxsh> "},
	} {
		ui.mu.Lock()
		ui.width = tc.width
		ui.mu.Unlock()
		p := s.prompt()
		if !strings.HasPrefix(p, tc.want) {
			t.Errorf("width %d: prompt %q, want it to start %q", tc.width, p, tc.want)
		}
		if tc.width > 0 && cells(p)+promptRoom > tc.width {
			t.Errorf("width %d: prompt %q leaves less than %d cells", tc.width, p, promptRoom)
		}
	}
}

// TestFitTableDrops: columns go in the stated order, and the shortened
// column takes back the room they leave.
func TestFitTableDrops(t *testing.T) {
	p := newPalette(false)
	name := strings.Repeat("x", 40)
	rows := [][]string{{"NAME", "A", "B", "C"}, {name, strings.Repeat("a", 10), strings.Repeat("b", 10), strings.Repeat("c", 10)}}
	f := tableFit{shrink: 0, drop: []int{2, 1}}
	for _, tc := range []struct {
		width    int
		has, not []string
	}{
		{100, []string{name, "aaa", "bbb", "ccc"}, nil},
		{60, []string{"aaa", "bbb", "ccc", "…"}, nil},      // the name shortened, nothing dropped
		{45, []string{"aaa", "ccc", "…"}, []string{"bbb"}}, // B went first
		{30, []string{"ccc", "…"}, []string{"aaa", "bbb"}},
	} {
		f.width = tc.width
		out := fitTable(p, rows, f)
		for _, s := range tc.has {
			if !strings.Contains(out, s) {
				t.Errorf("width %d: %q lacks %q", tc.width, out, s)
			}
		}
		for _, s := range tc.not {
			if strings.Contains(out, s) {
				t.Errorf("width %d: %q has %q", tc.width, out, s)
			}
		}
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if cells(l) > tc.width-1 {
				t.Errorf("width %d: %q is %d cells", tc.width, l, cells(l))
			}
		}
	}
}
