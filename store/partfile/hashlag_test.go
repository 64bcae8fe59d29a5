package partfile

import (
	"context"
	"github.com/fxshell/fxsh/store"
	"hash"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// gatedHash is a hasher whose every Write announces itself on entered and
// then waits for proceed: the background hasher goes exactly as slowly as
// the test lets it.
type gatedHash struct {
	hash.Hash
	entered chan struct{}
	proceed chan struct{}
}

func (g *gatedHash) Write(b []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.proceed
	return g.Hash.Write(b)
}

// TestCheckpointWhileHashLags checks that a checkpoint falling due while the
// background hasher is behind (hashing slower than data arrives: a slow CPU,
// a race build) is made between two hashed blocks, not held back until the
// hasher catches up. A client killed meanwhile would lose all that data.
func TestCheckpointWhileHashLags(t *testing.T) {
	dir := t.TempDir()
	data := content(64*testChunk, 59)
	p, err := open(dir, "f", int64(len(data)), hashOf(data), testChunk, false,
		options{ckptBytes: 4 * testChunk, ckptEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	g := &gatedHash{Hash: p.h, entered: make(chan struct{}), proceed: make(chan struct{})}
	// The worker reads p.h only once a WriteChunk has kicked it (a channel
	// send after this assignment), so this does not race with it.
	p.h = g
	// Let the hasher run free (before Close, deferred earlier, waits for it).
	var free sync.Once
	letGo := func() {
		free.Do(func() {
			close(g.proceed)
			go func() {
				for range g.entered {
				}
			}()
		})
	}
	defer letGo()
	statePath := filepath.Join(dir, ".f"+store.StateSuffix)

	// Chunk 0 alone: the hasher starts on it and stops inside Write.
	writeAll(t, p, data, []int{0})
	waitEntered(t, g)
	// Chunks 1-4 while it is stuck: a checkpoint is now due.
	writeAll(t, p, data, []int{1, 2, 3, 4})
	if _, err := os.Stat(statePath); err == nil {
		t.Fatal("a state file before the hasher let go: the test no longer tests the lag")
	}
	// Let one block through: before the hasher reads the next one (and
	// stops in Write again), the checkpoint must be on disk.
	g.proceed <- struct{}{}
	waitEntered(t, g)
	b, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatalf("no checkpoint while the hasher lagged: %v", err)
	}
	st, _, err := ParseState(b)
	if err != nil {
		t.Fatal(err)
	}
	if n := bitmap(st.Have).count(); n != 5 {
		t.Errorf("checkpoint holds %d chunks, want 5", n)
	}

	// Let the hasher run free; the download still completes and verifies.
	letGo()
	writeAll(t, p, data, seq(p.NumChunks()))
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != string(data) {
		t.Error("file differs")
	}
}

func waitEntered(t *testing.T, g *gatedHash) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the background hasher never started on the prefix")
	}
}
