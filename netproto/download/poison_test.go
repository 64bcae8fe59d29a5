package download

// Issue 18, poisoning at the whole-file level (a source that serves other
// bytes under the file's hash, with no tree to check groups against): the
// partial state is discarded, the sources that took part are remembered,
// the download is retried without them and the suspect is named. Each
// test fails on the code before issue 18.

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/partfile"
)

type memFile struct {
	*bytes.Reader
	failAfter int64 // ReadAt past this offset fails (0: never)
}

func (f memFile) Close() error { return nil }
func (f memFile) ReadAt(p []byte, off int64) (int, error) {
	if f.failAfter > 0 && off >= f.failAfter {
		return 0, errors.New("gone")
	}
	return f.Reader.ReadAt(p, off)
}

func randomContent(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// serve serves content under any hash (a liar when content is not the
// file) from a loopback socket, without trees, so that the file is checked
// whole. It returns the address and how many bytes it read out.
func serve(t *testing.T, content []byte, failAfter int64) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int64
	srv := transfer.NewServer(pc, transfer.ServerConfig{Open: func(string) (transfer.File, error) {
		opened.Add(1)
		return memFile{bytes.NewReader(content), failAfter}, nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return pc.LocalAddr().String(), &opened
}

func entry(content []byte, servers ...string) store.Entry {
	return store.Entry{File: store.File{Name: "big.bin", Size: int64(len(content)), Type: "bin", Hash: store.HashBytes(content).String()}, Servers: servers}
}

func getCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Finding 2: an honest server and a liar hold one entry; every download
// failed the whole-file check. Now the sources are tried alone, the liar
// is named, and the next download leaves it out from the start.
func TestPoisonedSwarmRetried(t *testing.T) {
	good := randomContent(1<<20, 1)
	bad := randomContent(1<<20, 2)
	honest, _ := serve(t, good, 0)
	liar, _ := serve(t, bad, 0)
	sus := NewSuspects()
	for round := range 2 {
		dir := t.TempDir()
		res, err := Get(getCtx(t), Request{Entry: entry(good, liar, honest), Dir: dir, Suspects: sus, SourceTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "big.bin"))
		if !bytes.Equal(got, good) {
			t.Fatalf("round %d: the file is not the honest one", round)
		}
		if !slices.Equal(res.Suspects, []string{liar}) {
			t.Errorf("round %d: suspects %v, want the liar %s", round, res.Suspects, liar)
		}
		for _, s := range res.Fetch.Sources {
			if round == 1 && s.Addr == liar {
				t.Errorf("round 1 asked the remembered liar")
			}
		}
	}
}

// A liar alone: the download fails naming it, and nothing is left behind
// (no partial file to resume from garbage).
func TestPoisonedOnlySourceNamed(t *testing.T) {
	good := randomContent(300_000, 3)
	liar, _ := serve(t, randomContent(300_000, 4), 0)
	dir := t.TempDir()
	_, err := Get(getCtx(t), Request{Entry: entry(good, liar), Dir: dir, SourceTimeout: 5 * time.Second})
	var se *SuspectError
	if !errors.As(err, &se) || !errors.Is(err, partfile.ErrHashMismatch) || !slices.Equal(se.Suspects, []string{liar}) {
		t.Fatalf("err = %v, want a hash mismatch naming %s", err, liar)
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("left behind: %v", des)
	}
}

// Finding 3: after a get from a lying source stopped half way, the next
// get resumed from its garbage and failed the check; only the one after
// started over. Now the get that finds the garbage starts over by itself.
func TestPoisonedResumeStartsOver(t *testing.T) {
	good := randomContent(1<<20, 5)
	liar, _ := serve(t, randomContent(1<<20, 6), 600_000) // serves garbage, then stops
	dir := t.TempDir()
	_, err := Get(getCtx(t), Request{Entry: entry(good, liar), Dir: dir, SourceTimeout: time.Second})
	if err == nil {
		t.Fatal("the liar's download succeeded")
	}
	honest, opened := serve(t, good, 0)
	var resumed int64
	res, err := Get(getCtx(t), Request{Entry: entry(good, honest), Dir: dir, SourceTimeout: 5 * time.Second,
		Started: func(r int64, _ int) {
			if resumed == 0 {
				resumed = r
			}
		}})
	if err != nil {
		t.Fatalf("the honest get after the liar's: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "big.bin"))
	if !bytes.Equal(got, good) {
		t.Fatal("the file is not the honest one")
	}
	t.Logf("resumed %d bytes of garbage, then started over (%d opens on the honest server)", resumed, opened.Load())
	if resumed == 0 || !res.Restarted {
		t.Errorf("resumed %d, restarted %v: the test did not exercise a poisoned resume", resumed, res.Restarted)
	}

}
