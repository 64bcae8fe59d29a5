//go:build unix

package transfer

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/chunk"
)

// benchSize is what each loopback benchmark iteration moves: 256 MiB, or
// FXSH_BENCH_MIB mebibytes.
var benchSize = func() int {
	if n, err := strconv.Atoi(os.Getenv("FXSH_BENCH_MIB")); err == nil && n > 0 {
		return n << 20
	}
	return 256 << 20
}()

// report adds MB/s and CPU-seconds per GiB (both sides: they share this
// process) to a benchmark.
func report(b *testing.B, bytes int64, wall, cpu time.Duration) {
	b.ReportMetric(float64(bytes)/wall.Seconds()/1e6, "MB/s")
	b.ReportMetric(cpu.Seconds()/(float64(bytes)/(1<<30)), "cpu-s/GiB")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLoopback moves benchSize bytes from an in-memory file to a
// discarding sink over loopback, next to a raw TCP copy of the same size
// (1 MiB buffers) for the ratio. Run with -benchtime=3x.
func BenchmarkLoopback(b *testing.B) {
	content := randomBytes(benchSize, 1)
	for _, cs := range []int{chunk.MaxChunkSize, 8192, chunk.DefaultChunkSize} {
		b.Run("fxsh/chunk="+itoa(cs), func(b *testing.B) {
			_, addr := startServer(b, newLibrary(content), ServerConfig{})
			req := Request{Hash: hashOf(content), Size: int64(benchSize), ChunkSize: cs, Sources: []string{addr}}
			var wall, cpu time.Duration
			for b.Loop() {
				conn := listen(b)
				c0, t0 := cpuTime(), time.Now()
				if _, err := Fetch(context.Background(), conn, req, discardSink{}, ClientConfig{}); err != nil {
					b.Fatal(err)
				}
				wall += time.Since(t0)
				cpu += cpuTime() - c0
				conn.Close()
			}
			report(b, int64(b.N)*int64(benchSize), wall, cpu)
		})
	}
	b.Run("tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					buf := make([]byte, 1<<20)
					for off := 0; off < len(content); off += len(buf) {
						if _, err := c.Write(content[off:min(off+len(buf), len(content))]); err != nil {
							return
						}
					}
				}()
			}
		}()
		var wall, cpu time.Duration
		for b.Loop() {
			c0, t0 := cpuTime(), time.Now()
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
			c.Close()
			if err != nil || n != int64(benchSize) {
				b.Fatalf("tcp copy: %d bytes, %v", n, err)
			}
			wall += time.Since(t0)
			cpu += cpuTime() - c0
		}
		report(b, int64(b.N)*int64(benchSize), wall, cpu)
	})
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// BenchmarkCappedTransfer moves benchSize bytes from a server whose sends
// are capped at 40 MB/s (Impair's rate, as `set rate 40MB/s`): a slow
// flow, where every chunk may travel alone. It reports the client's
// ACK/REQUEST datagrams per chunk, the CPU both ends spend per GiB and the
// server's probe timeouts.
// Run with FXSH_BENCH_MIB=64 -benchtime=1x.
func BenchmarkCappedTransfer(b *testing.B) {
	content := randomBytes(benchSize, 1)
	im := &Impair{}
	if err := im.Set(ImpairSettings{Rate: 40e6}); err != nil {
		b.Fatal(err)
	}
	srv, addr := startServer(b, newLibrary(content), ServerConfig{Impair: im})
	req := Request{Hash: hashOf(content), Size: int64(benchSize), ChunkSize: chunk.MaxChunkSize, Sources: []string{addr}}
	var wall, cpu time.Duration
	var sent, chunks int64
	for b.Loop() {
		conn := listen(b)
		ctr := NewCounters(nil)
		c0, t0 := cpuTime(), time.Now()
		if _, err := Fetch(context.Background(), conn, req, discardSink{}, ClientConfig{Counters: ctr}); err != nil {
			b.Fatal(err)
		}
		wall += time.Since(t0)
		cpu += cpuTime() - c0
		conn.Close()
		sent += ctr.Load(DatagramsSent)
		chunks += ctr.Load(ChunksReceived)
	}
	report(b, int64(b.N)*int64(benchSize), wall, cpu)
	b.ReportMetric(float64(sent)/float64(max(chunks, 1)), "acks/chunk")
	st := srv.Stats()
	b.ReportMetric(float64(st.Timeouts)/float64(b.N), "timeouts/op")
}
