// Package catalogtest is the test suite every store.Catalog implementation
// runs: Run takes a Factory that makes catalogs and checks registration,
// replacement, removal, liveness, search, globs and receivers; with a
// shared backing store it also checks that two catalogs (two masters) see
// each other's writes.
package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
)

// Factory makes catalogs for one subtest. ttl is the liveness timeout the
// catalog must apply. When Shared is true, each call to New within the same
// subtest returns another view (another master) on the same backing store,
// and the suite also runs its two-master tests.
type Factory struct {
	New    func(t *testing.T, ttl time.Duration) store.Catalog
	Shared bool
}

// Timing. ExpiryTTL is whole seconds because etcd leases are; the waits
// are generous so that a loaded machine does not fail the suite, and every
// wait polls for the outcome instead of sleeping a fixed time.
const (
	LongTTL    = 5 * time.Minute  // for tests that must not see expiry
	ExpiryTTL  = 2 * time.Second  // for the expiry tests
	ExpiryWait = 15 * time.Second // how long expiry may take past the TTL
	SyncWait   = 10 * time.Second // how long a write may take to reach another view
	pollEvery  = 50 * time.Millisecond
)

// Run runs the suite, one subtest per behaviour.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"RegisterAndRead", testRegisterAndRead},
		{"Replace", testReplace},
		{"Unregister", testUnregister},
		{"NotFound", testNotFound},
		{"SameHashTwoServers", testSameHash},
		{"SameNameOtherHash", testSameNameOtherHash},
		{"Search", testSearch},
		{"SearchMax", testSearchMax},
		{"Glob", testGlob},
		{"FilesUnder", testFilesUnder},
		{"Receiver", testReceiver},
		{"Concurrent", testConcurrent},
		{"HeartbeatKeepsAlive", testHeartbeat},
		{"Expiry", testExpiry},
	}
	if f.Shared {
		tests = append(tests, []struct {
			name string
			fn   func(*testing.T, Factory)
		}{
			{"SharedRegister", testSharedRegister},
			{"SharedUnregister", testSharedUnregister},
			{"SharedTakeover", testSharedTakeover},
			{"SharedExpiry", testSharedExpiry},
		}...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.name, "Expiry") || strings.Contains(tt.name, "Heartbeat") {
				t.Parallel()
			}
			tt.fn(t, f)
		})
	}
}

// Hash returns a valid content hash derived from s.
func Hash(s string) string {
	var b strings.Builder
	b.WriteString("blake3:")
	for i := 0; b.Len() < 7+64; i++ {
		c := byte(i)
		if i < len(s) {
			c = s[i] + byte(i)
		}
		fmt.Fprintf(&b, "%02x", c)
	}
	return b.String()[:7+64]
}

// File returns a test file whose hash is derived from content.
func File(name, content string) store.File {
	return store.File{Name: name, Size: int64(len(content)), Type: "text",
		MTime: time.Unix(1700000000, 0).UTC(), Hash: Hash(content)}
}

func newCat(t *testing.T, f Factory, ttl time.Duration) store.Catalog {
	t.Helper()
	c := f.New(t, ttl)
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func register(t *testing.T, c store.Catalog, addr string, files ...store.File) {
	t.Helper()
	if err := c.Register(ctx(t), store.Server{Addr: addr, Role: store.RoleServer}, files); err != nil {
		t.Fatalf("Register(%s, %d files): %v", addr, len(files), err)
	}
}

func names(es []store.Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func files(t *testing.T, c store.Catalog, glob string) []store.Entry {
	t.Helper()
	es, err := c.Files(ctx(t), glob)
	if err != nil {
		t.Fatalf("Files(%q): %v", glob, err)
	}
	return es
}

func servers(t *testing.T, c store.Catalog) []store.Server {
	t.Helper()
	ss, err := c.Servers(ctx(t))
	if err != nil {
		t.Fatalf("Servers: %v", err)
	}
	return ss
}

func addrs(ss []store.Server) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.Addr)
	}
	return out
}

func search(t *testing.T, c store.Catalog, q string, max int) []store.Entry {
	t.Helper()
	es, err := c.Search(ctx(t), q, max)
	if err != nil {
		t.Fatalf("Search(%q, %d): %v", q, max, err)
	}
	return es
}

// eventually polls cond until it holds or wait passes.
func eventually(t *testing.T, wait time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", wait, what)
		}
		time.Sleep(pollEvery)
	}
}

func sortedByNameHash(es []store.Entry) bool {
	return slices.IsSortedFunc(es, func(a, b store.Entry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Hash, b.Hash)
	})
}

func testRegisterAndRead(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	before := time.Now().Add(-time.Second)
	want := []store.File{File("b.txt", "b"), File("a b/c=d.txt", "c"), File("dir/🎉 été.jpg", "e")}
	want[2].Type, want[2].Size = "jpg", 1<<40
	register(t, c, "10.0.0.1:5000", want...)

	ss := servers(t, c)
	if len(ss) != 1 {
		t.Fatalf("Servers = %+v, want one", ss)
	}
	s := ss[0]
	if s.Addr != "10.0.0.1:5000" || s.Role != store.RoleServer || s.Files != 3 {
		t.Errorf("server = %+v, want addr, role server, 3 files", s)
	}
	if s.Registered.Before(before) || s.LastSeen.Before(before) {
		t.Errorf("server times %v/%v not set to the registration time", s.Registered, s.LastSeen)
	}
	got := files(t, c, "")
	if g := names(got); !reflect.DeepEqual(g, []string{"a b/c=d.txt", "b.txt", "dir/🎉 été.jpg"}) {
		t.Fatalf("Files(\"\") = %q", g)
	}
	byName := map[string]store.File{}
	for _, f := range want {
		byName[f.Name] = f
	}
	for _, e := range got {
		w := byName[e.Name]
		if e.Size != w.Size || e.Type != w.Type || !e.MTime.Equal(w.MTime) || e.Hash != w.Hash {
			t.Errorf("entry %+v, want %+v", e.File, w)
		}
		if !reflect.DeepEqual(e.Servers, []string{"10.0.0.1:5000"}) {
			t.Errorf("entry %q servers = %q", e.Name, e.Servers)
		}
	}
	if g := names(files(t, c, "*")); len(g) != 3 {
		t.Errorf(`Files("*") = %q, want all three`, g)
	}
}

func testReplace(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	register(t, c, "h:1", File("a", "a"), File("b", "b"))
	register(t, c, "h:2", File("z", "z"))
	register(t, c, "h:1", File("b", "b"), File("c", "c"))
	if g := names(files(t, c, "")); !reflect.DeepEqual(g, []string{"b", "c", "z"}) {
		t.Errorf("after replace Files = %q, want b c z", g)
	}
	if g := names(search(t, c, "a", 10)); len(g) != 0 {
		t.Errorf("replaced file still found: %q", g)
	}
	ss := servers(t, c)
	if len(ss) != 2 || ss[0].Files != 2 || ss[1].Files != 1 {
		t.Errorf("servers = %+v, want h:1 with 2 files and h:2 with 1", ss)
	}
	register(t, c, "h:1", File("b", "changed"))
	es := files(t, c, "b")
	if len(es) != 1 || es[0].Hash != Hash("changed") {
		t.Errorf("after content change Files(b) = %+v, want only the new hash", es)
	}
}

func testUnregister(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	register(t, c, "h:1", File("gone.txt", "g"))
	register(t, c, "h:2", File("kept.txt", "k"))
	if err := c.Unregister(ctx(t), "h:1"); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	if g := addrs(servers(t, c)); !reflect.DeepEqual(g, []string{"h:2"}) {
		t.Errorf("Servers = %q, want h:2", g)
	}
	if g := names(files(t, c, "")); !reflect.DeepEqual(g, []string{"kept.txt"}) {
		t.Errorf("Files = %q, want kept.txt", g)
	}
	if g := search(t, c, "gone", 10); len(g) != 0 {
		t.Errorf("Search(gone) = %q after unregister", names(g))
	}
	register(t, c, "h:1", File("back.txt", "b"))
	if g := names(files(t, c, "")); !reflect.DeepEqual(g, []string{"back.txt", "kept.txt"}) {
		t.Errorf("after re-register Files = %q", g)
	}
}

func testNotFound(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	if err := c.Heartbeat(ctx(t), "nobody:1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Heartbeat(unknown) = %v, want ErrNotFound", err)
	}
	if err := c.Unregister(ctx(t), "nobody:1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Unregister(unknown) = %v, want ErrNotFound", err)
	}
	register(t, c, "h:1", File("a", "a"))
	if err := c.Unregister(ctx(t), "h:1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unregister(ctx(t), "h:1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Unregister = %v, want ErrNotFound", err)
	}
	if err := c.Heartbeat(ctx(t), "h:1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Heartbeat after Unregister = %v, want ErrNotFound", err)
	}
}

func testSameHash(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	register(t, c, "h:2", File("movie.mkv", "m"), File("only2", "o"))
	register(t, c, "h:1", File("movie.mkv", "m"))
	es := files(t, c, "movie.mkv")
	if len(es) != 1 || !reflect.DeepEqual(es[0].Servers, []string{"h:1", "h:2"}) {
		t.Fatalf("Files(movie.mkv) = %+v, want one entry on h:1 and h:2", es)
	}
	if es := search(t, c, "MOVIE", 10); len(es) != 1 || len(es[0].Servers) != 2 {
		t.Errorf("Search(MOVIE) = %+v, want one entry with two servers", es)
	}
	if err := c.Unregister(ctx(t), "h:2"); err != nil {
		t.Fatal(err)
	}
	es = files(t, c, "")
	if len(es) != 1 || es[0].Name != "movie.mkv" || !reflect.DeepEqual(es[0].Servers, []string{"h:1"}) {
		t.Errorf("after h:2 left Files = %+v, want movie.mkv on h:1 only", es)
	}
}

func testSameNameOtherHash(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	register(t, c, "h:1", File("notes.txt", "v1"))
	register(t, c, "h:2", File("notes.txt", "v2"))
	es := files(t, c, "notes.txt")
	if len(es) != 2 || es[0].Hash == es[1].Hash || !sortedByNameHash(es) {
		t.Fatalf("Files = %+v, want two entries sorted by hash", es)
	}
	for _, e := range es {
		if len(e.Servers) != 1 {
			t.Errorf("entry %s servers = %q, want one", e.Hash, e.Servers)
		}
	}
}

var searchCorpus = []store.File{
	File("Holiday Photos/beach.JPG", "1"),
	File("holiday photos/mountain.jpg", "2"),
	File("work/report-2024.pdf", "3"),
	File("work/Report-2025.PDF", "4"),
	File("music/Été indien.mp3", "5"),
	File("x", "6"),
	File("notes/todo.txt", "7"),
}

func testSearch(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	register(t, c, "h:1", searchCorpus[:4]...)
	register(t, c, "h:2", searchCorpus[4:]...)
	tests := []struct {
		q    string
		want []string
	}{
		{"holiday", []string{"Holiday Photos/beach.JPG", "holiday photos/mountain.jpg"}},
		{"HOLIDAY jpg", []string{"Holiday Photos/beach.JPG", "holiday photos/mountain.jpg"}},
		{"jpg holiday beach", []string{"Holiday Photos/beach.JPG"}},
		{"  report   pdf ", []string{"work/Report-2025.PDF", "work/report-2024.pdf"}},
		{"report 2025", []string{"work/Report-2025.PDF"}},
		{"port-20", []string{"work/Report-2025.PDF", "work/report-2024.pdf"}},
		{"ÉTÉ", []string{"music/Été indien.mp3"}},
		{"s/to", []string{"notes/todo.txt"}},
		{"x", []string{"notes/todo.txt", "x"}},
		{"report beach", nil},
		{"nothing-like-this", nil},
		{"zz", nil},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			got := search(t, c, tt.q, 100)
			if !sortedByNameHash(got) {
				t.Errorf("results not sorted: %q", names(got))
			}
			if g := names(got); !slices.Equal(g, tt.want) {
				t.Errorf("Search(%q) = %q, want %q", tt.q, g, tt.want)
			}
		})
	}
}

func testSearchMax(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	var fs []store.File
	for i := range 20 {
		fs = append(fs, File(fmt.Sprintf("match-%02d.txt", i), fmt.Sprint(i)))
	}
	fs = append(fs, File("other.bin", "o"))
	register(t, c, "h:1", fs...)
	got := search(t, c, "MATCH", 5)
	if len(got) != 5 || !sortedByNameHash(got) {
		t.Fatalf("Search(MATCH, 5) = %q, want 5 sorted", names(got))
	}
	for _, e := range got {
		if !strings.HasPrefix(e.Name, "match-") {
			t.Errorf("Search(MATCH, 5) returned %q", e.Name)
		}
	}
	if got := search(t, c, "match", 100); len(got) != 20 {
		t.Errorf("Search(match, 100) = %d results, want 20", len(got))
	}
}

func testGlob(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	register(t, c, "h:1", File("a.txt", "1"), File("b.txt", "2"), File("c.jpg", "3"),
		File("docs/d.txt", "4"), File("docs/sub/e.txt", "5"), File("[x].txt", "6"))
	tests := []struct {
		glob string
		want []string
	}{
		{"*.txt", []string{"[x].txt", "a.txt", "b.txt"}},
		{"docs/*", []string{"docs/d.txt"}},
		{"docs/*/*.txt", []string{"docs/sub/e.txt"}},
		{"[ab].*", []string{"a.txt", "b.txt"}},
		{"?.jpg", []string{"c.jpg"}},
		{`\[x\].txt`, []string{"[x].txt"}},
		{"a.txt", []string{"a.txt"}},
		{"A.TXT", nil},
		{"*.pdf", nil},
	}
	for _, tt := range tests {
		t.Run(tt.glob, func(t *testing.T) {
			got := files(t, c, tt.glob)
			if g := names(got); !slices.Equal(g, tt.want) {
				t.Errorf("Files(%q) = %q, want %q", tt.glob, g, tt.want)
			}
		})
	}
	if _, err := c.Files(ctx(t), "a["); !errors.Is(err, path.ErrBadPattern) {
		t.Errorf(`Files("a[") err = %v, want path.ErrBadPattern`, err)
	}
}

// testFilesUnder pins the folder listing by pages: only names under the
// prefix (not "docsx/" for "docs/", not the case-folded "Docs/"), in
// order, each page after the cursor, with the same name under two hashes
// split across pages without loss or repeat.
func testFilesUnder(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	register(t, c, "h:1", File("a.txt", "1"), File("docs/b.txt", "2"), File("docs/sub/c.txt", "3"),
		File("docs/sub/deep/d.txt", "4"), File("docsx/e.txt", "5"), File("Docs/f.txt", "6"), File("docs/same", "7"))
	register(t, c, "h:2", File("docs/same", "8"))
	under := func(prefix string, after store.Cursor, max int) []store.Entry {
		t.Helper()
		es, err := c.FilesUnder(ctx(t), prefix, after, max)
		if err != nil {
			t.Fatalf("FilesUnder(%q, %v, %d): %v", prefix, after, max, err)
		}
		if !sortedByNameHash(es) {
			t.Fatalf("FilesUnder(%q) not sorted: %q", prefix, names(es))
		}
		return es
	}
	wantDocs := []string{"docs/b.txt", "docs/same", "docs/same", "docs/sub/c.txt", "docs/sub/deep/d.txt"}
	if g := names(under("docs/", store.Cursor{}, 100)); !slices.Equal(g, wantDocs) {
		t.Errorf("FilesUnder(docs/) = %q, want %q", g, wantDocs)
	}
	if g := names(under("docs/sub/deep/", store.Cursor{}, 100)); !slices.Equal(g, []string{"docs/sub/deep/d.txt"}) {
		t.Errorf("FilesUnder(docs/sub/deep/) = %q", g)
	}
	if g := under("nothing/", store.Cursor{}, 100); len(g) != 0 {
		t.Errorf("FilesUnder(nothing/) = %q, want none", names(g))
	}
	if g := under("", store.Cursor{}, 100); len(g) != 8 {
		t.Errorf(`FilesUnder("") = %q, want all 8`, names(g))
	}
	// Pages of 2: every entry once, in order.
	var got []string
	seen := map[string]bool{}
	var cur store.Cursor
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		es := under("docs/", cur, 2)
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if seen[e.Name+e.Hash] {
				t.Fatalf("page after %v repeats %s", cur, e.Name)
			}
			seen[e.Name+e.Hash] = true
			got = append(got, e.Name)
		}
		last := es[len(es)-1]
		cur = store.Cursor{Name: last.Name, Hash: last.Hash}
	}
	if !slices.Equal(got, wantDocs) {
		t.Errorf("FilesUnder(docs/) by pages of 2 = %q, want %q", got, wantDocs)
	}
}

func testReceiver(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	srv := store.Server{Addr: "h:9", Role: store.RoleReceiver, Name: "bob"}
	if err := c.Register(ctx(t), srv, nil); err != nil {
		t.Fatalf("Register(receiver, no files): %v", err)
	}
	register(t, c, "h:1", File("a", "a"))
	ss := servers(t, c)
	if len(ss) != 2 || ss[1].Addr != "h:9" || ss[1].Role != store.RoleReceiver || ss[1].Name != "bob" || ss[1].Files != 0 {
		t.Fatalf("Servers = %+v, want h:1 and receiver h:9 named bob with 0 files", ss)
	}
	if err := c.Heartbeat(ctx(t), "h:9"); err != nil {
		t.Errorf("Heartbeat(receiver): %v", err)
	}
	if g := names(files(t, c, "")); !slices.Equal(g, []string{"a"}) {
		t.Errorf("Files = %q, want only the server's", g)
	}
}

func testConcurrent(t *testing.T, f Factory) {
	c := newCat(t, f, LongTTL)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Go(func() {
			addr := fmt.Sprintf("h:%d", w)
			for i := range 10 {
				fs := []store.File{File(fmt.Sprintf("w%d/f%d", w, i), "c"), File("common", "same")}
				if err := c.Register(ctx(t), store.Server{Addr: addr, Role: store.RoleServer}, fs); err != nil {
					errs <- err
					return
				}
				if _, err := c.Search(ctx(t), "common", 10); err != nil {
					errs <- err
					return
				}
				if _, err := c.Files(ctx(t), "w*/*"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	es := files(t, c, "")
	if len(es) != 5 {
		t.Errorf("Files = %q, want common and w0..w3/f9", names(es))
	}
	if es := files(t, c, "common"); len(es) != 1 || len(es[0].Servers) != 4 {
		t.Errorf("common = %+v, want one entry on four servers", es)
	}
}

func testHeartbeat(t *testing.T, f Factory) {
	c := newCat(t, f, ExpiryTTL)
	register(t, c, "h:1", File("alive", "a"))
	// Heartbeat every quarter TTL for three TTLs: it must stay.
	end := time.Now().Add(3 * ExpiryTTL)
	for time.Now().Before(end) {
		if err := c.Heartbeat(ctx(t), "h:1"); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		time.Sleep(ExpiryTTL / 4)
	}
	if g := names(files(t, c, "")); !slices.Equal(g, []string{"alive"}) {
		t.Errorf("after heartbeats Files = %q, want alive", g)
	}
}

func testExpiry(t *testing.T, f Factory) {
	c := newCat(t, f, ExpiryTTL)
	register(t, c, "h:silent", File("silent.txt", "s"))
	srv := store.Server{Addr: "h:rx", Role: store.RoleReceiver}
	if err := c.Register(ctx(t), srv, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, ExpiryTTL+ExpiryWait, "silent registrations still listed", func() bool {
		return len(servers(t, c)) == 0 && len(files(t, c, "")) == 0 && len(search(t, c, "silent", 10)) == 0
	})
	if d := time.Since(start); d < ExpiryTTL/2 {
		t.Errorf("expired after %v, long before the TTL of %v", d, ExpiryTTL)
	}
	if err := c.Heartbeat(ctx(t), "h:silent"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Heartbeat after expiry = %v, want ErrNotFound", err)
	}
}

func testSharedRegister(t *testing.T, f Factory) {
	a, b := newCat(t, f, LongTTL), newCat(t, f, LongTTL)
	register(t, a, "h:1", File("shared/one.txt", "1"))
	eventually(t, SyncWait, "registration on A not visible on B", func() bool {
		return len(files(t, b, "shared/*")) == 1 && len(search(t, b, "one", 10)) == 1 && len(servers(t, b)) == 1
	})
	register(t, b, "h:2", File("shared/one.txt", "1"))
	eventually(t, SyncWait, "same file on A and B not merged", func() bool {
		es := files(t, a, "shared/one.txt")
		return len(es) == 1 && slices.Equal(es[0].Servers, []string{"h:1", "h:2"})
	})
	if err := b.Heartbeat(ctx(t), "h:1"); err != nil {
		t.Errorf("Heartbeat on B of A's registration: %v", err)
	}
}

func testSharedUnregister(t *testing.T, f Factory) {
	a, b := newCat(t, f, LongTTL), newCat(t, f, LongTTL)
	register(t, a, "h:1", File("bye.txt", "1"))
	eventually(t, SyncWait, "registration not visible on B", func() bool { return len(files(t, b, "")) == 1 })
	if err := a.Unregister(ctx(t), "h:1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, SyncWait, "unregistered files still on B", func() bool {
		return len(files(t, b, "")) == 0 && len(servers(t, b)) == 0
	})
}

// testSharedTakeover: a file server that failed over from master A to B
// re-registered on B; when A later drops the old connection, its
// Unregister must not remove the registration B now holds.
func testSharedTakeover(t *testing.T, f Factory) {
	a, b := newCat(t, f, LongTTL), newCat(t, f, LongTTL)
	register(t, a, "h:1", File("old.txt", "1"))
	eventually(t, SyncWait, "registration not visible on B", func() bool { return len(files(t, b, "")) == 1 })
	register(t, b, "h:1", File("new.txt", "2"))
	eventually(t, SyncWait, "re-registration on B not visible on A", func() bool {
		return slices.Equal(names(files(t, a, "")), []string{"new.txt"})
	})
	_ = a.Unregister(ctx(t), "h:1") // stale: either nil or ErrNotFound
	// A marker written through A after the stale Unregister: once B sees
	// it, B has seen the Unregister too.
	register(t, a, "h:marker", File("marker", "m"))
	eventually(t, SyncWait, "marker not visible on B", func() bool { return len(files(t, b, "marker")) == 1 })
	if g := names(files(t, b, "")); !slices.Equal(g, []string{"marker", "new.txt"}) {
		t.Errorf("after a stale Unregister on A, B lists %q, want marker and new.txt", g)
	}
}

func testSharedExpiry(t *testing.T, f Factory) {
	a, b := newCat(t, f, ExpiryTTL), newCat(t, f, ExpiryTTL)
	register(t, a, "h:1", File("fading.txt", "1"))
	eventually(t, SyncWait, "registration not visible on B", func() bool { return len(files(t, b, "")) == 1 })
	eventually(t, ExpiryTTL+ExpiryWait, "silent registration still on B", func() bool {
		return len(files(t, b, "")) == 0 && len(servers(t, b)) == 0
	})
}
