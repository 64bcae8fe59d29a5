package transfer

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/store"
)

// rawClient speaks the chunk protocol by hand, for hostile-peer tests.
type rawClient struct {
	t     testing.TB
	conn  *net.UDPConn
	to    netip.AddrPort
	sent  int // bytes
	recvd int
	pn    uint64
}

func newRawClient(t testing.TB, addr string) *rawClient {
	c := listen(t)
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadBuffer(8 << 20) // so that counting what the server sent back is exact
	return &rawClient{t: t, conn: c, to: netip.MustParseAddrPort(addr)}
}

func (r *rawClient) send(b []byte) {
	r.t.Helper()
	if _, err := r.conn.WriteToUDPAddrPort(b, r.to); err != nil {
		r.t.Fatal(err)
	}
	r.sent += len(b)
}

func (r *rawClient) sendPacket(kind chunk.Kind, tid uint64, payload []byte) {
	r.pn++
	r.send(chunk.AppendPacket(nil, chunk.Header{Kind: kind, Transfer: tid, Number: r.pn}, payload, nil))
}

// recv collects packets until the socket is quiet for quiet (or max total).
func (r *rawClient) recv(quiet, total time.Duration) []chunk.Packet {
	return r.recvUntil(quiet, total, nil)
}

// recvUntil is recv that also stops after a packet for which stop is true.
// It waits up to total for the first packet (a loaded machine may be slow to
// answer) and applies quiet only after that.
func (r *rawClient) recvUntil(quiet, total time.Duration, stop func(chunk.Packet) bool) []chunk.Packet {
	var out []chunk.Packet
	end := time.Now().Add(total)
	for {
		dl := time.Now().Add(quiet)
		if len(out) == 0 || dl.After(end) {
			dl = end
		}
		_ = r.conn.SetReadDeadline(dl)
		buf := make([]byte, chunk.MaxDatagram)
		n, err := r.conn.Read(buf)
		if err != nil {
			return out
		}
		r.recvd += n
		p, _, err := chunk.ParsePacket(buf[:n])
		if err != nil {
			r.t.Errorf("server sent an unparseable packet: %v", err)
			continue
		}
		out = append(out, p)
		if stop != nil && stop(p) {
			return out
		}
	}
}

func rawRequest(content []byte, chunkSize int, window uint32, cookie []byte, ranges ...chunk.Range) []byte {
	r := chunk.Request{Hash: store.HashBytes(content), Size: int64(len(content)), ChunkSize: uint32(chunkSize), Window: window, Cookie: cookie, Ranges: ranges}
	return chunk.AppendRequest(nil, &r)
}

func kinds(ps []chunk.Packet) map[chunk.Kind]int {
	m := map[chunk.Kind]int{}
	for _, p := range ps {
		m[p.Kind]++
	}
	return m
}

// handshake gets a cookie for tid.
func (r *rawClient) cookie(content []byte, tid uint64) []byte {
	r.t.Helper()
	r.sendPacket(chunk.KindRequest, tid, rawRequest(content, 1200, 64, nil))
	ps := r.recvUntil(5*time.Second, 5*time.Second, func(p chunk.Packet) bool { return p.Kind == chunk.KindRetry && p.Transfer == tid })
	for _, p := range ps {
		if p.Kind == chunk.KindRetry && p.Transfer == tid {
			rt, _, err := chunk.ParseRetry(p.Payload)
			if err != nil {
				r.t.Fatal(err)
			}
			return append([]byte(nil), rt.Cookie...)
		}
	}
	r.t.Fatalf("no RETRY for %d: %v", tid, kinds(ps))
	return nil
}

func TestCookieRequired(t *testing.T) {
	content := randomBytes(1<<20, 3)
	srv, addr := startServer(t, newLibrary(content), ServerConfig{})
	other := newRawClient(t, addr)
	otherCookie := other.cookie(content, 77)

	tests := []struct {
		name   string
		cookie func(r *rawClient) []byte
		tid    uint64
	}{
		{"no cookie", func(*rawClient) []byte { return nil }, 1},
		{"garbage cookie", func(*rawClient) []byte { return bytes.Repeat([]byte{7}, 20) }, 2},
		{"another address's cookie", func(*rawClient) []byte { return otherCookie }, 77},
		{"another transfer's cookie", func(r *rawClient) []byte { return r.cookie(content, 5) }, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRawClient(t, addr)
			ck := tt.cookie(r)
			r.sent, r.recvd = 0, 0
			for i := 0; i < 20; i++ {
				r.sendPacket(chunk.KindRequest, tt.tid, rawRequest(content, 1200, 64, ck, chunk.Range{First: 0, Count: 100}))
			}
			got := kinds(r.recv(200*time.Millisecond, 5*time.Second))
			if got[chunk.KindData] != 0 {
				t.Errorf("got %d DATA without a valid cookie", got[chunk.KindData])
			}
			if got[chunk.KindRetry] == 0 {
				t.Errorf("no RETRY: %v", got)
			}
			if r.recvd > AmplificationFactor*r.sent {
				t.Errorf("amplification: sent %d bytes, received %d", r.sent, r.recvd)
			}
		})
	}
	if s := srv.Stats(); s.TransfersStarted != 0 {
		t.Errorf("transfers started without a valid cookie: %d", s.TransfersStarted)
	}

	t.Run("valid cookie", func(t *testing.T) {
		r := newRawClient(t, addr)
		ck := r.cookie(content, 9)
		r.sendPacket(chunk.KindRequest, 9, rawRequest(content, 1200, 64, ck, chunk.Range{First: 0, Count: 5}))
		got := kinds(r.recv(300*time.Millisecond, 5*time.Second))
		if got[chunk.KindData] < 5 {
			t.Errorf("got %v, want DATA", got)
		}
	})
}

func TestServerCaps(t *testing.T) {
	content := randomBytes(1<<20, 4)
	lib := newLibrary(content)
	tests := []struct {
		name string
		cfg  ServerConfig
		tids int  // validated REQUESTs sent; the last must get busy
		slow bool // Open blocks until the test ends
	}{
		{"per address", ServerConfig{MaxTransfersPerAddr: 2}, 3, false},
		{"total", ServerConfig{MaxTransfers: 3}, 4, false},
		{"pending", ServerConfig{MaxPending: 2}, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			release := make(chan struct{})
			if tt.slow {
				cfg.Open = func(h string) (File, error) {
					<-release
					return lib.open(h)
				}
			}
			srv, addr := startServer(t, lib, cfg)
			t.Cleanup(func() { close(release) }) // before the server's Close, which waits for Open
			r := newRawClient(t, addr)
			for tid := uint64(1); tid <= uint64(tt.tids); tid++ {
				ck := r.cookie(content, tid)
				r.sendPacket(chunk.KindRequest, tid, rawRequest(content, 1200, 4, ck, chunk.Range{First: 0, Count: 1}))
			}
			var busy []uint64
			for _, p := range r.recv(300*time.Millisecond, 5*time.Second) {
				if p.Kind == chunk.KindError {
					e, _, err := chunk.ParseError(p.Payload)
					if err == nil && e.Code == chunk.CodeBusy {
						busy = append(busy, p.Transfer)
						if e.Value == 0 {
							t.Errorf("busy without a retry-after")
						}
					}
				}
			}
			if len(busy) != 1 || busy[0] != uint64(tt.tids) {
				t.Errorf("busy answers for %v, want [%d]", busy, tt.tids)
			}
			if srv.Stats().BusyReplies != 1 {
				t.Errorf("BusyReplies = %d", srv.Stats().BusyReplies)
			}
		})
	}
}

// TestMaxInFlight: a client that never acknowledges gets at most
// MaxInFlight distinct chunks, then only probes of the same ones.
func TestMaxInFlight(t *testing.T) {
	content := randomBytes(1<<20, 5)
	const cap = 16
	_, addr := startServer(t, newLibrary(content), ServerConfig{MaxInFlight: cap})
	r := newRawClient(t, addr)
	ck := r.cookie(content, 3)
	r.sendPacket(chunk.KindRequest, 3, rawRequest(content, 1200, chunk.MaxWindow, ck, chunk.Range{First: 0, Count: 800}))
	distinct := map[uint32]bool{}
	for _, p := range r.recv(400*time.Millisecond, 3*time.Second) {
		if p.Kind == chunk.KindData {
			distinct[p.Chunk] = true
		}
	}
	if len(distinct) == 0 || len(distinct) > cap {
		t.Errorf("%d distinct chunks sent without ACKs, want 1..%d", len(distinct), cap)
	}
}

func TestHostileDatagrams(t *testing.T) {
	content := randomBytes(2<<20, 6)
	srv, addr := startServer(t, newLibrary(content), ServerConfig{})

	// An honest download runs while the server is bombarded.
	done := make(chan error, 1)
	sink := newMemSink(int64(len(content)), 1200)
	go func() {
		conn := listen(t)
		defer conn.Close()
		_, err := Fetch(fetchCtx(t, 60*time.Second), conn, Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: 1200, Sources: []string{addr}}, sink, ClientConfig{})
		done <- err
	}()

	r := newRawClient(t, addr)
	rng := rand.New(rand.NewPCG(1, 2))
	tid := uint64(1234)
	ck := r.cookie(content, tid)
	r.sendPacket(chunk.KindRequest, tid, rawRequest(content, 1200, 64, ck, chunk.Range{First: 0, Count: 4}))
	// The transfer exists once its DATA flows: only then can an ACK for it
	// claim chunks it never sent.
	if ps := r.recvUntil(5*time.Second, 5*time.Second, func(p chunk.Packet) bool { return p.Kind == chunk.KindData }); len(ps) == 0 {
		t.Fatal("no DATA for the hostile client's own transfer")
	}
	all := chunk.NewChunkBitmap(100000)
	for i := 0; i < all.Len(); i++ {
		all.Set(i)
	}
	before := srv.Stats()
	attacks := []struct {
		name string
		send func()
	}{
		{"random bytes", func() {
			b := make([]byte, 1+rng.IntN(1500))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			r.send(b)
		}},
		{"bad crc", func() {
			b := chunk.AppendPacket(nil, chunk.Header{Kind: chunk.KindAck, Transfer: tid, Number: 1}, make([]byte, 30), nil)
			b[len(b)-1] ^= 1
			r.send(b)
		}},
		{"forged transfer id", func() {
			a := chunk.Ack{Window: 8}
			r.sendPacket(chunk.KindAck, rng.Uint64()|1, chunk.AppendAck(nil, &a))
		}},
		{"ack for chunks never sent", func() {
			a := chunk.Ack{Base: 5000, Window: 8, NBits: 16, Bits: []byte{0xff, 0xff}}
			r.sendPacket(chunk.KindAck, tid, chunk.AppendAck(nil, &a))
		}},
		{"bitmap claiming everything", func() {
			a := chunk.Ack{Cumulative: 0, Base: 0, Largest: 1 << 62, Window: chunk.MaxWindow, NBits: chunk.MaxAckBits, Bits: all.AppendBits(nil, 0, chunk.MaxAckBits)}
			r.sendPacket(chunk.KindAck, tid, chunk.AppendAck(nil, &a))
		}},
		{"cumulative past the end", func() {
			a := chunk.Ack{Cumulative: 1 << 31, Base: 1<<32 - 10, Window: 1, NBits: 0}
			r.sendPacket(chunk.KindAck, tid, chunk.AppendAck(nil, &a))
		}},
		{"data to a server", func() {
			r.sendPacket(chunk.KindData, tid, make([]byte, 1200))
		}},
		{"malformed request", func() {
			r.sendPacket(chunk.KindRequest, tid+1, []byte("short"))
		}},
	}
	for _, a := range attacks {
		for i := 0; i < 200; i++ {
			a.send()
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("honest Fetch under attack: %v", err)
	}
	if !bytes.Equal(sink.data, content) {
		t.Fatalf("honest download corrupted")
	}
	// The server reads in order: once a later REQUEST is answered, every
	// attack packet has been processed.
	newRawClient(t, addr).cookie(content, 999)
	r.recv(300*time.Millisecond, 5*time.Second)
	after := srv.Stats()
	for _, c := range []struct {
		name string
		n    int64
	}{
		{"Malformed", after.Malformed - before.Malformed},
		{"CRCDrops", after.CRCDrops - before.CRCDrops},
		{"Hostile", after.Hostile - before.Hostile},
		{"AckUnsent", after.AckUnsent - before.AckUnsent},
	} {
		if c.n == 0 {
			t.Errorf("%s not counted", c.name)
		}
	}
	if r.recvd > AmplificationFactor*r.sent {
		t.Errorf("hostile client got %d bytes for %d sent", r.recvd, r.sent)
	}
}

func TestKey(t *testing.T) {
	content := randomBytes(300000, 8)
	key := []byte("a classroom shared secret")
	_, addr := startServer(t, newLibrary(content), ServerConfig{Key: key, Impair: impair(t, ImpairSettings{Loss: 0.05})})
	tests := []struct {
		name    string
		key     []byte
		wantErr bool
	}{
		{"same key", key, false},
		{"no key", nil, true},
		{"wrong key", []byte("not the classroom secret!"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := newMemSink(int64(len(content)), 1200)
			conn := listen(t)
			defer conn.Close()
			res, err := Fetch(fetchCtx(t, 30*time.Second), conn, Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: 1200, Sources: []string{addr}}, sink,
				ClientConfig{Key: tt.key, SourceTimeout: time.Second})
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrSourcesFailed) {
					t.Fatalf("err = %v, want ErrSourcesFailed", err)
				}
				if sink.writes != 0 {
					t.Errorf("%d chunks stored without the key", sink.writes)
				}
				t.Logf("%v (auth drops %d)", err, res.Stats.AuthDrops)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sink.data, content) {
				t.Fatal("content differs")
			}
		})
	}
	t.Run("no plaintext on the wire", func(t *testing.T) {
		r := newRawClient(t, addr)
		c, err := chunk.NewCipher(key, 42, chunk.RoleClient)
		if err != nil {
			t.Fatal(err)
		}
		// A REQUEST is a datagram: like a real client, send it again if
		// no answer comes (a loaded machine may drop one).
		var ps []chunk.Packet
		for try := uint64(1); try <= 3 && len(ps) == 0; try++ {
			r.send(chunk.AppendPacket(nil, chunk.Header{Kind: chunk.KindRequest, Transfer: 42, Number: try}, rawRequest(content, 1200, 8, nil), c))
			ps = r.recv(300*time.Millisecond, 2*time.Second)
		}
		if len(ps) != 1 || ps[0].Kind != chunk.KindRetry || ps[0].Flags&chunk.FlagSealed == 0 {
			t.Fatalf("got %v, want one sealed RETRY", kinds(ps))
		}
	})
}

func TestServeCloseStopsTransfers(t *testing.T) {
	content := randomBytes(4<<20, 9)
	lib := newLibrary(content)
	var mu sync.Mutex
	var files []*memFile
	conn := listen(t)
	srv := NewServer(conn, ServerConfig{Open: func(h string) (File, error) {
		f, err := lib.open(h)
		if err == nil {
			mu.Lock()
			files = append(files, f.(*memFile))
			mu.Unlock()
		}
		return f, err
	}, Impair: impair(t, ImpairSettings{Rate: 1 << 20})})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	fetched := make(chan error, 1)
	go func() {
		c := listen(t)
		defer c.Close()
		_, err := Fetch(fetchCtx(t, 30*time.Second), c, Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: 1200, Sources: []string{conn.LocalAddr().String()}}, discardSink{}, ClientConfig{SourceTimeout: 500 * time.Millisecond})
		fetched <- err
	}()
	for srv.Stats().TransfersActive == 0 {
		time.Sleep(time.Millisecond) // polling a counter, not waiting for a server to start
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := <-fetched; !errors.Is(err, ErrSourcesFailed) {
		t.Errorf("Fetch from a closed server: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range files {
		select {
		case <-f.closed:
		default:
			t.Errorf("file left open after Serve returned")
		}
	}
	if a := srv.Stats().TransfersActive; a != 0 {
		t.Errorf("TransfersActive = %d after close", a)
	}
}
