package transfer

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// TestBatchedPaths moves files with GSO/GRO (where the kernel has them) and
// without, open and sealed, with a short last chunk that must end a batch.
func TestBatchedPaths(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	tests := []struct {
		name      string
		size      int
		chunkSize int
		key       []byte
		noOffload bool
		impair    *Impair // the shell always has one: unset or zero, it must not stop batching
	}{
		{"offload small chunks", 3<<20 + 77, 1200, nil, false, nil},
		{"offload small chunks sealed", 2<<20 + 5, 1200, key, false, nil},
		{"offload 8 KiB chunks", 4<<20 + 1, 8192, nil, false, nil},
		{"offload, idle impairment", 2<<20 + 1, 1200, nil, false, &Impair{}},
		{"offload, impairment set to zero", 2<<20 + 1, 1200, nil, false, impair(t, ImpairSettings{})},
		{"offload max chunks", 4<<20 + 3, chunk.MaxChunkSize, nil, false, nil},
		{"plain small chunks", 2<<20 + 77, 1200, nil, true, nil},
		{"plain 8 KiB chunks sealed", 2<<20 + 9, 8192, key, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := randomBytes(tt.size, uint64(tt.size))
			srv, addr := startServer(t, newLibrary(content), ServerConfig{Key: tt.key, noOffload: tt.noOffload, Impair: tt.impair})
			sink := newMemSink(int64(tt.size), tt.chunkSize)
			conn := listen(t)
			defer conn.Close()
			res, err := Fetch(fetchCtx(t, 30*time.Second), conn, Request{Hash: hashOf(content), Size: int64(tt.size), ChunkSize: tt.chunkSize, Sources: []string{addr}}, sink, ClientConfig{Key: tt.key, noOffload: tt.noOffload, Impair: tt.impair})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !bytes.Equal(sink.data, content) {
				t.Fatal("content differs")
			}
			nchunks := int64((tt.size + tt.chunkSize - 1) / tt.chunkSize)
			if res.Stats.ChunksReceived < nchunks {
				t.Errorf("%d chunks received, want at least %d", res.Stats.ChunksReceived, nchunks)
			}
			if o := srv.link.off; o != nil && o.gso.Load() {
				if tt.noOffload {
					t.Error("GSO on although turned off")
				} else if srv.link.gsoN.Load() == 0 && tt.chunkSize < 32<<10 {
					t.Error("GSO available but not used")
				}
			}
			if st := res.Stats; st.CRCDrops+st.Malformed+st.Hostile > 0 {
				t.Errorf("client dropped datagrams: %d CRC, %d malformed, %d hostile", st.CRCDrops, st.Malformed, st.Hostile)
			}
		})
	}
}

// TestNoAllocationPerDatagram checks that a transfer's steady state (both
// ends in this process) allocates far less than once per datagram.
func TestNoAllocationPerDatagram(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation")
	}
	for _, noOffload := range []bool{false, true} {
		name := "offload"
		if noOffload {
			name = "plain"
		}
		t.Run(name, func(t *testing.T) {
			const size, cs = 16 << 20, 1200
			content := randomBytes(size, 3)
			_, addr := startServer(t, newLibrary(content), ServerConfig{noOffload: noOffload})
			conn := listen(t)
			defer conn.Close()
			req := Request{Hash: hashOf(content), Size: size, ChunkSize: cs, Sources: []string{addr}}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res, err := Fetch(fetchCtx(t, 60*time.Second), conn, req, discardSink{}, ClientConfig{noOffload: noOffload})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			allocs := after.Mallocs - before.Mallocs
			dgrams := res.Stats.DatagramsReceived + res.Stats.DatagramsSent
			t.Logf("%d allocations for %d datagrams both ways", allocs, dgrams)
			// The fixed cost (sockets, buffers, goroutines, timers) is a few
			// hundred allocations; one per datagram would be ~15 000.
			if allocs > uint64(dgrams)/10 {
				t.Errorf("%d allocations for %d datagrams", allocs, dgrams)
			}
		})
	}
}

// runSink is a memSink that also takes runs of chunks, and counts them.
type runSink struct {
	*memSink
	runs, runChunks int
}

func (s *runSink) WriteChunks(first int, data []byte) error {
	s.mu.Lock()
	s.runs++
	s.mu.Unlock()
	for i := first; len(data) > 0; i++ {
		n := min(len(data), s.chunkSize)
		if err := s.WriteChunk(i, data[:n]); err != nil {
			return err
		}
		s.mu.Lock()
		s.runChunks++
		s.mu.Unlock()
		data = data[n:]
	}
	return nil
}

// TestRunSink checks that small chunks reach a RunSink in runs, whole and
// in place, and that an impaired fetch (no batches) still stores them all.
func TestRunSink(t *testing.T) {
	tests := []struct {
		name      string
		chunkSize int
		impair    ImpairSettings
		wantRuns  bool
	}{
		{"small chunks", 1200, ImpairSettings{}, true},
		{"small chunks, loss", 1200, ImpairSettings{Loss: 0.05}, false},
		{"big chunks", chunk.MaxChunkSize, ImpairSettings{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := 3<<20 + 11
			content := randomBytes(size, 21)
			_, addr := startServer(t, newLibrary(content), ServerConfig{})
			sink := &runSink{memSink: newMemSink(int64(size), tt.chunkSize)}
			conn := listen(t)
			defer conn.Close()
			_, err := Fetch(fetchCtx(t, 30*time.Second), conn, Request{Hash: hashOf(content), Size: int64(size), ChunkSize: tt.chunkSize, Sources: []string{addr}}, sink, ClientConfig{Impair: impair(t, tt.impair)})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !bytes.Equal(sink.data, content) {
				t.Fatal("content differs")
			}
			if sink.rewrites > 0 {
				t.Errorf("%d chunks written twice", sink.rewrites)
			}
			t.Logf("%d writes, %d runs holding %d chunks", sink.writes, sink.runs, sink.runChunks)
			if got := sink.runs > 0 && sink.runChunks > 2*sink.runs; got != tt.wantRuns {
				t.Errorf("runs used: %v, want %v (%d runs of %d chunks)", got, tt.wantRuns, sink.runs, sink.runChunks)
			}
		})
	}
}
