package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/store"
)

// memFile is an in-memory File.
type memFile struct {
	*bytes.Reader
	closed chan struct{}
	once   sync.Once
}

func (m *memFile) Close() error {
	m.once.Do(func() { close(m.closed) })
	return nil
}

// library is a set of in-memory files by hash; it counts opens.
type library struct {
	mu    sync.Mutex
	files map[string][]byte
	opens int
}

func newLibrary(contents ...[]byte) *library {
	l := &library{files: map[string][]byte{}}
	for _, c := range contents {
		l.files[hashOf(c)] = c
	}
	return l
}

func (l *library) open(hash string) (File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.files[hash]
	if !ok {
		return nil, fmt.Errorf("%s: %w", hash, ErrNotFound)
	}
	l.opens++
	return &memFile{Reader: bytes.NewReader(c), closed: make(chan struct{})}, nil
}

func hashOf(b []byte) string {
	return store.HashBytes(b).String()
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// memSink is an in-memory Sink that checks every write.
type memSink struct {
	mu        sync.Mutex
	chunkSize int
	data      []byte
	have      []bool
	writes    int
	rewrites  int
	requested map[int]bool // chunks written (a resumed chunk must never appear)
	failAfter int          // fail WriteChunk after this many writes (0: never)
}

func newMemSink(size int64, chunkSize int) *memSink {
	n := int((size + int64(chunkSize) - 1) / int64(chunkSize))
	return &memSink{chunkSize: chunkSize, data: make([]byte, size), have: make([]bool, n), requested: map[int]bool{}}
}

func (s *memSink) Have(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return i >= 0 && i < len(s.have) && s.have[i]
}

func (s *memSink) WriteChunk(i int, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAfter > 0 && s.writes >= s.failAfter {
		return fmt.Errorf("disk full (test)")
	}
	if s.have[i] {
		s.rewrites++
	}
	copy(s.data[i*s.chunkSize:], data)
	s.have[i] = true
	s.requested[i] = true
	s.writes++
	return nil
}

// preload marks chunks as already stored with the right content.
func (s *memSink) preload(content []byte, which func(i int) bool) {
	for i := range s.have {
		if which(i) {
			copy(s.data[i*s.chunkSize:], content[i*s.chunkSize:min(len(content), (i+1)*s.chunkSize)])
			s.have[i] = true
		}
	}
}

// discardSink keeps nothing.
type discardSink struct{}

func (discardSink) Have(int) bool                { return false }
func (discardSink) WriteChunk(int, []byte) error { return nil }

func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startServer serves lib on a fresh loopback socket until the test ends.
func startServer(t testing.TB, lib *library, cfg ServerConfig) (*Server, string) {
	t.Helper()
	conn := listen(t)
	if cfg.Open == nil {
		cfg.Open = lib.open
	}
	s := NewServer(conn, cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil && !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, conn.LocalAddr().String()
}

func fetchCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func impair(t testing.TB, s ImpairSettings) *Impair {
	t.Helper()
	im := &Impair{}
	if err := im.Set(s); err != nil {
		t.Fatal(err)
	}
	return im
}

var _ = chunk.MaxChunkSize
