package fileserver

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/netproto/transfer"
)

// memSink keeps a download in memory.
type memSink struct {
	chunkSize int
	have      map[int]bool
}

func (m *memSink) Have(i int) bool                  { return m.have[i] }
func (m *memSink) WriteChunk(i int, _ []byte) error { m.have[i] = true; return nil }

// A share that closes while a client downloads from it: the client hears
// ERROR leaving and fails at once, naming the server, instead of after its
// 15 s source timeout; the master no longer lists the files once Close
// returns; Close is delayed by at most transfer.MaxLeaveDelay (and the BYE).
func TestCloseTellsClients(t *testing.T) {
	mAddr := startMaster(t)

	dir := t.TempDir()
	body := content(3<<20, 9)
	writeOld(t, filepath.Join(dir, "big.bin"), body)
	im := &transfer.Impair{}
	if err := im.Set(transfer.ImpairSettings{Rate: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, _, err := Start(ctx, Config{Paths: []string{dir}, UDPAddr: "127.0.0.1:0", Masters: []string{mAddr}, Rescan: time.Hour, Impair: im})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			s.Close(context.Background())
		}
	}()
	if err := s.WaitRegistered(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Downloads(); n != 0 {
		t.Fatalf("%d downloads before any client", n)
	}

	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	started := make(chan struct{}, 1)
	type outcome struct {
		err error
		at  time.Time
	}
	done := make(chan outcome, 1)
	go func() {
		_, err := transfer.Fetch(ctx, conn, transfer.Request{Hash: hashOf(body), Size: int64(len(body)), ChunkSize: 1200, Sources: []string{s.Addr()}},
			&memSink{chunkSize: 1200, have: map[int]bool{}}, transfer.ClientConfig{ProgressInterval: 5 * time.Millisecond, Progress: func(p transfer.Progress) {
				if p.Have > 50_000 {
					select {
					case started <- struct{}{}:
					default:
					}
				}
			}})
		done <- outcome{err, time.Now()}
	}()
	select {
	case <-started:
	case o := <-done:
		t.Fatalf("download ended early: %v", o.err)
	case <-ctx.Done():
		t.Fatal("no download")
	}
	if n, hosts := s.Downloads(); n != 1 || hosts != 1 {
		t.Errorf("Downloads() = %d from %d hosts, want 1 from 1", n, hosts)
	}

	start := time.Now()
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	closed = true
	took := time.Since(start)
	o := <-done
	t.Logf("Close took %v; the client failed %v after it began: %v", took.Round(time.Millisecond), o.at.Sub(start).Round(time.Millisecond), o.err)
	if !errors.Is(o.err, transfer.ErrSourceLeft) || !strings.Contains(o.err.Error(), "server "+s.Addr()+" left") {
		t.Errorf("the client's error: %v, want server %s left", o.err, s.Addr())
	}
	if d := o.at.Sub(start); d > time.Second {
		t.Errorf("the client noticed after %v, want well under a second", d)
	}
	if took > transfer.MaxLeaveDelay+time.Second {
		t.Errorf("Close took %v", took)
	}
	cl, err := masterclient.Dial(ctx, masterclient.Config{Masters: []string{mAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if es, _, err := cl.List(ctx, "big.bin", 0); err != nil || len(es) != 0 {
		t.Errorf("after Close the master lists %+v (%v), want nothing", es, err)
	}
}
