package transfer

// A server that closes with transfers running tells their clients (ERROR
// leaving): a client with other sources drops it and finishes from them, a
// client with none fails at once instead of after SourceTimeout, and an
// ERROR leaving that does not come from the source, on its transfer, sealed
// under the key, changes nothing.

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// leaveKey is the shared key of the keyed cases.
var leaveKey = UDPKey("a shared key for the leaving tests")

// fetchUntil starts Fetch of content from sources and returns once the
// client holds at least have bytes; wait returns Fetch's outcome.
func fetchUntil(t *testing.T, content []byte, sources []string, cfg ClientConfig, have int64) (wait func() (Result, error, time.Time), sink *memSink) {
	t.Helper()
	conn := listen(t)
	t.Cleanup(func() { conn.Close() })
	sink = newMemSink(int64(len(content)), 1200)
	reached := make(chan struct{})
	var once sync.Once
	cfg.ProgressInterval = 5 * time.Millisecond
	cfg.Progress = func(p Progress) {
		if p.Have >= have {
			once.Do(func() { close(reached) })
		}
	}
	type outcome struct {
		res Result
		err error
		at  time.Time
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Fetch(fetchCtx(t, 60*time.Second), conn, Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: 1200, Sources: sources}, sink, cfg)
		done <- outcome{res, err, time.Now()}
	}()
	select {
	case <-reached:
	case o := <-done:
		t.Fatalf("fetch ended before %d bytes: %v", have, o.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("no %d bytes within 30s", have)
	}
	return func() (Result, error, time.Time) { o := <-done; return o.res, o.err, o.at }, sink
}

// slowServer serves lib at rate bytes/s on loopback.
func slowServer(t *testing.T, lib *library, rate int64, key []byte) (*Server, string) {
	t.Helper()
	return startServer(t, lib, ServerConfig{Key: key, Impair: impair(t, ImpairSettings{Rate: rate})})
}

// The only source leaves mid-download: the fetch fails at once (not after
// the 15 s SourceTimeout), saying which server left, and what arrived stays
// in the sink (the caller keeps it for a resume).
func TestLeavingFailsFast(t *testing.T) {
	for _, tc := range []struct {
		name  string
		key   []byte
		delay time.Duration // the server's impairment delay (its copies wait for it)
	}{{"open", nil, 0}, {"keyed", leaveKey, 0}, {"delayed", nil, 40 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			content := randomBytes(4<<20, 71)
			srv, addr := startServer(t, newLibrary(content), ServerConfig{Key: tc.key, Impair: impair(t, ImpairSettings{Rate: 1 << 20, Delay: tc.delay})})
			wait, sink := fetchUntil(t, content, []string{addr}, ClientConfig{Key: tc.key}, 100_000)

			start := time.Now()
			srv.Close()
			closeTook := time.Since(start)
			res, err, at := wait()
			noticed := at.Sub(start)
			t.Logf("Close took %v; the client failed %v after Close began: %v", closeTook.Round(time.Millisecond), noticed.Round(time.Millisecond), err)

			if closeTook > MaxLeaveDelay+200*time.Millisecond {
				t.Errorf("Close took %v, want at most MaxLeaveDelay (%v) and a little", closeTook, MaxLeaveDelay)
			}
			if !errors.Is(err, ErrSourceLeft) || !errors.Is(err, ErrSourcesFailed) {
				t.Fatalf("err = %v, want ErrSourceLeft and ErrSourcesFailed", err)
			}
			if want := "server " + addr + " left"; !strings.Contains(err.Error(), want) {
				t.Errorf("err = %q, want it to say %q", err, want)
			}
			if noticed > time.Second {
				t.Errorf("the client noticed after %v, want well under a second (SourceTimeout is %v)", noticed, DefaultSourceTimeout)
			}
			if res.Stats.LeavingReplies == 0 {
				t.Errorf("no ERROR leaving counted by the client")
			}
			if st := srv.Stats(); st.LeavingReplies < LeaveCopies {
				t.Errorf("server sent %d ERROR leaving, want at least %d", st.LeavingReplies, LeaveCopies)
			}
			kept := 0
			for i, h := range sink.have {
				if h {
					kept++
					if !bytes.Equal(sink.data[i*1200:min(len(content), (i+1)*1200)], content[i*1200:min(len(content), (i+1)*1200)]) {
						t.Fatalf("chunk %d kept with the wrong bytes", i)
					}
				}
			}
			if kept == 0 || kept == len(sink.have) {
				t.Errorf("%d of %d chunks kept, want a partial download", kept, len(sink.have))
			}
		})
	}
}

// One of two sources leaves: the fetch drops it at once and finishes from
// the other, byte for byte.
func TestLeavingFailsOver(t *testing.T) {
	content := randomBytes(4<<20, 72)
	lib := newLibrary(content)
	leaver, leaverAddr := slowServer(t, lib, 1<<20, nil)
	_, stayerAddr := slowServer(t, lib, 2<<20, nil)
	wait, sink := fetchUntil(t, content, []string{leaverAddr, stayerAddr}, ClientConfig{}, 200_000)
	leftAt := time.Now()
	leaver.Close()
	res, err, at := wait()
	if err != nil {
		t.Fatalf("fetch failed after one of two sources left: %v", err)
	}
	if !bytes.Equal(sink.data, content) {
		t.Fatalf("the file differs")
	}
	t.Logf("finished %v after the first source left", at.Sub(leftAt).Round(time.Millisecond))
	var left *SourceStats
	for i := range res.Sources {
		if res.Sources[i].Addr == leaverAddr {
			left = &res.Sources[i]
		}
	}
	if left == nil || left.State != "failed" || !errors.Is(left.Err, ErrSourceLeft) {
		t.Fatalf("the source that left: %+v, want failed with ErrSourceLeft", left)
	}
	if res.Stats.LeavingReplies == 0 {
		t.Errorf("no ERROR leaving counted")
	}
}

// A REQUEST that reaches a server while it leaves (closed, its socket
// still open to tell the clients) is answered ERROR leaving, not served:
// the client fails at once.
func TestLeavingAnswersNewRequests(t *testing.T) {
	content := randomBytes(100_000, 73)
	srv, addr := startServer(t, newLibrary(content), ServerConfig{})
	// Hold the server in its leave window: closed, socket open (once Serve
	// runs: it refuses to start on a closed server).
	for {
		srv.mu.Lock()
		if srv.served {
			srv.closed = true
			srv.mu.Unlock()
			break
		}
		srv.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	err, took := fetchFrom(t, addr, content, ClientConfig{})
	srv.mu.Lock()
	srv.closed = false // so the cleanup's Close runs in full
	srv.mu.Unlock()
	if !errors.Is(err, ErrSourceLeft) || took > time.Second {
		t.Errorf("a fetch during the leave window: %v after %v, want the server left, at once", err, took)
	}
	if srv.Stats().LeavingReplies == 0 || srv.Stats().TransfersStarted != 0 {
		t.Errorf("leaving replies %d, transfers started %d: want an ERROR leaving and no transfer", srv.Stats().LeavingReplies, srv.Stats().TransfersStarted)
	}
}

// An ERROR leaving that is not the source's own changes nothing: sent from
// another address (with the right transfer id), from the source's address
// on another transfer id, or, under a key, unsealed or sealed with another
// key from the source's own socket (an attacker spoofing its address). The
// download finishes byte for byte and the spoofs are counted as hostile or
// failing authentication.
func TestLeavingSpoofedIgnored(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"open", nil}, {"keyed", leaveKey}} {
		t.Run(tc.name, func(t *testing.T) {
			content := randomBytes(1<<20, 74)
			// The server's own socket is kept, to send spoofs from its address.
			conn := listen(t)
			srv := NewServer(conn, ServerConfig{Open: newLibrary(content).open, Key: tc.key, Impair: impair(t, ImpairSettings{Rate: 1 << 20})})
			go srv.Serve(context.Background())
			t.Cleanup(srv.Close)
			addr := conn.LocalAddr().String()

			var tid atomic.Uint64
			var client atomic.Value // netip.AddrPort
			cfg := ClientConfig{Key: tc.key, Capture: func(dir Direction, local, peer netip.AddrPort, b []byte) {
				if h, _, err := chunk.ParseHeader(b); err == nil && dir == Sent && h.Kind == chunk.KindRequest {
					tid.Store(h.Transfer)
					client.Store(local)
				}
			}}
			wait, sink := fetchUntil(t, content, []string{addr}, cfg, 50_000)
			to := client.Load().(netip.AddrPort)
			if to.Addr().IsUnspecified() {
				to = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), to.Port())
			}
			leaving := chunk.AppendError(nil, &chunk.Error{Code: chunk.CodeLeaving, Text: "spoofed"})
			other := listen(t)
			defer other.Close()
			var sealer, wrongKey *chunk.Cipher
			if tc.key != nil {
				sealer, _ = chunk.NewCipher(tc.key, tid.Load(), chunk.RoleServer)
				wrongKey, _ = chunk.NewCipher(UDPKey("another key entirely, not ours"), tid.Load(), chunk.RoleServer)
			}
			pkt := func(id uint64, c *chunk.Cipher) []byte {
				return chunk.AppendPacket(nil, chunk.Header{Kind: chunk.KindError, Transfer: id, Number: 1<<63 | fakePn.Add(1)}, leaving, c)
			}
			for i := 0; i < 3; i++ {
				other.WriteToUDPAddrPort(pkt(tid.Load(), sealer), to)  // right id (and key), wrong address
				conn.WriteToUDPAddrPort(pkt(tid.Load()^1, sealer), to) // right address, wrong id
				if tc.key != nil {
					conn.WriteToUDPAddrPort(pkt(tid.Load(), nil), to)      // right address and id, not sealed
					conn.WriteToUDPAddrPort(pkt(tid.Load(), wrongKey), to) // sealed under another key
				}
			}
			res, err, _ := wait()
			if err != nil {
				t.Fatalf("a spoofed ERROR leaving ended the download: %v", err)
			}
			if !bytes.Equal(sink.data, content) {
				t.Fatalf("the file differs")
			}
			st := res.Stats
			t.Logf("hostile %d, auth drops %d, leaving %d", st.Hostile, st.AuthDrops, st.LeavingReplies)
			if st.LeavingReplies != 0 {
				t.Errorf("%d spoofed ERROR leaving taken", st.LeavingReplies)
			}
			if st.Hostile < 6 {
				t.Errorf("hostile %d, want the 6 from the wrong address or id", st.Hostile)
			}
			if tc.key != nil && st.AuthDrops < 6 {
				t.Errorf("auth drops %d, want the 6 unsealed or wrongly sealed", st.AuthDrops)
			}
		})
	}
}

// Close with no transfer running costs no leave time.
func TestLeavingIdleCloseIsImmediate(t *testing.T) {
	srv, _ := startServer(t, newLibrary(), ServerConfig{})
	start := time.Now()
	srv.Close()
	if d := time.Since(start); d > LeaveGap {
		t.Errorf("idle Close took %v", d)
	}
	if n := srv.Stats().LeavingReplies; n != 0 {
		t.Errorf("%d ERROR leaving with no transfer", n)
	}
}

// Downloads counts the transfers whose client is heard, and their hosts.
func TestServerDownloads(t *testing.T) {
	content := randomBytes(2<<20, 75)
	srv, addr := slowServer(t, newLibrary(content), 1<<20, nil)
	if n, h := srv.Downloads(time.Second); n != 0 || h != 0 {
		t.Fatalf("idle: %d downloads from %d hosts", n, h)
	}
	fetchUntil(t, content, []string{addr}, ClientConfig{}, 10_000)
	fetchUntil(t, content, []string{addr}, ClientConfig{}, 10_000)
	if n, h := srv.Downloads(time.Second); n != 2 || h != 1 {
		t.Errorf("two downloads from loopback: got %d downloads from %d hosts", n, h)
	}
}
