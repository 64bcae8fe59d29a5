package transfer

import (
	"bytes"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

func TestFetchSizes(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		chunkSize int
	}{
		{"empty", 0, 1200},
		{"one byte", 1, 1200},
		{"one chunk", 1200, 1200},
		{"odd", 1234567, 1200},
		{"odd big chunks", 3*chunk.MaxChunkSize + 17, chunk.MaxChunkSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := randomBytes(tt.size, uint64(tt.size))
			_, addr := startServer(t, newLibrary(content), ServerConfig{})
			sink := newMemSink(int64(tt.size), tt.chunkSize)
			conn := listen(t)
			defer conn.Close()
			res, err := Fetch(fetchCtx(t, 30*time.Second), conn, Request{Hash: hashOf(content), Size: int64(tt.size), ChunkSize: tt.chunkSize, Sources: []string{addr}}, sink, ClientConfig{})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !bytes.Equal(sink.data, content) {
				t.Fatalf("content differs")
			}
			if res.Bytes != int64(tt.size) {
				t.Errorf("Bytes = %d, want %d", res.Bytes, tt.size)
			}
			t.Logf("%+v", res.Stats)
		})
	}
}

func TestFetchImpaired(t *testing.T) {
	size := 2<<20 + 12345
	if testing.Short() {
		size = 1<<20 + 3
	}
	content := randomBytes(size, 7)
	tests := []struct {
		name      string
		server    ImpairSettings
		client    ImpairSettings
		chunkSize int
	}{
		{"clean", ImpairSettings{}, ImpairSettings{}, 1200},
		{"loss 5%", ImpairSettings{Loss: 0.05}, ImpairSettings{}, 1200},
		{"loss 20% both ends", ImpairSettings{Loss: 0.2}, ImpairSettings{Loss: 0.2}, 1200},
		{"loss 30%", ImpairSettings{Loss: 0.3}, ImpairSettings{Loss: 0.3}, 8192},
		{"dup", ImpairSettings{Dup: 0.2}, ImpairSettings{Dup: 0.2}, 1200},
		{"reorder", ImpairSettings{Reorder: 0.2}, ImpairSettings{Reorder: 0.1}, 1200},
		{"corrupt", ImpairSettings{Corrupt: 0.1}, ImpairSettings{Corrupt: 0.05}, 1200},
		{"delay", ImpairSettings{Delay: 5 * time.Millisecond}, ImpairSettings{Delay: 5 * time.Millisecond}, 8192},
		{"everything", ImpairSettings{Loss: 0.1, Dup: 0.05, Reorder: 0.05, Corrupt: 0.02, Delay: time.Millisecond}, ImpairSettings{Loss: 0.05, Corrupt: 0.02}, 4096},
		{"rate cap", ImpairSettings{Rate: 20 << 20}, ImpairSettings{}, chunk.MaxChunkSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr := startServer(t, newLibrary(content), ServerConfig{Impair: impair(t, tt.server)})
			sink := newMemSink(int64(size), tt.chunkSize)
			conn := listen(t)
			defer conn.Close()
			start := time.Now()
			res, err := Fetch(fetchCtx(t, 60*time.Second), conn, Request{Hash: hashOf(content), Size: int64(size), ChunkSize: tt.chunkSize, Sources: []string{addr}}, sink, ClientConfig{Impair: impair(t, tt.client)})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !bytes.Equal(sink.data, content) {
				t.Fatalf("content differs")
			}
			ss := srv.Stats()
			t.Logf("%v: %.1f MB/s; client %+v; server sent %d chunks, %d retransmits, %d losses, %d PTOs",
				time.Since(start), float64(size)/time.Since(start).Seconds()/1e6, res.Stats, ss.ChunksSent, ss.Retransmits, ss.Losses, ss.Timeouts)
			if tt.server.Corrupt > 0 && res.Stats.CRCDrops == 0 {
				t.Errorf("corruption but no CRC drops counted")
			}
			if tt.server.Dup > 0 && res.Stats.Duplicates == 0 {
				t.Errorf("duplication but no duplicates counted")
			}
			if tt.server.Loss > 0 && ss.Retransmits == 0 {
				t.Errorf("loss but no retransmits")
			}
		})
	}
}
