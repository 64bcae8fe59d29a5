//go:build unix

package download

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
	"github.com/fxshell/fxsh/store"
)

// diskFile is a transfer.File over an *os.File.
type diskFile struct {
	*os.File
	size int64
}

func (f diskFile) Size() int64 { return f.size }

// writeRandomFile writes n random bytes to path and returns their hash.
func writeRandomFile(tb testing.TB, path string, n int64) string {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := store.NewHash()
	r := rand.New(rand.NewPCG(uint64(n), 7))
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := r.Uint64()
			for j := range 8 {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		m := int(min(left, int64(len(buf))))
		if _, err := f.Write(buf[:m]); err != nil {
			tb.Fatal(err)
		}
		h.Write(buf[:m])
		left -= int64(m)
	}
	return store.FormatHash(h.Sum(nil))
}

// BenchmarkGet downloads a file from disk to disk over loopback, both roles
// in this process, verification included, and splits the time into the
// transfer and what Finish adds after it (hashing what the background hasher
// had not reached, sync, rename). FXSH_BENCH_MIB sets the size (256 MiB).
// Run with -benchtime=3x.
func BenchmarkGet(b *testing.B) {
	size := int64(256 << 20)
	if n, err := strconv.Atoi(os.Getenv("FXSH_BENCH_MIB")); err == nil && n > 0 {
		size = int64(n) << 20
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "src.bin")
	hash := writeRandomFile(b, src, size)
	for _, cs := range []int{0, 8192, 1200} {
		name := "chunk=auto"
		if cs != 0 {
			name = "chunk=" + strconv.Itoa(cs)
		}
		b.Run(name, func(b *testing.B) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := transfer.NewServer(pc, transfer.ServerConfig{Open: func(h string) (transfer.File, error) {
				if h != hash {
					return nil, transfer.ErrNotFound
				}
				f, err := os.Open(src)
				if err != nil {
					return nil, err
				}
				return diskFile{f, size}, nil
			}})
			done := make(chan error, 1)
			go func() { done <- srv.Serve(context.Background()) }()
			defer func() {
				srv.Close()
				<-done
			}()
			entry := store.Entry{File: store.File{Name: "dst.bin", Size: size, Hash: hash}, Servers: []string{srv.Addr().String()}}
			var wall, fetch, cpu time.Duration
			var st transfer.Stats
			for b.Loop() {
				out := b.TempDir()
				c0, t0 := cpuTime(), time.Now()
				res, err := Get(context.Background(), Request{Entry: entry, Dir: out, ChunkSize: cs})
				if err != nil {
					b.Fatal(err)
				}
				wall += time.Since(t0)
				cpu += cpuTime() - c0
				fetch += res.Fetch.Elapsed
				st = res.Fetch.Stats
				if err := os.Remove(filepath.Join(out, "dst.bin")); err != nil {
					b.Fatal(err)
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(size)*n/wall.Seconds()/1e6, "MB/s")
			b.ReportMetric(fetch.Seconds()/n, "fetch-s")
			b.ReportMetric((wall-fetch).Seconds()/n, "finish-s")
			b.ReportMetric(cpu.Seconds()/(float64(size)*n/(1<<30)), "cpu-s/GiB")
			b.ReportMetric(float64(st.Retransmits), "retx")
			b.ReportMetric(0, "ns/op")
		})
	}
}
