package transfer

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"fxsh/netproto/chunk"
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
	}{
		{"offload small chunks", 3<<20 + 77, 1200, nil, false},
		{"offload small chunks sealed", 2<<20 + 5, 1200, key, false},
		{"offload 8 KiB chunks", 4<<20 + 1, 8192, nil, false},
		{"offload max chunks", 4<<20 + 3, chunk.MaxChunkSize, nil, false},
		{"plain small chunks", 2<<20 + 77, 1200, nil, true},
		{"plain 8 KiB chunks sealed", 2<<20 + 9, 8192, key, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := randomBytes(tt.size, uint64(tt.size))
			srv, addr := startServer(t, newLibrary(content), ServerConfig{Key: tt.key, noOffload: tt.noOffload})
			sink := newMemSink(int64(tt.size), tt.chunkSize)
			conn := listen(t)
			defer conn.Close()
			res, err := Fetch(fetchCtx(t, 30*time.Second), conn, Request{Hash: hashOf(content), Size: int64(tt.size), ChunkSize: tt.chunkSize, Sources: []string{addr}}, sink, ClientConfig{Key: tt.key, noOffload: tt.noOffload})
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
			if o := srv.link.off; o != nil && tt.noOffload && o.gso.Load() {
				t.Error("GSO on although turned off")
			}
			if ss := srv.Stats(); ss.DatagramsSent < nchunks || ss.CRCDrops+ss.Malformed > 0 {
				t.Errorf("server sent %d datagrams for %d chunks, %d CRC drops, %d malformed", ss.DatagramsSent, nchunks, ss.CRCDrops, ss.Malformed)
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
