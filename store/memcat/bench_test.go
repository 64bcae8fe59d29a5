package memcat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
)

// The benchmark network of issue 3: 10 000 file servers with 100 files
// each, one million distinct entries. Names look like a classroom's shares:
// "maths/lecture notes-week 7 kavomi.pdf".
const (
	benchServers = 10000
	benchFiles   = 100
)

// benchServerFiles is file server i of the benchmark network.
func benchServerFiles(i int) (store.Server, []store.File) {
	return catalogtest.ClassroomServer(i, benchFiles)
}

var benchCat = sync.OnceValues(func() (*Catalog, time.Duration) {
	c := New(time.Hour)
	start := time.Now()
	for i := range benchServers {
		srv, files := benchServerFiles(i)
		if err := c.Register(context.Background(), srv, files); err != nil {
			panic(err)
		}
	}
	return c, time.Since(start)
})

func reportMem(b *testing.B) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for l := range strings.Lines(string(data)) {
			var kb int
			if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kb); err == nil {
				b.ReportMetric(float64(kb)/1024, "peakRSS-MiB")
			}
		}
	}
}

// BenchmarkRegister registers all 10 000 servers into a fresh catalog per
// iteration.
func BenchmarkRegister(b *testing.B) {
	inputs := make([][]store.File, benchServers)
	srvs := make([]store.Server, benchServers)
	for i := range inputs {
		srvs[i], inputs[i] = benchServerFiles(i)
	}
	b.ResetTimer()
	for b.Loop() {
		c := New(time.Hour)
		for i := range inputs {
			if err := c.Register(context.Background(), srvs[i], inputs[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/10k-servers")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*benchServers), "µs/server")
	reportMem(b)
}

// benchQueries is a mix: one word, two words, a word with an extension,
// short words, a common word alone, and misses.
func benchQueries() []string {
	rng := rand.New(rand.NewPCG(3, 3))
	var qs []string
	for range 200 {
		qs = append(qs, catalogtest.ClassroomQuery(rng, rng.IntN(catalogtest.ClassroomKinds)))
	}
	return qs
}

func percentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	p := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkSearch runs the query mix with the default max (100) over the
// one-million-entry catalog and reports latency percentiles.
func BenchmarkSearch(b *testing.B) {
	c, took := benchCat()
	qs := benchQueries()
	var lat []time.Duration
	hits := 0
	ctx := context.Background()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		start := time.Now()
		es, err := c.Search(ctx, qs[i%len(qs)], 100)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		hits += len(es)
		i++
	}
	percentiles(b, lat)
	b.ReportMetric(took.Seconds(), "build-s")
	b.ReportMetric(float64(hits)/float64(b.N), "hits/op")
	reportMem(b)
}

// BenchmarkFilesGlob lists one glob over the one-million-entry catalog.
func BenchmarkFilesGlob(b *testing.B) {
	c, _ := benchCat()
	ctx := context.Background()
	var lat []time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		es, err := c.Files(ctx, "Holiday Photos/"+catalogtest.ClassroomVocab()[1]+" *.jpg")
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		n = len(es)
	}
	percentiles(b, lat)
	b.ReportMetric(float64(n), "entries")
}
