package fileserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/shareindex"
)

// wait bounds every wait for something that should happen: generous, as
// tests assert outcomes, not timing.
const wait = 20 * time.Second

// past is the mtime given to files before they are indexed, so that a
// rewrite in the test is always a different mtime (a coarse file system
// clock could otherwise give both writes the same one).
var past = time.Now().Add(-time.Hour)

// noMaster is a master address where nothing listens: the registrar
// retries it in the background, and the tests look at what the server
// would register (Files), which is what it hands the registrar.
func noMaster(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// events records a server's events; wait.. methods wait for them.
type events struct {
	mu  sync.Mutex
	evs []Event
	on  func(Event) // called for each, in the server's goroutine
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	on := e.on
	e.mu.Unlock()
	if on != nil {
		on(ev)
	}
}

func (e *events) count(k EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

func startShare(t *testing.T, dir, masterAddr string, settle time.Duration, ev *events) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, warns, err := Start(ctx, Config{
		Paths: []string{dir}, UDPAddr: "127.0.0.1:0", Masters: []string{masterAddr},
		Rescan: time.Hour, Settle: settle, OnEvent: ev.add,
	})
	if err != nil {
		t.Fatalf("Start: %v (warnings %v)", err, warns)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

// writeOld writes a file to be indexed, with an mtime in the past.
func writeOld(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, past, past); err != nil {
		t.Fatal(err)
	}
}

func content(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

func hashOf(b []byte) string { return store.HashBytes(b).String() }

// waitListed waits until the server offers exactly hash under name.
func waitListed(t *testing.T, s *Server, name, hash string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = got[:0]
		for _, f := range s.Files() {
			if f.Name == name {
				got = append(got, f.Hash)
			}
		}
		if slices.Equal(got, []string{hash}) {
			return
		}
	}
	t.Fatalf("after %v the server offers %s as %q, want only %s", wait, name, got, hash)
}

// TestServesOnlyTheIndexedVersion changes a file while a transfer has it
// open: no byte of the new version is ever read out under the old hash, a
// rescan follows by itself, and the server ends up offering the new hash only.
func TestServesOnlyTheIndexedVersion(t *testing.T) {
	const size = 256 << 10
	old := content(size, 1)
	tests := []struct {
		name   string
		change func(t *testing.T, path string) []byte // returns the new content
		stale  bool                                   // the open file keeps serving the old bytes
	}{
		{"rewritten in place, same size", func(t *testing.T, path string) []byte {
			b := content(size, 2)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(b, 0); err != nil {
				t.Fatal(err)
			}
			return b
		}, false},
		{"one byte rewritten in place", func(t *testing.T, path string) []byte {
			b := slices.Clone(old)
			b[size-1] ^= 0xff
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(b[size-1:], size-1); err != nil {
				t.Fatal(err)
			}
			return b
		}, false},
		{"truncated and written, as cp does", func(t *testing.T, path string) []byte {
			b := content(size/2, 3)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return b
		}, false},
		{"grown", func(t *testing.T, path string) []byte {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("more")); err != nil {
				t.Fatal(err)
			}
			return append(slices.Clone(old), "more"...)
		}, false},
		{"replaced by rename", func(t *testing.T, path string) []byte {
			b := content(size, 4)
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
			return b
		}, true},
	}
	m := noMaster(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			name := "f.bin"
			path := filepath.Join(dir, name)
			writeOld(t, path, old)
			var ev events
			s := startShare(t, dir, m, 50*time.Millisecond, &ev)
			waitListed(t, s, name, hashOf(old))

			f, err := s.open(hashOf(old))
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer f.Close()
			half := make([]byte, size/2)
			if n, err := f.ReadAt(half, 0); n != len(half) || err != nil || !bytes.Equal(half, old[:size/2]) {
				t.Fatalf("first half: %d bytes, %v (old content: %v)", n, err, bytes.Equal(half, old[:size/2]))
			}

			now := tt.change(t, path)

			rest := make([]byte, size-size/2)
			n, err := f.ReadAt(rest, size/2)
			switch {
			case tt.stale:
				// The open file is the old version: its bytes are still
				// right for the old hash.
				if n != len(rest) || (err != nil && err != io.EOF) || !bytes.Equal(rest, old[size/2:]) {
					t.Fatalf("second half of the replaced file: %d bytes, %v", n, err)
				}
				// A new request finds the name holds another file.
				if _, err := s.open(hashOf(old)); !errors.Is(err, transfer.ErrNotFound) {
					t.Fatalf("open of the old hash after the rename: %v, want ErrNotFound", err)
				}
			default:
				if n != 0 || !errors.Is(err, shareindex.ErrModified) {
					t.Fatalf("second half after the change: %d bytes, %v; want 0 bytes, ErrModified", n, err)
				}
			}
			waitListed(t, s, name, hashOf(now))
			if got := ev.count(Modified); got < 1 {
				t.Errorf("%d Modified events, want at least 1", got)
			}
			if _, err := s.open(hashOf(old)); !errors.Is(err, transfer.ErrNotFound) {
				t.Errorf("open of the old hash after the rescan: %v, want ErrNotFound", err)
			}
			g, err := s.open(hashOf(now))
			if err != nil {
				t.Fatalf("open of the new hash: %v", err)
			}
			defer g.Close()
			all := make([]byte, len(now))
			if n, err := g.ReadAt(all, 0); n != len(now) || (err != nil && err != io.EOF) || !bytes.Equal(all, now) {
				t.Errorf("new version: %d bytes, %v", n, err)
			}
		})
	}
}

// TestStaleEntry: a file changed while no transfer had it open. The first
// request fails at once (ErrNotFound, so the client is answered, not left
// to time out), and the rescan it triggers registers the new version.
func TestStaleEntry(t *testing.T) {
	m := noMaster(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "notes.txt")
	old, now := []byte("first version\n"), []byte("second version\n")
	writeOld(t, path, old)
	var ev events
	s := startShare(t, dir, m, 50*time.Millisecond, &ev)
	waitListed(t, s, "notes.txt", hashOf(old))

	if err := os.WriteFile(path, now, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.open(hashOf(old)); !errors.Is(err, transfer.ErrNotFound) || !errors.Is(err, shareindex.ErrModified) {
		t.Fatalf("open of the stale entry: %v, want ErrNotFound wrapping ErrModified", err)
	}
	waitListed(t, s, "notes.txt", hashOf(now))
	if got := ev.count(Modified); got != 1 {
		t.Errorf("%d Modified events, want 1", got)
	}
}

// TestHalfWrittenFile: the rescan a modification triggers can catch the
// file before its writer is done. A follow-up rescan registers the finished
// file without waiting for the periodic rescan (an hour here).
func TestHalfWrittenFile(t *testing.T) {
	m := noMaster(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "big.bin")
	old, now := content(64<<10, 5), content(64<<10, 6)
	writeOld(t, path, old)
	var ev events
	s := startShare(t, dir, m, 100*time.Millisecond, &ev)
	waitListed(t, s, "big.bin", hashOf(old))
	f, err := s.open(hashOf(old))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// The writer truncates and writes half; a transfer notices.
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(now[:len(now)/2]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(make([]byte, 1024), 0); !errors.Is(err, shareindex.ErrModified) {
		t.Fatalf("read after the truncation: %v, want ErrModified", err)
	}
	// The rescan it triggers sees the half-written file ...
	for deadline := time.Now().Add(wait); ev.count(Rescanned) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no rescan %v after a modification", wait)
		}
	}
	// ... and the writer finishes after it.
	if _, err := w.Write(now[len(now)/2:]); err != nil {
		t.Fatal(err)
	}
	waitListed(t, s, "big.bin", hashOf(now))
}

// TestSettleRescansCapped: a file that changes after every rescan is
// rescanned 1+MaxSettleRescans times after a kick, then left to the
// periodic rescan.
func TestSettleRescansCapped(t *testing.T) {
	m := noMaster(t)
	dir := t.TempDir()
	writeOld(t, filepath.Join(dir, "still.txt"), []byte("still\n"))
	logPath := filepath.Join(dir, "growing.log")
	writeOld(t, logPath, []byte("line\n"))
	const settle = 50 * time.Millisecond
	ev := events{on: func(e Event) {
		if e.Kind != Rescanned {
			return
		}
		// Every rescan finds the log grown since the one before.
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		f.Write([]byte("line\n"))
		f.Close()
	}}
	s := startShare(t, dir, m, settle, &ev)
	// Grow the log and kick, as a transfer that noticed would.
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("line\n"))
	f.Close()
	s.Kick()

	want := 1 + MaxSettleRescans
	for deadline := time.Now().Add(wait); ev.count(Rescanned) < want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d rescans after %v, want %d", ev.count(Rescanned), wait, want)
		}
	}
	// Uncapped, the loop would go on every 50 ms; give it ten times that.
	time.Sleep(10 * settle)
	if got := ev.count(Rescanned); got != want {
		t.Errorf("%d rescans, want %d (one for the kick, %d follow-ups)", got, want, MaxSettleRescans)
	}
}

// BenchmarkReadAt compares reads of a shared file (in the page cache) with
// and without checkedFile's check after every read, for one small chunk and
// for a run of chunks as the sender reads them.
func BenchmarkReadAt(b *testing.B) {
	dir := b.TempDir()
	data := content(16<<20, 7)
	if err := os.WriteFile(filepath.Join(dir, "f.bin"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	idx, err := shareindex.New(shareindex.Config{Paths: []string{dir}})
	if err != nil {
		b.Fatal(err)
	}
	defer idx.Close()
	if _, _, err := idx.Scan(context.Background()); err != nil {
		b.Fatal(err)
	}
	f, err := idx.Open(hashOf(data))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1200, 64 << 10} {
		for _, bb := range []struct {
			name string
			r    io.ReaderAt
		}{{"shareindex", f}, {"checked", checkedFile{f, &Server{kick: make(chan struct{}, 1)}}}} {
			b.Run(fmt.Sprintf("%s/%d", bb.name, size), func(b *testing.B) {
				buf := make([]byte, size)
				b.SetBytes(int64(len(buf)))
				off := int64(0)
				for b.Loop() {
					if _, err := bb.r.ReadAt(buf, off); err != nil && err != io.EOF {
						b.Fatal(err)
					}
					off = (off + int64(len(buf))) % int64(len(data)-len(buf))
				}
			})
		}
	}
}
