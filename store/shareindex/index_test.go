package shareindex

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fxshell/fxsh/store"
)

// writeFiles creates files (name -> content, '/'-separated) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sum(content string) string {
	return store.HashBytes([]byte(content)).String()
}

func scan(t *testing.T, cfg Config) (*Index, []store.File, []Warning) {
	t.Helper()
	x, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	files, warns, err := x.Scan(context.Background())
	if err != nil {
		t.Fatalf("Scan: %v (warnings %v)", err, warns)
	}
	return x, files, warns
}

func names(files []store.File) []string {
	var n []string
	for _, f := range files {
		n = append(n, f.Name)
	}
	return n
}

func hasWarning(warns []Warning, target error, pathSuffix string) bool {
	for _, w := range warns {
		if errors.Is(w.Err, target) && strings.HasSuffix(w.Path, pathSuffix) {
			return true
		}
	}
	return false
}

func TestScanNested(t *testing.T) {
	dir := t.TempDir()
	content := map[string]string{
		"a.txt":             "hello\n",
		"sub/b.md":          "# title\n",
		"sub/deeper/c.bin":  "\x00\x01\x02\x03",
		"sub/deeper/noext":  "plain words here\n",
		"pics/p.png":        "\x89PNG\r\n\x1a\n rest",
		"pics/sniffed":      "\xff\xd8\xff\xe0 jpeg body",
		"sub/.hidden":       "dot files are shared",
		"sub/.x.fxpart":     "partial download, never shared",
		"sub/.x.fxstate":    "download state, never shared",
		"sub/.x.fxtmp":      "state being written, never shared",
		"with space/é ü.md": "utf-8 names are fine",
	}
	writeFiles(t, dir, content)
	_, files, warns := scan(t, Config{Paths: []string{dir}})
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	want := []string{"a.txt", "pics/p.png", "pics/sniffed", "sub/.hidden", "sub/b.md", "sub/deeper/c.bin", "sub/deeper/noext", "with space/é ü.md"}
	if got := names(files); !slices.Equal(got, want) {
		t.Fatalf("names = %q, want %q", got, want)
	}
	types := map[string]string{"a.txt": "text", "pics/p.png": "png", "pics/sniffed": "jpg", "sub/b.md": "text",
		"sub/deeper/c.bin": "bin", "sub/deeper/noext": "text"}
	for _, f := range files {
		if f.Hash != sum(content[f.Name]) {
			t.Errorf("%s: hash %s, want %s", f.Name, f.Hash, sum(content[f.Name]))
		}
		if f.Size != int64(len(content[f.Name])) {
			t.Errorf("%s: size %d", f.Name, f.Size)
		}
		if want, ok := types[f.Name]; ok && f.Type != want {
			t.Errorf("%s: type %q, want %q", f.Name, f.Type, want)
		}
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.Name)))
		if err != nil || !fi.ModTime().Equal(f.MTime) {
			t.Errorf("%s: mtime %v, want %v (%v)", f.Name, f.MTime, fi.ModTime(), err)
		}
	}
}

func TestNamingRule(t *testing.T) {
	base := t.TempDir()
	writeFiles(t, base, map[string]string{
		"one/photos/a.jpg":  "a",
		"one/photos/b.jpg":  "b",
		"two/photos/a.jpg":  "other a",
		"two/photos/c.jpg":  "c",
		"docs/readme.txt":   "r",
		"loose/single.pdf":  "%PDF-1.4",
		"loose2/single.pdf": "%PDF-1.5",
	})
	p := func(s string) string { return filepath.Join(base, filepath.FromSlash(s)) }
	tests := []struct {
		name      string
		paths     []string
		want      []string
		collision string // path suffix of an expected collision warning
	}{
		{"one folder at the top", []string{p("docs")}, []string{"readme.txt"}, ""},
		{"one file by base name", []string{p("loose/single.pdf")}, []string{"single.pdf"}, ""},
		{"folders under base names", []string{p("docs"), p("one/photos")},
			[]string{"docs/readme.txt", "photos/a.jpg", "photos/b.jpg"}, ""},
		{"file beside a folder", []string{p("docs"), p("loose/single.pdf")},
			[]string{"docs/readme.txt", "single.pdf"}, ""},
		{"first path wins a collision", []string{p("one/photos"), p("two/photos")},
			[]string{"photos/a.jpg", "photos/b.jpg", "photos/c.jpg"}, "two/photos/a.jpg"},
		{"two files of one name", []string{p("loose/single.pdf"), p("loose2/single.pdf")},
			[]string{"single.pdf"}, "loose2/single.pdf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, files, warns := scan(t, Config{Paths: tt.paths})
			if got := names(files); !slices.Equal(got, tt.want) {
				t.Errorf("names = %q, want %q", got, tt.want)
			}
			if tt.collision != "" && !hasWarning(warns, ErrNameCollision, filepath.FromSlash(tt.collision)) {
				t.Errorf("no collision warning for %s in %v", tt.collision, warns)
			}
			if tt.collision == "" && len(warns) != 0 {
				t.Errorf("warnings: %v", warns)
			}
			if tt.collision != "" {
				// The winner is the first path's file.
				for _, f := range files {
					if f.Name == "photos/a.jpg" && f.Hash != sum("a") {
						t.Errorf("photos/a.jpg comes from the second path")
					}
				}
			}
		})
	}
}

func TestSymlinks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows (and Wine makes Unix links that Windows APIs do not follow); the link rules are tested on Unix")
	}
	base := t.TempDir()
	share := filepath.Join(base, "share")
	outside := filepath.Join(base, "outside")
	writeFiles(t, base, map[string]string{
		"share/real.txt":     "inside",
		"share/sub/deep.txt": "deep inside",
		"outside/secret.txt": "secret",
	})
	links := map[string]string{
		"share/in-link.txt":    "real.txt",              // inside: offered
		"share/sub/up.txt":     "../real.txt",           // inside via ..: offered
		"share/out-link.txt":   "../outside/secret.txt", // escapes: skipped
		"share/abs-link.txt":   filepath.Join(share, "real.txt"),
		"share/dir-link":       "sub",          // folder: not followed
		"share/out-dir":        "../outside",   // folder outside: skipped
		"share/dangling.txt":   "nothing-here", // broken: skipped
		"share/sub/escape.txt": "../../outside/secret.txt",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(base, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	x, files, warns := scan(t, Config{Paths: []string{share}})
	want := []string{"in-link.txt", "real.txt", "sub/deep.txt", "sub/up.txt"}
	if got := names(files); !slices.Equal(got, want) {
		t.Fatalf("names = %q, want %q (warnings %v)", got, want, warns)
	}
	for _, f := range files {
		if f.Name == "in-link.txt" && f.Hash != sum("inside") {
			t.Errorf("in-link.txt hash %s", f.Hash)
		}
	}
	for _, w := range []struct {
		err    error
		suffix string
	}{
		{ErrOutside, "out-link.txt"}, {ErrOutside, "abs-link.txt"}, {ErrOutside, "sub/escape.txt"},
		{ErrOutside, "out-dir"}, {ErrSymlinkDir, "dir-link"}, {ErrUnreadable, "dangling.txt"},
	} {
		if !hasWarning(warns, w.err, filepath.FromSlash(w.suffix)) {
			t.Errorf("no %v warning for %s in %v", w.err, w.suffix, warns)
		}
	}
	for _, w := range warns {
		if strings.Contains(w.String(), "secret") && !strings.Contains(w.Path, "link") && !strings.Contains(w.Path, "escape") {
			t.Errorf("warning mentions outside content: %v", w)
		}
	}

	// The folder is swapped for a symlink to the outside after indexing:
	// Open must not follow it.
	if err := os.Rename(filepath.Join(share, "sub"), filepath.Join(share, "sub.old")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, outside, map[string]string{"deep.txt": "deep inside"}) // same content, same size
	if err := os.Symlink("../outside", filepath.Join(share, "sub")); err != nil {
		t.Fatal(err)
	}
	f, err := x.Open(sum("deep inside"))
	if err == nil {
		f.Close()
		t.Fatal("Open followed a folder swapped for a symlink to the outside")
	}
	if !errors.Is(err, ErrOutside) {
		t.Errorf("Open error = %v, want ErrOutside", err)
	}
}

func TestUnreadableChmod(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("chmod does not make a file unreadable on Windows; TestUnreadableInjected covers the skip")
	}
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode; TestUnreadableInjected covers the skip")
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"ok.txt": "ok", "locked.txt": "locked", "lockeddir/x.txt": "x"})
	if err := os.Chmod(filepath.Join(dir, "locked.txt"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "lockeddir"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "lockeddir"), 0o755) })
	_, files, warns := scan(t, Config{Paths: []string{dir}})
	if got := names(files); !slices.Equal(got, []string{"ok.txt"}) {
		t.Errorf("names = %q", got)
	}
	if !hasWarning(warns, ErrUnreadable, "locked.txt") || !hasWarning(warns, ErrUnreadable, "lockeddir") {
		t.Errorf("warnings = %v", warns)
	}
}

// TestUnreadableInjected makes one open fail the way an unreadable file
// does, which works as root too.
func TestUnreadableInjected(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"ok.txt": "ok", "locked.txt": "locked"})
	x, err := New(Config{Paths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	x.openFile = func(r *os.Root, name string) (*os.File, error) {
		if name == "locked.txt" {
			return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrPermission}
		}
		return r.Open(name)
	}
	files, warns, err := x.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(files); !slices.Equal(got, []string{"ok.txt"}) {
		t.Errorf("names = %q", got)
	}
	if !hasWarning(warns, ErrUnreadable, "locked.txt") || !hasWarning(warns, os.ErrPermission, "locked.txt") {
		t.Errorf("warnings = %v", warns)
	}
}

func TestHostileNamesOnDisk(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows cannot create these names (control characters, ...); the rules are tested through CheckName")
	}
	dir := t.TempDir()
	long := strings.Repeat("d", 200)
	deep := strings.Join([]string{long, long, long, long, long, long, "f.txt"}, "/") // > store.MaxNameLen
	writeFiles(t, dir, map[string]string{
		"fine.txt":       "fine",
		"bell\x07.txt":   "control",
		"new\nline.txt":  "newline",
		"bad\xffutf8":    "invalid utf-8",
		"back\\slash":    "backslash",
		"esc\x1b[31m":    "ansi escape",
		"ctl\x01dir/in":  "inside a bad folder",
		"ls\u2028sep":    "line separator",
		deep:             "too long",
		"c1\u0085ctl.go": "C1 control",
	})
	_, files, warns := scan(t, Config{Paths: []string{dir}})
	if got := names(files); !slices.Equal(got, []string{"fine.txt"}) {
		t.Errorf("names = %q", got)
	}
	for _, suffix := range []string{"bell\x07.txt", "new\nline.txt", "bad\xffutf8", "back\\slash", "esc\x1b[31m",
		"ctl\x01dir", "ls\u2028sep", "c1\u0085ctl.go"} {
		if !hasWarning(warns, ErrUnsafeName, suffix) {
			t.Errorf("no ErrUnsafeName warning for %q", suffix)
		}
	}
	if !hasWarning(warns, ErrUnsafeName, long) {
		t.Errorf("no ErrUnsafeName warning for the long path: %v", warns)
	}
	for _, w := range warns {
		if strings.ContainsAny(w.String(), "\x07\n\x1b\x01\u0085\u2028") || !utf8.ValidString(w.String()) {
			t.Errorf("warning text carries a raw control character: %q", w.String())
		}
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a.txt", true},
		{"sub/dir/a b.txt", true},
		{".hidden", true},
		{"ümlaut/日本.txt", true},
		{"a..b", true},
		{strings.Repeat("x", store.MaxNameLen), true},
		{strings.Repeat("x", store.MaxNameLen+1), false},
		{"", false},
		{"/etc/passwd", false},
		{"../x", false},
		{"a/../../b", false},
		{"a/..", false},
		{"./a", false},
		{"a//b", false},
		{"a/", false},
		{"nul\x00byte", false},
		{"tab\there", false},
		{"del\x7f", false},
		{"\xc3\x28", false},
		{"win\\path", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrUnsafeName) {
				t.Errorf("error %v does not wrap ErrUnsafeName", err)
			}
		})
	}
}

func TestHashCache(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(t.TempDir(), "fxsh", "hashes")
	writeFiles(t, dir, map[string]string{"a.txt": "aaa", "b/c.txt": "ccc", "b/d.bin": "ddd"})

	x1, files1, _ := scan(t, Config{Paths: []string{dir}, CachePath: cache})
	if s := x1.Stats(); s.Hashed != 3 || s.CacheHits != 0 {
		t.Fatalf("first scan stats = %+v", s)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("cache not written: %v", err)
	}

	// A new index (a restart) rehashes nothing.
	x2, files2, warns := scan(t, Config{Paths: []string{dir}, CachePath: cache})
	if s := x2.Stats(); s.Hashed != 0 || s.CacheHits != 3 {
		t.Errorf("second index stats = %+v (warnings %v)", s, warns)
	}
	if !sameFiles(files1, files2) {
		t.Errorf("cached list differs:\n%v\n%v", files1, files2)
	}

	// Only the changed file is hashed again, and the new hash is right.
	p := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(p, []byte("AAA"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	files3, _, err := x2.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := x2.Stats(); s.Hashed != 1 || s.CacheHits != 5 {
		t.Errorf("after a change stats = %+v", s)
	}
	if files3[0].Name != "a.txt" || files3[0].Hash != sum("AAA") {
		t.Errorf("a.txt = %+v", files3[0])
	}

	// A corrupt cache is a warning, never fatal; it is rewritten.
	if err := os.WriteFile(cache, []byte("fxsh-hashcache 2\ngarbage line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	x4, files4, warns := scan(t, Config{Paths: []string{dir}, CachePath: cache})
	if !hasWarning(warns, ErrCacheCorrupt, "hashes") {
		t.Errorf("no corrupt cache warning: %v", warns)
	}
	if s := x4.Stats(); s.Hashed != 3 {
		t.Errorf("after corrupt cache stats = %+v", s)
	}
	if !sameFiles(files3, files4) {
		t.Errorf("list after corrupt cache differs")
	}
	b, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	if entries, _, err := ParseCache(b); err != nil || len(entries) != 3 {
		t.Errorf("rewritten cache: %d entries, %v", len(entries), err)
	}

	// An older fxsh's cache (version 1 held SHA-256 hashes) is not an
	// error: everything is rehashed once, without a warning, and the
	// cache is rewritten in the current format.
	old := "fxsh-hashcache 1\n" + strings.Repeat("ab", 32) + " 3 1 2 3 text \"/x\"\n"
	if err := os.WriteFile(cache, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	x5, files5, warns := scan(t, Config{Paths: []string{dir}, CachePath: cache})
	if len(warns) != 0 {
		t.Errorf("warnings for an old-format cache: %v", warns)
	}
	if s := x5.Stats(); s.Hashed != 3 {
		t.Errorf("after old-format cache stats = %+v", s)
	}
	if !sameFiles(files3, files5) {
		t.Errorf("list after old-format cache differs")
	}
	if b, err := os.ReadFile(cache); err != nil || !strings.HasPrefix(string(b), "fxsh-hashcache 2\n") {
		t.Errorf("old-format cache not rewritten: %q, %v", b[:min(len(b), 20)], err)
	}
}

func TestModifiedDetected(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, p string)
	}{
		{"content and size", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("new and longer content"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"same size, new mtime", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("0riginal content"), 0o644); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Minute)
			if err := os.Chtimes(p, later, later); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by a new file with the old mtime", func(t *testing.T, p string) {
			if runtime.GOOS == "windows" {
				t.Skip("Windows does not rename over a file that is open")
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			tmp := p + ".new"
			if err := os.WriteFile(tmp, []byte("0riginal content"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"f.txt": "original content"})
			x, files, _ := scan(t, Config{Paths: []string{dir}})
			f, err := x.Open(files[0].Hash)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tt.change(t, filepath.Join(dir, "f.txt"))
			if _, err := x.Open(files[0].Hash); !errors.Is(err, ErrModified) {
				t.Errorf("Open after change: %v, want ErrModified", err)
			}
			// The file opened before the change notices on Check (unless
			// it was replaced: the open one is still the old version).
			if err := f.Check(); tt.name != "replaced by a new file with the old mtime" && !errors.Is(err, ErrModified) {
				t.Errorf("Check: %v, want ErrModified", err)
			}
			// A rescan offers the new version.
			files2, _, err := x.Scan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if files2[0].Hash == files[0].Hash {
				t.Errorf("rescan kept the old hash")
			}
			g, err := x.Open(files2[0].Hash)
			if err != nil {
				t.Fatalf("Open of the new version: %v", err)
			}
			g.Close()
		})
	}
}

func TestReadAt(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), (ModCheckBytes+100_000)/16)
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	x, files, _ := scan(t, Config{Paths: []string{dir}})
	if files[0].Hash != sum(string(big)) {
		t.Fatal("streamed hash differs")
	}
	f, err := x.Open(files[0].Hash)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != int64(len(big)) {
		t.Fatalf("Size = %d", f.Size())
	}
	got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()+1000))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, f.Size()-4); n != 4 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	if _, err := f.ReadAt(buf, -1); err == nil {
		t.Errorf("ReadAt(-1) succeeded")
	}

	// Appending while serving is noticed within ModCheckBytes.
	af, err := os.OpenFile(filepath.Join(dir, "big.bin"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	af.Write([]byte("more"))
	af.Close()
	chunk := make([]byte, 64<<10)
	var rerr error
	for off := int64(0); off < f.Size() && rerr == nil; off += int64(len(chunk)) {
		_, rerr = f.ReadAt(chunk, off)
	}
	if !errors.Is(rerr, ErrModified) {
		t.Errorf("reading an appended file: %v, want ErrModified", rerr)
	}
}

func TestEmptyShare(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{".only.fxpart": "partial"})
	if err := os.Mkdir(filepath.Join(dir, "emptysub"), 0o755); err != nil {
		t.Fatal(err)
	}
	x, err := New(Config{Paths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	files, _, err := x.Scan(context.Background())
	if !errors.Is(err, ErrNothingToShare) || len(files) != 0 {
		t.Fatalf("Scan = %v, %v; want ErrNothingToShare", files, err)
	}
	if want := "nothing to share in " + dir; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if _, err := New(Config{Paths: []string{filepath.Join(dir, "missing")}}); err == nil {
		t.Error("New accepted a missing path")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted no paths")
	}
}

func TestGenerationAndRescan(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a"})
	x, _, _ := scan(t, Config{Paths: []string{dir}})
	g1 := x.Generation()
	if _, _, err := x.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g := x.Generation(); g != g1 {
		t.Errorf("generation moved without a change: %d -> %d", g1, g)
	}
	writeFiles(t, dir, map[string]string{"b.txt": "b"})
	files, _, err := x.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g := x.Generation(); g == g1 {
		t.Errorf("generation did not move after adding a file")
	}
	if got := names(files); !slices.Equal(got, []string{"a.txt", "b.txt"}) {
		t.Errorf("names = %q", got)
	}
	if got := names(x.Files()); !slices.Equal(got, []string{"a.txt", "b.txt"}) {
		t.Errorf("Files() = %q", got)
	}
	if _, err := x.Open(sum("nope")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open of an unknown hash: %v", err)
	}

	// A cancelled scan keeps the previous list.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := x.Scan(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Scan = %v", err)
	}
	if got := names(x.Files()); len(got) != 2 {
		t.Errorf("list after a cancelled scan = %q", got)
	}
	x.Close()
	if _, err := x.Open(sum("a")); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
}

func TestMaxFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"})
	_, files, warns := scan(t, Config{Paths: []string{dir}, MaxFiles: 3})
	if got := names(files); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("names = %q", got)
	}
	if !hasWarning(warns, ErrTooManyFiles, "") {
		t.Errorf("no ErrTooManyFiles warning: %v", warns)
	}
}

// TestOpenDuringScan runs Open against rescans (run with -race).
func TestOpenDuringScan(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "stable", "b.txt": "b"})
	x, files, _ := scan(t, Config{Paths: []string{dir}})
	hash := files[0].Hash
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		buf := make([]byte, 6)
		for {
			select {
			case <-stop:
				return
			default:
			}
			f, err := x.Open(hash)
			if err != nil {
				t.Errorf("Open during scan: %v", err)
				return
			}
			if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF || string(buf) != "stable" {
				t.Errorf("read %q, %v", buf, err)
			}
			f.Close()
		}
	})
	for i := range 20 {
		writeFiles(t, dir, map[string]string{"b.txt": strings.Repeat("b", i)})
		if _, _, err := x.Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
