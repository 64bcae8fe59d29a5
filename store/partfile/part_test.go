package partfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
)

const testChunk = 1024

func hashOf(b []byte) string {
	return store.HashBytes(b).String()
}

func content(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func chunkOf(data []byte, cs, i int) []byte {
	return data[i*cs : min((i+1)*cs, len(data))]
}

// writeAll writes the chunks of data in the given order.
func writeAll(t *testing.T, p *Part, data []byte, order []int) {
	t.Helper()
	cs := p.ChunkSize()
	for _, i := range order {
		// A copy that is scribbled on afterwards: data is not kept.
		c := slices.Clone(chunkOf(data, cs, i))
		if err := p.WriteChunk(i, c); err != nil {
			t.Fatalf("WriteChunk(%d): %v", i, err)
		}
		clear(c)
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// listDir returns every path under dir, relative.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestCheckName(t *testing.T) {
	// want: "" valid everywhere, "unsafe" refused everywhere (ErrUnsafeName),
	// "windows" valid on Linux and macOS, refused on Windows (ErrNotValidHere).
	tests := []struct {
		name string
		want string
	}{
		{"a.txt", ""},
		{"sub/dir/file name.txt", ""},
		{".hidden", ""},
		{"日本/ü.txt", ""},
		{"CONSOLE.txt", ""},
		{"COM10", ""},
		{"NULL", ""},
		{"a..b", ""},
		{"x.fxpart.txt", ""},
		{"Report.TXT", ""},
		{"a~b", ""},
		{strings.Repeat("a/", 500) + "b", ""},
		{"", "unsafe"},
		{"../x", "unsafe"},
		{"..", "unsafe"},
		{"a/../../b", "unsafe"},
		{"a/..", "unsafe"},
		{"./a", "unsafe"},
		{"/abs", "unsafe"},
		{"/etc/passwd", "unsafe"},
		{"a//b", "unsafe"},
		{"a/", "unsafe"},
		{"nul\x00byte", "unsafe"},
		{"line\nfeed", "unsafe"},
		{"esc\x1b[2J", "unsafe"},
		{"c1\u0085", "unsafe"},
		{"\xff\xfe", "unsafe"},
		{`..\x`, "unsafe"},
		{`C:\Windows`, "unsafe"},
		{".a.fxpart", "unsafe"},
		{"dir/x.fxstate", "unsafe"},
		{"x.fxtmp", "unsafe"},
		{strings.Repeat("x", MaxComponentLen+1), "unsafe"},
		{strings.Repeat("a/", 512) + "b", "unsafe"},
		{"CON", "windows"},
		{"con", "windows"},
		{"Con.txt", "windows"},
		{"aux.c", "windows"},
		{"sub/nul.tar.gz", "windows"},
		{"COM1", "windows"},
		{"com9.log", "windows"},
		{"LPT1", "windows"},
		{"lpt3.txt", "windows"},
		{"COM¹", "windows"},
		{"AUX .txt", "windows"},
		{"PRN", "windows"},
		{"CONIN$", "windows"},
		{"C:x", "unsafe"}, // a drive prefix: store.NameProblem refuses it everywhere
		{"ab:c", "windows"},
		{"what?.txt", "windows"},
		{"a<b>", "windows"},
		{`say "hi"`, "windows"},
		{"pipe|x", "windows"},
		{"star*", "windows"},
		{"trailing.", "windows"},
		{"trailing ", "windows"},
		{"dir./x", "windows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, goos := range []string{"linux", "darwin", "windows"} {
				want := tt.want
				if want == "windows" && goos != "windows" {
					want = ""
				}
				err := CheckNameFor(tt.name, goos)
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: CheckNameFor(%q) = %v, want ok", goos, tt.name, err)
				case want == "unsafe" && !errors.Is(err, ErrUnsafeName):
					t.Errorf("%s: CheckNameFor(%q) = %v, want ErrUnsafeName", goos, tt.name, err)
				case want == "windows" && (!errors.Is(err, ErrNotValidHere) || errors.Is(err, ErrUnsafeName)):
					t.Errorf("%s: CheckNameFor(%q) = %v, want ErrNotValidHere", goos, tt.name, err)
				}
				if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.name)) {
					t.Errorf("%v does not quote the name", err)
				}
			}
		})
	}
}

// TestSideNamesFoldApart: names that differ only in case never share a
// temporary or state file, even on a file system that folds case; a
// lower-case ASCII name keeps its readable side names.
func TestSideNamesFoldApart(t *testing.T) {
	names := []string{"report.txt", "Report.TXT", "REPORT.txt", "report.TXT", "réport.txt", "Réport.txt",
		"a~b", "A~B", "sub/Report.TXT", strings.Repeat("x", 250), strings.Repeat("X", 250)}
	seen := map[string]string{}
	for _, n := range names {
		for _, suffix := range []string{store.PartSuffix, store.StateSuffix, store.TmpSuffix} {
			side := sideName(n, suffix)
			if len(path.Base(side)) > MaxComponentLen {
				t.Errorf("sideName(%q) = %q: longer than %d", n, side, MaxComponentLen)
			}
			key := strings.ToLower(side)
			if other, ok := seen[key]; ok {
				t.Errorf("%q and %q share the side file %q once case is folded", n, other, side)
			}
			seen[key] = n
		}
	}
	if got := sideName("dir/big.bin", store.PartSuffix); got != "dir/.big.bin"+store.PartSuffix {
		t.Errorf("sideName(dir/big.bin) = %q, want the readable dir/.big.bin%s", got, store.PartSuffix)
	}
	if got := sideName("Big.bin", store.PartSuffix); !strings.HasPrefix(got, ".Big.bin~") {
		t.Errorf("sideName(Big.bin) = %q, want .Big.bin~TAG%s", got, store.PartSuffix)
	}
}

// TestCaseOnlyNamesConcurrently opens Report.TXT and report.txt in one
// folder at once, as get Report.TXT report.txt does: each has its own
// temporary file (the lock does not refuse the second), and each ends with
// its own bytes.
func TestCaseOnlyNamesConcurrently(t *testing.T) {
	dir := t.TempDir()
	a, b := content(3*testChunk+5, 61), content(2*testChunk+9, 62)
	pa, err := Open(dir, "Report.TXT", int64(len(a)), hashOf(a), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Open(dir, "report.txt", int64(len(b)), hashOf(b), testChunk, false)
	if err != nil {
		pa.Close()
		t.Fatalf("second name that differs only in case: %v", err)
	}
	// Interleave the writes, as two jobs do.
	for i := range max(pa.NumChunks(), pb.NumChunks()) {
		if i < pa.NumChunks() {
			if err := pa.WriteChunk(i, chunkOf(a, testChunk, i)); err != nil {
				t.Fatal(err)
			}
		}
		if i < pb.NumChunks() {
			if err := pb.WriteChunk(i, chunkOf(b, testChunk, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pa.Finish(context.Background()); err != nil {
		t.Fatalf("Report.TXT: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "Report.TXT"))
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("Report.TXT: %d bytes, err %v: not its own content", len(got), err)
	}
	errB := pb.Finish(context.Background())
	if caseInsensitive(t, dir) {
		// One name on this file system: the second must not replace the
		// first, and says why.
		if !errors.Is(errB, ErrExists) {
			t.Fatalf("report.txt over Report.TXT on a case-insensitive folder: %v, want ErrExists", errB)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "Report.TXT")); !bytes.Equal(got, a) {
			t.Fatal("report.txt replaced Report.TXT")
		}
		pb.Remove()
		return
	}
	if errB != nil {
		t.Fatalf("report.txt: %v", errB)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "report.txt")); !bytes.Equal(got, b) {
		t.Fatal("report.txt: not its own content")
	}
}

// caseInsensitive reports whether dir's file system folds case.
func caseInsensitive(t *testing.T, dir string) bool {
	t.Helper()
	p := filepath.Join(dir, "fold-Probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	_, err := os.Stat(filepath.Join(dir, "FOLD-probe"))
	return err == nil
}

func TestOpenConfinement(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "dl")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{dir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows (Wine makes Unix links); confinement through links is tested on Unix, and names on every system")
	}
	if err := os.Symlink("../outside", filepath.Join(dir, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "evilabs")); err != nil {
		t.Fatal(err)
	}
	data := []byte("payload")
	for _, name := range []string{
		"../escape.txt", "/tmp/abs.txt", "a/../../b.txt",
		"a\x00b", "a\\..\\b", "evil/x.txt", "evil/deeper/x.txt", "evilabs/x.txt",
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Open(dir, name, int64(len(data)), hashOf(data), testChunk, true)
			if err == nil {
				p.Remove()
				t.Fatalf("Open(%q) succeeded", name)
			}
			if !errors.Is(err, ErrUnsafeName) {
				t.Errorf("Open(%q) = %v, want ErrUnsafeName", name, err)
			}
			if !strings.Contains(err.Error(), "\"") {
				t.Errorf("error %v does not quote the name", err)
			}
			t.Log(err)
		})
	}
	if got := listDir(t, outside); len(got) != 0 {
		t.Errorf("files appeared outside: %q", got)
	}
	if got := listDir(t, base); !slices.Equal(got, []string{"dl", "dl/evil", "dl/evilabs", "outside"}) {
		t.Errorf("base folder holds %q", got)
	}
	if _, err := os.Stat("/tmp/abs.txt"); err == nil {
		t.Errorf("/tmp/abs.txt exists")
	}
}

// TestFinalSymlinkReplaced: a symlink under the final name is replaced, not
// written through.
func TestFinalSymlinkReplaced(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows (Wine makes Unix links)")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "dl")
	target := filepath.Join(base, "target.txt")
	os.Mkdir(dir, 0o755)
	os.WriteFile(target, []byte("keep me"), 0o644)
	if err := os.Symlink("../target.txt", filepath.Join(dir, "f.txt")); err != nil {
		t.Fatal(err)
	}
	data := content(3000, 1)
	if _, err := Open(dir, "f.txt", int64(len(data)), hashOf(data), testChunk, false); !errors.Is(err, ErrExists) {
		t.Fatalf("Open over a symlink without overwrite: %v", err)
	}
	p, err := Open(dir, "f.txt", int64(len(data)), hashOf(data), testChunk, true)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, seq(p.NumChunks()))
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me" {
		t.Errorf("write went through the symlink: target = %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, "f.txt"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("final name is not a regular file: %v %v", fi, err)
	}
}

func TestDownloadShapes(t *testing.T) {
	const cs = testChunk
	shuffled := func(n int) []int {
		s := seq(n)
		rand.New(rand.NewPCG(7, 7)).Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		return s
	}
	withDups := func(n int) []int {
		s := append(seq(n), seq(n)...)
		rand.New(rand.NewPCG(9, 9)).Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		return s
	}
	reverse := func(n int) []int {
		s := seq(n)
		slices.Reverse(s)
		return s
	}
	tests := []struct {
		name  string
		size  int
		order func(n int) []int
	}{
		{"zero bytes", 0, seq},
		{"one byte", 1, seq},
		{"short single chunk", cs - 1, seq},
		{"exact chunk", cs, seq},
		{"last chunk one byte", cs + 1, reverse},
		{"in order", 10*cs + 7, seq},
		{"reverse", 10*cs + 7, reverse},
		{"shuffled", 37*cs + 100, shuffled},
		{"duplicates", 20*cs + 1, withDups},
		{"in sub-folder", 3 * cs, shuffled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			name := "file.bin"
			if tt.name == "in sub-folder" {
				name = "a/b/file.bin"
			}
			data := content(tt.size, uint64(tt.size))
			p, err := Open(dir, name, int64(len(data)), hashOf(data), cs, false)
			if err != nil {
				t.Fatal(err)
			}
			if want := (tt.size + cs - 1) / cs; p.NumChunks() != want {
				t.Fatalf("NumChunks = %d, want %d", p.NumChunks(), want)
			}
			writeAll(t, p, data, tt.order(p.NumChunks()))
			if n, b := p.Count(); n != p.NumChunks() || b != int64(tt.size) {
				t.Errorf("Count = %d, %d", n, b)
			}
			if err := p.Finish(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("final file differs (%d bytes, %v)", len(got), err)
			}
			want := []string{name}
			if tt.name == "in sub-folder" {
				want = []string{"a", "a/b", name}
			}
			if got := listDir(t, dir); !slices.Equal(got, want) {
				t.Errorf("folder holds %q, want %q", got, want)
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close after Finish: %v", err)
			}
		})
	}
}

func TestWriteChunkValidation(t *testing.T) {
	dir := t.TempDir()
	data := content(2*testChunk+10, 3)
	p, err := Open(dir, "f", int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		i    int
		n    int
	}{
		{"negative index", -1, testChunk},
		{"index past the end", 3, testChunk},
		{"short middle chunk", 0, testChunk - 1},
		{"long chunk", 1, testChunk + 1},
		{"last chunk too long", 2, testChunk},
		{"last chunk too short", 2, 9},
		{"empty", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.WriteChunk(tt.i, make([]byte, tt.n)); !errors.Is(err, ErrBadChunk) {
				t.Errorf("WriteChunk(%d, %d bytes) = %v, want ErrBadChunk", tt.i, tt.n, err)
			}
		})
	}
	if p.Have(-1) || p.Have(0) || p.Have(99) {
		t.Error("Have of an unwritten or invalid chunk")
	}
	if err := p.Finish(context.Background()); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Finish of an empty download = %v, want ErrIncomplete", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteChunk(0, data[:testChunk]); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteChunk after Close = %v", err)
	}
	if err := p.Checkpoint(); !errors.Is(err, ErrClosed) {
		t.Errorf("Checkpoint after Close = %v", err)
	}
	if _, err := Open(dir, "g", 10, "blake3:xyz", testChunk, false); !errors.Is(err, ErrBadHash) {
		t.Errorf("Open with a bad hash = %v", err)
	}
	for _, cs := range []int{0, MinChunkSize - 1, MaxChunkSize + 1} {
		if _, err := Open(dir, "g", 10, hashOf(nil), cs, false); err == nil {
			t.Errorf("Open with chunk size %d succeeded", cs)
		}
	}
	if _, err := Open(dir, "g", -1, hashOf(nil), testChunk, false); err == nil {
		t.Error("Open with a negative size succeeded")
	}
	if _, err := Open(dir, "g", int64(MaxChunks+1)*MinChunkSize, hashOf(nil), MinChunkSize, false); err == nil {
		t.Error("Open with too many chunks succeeded")
	}
}

func TestNoOverwrite(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "f.txt")
	os.WriteFile(final, []byte("old"), 0o644)
	data := content(5000, 5)
	_, err := Open(dir, "f.txt", int64(len(data)), hashOf(data), testChunk, false)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `"f.txt"`) {
		t.Fatalf("Open over an existing file = %v, want ErrExists naming it", err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"f.txt"}) {
		t.Errorf("a refused Open left %q", got)
	}

	// With overwrite the old file is replaced.
	p, err := Open(dir, "f.txt", int64(len(data)), hashOf(data), testChunk, true)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, seq(p.NumChunks()))
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(final); !bytes.Equal(b, data) {
		t.Error("overwrite did not replace the file")
	}

	// A file that appears during the download is not replaced either; the
	// complete download is kept and finishes later with overwrite.
	os.Remove(final)
	p, err = Open(dir, "f.txt", int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, seq(p.NumChunks()))
	os.WriteFile(final, []byte("appeared"), 0o644)
	if err := p.Finish(context.Background()); !errors.Is(err, ErrExists) {
		t.Fatalf("Finish over a new file = %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(final); string(b) != "appeared" {
		t.Errorf("the new file was replaced: %q", b)
	}
	p, err = Open(dir, "f.txt", int64(len(data)), hashOf(data), testChunk, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Resumed() != p.NumChunks() {
		t.Errorf("Resumed = %d of %d", p.Resumed(), p.NumChunks())
	}
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(final); !bytes.Equal(b, data) {
		t.Error("final content wrong after overwrite")
	}
}

func TestResumeAfterClose(t *testing.T) {
	dir := t.TempDir()
	data := content(50*testChunk+123, 11)
	p, err := Open(dir, "big/f.bin", int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	written := []int{0, 1, 2, 5, 9, 30, 50}
	writeAll(t, p, data, written)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// The caller asks for another chunk size; the recorded one wins.
	p, err = Open(dir, "big/f.bin", int64(len(data)), hashOf(data), 4*testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.ChunkSize() != testChunk {
		t.Fatalf("ChunkSize = %d, want the recorded %d", p.ChunkSize(), testChunk)
	}
	if p.Resumed() != len(written) {
		t.Errorf("Resumed = %d, want %d", p.Resumed(), len(written))
	}
	var missing []int
	for i := range p.NumChunks() {
		if p.Have(i) != slices.Contains(written, i) {
			t.Errorf("Have(%d) = %v", i, p.Have(i))
		}
		if !p.Have(i) {
			missing = append(missing, i)
		}
	}
	writeAll(t, p, data, missing)
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "big", "f.bin")); !bytes.Equal(b, data) {
		t.Error("resumed file differs")
	}
}

func TestRestartOnBadState(t *testing.T) {
	data := content(8*testChunk, 13)
	other := content(8*testChunk, 14)
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		size   int64
		hash   string
	}{
		{"other hash", nil, int64(len(other)), hashOf(other)},
		{"other size", nil, int64(len(data) - 1), hashOf(data[:len(data)-1])},
		{"corrupt state", func(t *testing.T, dir string) {
			p := filepath.Join(dir, ".f"+store.StateSuffix)
			b, _ := os.ReadFile(p)
			b[len(b)-8] ^= 0x40
			os.WriteFile(p, b, 0o644)
		}, int64(len(data)), hashOf(data)},
		{"garbage state", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ".f"+store.StateSuffix), []byte("FXST not really"), 0o644)
		}, int64(len(data)), hashOf(data)},
		{"state with trailing bytes", func(t *testing.T, dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, ".f"+store.StateSuffix), os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{0})
			f.Close()
		}, int64(len(data)), hashOf(data)},
		{"truncated part file", func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, ".f"+store.PartSuffix), 100)
		}, int64(len(data)), hashOf(data)},
		{"part file gone", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, ".f"+store.PartSuffix))
		}, int64(len(data)), hashOf(data)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p, err := Open(dir, "f", int64(len(data)), hashOf(data), testChunk, false)
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, p, data, []int{0, 1, 2, 3})
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if tt.damage != nil {
				tt.damage(t, dir)
			}
			want := data
			if tt.hash == hashOf(other) {
				want = other
			} else if tt.size != int64(len(data)) {
				want = data[:tt.size]
			}
			p, err = Open(dir, "f", tt.size, tt.hash, testChunk, false)
			if err != nil {
				t.Fatal(err)
			}
			if p.Resumed() != 0 || p.Have(0) {
				t.Fatalf("trusted a bad state: Resumed = %d", p.Resumed())
			}
			writeAll(t, p, want, seq(p.NumChunks()))
			if err := p.Finish(context.Background()); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(b, want) {
				t.Error("restarted file differs")
			}
		})
	}
}

func TestHashMismatch(t *testing.T) {
	dir := t.TempDir()
	data := content(6*testChunk+3, 17)
	p, err := Open(dir, "f.iso", int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(data)
	bad[4*testChunk+1] ^= 1
	writeAll(t, p, bad, seq(p.NumChunks()))
	if err := p.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	err = p.Finish(context.Background())
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Finish = %v, want ErrHashMismatch", err)
	}
	for _, want := range []string{"expected " + hashOf(data), "got " + hashOf(bad), `"f.iso"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := listDir(t, dir); len(got) != 0 {
		t.Errorf("a failed download left %q", got)
	}
	if err := p.WriteChunk(0, data[:testChunk]); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteChunk after a failed Finish = %v", err)
	}
}

func TestRemoveAndDiscard(t *testing.T) {
	dir := t.TempDir()
	data := content(4*testChunk, 19)
	p, err := Open(dir, "x/f", int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, []int{1, 2})
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"x"}) {
		t.Errorf("Remove left %q", got)
	}
	if err := p.Remove(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Remove = %v", err)
	}

	p, err = Open(dir, "x/f", int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, []int{1, 2})
	p.Close()
	if err := Discard(dir, "x/f"); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"x"}) {
		t.Errorf("Discard left %q", got)
	}
	if err := Discard(dir, "../x"); !errors.Is(err, ErrUnsafeName) {
		t.Errorf("Discard of an unsafe name = %v", err)
	}
}

func TestBusy(t *testing.T) {
	dir := t.TempDir()
	data := content(testChunk, 23)
	p, err := Open(dir, "f", int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if q, err := Open(dir, "f", int64(len(data)), hashOf(data), testChunk, false); !errors.Is(err, ErrBusy) {
		if q != nil {
			q.Close()
		}
		t.Errorf("second Open = %v, want ErrBusy", err)
	}
}

func TestLongName(t *testing.T) {
	dir := t.TempDir()
	name := strings.Repeat("n", MaxComponentLen)
	data := content(3*testChunk, 29)
	p, err := Open(dir, name, int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, []int{0})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = Open(dir, name, int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Resumed() != 1 {
		t.Errorf("Resumed = %d", p.Resumed())
	}
	writeAll(t, p, data, []int{1, 2})
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{name}) {
		t.Errorf("folder holds %q", got)
	}
}

// TestConcurrentWriters writes from several goroutines while checkpoints
// run (meant for -race).
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	data := content(200*testChunk+5, 31)
	p, err := open(dir, "f", int64(len(data)), hashOf(data), testChunk, false,
		options{ckptBytes: 16 * testChunk, ckptEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < p.NumChunks(); i += 3 { // overlapping: duplicates too
				if err := p.WriteChunk(i, chunkOf(data, testChunk, i)); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					if err := p.Checkpoint(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(b, data) {
		t.Error("file differs")
	}
}

// waitFor polls cond with a generous deadline: for background work whose
// timing the test does not assert.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestAutoCheckpoint(t *testing.T) {
	dir := t.TempDir()
	data := content(40*testChunk, 37)
	p, err := open(dir, "f", int64(len(data)), hashOf(data), testChunk, false,
		options{ckptBytes: 8 * testChunk, ckptEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	writeAll(t, p, data, seq(10))
	statePath := filepath.Join(dir, ".f"+store.StateSuffix)
	waitFor(t, "an automatic checkpoint", func() bool {
		b, err := os.ReadFile(statePath)
		if err != nil {
			return false
		}
		st, _, err := ParseState(b)
		return err == nil && bitmap(st.Have).count() >= 8
	})

	// The time trigger, with the byte trigger out of reach.
	q, err := open(dir, "g", int64(len(data)), hashOf(data), testChunk, false,
		options{ckptBytes: 1 << 40, ckptEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	writeAll(t, q, data, []int{3})
	waitFor(t, "a timed checkpoint", func() bool {
		_, err := os.Stat(filepath.Join(dir, ".g"+store.StateSuffix))
		return err == nil
	})
}

// TestPrefixHashing checks that chunks arriving in order are hashed in the
// background, so Finish reads almost nothing.
func TestPrefixHashing(t *testing.T) {
	dir := t.TempDir()
	data := content(3<<20+17, 41)
	p, err := Open(dir, "f", int64(len(data)), hashOf(data), 16<<10, false)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, seq(p.NumChunks()))
	waitFor(t, "the prefix hasher", func() bool { return p.hashedPub.Load() == int64(len(data)) })
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.finishHashed != 0 {
		t.Errorf("Finish hashed %d bytes itself, want 0", p.finishHashed)
	}
}

// faultyFile fails writes with ENOSPC once limit bytes were written, and
// Sync with syncErr.
type faultyFile struct {
	f       *os.File
	mu      sync.Mutex
	limit   int64
	written int64
	syncErr error
}

func (w *faultyFile) WriteAt(b []byte, off int64) (int, error) {
	w.mu.Lock()
	full := w.written+int64(len(b)) > w.limit
	if !full {
		w.written += int64(len(b))
	}
	w.mu.Unlock()
	if full {
		return 0, &os.PathError{Op: "write", Path: w.f.Name(), Err: syscall.ENOSPC}
	}
	return w.f.WriteAt(b, off)
}

func (w *faultyFile) Sync() error {
	w.mu.Lock()
	err := w.syncErr
	w.mu.Unlock()
	if err != nil {
		return &os.PathError{Op: "sync", Path: w.f.Name(), Err: err}
	}
	return w.f.Sync()
}

func TestNoSpaceInjected(t *testing.T) {
	dir := t.TempDir()
	data := content(20*testChunk+9, 43)
	var ff *faultyFile
	p, err := open(dir, "f", int64(len(data)), hashOf(data), testChunk, false, options{
		ckptBytes: 1 << 40, ckptEvery: time.Hour,
		wrap: func(f *os.File) writerAt { ff = &faultyFile{f: f, limit: 12 * testChunk}; return ff },
	})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, seq(8))
	if err := p.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, []int{8, 9, 10, 11}) // written, never checkpointed
	err = p.WriteChunk(12, chunkOf(data, testChunk, 12))
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("WriteChunk on a full disk = %v", err)
	}
	if p.Have(12) {
		t.Error("a failed chunk is marked")
	}

	// The sync of the next checkpoint fails too: the unsynced chunks are
	// forgotten, the state on disk keeps the first eight.
	ff.mu.Lock()
	ff.syncErr = syscall.ENOSPC
	ff.mu.Unlock()
	if err := p.Checkpoint(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Checkpoint with a failing sync = %v", err)
	}
	if p.Have(8) || !p.Have(7) {
		t.Errorf("after a failed sync Have(7)=%v Have(8)=%v", p.Have(7), p.Have(8))
	}
	p.Close() // its checkpoint fails again; the state stays as it was

	// Space is back: resume from the consistent state and complete.
	p, err = Open(dir, "f", int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Resumed() != 8 {
		t.Errorf("Resumed = %d, want the 8 checkpointed chunks", p.Resumed())
	}
	var missing []int
	for i := range p.NumChunks() {
		if !p.Have(i) {
			missing = append(missing, i)
		}
	}
	writeAll(t, p, data, missing)
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(b, data) {
		t.Error("file differs")
	}
}

func TestFinishCancelled(t *testing.T) {
	dir := t.TempDir()
	data := content(2<<20, 53)
	p, err := open(dir, "f", int64(len(data)), hashOf(data), 64<<10, false,
		options{ckptBytes: 1 << 40, ckptEvery: time.Hour, noPrefix: true})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, p, data, seq(p.NumChunks()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Finish(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Finish with a cancelled context = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f")); err == nil {
		t.Fatal("final file appeared")
	}
	if err := p.Finish(context.Background()); err != nil {
		t.Fatalf("second Finish: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(b, data) {
		t.Error("file differs")
	}
}

// BenchmarkFinish measures Finish on a 64 MiB download whose chunks arrived
// in order: with the background prefix hash caught up, and with all the
// hashing left to Finish.
func BenchmarkFinish(b *testing.B) {
	data := content(64<<20, 59)
	hash := hashOf(data)
	const cs = 64 << 10
	for _, mode := range []struct {
		name     string
		noPrefix bool
	}{{"prefix-hashed", false}, {"all-at-finish", true}} {
		b.Run(mode.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				p, err := open(dir, "f", int64(len(data)), hash, cs, false,
					options{ckptBytes: 1 << 40, ckptEvery: time.Hour, noPrefix: mode.noPrefix})
				if err != nil {
					b.Fatal(err)
				}
				for i := range p.NumChunks() {
					if err := p.WriteChunk(i, chunkOf(data, cs, i)); err != nil {
						b.Fatal(err)
					}
				}
				for !mode.noPrefix && p.hashedPub.Load() < int64(len(data)) {
					time.Sleep(time.Millisecond)
				}
				b.StartTimer()
				if err := p.Finish(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteChunk measures the cost of landing one datagram-sized chunk
// (page cache write, bookkeeping, background prefix hashing).
func BenchmarkWriteChunk(b *testing.B) {
	const cs = 1200
	data := content(64<<20, 61)
	b.SetBytes(cs)
	dir := b.TempDir()
	p, err := Open(dir, "f", int64(len(data)), hashOf(data), cs, false)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Remove()
	i := 0
	for b.Loop() {
		if i == p.NumChunks() {
			b.StopTimer()
			p.Remove()
			if p, err = Open(dir, "f", int64(len(data)), hashOf(data), cs, false); err != nil {
				b.Fatal(err)
			}
			i = 0
			b.StartTimer()
		}
		if err := p.WriteChunk(i, chunkOf(data, cs, i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestFinishIncomplete: an early Finish leaves the Part working, background
// hashing included.
func TestFinishIncomplete(t *testing.T) {
	dir := t.TempDir()
	data := content(40*testChunk+1, 67)
	p, err := Open(dir, "f", int64(len(data)), hashOf(data), testChunk, false)
	if err != nil {
		t.Fatal(err)
	}
	order := seq(p.NumChunks())
	writeAll(t, p, data, order[1:])
	if err := p.Finish(context.Background()); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "1 of 41") {
		t.Fatalf("Finish = %v, want ErrIncomplete missing 1 of 41", err)
	}
	writeAll(t, p, data, order[:1])
	waitFor(t, "the prefix hasher", func() bool { return p.hashedPub.Load() == int64(len(data)) })
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.finishHashed != 0 {
		t.Errorf("Finish hashed %d bytes itself, want 0", p.finishHashed)
	}
}

func TestWriteChunks(t *testing.T) {
	const cs = testChunk
	size := 20*cs + 33 // 21 chunks, the last one short
	tests := []struct {
		name   string
		before []int    // chunks written one by one first
		runs   [][2]int // [first, count] runs written with WriteChunks
	}{
		{"one run", nil, [][2]int{{0, 21}}},
		{"runs in order", nil, [][2]int{{0, 5}, {5, 5}, {10, 11}}},
		{"runs out of order", nil, [][2]int{{16, 5}, {0, 8}, {8, 8}}},
		{"single chunks", nil, [][2]int{{20, 1}, {0, 1}, {1, 19}}},
		{"over written chunks", []int{3, 4, 12}, [][2]int{{0, 10}, {10, 11}}},
		{"twice", nil, [][2]int{{0, 21}, {0, 21}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := content(size, 5)
			p, err := Open(t.TempDir(), "f", int64(size), hashOf(data), cs, false)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			writeAll(t, p, data, tt.before)
			for _, r := range tt.runs {
				run := slices.Clone(data[r[0]*cs : min((r[0]+r[1])*cs, size)])
				if err := p.WriteChunks(r[0], run); err != nil {
					t.Fatalf("WriteChunks(%d, %d chunks): %v", r[0], r[1], err)
				}
				clear(run)
			}
			if n, b := p.Count(); n != p.NumChunks() || b != int64(size) {
				t.Fatalf("Count = %d, %d; want %d, %d", n, b, p.NumChunks(), size)
			}
			if err := p.Finish(context.Background()); err != nil {
				t.Fatalf("Finish: %v", err)
			}
		})
	}
}

func TestWriteChunksValidation(t *testing.T) {
	const cs = testChunk
	size := 4*cs + 10
	p, err := Open(t.TempDir(), "f", int64(size), hashOf(content(size, 1)), cs, false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		first int
		n     int
	}{
		{"negative index", -1, 2 * cs},
		{"index past the end", 5, cs},
		{"empty", 0, 0},
		{"not whole chunks", 0, 2*cs - 1},
		{"past the end", 3, 2 * cs},
		{"last chunk too long", 3, 2*cs + 11},
		{"last chunk too short", 3, cs + 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.WriteChunks(tt.first, make([]byte, tt.n)); !errors.Is(err, ErrBadChunk) {
				t.Errorf("WriteChunks(%d, %d bytes) = %v, want ErrBadChunk", tt.first, tt.n, err)
			}
		})
	}
	if n, _ := p.Count(); n != 0 {
		t.Errorf("Count = %d after refused writes", n)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteChunks(0, make([]byte, 2*cs)); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteChunks after Close = %v, want ErrClosed", err)
	}
}
