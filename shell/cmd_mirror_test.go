package shell

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
)

func entryOf(name, content string) store.Entry {
	return store.Entry{File: store.File{Name: name, Size: int64(len(content)), Type: "text",
		Hash: store.HashBytes([]byte(content)).String()}, Servers: []string{"127.0.0.1:9"}}
}

// TestPlanTree: the names under the local folder, a file already there
// with the same content skipped, one with other bytes (or the same size
// and other bytes) fetched, a partial file counted as a resume, and a
// name Windows cannot hold refused alone, naming it.
func TestPlanTree(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lec/a.txt", "same")
	write("lec/w1/b.txt", "oth!") // same size, other bytes
	write("lec/w1/c.txt", "short")
	write("lec/w1/deep/.d.txt.fxpart", "")
	es := []store.Entry{entryOf("lec/a.txt", "same"), entryOf("lec/w1/b.txt", "diff"), entryOf("lec/w1/c.txt", "longer"),
		entryOf("lec/w1/deep/d.txt", "ddd"), entryOf("lec/w1/aux.c", "x")}
	p, err := planTree(t.Context(), treeReq{remote: "lec", root: root, under: "lec", goos: "windows"}, es)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range p.fetch {
		got = append(got, f.local)
	}
	if strings.Join(got, " ") != "lec/w1/b.txt lec/w1/c.txt lec/w1/deep/d.txt" || p.skipped != 1 || p.resumes != 1 {
		t.Errorf("plan: fetch %q, skipped %d, resumes %d", got, p.skipped, p.resumes)
	}
	if len(p.refused) != 1 || !strings.Contains(p.refused[0], `"lec/w1/aux.c"`) || !strings.Contains(p.refused[0], "--as NEWNAME") {
		t.Errorf("refused %q", p.refused)
	}
	// Into LOCAL itself (mirror FOLDER LOCAL): no folder in between.
	p, err = planTree(t.Context(), treeReq{remote: "lec/w1", root: filepath.Join(root, "lec", "w1"), goos: "linux"}, es[1:4])
	if err != nil || len(p.fetch) != 3 || p.fetch[0].local != "b.txt" || p.fetch[2].local != "deep/d.txt" {
		t.Errorf("mirror into LOCAL: %+v, %v", p, err)
	}
	// A folder that does not exist yet: everything is fetched.
	p, err = planTree(t.Context(), treeReq{remote: "lec", root: filepath.Join(root, "new"), under: "lec", goos: "linux"}, es[:4])
	if err != nil || len(p.fetch) != 4 || p.skipped != 0 {
		t.Errorf("fresh folder: %+v, %v", p, err)
	}
}

// TestPlanTreeRefuses: a name that would leave the folder, however it
// arrives, refuses the whole folder before anything is fetched.
func TestPlanTreeRefuses(t *testing.T) {
	root := t.TempDir()
	for _, tt := range []struct {
		name string
		es   []store.Entry
		want string
	}{
		{"dotdot", []store.Entry{entryOf("lec/ok.txt", "1"), entryOf("lec/../../x", "2")}, `".." component`},
		{"outside the folder", []store.Entry{entryOf("other/x", "2")}, `the master listed "other/x" under "lec/"`},
		{"own suffix", []store.Entry{entryOf("lec/.a.fxpart", "2")}, "reserved suffix"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := planTree(t.Context(), treeReq{remote: "lec", root: root, under: "lec"}, tt.es)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
	if runtime.GOOS == "windows" {
		return // symbolic links need privileges there
	}
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "lec"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "lec", "w1")); err != nil {
		t.Fatal(err)
	}
	_, err := planTree(t.Context(), treeReq{remote: "lec", root: root, under: "lec"}, []store.Entry{entryOf("lec/w1/a.txt", "1")})
	if !errors.Is(err, partfile.ErrUnsafeName) || !strings.Contains(err.Error(), "leads outside the download folder") {
		t.Errorf("through a link out of the folder: %v", err)
	}
}

// TestPlanTreeInterrupted: a cancelled context stops the plan.
func TestPlanTreeInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := planTree(ctx, treeReq{remote: "lec", root: t.TempDir()}, []store.Entry{entryOf("lec/a", "1")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

func TestRemoteFolder(t *testing.T) {
	for in, want := range map[string]string{"lectures": "lectures", "lectures/": "lectures", "a/b//": "a/b",
		"/": "", "../x": "", "a/../b": "", "/etc": ""} {
		got, err := remoteFolder(in)
		if want == "" && err == nil || want != "" && (err != nil || got != want) {
			t.Errorf("remoteFolder(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestRenderGroup: a group's line adds its members up, and fits a width.
func TestRenderGroup(t *testing.T) {
	gs := groupSnapshot{ID: 2, Kind: "mirror", Name: "lectures/ → dl", Files: 7, Skipped: 2, Running: 1, Queued: 2,
		Done: 1, Failed: 1, DoneBytes: 500, TotalBytes: 1000, Rate: 100}
	got := renderGroup(gs, 0)
	want := "[g2] mirror lectures/ → dl: 3/7 done, 1 running, 2 queued, 1 failed, 2 skipped; 500 B/1.0 kB  50% 100B/s"
	if got != want {
		t.Errorf("renderGroup =\n%q, want\n%q", got, want)
	}
	if w := cells(renderGroup(gs, 40)); w > 39 {
		t.Errorf("at 40 columns: %d cells", w)
	}
	if tally := groupTally(gs); tally != "1 file fetched (500 B), 2 skipped (already here, same content), 1 failed" {
		t.Errorf("groupTally = %q", tally)
	}
}

// TestGroupEndsOnce: members that end at once, even before the group has
// started them all, are counted: the group ends exactly once, after its
// last member.
func TestGroupEndsOnce(t *testing.T) {
	var gt groupTable
	ends := make(chan *jobGroup, 10)
	jt := NewJobTable(t.Context(), 2, func(ev JobEvent) {
		if g := gt.jobEnded(ev.Job.ID); g != nil {
			ends <- g
		}
	})
	g := &jobGroup{Kind: "mirror", Name: "x/ → y"}
	fail := errors.New("no")
	gt.start(g, 5, func(i int) *Job {
		return jt.Start("get", "f", false, func(ctx context.Context, j *Job) error {
			if i == 3 {
				return fail
			}
			return nil
		})
	})
	if err := jt.Wait(t.Context(), jt.List()); err != nil {
		t.Fatal(err)
	}
	if got := <-ends; got != g {
		t.Fatalf("ended group %+v", got)
	}
	select {
	case g2 := <-ends:
		t.Fatalf("group ended twice: %+v", g2)
	default:
	}
	gs := gt.snapshots(nil, nil)
	if len(gs) != 1 || gs[0].Done != 4 || gs[0].Failed != 1 || gs[0].Files != 5 || len(gs[0].IDs) != 5 {
		t.Errorf("snapshot %+v", gs)
	}
}

// TestFolderCompletion: mirror and get -r complete remote folders (each
// left open, with its "/"), mirror's second word a local path.
func TestFolderCompletion(t *testing.T) {
	s := testShell(t, newFakeUI(true))
	s.setLastNames([]string{"lectures/w1/a.pdf", "lectures/b.pdf", "labs/x.c", "top.txt"})
	s.remoteAt = time.Now() // no master: the names above are all there is
	dir := filepath.ToSlash(t.TempDir())
	os.Mkdir(filepath.Join(dir, "dl"), 0o755)
	for line, want := range map[string][]string{
		"mirror l":                  {"labs/", "lectures/", "lectures/w1/"},
		"mirror lectures/w":         {"lectures/w1/"},
		"get -r la":                 {"labs/"},
		"get la":                    {"labs/x.c "},
		"list la":                   {"labs/", "labs/x.c "},
		"mirror labs " + dir + "/d": {dir + "/dl/"},
	} {
		got, _ := s.completions(line)
		if !slices.Equal(got, want) {
			t.Errorf("completions(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestWaitDrawsGroup: wait's live block draws a folder download's running
// files and its group line, not a row for each queued file.
func TestWaitDrawsGroup(t *testing.T) {
	ui := newFakeUI(true)
	ui.width = 80
	s := testShell(t, ui)
	s.jobs.SetParallel(1)
	release := make(chan struct{})
	g := &jobGroup{Kind: "mirror", Name: "lectures/ → dl", Skipped: 2}
	s.grp.start(g, 3, func(i int) *Job {
		j := s.jobs.Start("get", fmt.Sprintf("lectures/f%d", i), false, func(ctx context.Context, j *Job) error {
			<-release
			return nil
		})
		j.SetTotal(100)
		return j
	})
	s.drawLive(s.jobs.List())
	out := ui.stdout()
	close(release)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "[1] running") ||
		!strings.HasPrefix(lines[1], "[g1] mirror lectures/ → dl: 2/5 done, 1 running, 2 queued, 2 skipped; 0 B/300") ||
		cells(lines[1]) > 79 ||
		!strings.HasPrefix(lines[2], "total: 1 running, 2 queued") {
		t.Errorf("live block:\n%s", out)
	}
}

// TestCancelAndWaitGroup: cancel gN stops a folder download's jobs that
// have not ended (not an error for those that have), wait gN waits for
// them and fails; a group that does not exist is named.
func TestCancelAndWaitGroup(t *testing.T) {
	s := testShell(t, newFakeUI(false))
	s.jobs.SetParallel(1)
	g := &jobGroup{Kind: "get -r", Name: "a/ → dl"}
	s.grp.start(g, 3, func(i int) *Job {
		return s.jobs.Start("get", fmt.Sprintf("a/f%d", i), false, func(ctx context.Context, j *Job) error {
			if i == 0 {
				return nil // ends at once
			}
			<-ctx.Done()
			return ctx.Err()
		})
	})
	<-g.jobs[0].Done()
	ctx := context.Background()
	if err := s.exec(ctx, Command{Words: []string{"cancel", "g1"}}); err != nil {
		t.Fatalf("cancel g1: %v", err)
	}
	err := s.exec(ctx, Command{Words: []string{"wait", "g1"}})
	if err == nil || !strings.Contains(err.Error(), "2 jobs did not finish") {
		t.Errorf("wait g1 = %v", err)
	}
	if got := s.grp.active(); len(got) != 0 {
		t.Errorf("active groups after cancel: %q", got)
	}
	for _, bad := range []string{"g2", "gx"} {
		if err := s.exec(ctx, Command{Words: []string{"wait", bad}}); err == nil || !strings.Contains(err.Error(), "g") {
			t.Errorf("wait %s = %v", bad, err)
		}
	}
}
