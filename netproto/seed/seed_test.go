package seed

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/tree"
)

type fakeMaster struct {
	mu      sync.Mutex
	seeds   map[string]string
	unseeds int
}

func (m *fakeMaster) Seed(_ context.Context, hash string, _ int64, _ string, have string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seeds[hash] = have
	return nil
}

func (m *fakeMaster) Unseed(_ context.Context, hash string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seeds, hash)
	m.unseeds++
	return nil
}

func (m *fakeMaster) have(hash string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seeds[hash]
}

type sink struct {
	data []byte
	have []bool
	cs   int
}

func (s *sink) Have(i int) bool { return s.have[i] }
func (s *sink) WriteChunk(i int, d []byte) error {
	copy(s.data[i*s.cs:], d)
	s.have[i] = true
	return nil
}
func (s *sink) ReadAt(p []byte, off int64) (int, error) { return copy(p, s.data[off:]), nil }
func (s *sink) Forget(i int)                            { s.have[i] = false }

// TestSeederServesCheckedGroupsOnly: a Seeder announces the groups checked
// so far as a have list, serves them (and the tree) to a download that
// takes it as a peer, answers "not yet" for the others, and withdraws.
func TestSeederServesCheckedGroupsOnly(t *testing.T) {
	content := make([]byte, 6*tree.GroupSize+100)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	b := tree.NewBuilder()
	b.Write(content)
	root, tr := b.Sum()
	hash := root.String()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMaster{seeds: map[string]string{}}
	sd, err := Start(Config{Master: m, UDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	groups := tree.NewHave(int64(len(content)))
	for g := 3; g < 7; g++ {
		groups.Set(g)
	}
	o, err := sd.Offer(hash, "f", int64(len(content)), tr, groups, f)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.have(hash) != "3-6" {
		if time.Now().After(deadline) {
			t.Fatalf("announced %q, want 3-6", m.have(hash))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := sd.Offers(); len(st) != 1 || st[0].Groups != 4 || st[0].Total != 7 {
		t.Fatalf("offers %+v", st)
	}

	// An origin (slow) and the seeder as a peer: the download's start is
	// the origin's when the peer joins; the peer serves from the groups it
	// checked. (Not-yet answers: transfer.TestFetchWithPeers.)
	opc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	origin := transfer.NewServer(opc, transfer.ServerConfig{Open: func(h string) (transfer.File, error) {
		if h != hash {
			return nil, transfer.ErrNotFound
		}
		return memFile{bytes.NewReader(content)}, nil
	}, Impair: mustImpair(t, 100<<10)})
	go origin.Serve(context.Background())
	defer origin.Close()
	_, port, _ := net.SplitHostPort(sd.Addr())
	peers := make(chan []transfer.Peer, 1)
	peers <- []transfer.Peer{{Addr: "127.0.0.1:" + port, Groups: [][2]int{{3, 7}}}}
	conn, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer conn.Close()
	const cs = 8192
	s := &sink{data: make([]byte, len(content)), have: make([]bool, (len(content)+cs-1)/cs), cs: cs}
	counters := transfer.NewCounters(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := transfer.Fetch(ctx, conn, transfer.Request{Hash: hash, Size: int64(len(content)), ChunkSize: cs, Sources: []string{opc.LocalAddr().String()}},
		s, transfer.ClientConfig{Tree: tr, Peers: peers, Counters: counters})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.data, content) {
		t.Fatal("content differs")
	}
	if len(res.Sources) != 2 || res.Sources[1].Bytes == 0 || res.Sources[1].Bytes > 4*tree.GroupSize+cs {
		t.Fatalf("the seeder served %+v: want some bytes of groups 3-6 only", res.Sources)
	}
	if _, err := store.ParseHash(hash); err != nil {
		t.Fatal(err)
	}
	o.Withdraw()
	if m.have(hash) != "" || m.unseeds != 1 || len(sd.Offers()) != 0 {
		t.Fatalf("after Withdraw: have %q, unseeds %d, offers %v", m.have(hash), m.unseeds, sd.Offers())
	}
}

type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

func mustImpair(t *testing.T, rate int64) *transfer.Impair {
	t.Helper()
	im := &transfer.Impair{}
	if err := im.Set(transfer.ImpairSettings{Rate: rate}); err != nil {
		t.Fatal(err)
	}
	return im
}
