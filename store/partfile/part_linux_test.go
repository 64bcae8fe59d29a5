//go:build linux

package partfile

import (
	"bytes"
	"context"
	"errors"
	"github.com/fxshell/fxsh/store"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestNoSpaceTmpfs fills a real 1 MiB file system.
func TestNoSpaceTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := filepath.Join(t.TempDir(), "small")
	os.Mkdir(mnt, 0o755)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	const cs = 64 << 10
	data := content(2<<20, 47)
	p, err := Open(mnt, "big.bin", int64(len(data)), hashOf(data), cs, false)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := range p.NumChunks() {
		if werr = p.WriteChunk(i, chunkOf(data, cs, i)); werr != nil {
			break
		}
		if i%4 == 3 {
			if err := p.Checkpoint(); err != nil {
				t.Logf("checkpoint %d: %v", i, err) // the state may not fit either
			}
		}
	}
	if !errors.Is(werr, ErrNoSpace) || !strings.Contains(werr.Error(), "no space left on device") {
		t.Fatalf("writing 2 MiB into 1 MiB: %v", werr)
	}
	t.Logf("full disk: %v", werr)
	p.Close()
	b, err := os.ReadFile(filepath.Join(mnt, ".big.bin"+store.StateSuffix))
	if err != nil {
		t.Fatalf("no state kept: %v", err)
	}
	st, _, err := ParseState(b)
	if err != nil {
		t.Fatalf("state after a full disk: %v", err)
	}
	kept := bitmap(st.Have).count()
	if kept == 0 {
		t.Fatal("no chunk checkpointed before the disk filled")
	}

	// Free space, resume, complete.
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=4m"); err != nil {
		t.Fatalf("remount: %v", err)
	}
	p, err = Open(mnt, "big.bin", int64(len(data)), hashOf(data), cs, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Resumed() != kept {
		t.Errorf("Resumed = %d, state said %d", p.Resumed(), kept)
	}
	for i := range p.NumChunks() {
		if !p.Have(i) {
			if err := p.WriteChunk(i, chunkOf(data, cs, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(mnt, "big.bin")); !bytes.Equal(got, data) {
		t.Error("file differs after resume")
	}
}
