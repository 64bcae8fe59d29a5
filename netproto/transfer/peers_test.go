package transfer

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store/tree"
)

// TestSwarmTakeRarestPeersFirst: a peer takes the rarest claim it holds,
// cut to the part it holds; an origin leaves claims a peer holds to the
// peers and takes small pieces of the others; "not yet" takes a peer's
// claims back from that chunk.
func TestSwarmTakeRarestPeersFirst(t *testing.T) {
	const cs = tree.GroupSize          // one chunk per group, to read the test easily
	sw, ws := testSwarm(16, 4, nil, 3) // spans {0,4} {4,8} {8,12} {12,16}
	sw.geo = geometry{chunkSize: cs, size: 16 * cs}
	sw.swarming = true // (goSwarm would also shuffle the pool)
	origin, p1, p2 := ws[0], ws[1], ws[2]
	sw.setHas(p1, [][2]int{{0, 6}}) // groups 0-5
	sw.setHas(p2, [][2]int{{0, 2}}) // groups 0-1
	c, ok := sw.take(p1)
	if !ok || c != (claim{4, 6, 4}) {
		t.Fatalf("p1 took %v, want {4 6 4} (span 4-8 is rarer than 0-4, cut to what p1 holds)", c)
	}
	if sw.pool[1] != (claim{6, 8, 6}) {
		t.Fatalf("the rest of the span should stay in the pool: %v", sw.pool)
	}
	c, ok = sw.take(origin)
	if !ok || c != (claim{6, 8, 6}) {
		t.Fatalf("origin took %v, want 6-8 (the only part no peer holds; OriginClaimBytes is 4 chunks here)", c)
	}
	c, ok = sw.take(p2)
	if !ok || c != (claim{0, 2, 0}) {
		t.Fatalf("p2 took %v, want {0 2 0}", c)
	}
	p2.claims = []claim{c}
	sw.notYet(p2, 1)
	if len(p2.claims) != 1 || p2.claims[0].hi != 1 || hasGroup(p2.has, 1) {
		t.Fatalf("after not yet at 1: claims %v, has group 1 %v", p2.claims, hasGroup(p2.has, 1))
	}
	if sw.pool[0] != (claim{1, 2, 1}) {
		t.Fatalf("chunk 1 should be back at the pool's front: %v", sw.pool)
	}
}

// partialLibrary serves content as a peer that holds only groups [0,
// upTo): a PartialFile.
type partialLibrary struct {
	content []byte
	upTo    int64
}

type partialMem struct {
	*bytes.Reader
	upTo int64
}

func (p partialMem) Close() error                  { return nil }
func (p partialMem) Available(off, end int64) bool { return end <= p.upTo }
func (p partialMem) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > p.upTo {
		return 0, ErrNotYet
	}
	return p.Reader.ReadAt(b, off)
}

func (l partialLibrary) open(hash string) (File, error) {
	if hash != hashOf(l.content) {
		return nil, ErrNotFound
	}
	return partialMem{bytes.NewReader(l.content), l.upTo}, nil
}

// TestFetchWithPeers: a download with an origin takes on peers as they
// are announced (Peers): an honest one serves most of the file; one that
// claims groups it lacks is answered "not yet" and those go elsewhere; one
// that sends wrong bytes is dropped at its first bad group; a very slow one
// holds nobody up. Every run ends byte-identical.
func TestFetchWithPeers(t *testing.T) {
	content := randomBytes(4<<20+321, 31)
	n := tree.Groups(int64(len(content)))
	const cs = 8192
	tests := []struct {
		name  string
		start func(t *testing.T) string
		check func(t *testing.T, st Stats, peer SourceStats)
	}{
		{"honest", func(t *testing.T) string {
			_, a := startServer(t, newLibrary(content), ServerConfig{})
			return a
		}, func(t *testing.T, st Stats, peer SourceStats) {
			if peer.Bytes == 0 || peer.State == "failed" {
				t.Errorf("the peer did not serve: %+v", peer)
			}
		}},
		{"claims groups it lacks", func(t *testing.T) string {
			_, a := startServer(t, nil, ServerConfig{Open: partialLibrary{content, int64(n/2) * tree.GroupSize}.open})
			return a
		}, func(t *testing.T, st Stats, peer SourceStats) {
			if st.NotYetReplies == 0 {
				t.Error("no not-yet reply")
			}
		}},
		{"wrong bytes", func(t *testing.T) string {
			_, a := startServer(t, liarLibrary(content), ServerConfig{})
			return a
		}, func(t *testing.T, st Stats, peer SourceStats) {
			var bg *BadGroupError
			if st.LiarsDropped != 1 || !errors.As(peer.Err, &bg) {
				t.Errorf("liar not named: %+v, liars %d", peer, st.LiarsDropped)
			}
		}},
		{"very slow", func(t *testing.T) string {
			_, a := startServer(t, newLibrary(content), ServerConfig{Impair: impair(t, ImpairSettings{Rate: 20 << 10})})
			return a
		}, func(t *testing.T, st Stats, peer SourceStats) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, origin := startServer(t, newLibrary(content), ServerConfig{Impair: impair(t, ImpairSettings{Rate: 2 << 20})})
			peer := tt.start(t)
			peers := make(chan []Peer, 1)
			peers <- []Peer{{Addr: peer, Groups: [][2]int{{0, n}}}}
			ms := newMemSink(int64(len(content)), cs)
			conn := listen(t)
			defer conn.Close()
			counters := NewCounters(nil)
			start := time.Now()
			res, err := Fetch(fetchCtx(t, 60*time.Second), conn,
				Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: cs, Sources: []string{origin}},
				readSink{ms}, ClientConfig{Tree: treeOf(t, content), Peers: peers, Counters: counters, SourceTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ms.data, content) {
				t.Fatal("content differs")
			}
			if len(res.Sources) != 2 || !res.Sources[1].Peer || res.Sources[0].Peer {
				t.Fatalf("sources %+v: want the origin and one peer", res.Sources)
			}
			for _, s := range res.Sources {
				t.Logf("%s peer=%v %s %d bytes: %v", s.Addr, s.Peer, s.State, s.Bytes, s.Err)
			}
			t.Logf("%v", time.Since(start))
			tt.check(t, counters.Snapshot(), res.Sources[1])
		})
	}
}

// TestSwarmIdleSourceWakes: an origin whose take found nothing (a peer
// holds every claim) is not made to scan the pool again on every tick, and
// takes work as soon as something changes that gives it some: the peer is
// dropped, its groups shrink, or it answers "not yet".
func TestSwarmIdleSourceWakes(t *testing.T) {
	const cs = tree.GroupSize
	for _, tt := range []struct {
		name   string
		change func(sw *swarm, p *worker)
	}{
		{"peer dropped", func(sw *swarm, p *worker) { sw.drop(p) }},
		{"peer holds less", func(sw *swarm, p *worker) { sw.setHas(p, [][2]int{{0, 8}}) }},
		{"peer says not yet", func(sw *swarm, p *worker) { sw.notYet(p, 8) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sw, ws := testSwarm(16, 4, nil, 2)
			sw.geo = geometry{chunkSize: cs, size: 16 * cs}
			sw.swarming = true
			origin, p := ws[0], ws[1]
			sw.setHas(p, [][2]int{{0, 16}})
			sw.refill(p, 0) // p works on two spans; two stay in the pool, held by p
			sw.refill(origin, 0)
			if len(origin.claims) != 0 || origin.nothingAt != sw.gen+1 {
				t.Fatalf("origin took %v (nothingAt %d, gen %d): the peer holds everything", origin.claims, origin.nothingAt, sw.gen)
			}
			gen := sw.gen
			sw.refill(origin, 0)
			if sw.gen != gen || len(origin.claims) != 0 {
				t.Fatal("a refill with nothing changed took or changed something")
			}
			tt.change(sw, p)
			sw.refill(origin, 0)
			if len(origin.claims) == 0 {
				t.Fatalf("after %s the origin still has no work; pool %v", tt.name, sw.pool)
			}
		})
	}
}
