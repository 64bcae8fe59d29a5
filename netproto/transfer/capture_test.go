package transfer

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// TestCapture: the capture hook sees every datagram each side writes and
// every one it receives, with the socket's address and the peer's, and the
// bytes as they were on the wire (sealed ones still sealed).
func TestCapture(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("a shared key of 32 bytes or so..")} {
		name := "open"
		if key != nil {
			name = "sealed"
		}
		t.Run(name, func(t *testing.T) {
			content := randomBytes(300_000, 21)
			type rec struct {
				dir         Direction
				local, peer netip.AddrPort
				kind        chunk.Kind
				sealed      bool
			}
			var mu sync.Mutex
			got := map[string][]rec{}
			capture := func(who string) func(Direction, netip.AddrPort, netip.AddrPort, []byte) {
				return func(dir Direction, local, peer netip.AddrPort, b []byte) {
					p, _, err := chunk.ParsePacket(b)
					if err != nil {
						t.Errorf("%s captured a datagram that does not parse: %v", who, err)
						return
					}
					mu.Lock()
					got[who] = append(got[who], rec{dir, local, peer, p.Kind, p.Flags&chunk.FlagSealed != 0})
					mu.Unlock()
				}
			}
			srv, addr := startServer(t, newLibrary(content), ServerConfig{Key: key, Capture: capture("server")})
			conn := listen(t)
			defer conn.Close()
			counters := NewCounters(nil)
			_, err := Fetch(fetchCtx(t, 30*time.Second), conn, Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: 1200, Sources: []string{addr}},
				newMemSink(int64(len(content)), 1200), ClientConfig{Key: key, Counters: counters, Capture: capture("client")})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // the DONE echo
			mu.Lock()
			defer mu.Unlock()
			cl := conn.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
			sv := netip.MustParseAddrPort(addr)
			count := func(who string, dir Direction, kind chunk.Kind) (n int64) {
				for _, r := range got[who] {
					if r.dir == dir && (kind == 0 || r.kind == kind) {
						n++
					}
				}
				return n
			}
			for _, r := range got["client"] {
				if !sameAddr(r.local, cl) || !sameAddr(r.peer, sv) {
					t.Fatalf("client captured %v ↔ %v, want %v ↔ %v", r.local, r.peer, cl, sv)
				}
				if r.sealed != (key != nil) {
					t.Fatalf("client captured sealed=%v", r.sealed)
				}
			}
			st := counters.Snapshot()
			if n := count("client", Sent, 0); n != st.DatagramsSent {
				t.Errorf("client: %d sent captured, %d counted", n, st.DatagramsSent)
			}
			if n := count("client", Received, 0); n != st.DatagramsReceived {
				t.Errorf("client: %d received captured, %d counted", n, st.DatagramsReceived)
			}
			chunks := int64(len(content)+1199) / 1200
			if n := count("server", Sent, chunk.KindData); n < chunks {
				t.Errorf("server captured %d DATA sent for %d chunks", n, chunks)
			}
			if n := count("client", Received, chunk.KindData); n < chunks {
				t.Errorf("client captured %d DATA received for %d chunks", n, chunks)
			}
			if n, m := count("server", Received, chunk.KindAck), count("client", Sent, chunk.KindAck); n == 0 || n > m {
				t.Errorf("server captured %d ACKs received, client %d sent", n, m)
			}
			if st := srv.Stats(); count("server", Sent, 0) != st.DatagramsSent {
				t.Errorf("server: %d sent captured, %d counted", count("server", Sent, 0), st.DatagramsSent)
			}
		})
	}
}

// BenchmarkTraceOff measures what tracing costs a DATA datagram while the
// shell's trace is off: one call to TraceActive, which loads an atomic.
// (Without TraceActive the link would parse the header, read the clock —
// about 200 ns on a VM without a vDSO clock — and call the hook.)
func BenchmarkTraceOff(b *testing.B) {
	var level atomic.Int32
	l := &link{sample: 1}
	l.setTraceActive(func() bool { return level.Load() != 0 })
	l.trace = func(Event) {
		if level.Load() != 0 {
			b.Fatal("on")
		}
	}
	pkt := chunk.AppendPacket(nil, chunk.Header{Kind: chunk.KindData, Transfer: 1, Chunk: 7}, make([]byte, 1200), nil)
	to := netip.MustParseAddrPort("127.0.0.1:5000")
	b.ResetTimer()
	for range b.N {
		l.traceSent(pkt, to, nil, "")
	}
}
