package etcdcat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
)

// Benchmark sizes: issue 6's 1 000 servers × 100 files.
const (
	benchServers  = 1000
	benchFiles    = 100
	benchWorkers  = 16 // file servers registering at once
	benchSearches = 10000
)

var benchWords = []string{"photo", "report", "lecture", "notes", "song", "video", "thesis", "slides", "data", "scan"}
var benchExts = []string{"jpg", "pdf", "txt", "mp3", "mkv", "csv"}

// benchList is server s's file list: names built from common words, some
// files shared by several servers (same name and content).
func benchList(s int) []store.File {
	files := make([]store.File, benchFiles)
	for j := range files {
		w := benchWords[(s+j)%len(benchWords)]
		name := fmt.Sprintf("course%02d/%s-%04d-%02d.%s", j%20, w, s, j, benchExts[j%len(benchExts)])
		if j < 5 { // shared across servers
			name = fmt.Sprintf("common/%s-%02d.pdf", w, j)
		}
		files[j] = store.File{Name: name, Size: int64(1000 + j), Type: "bin", MTime: time.Unix(1700000000, 0).UTC(), Hash: hashOf(name)}
	}
	return files
}

func benchQueries(rng *rand.Rand) []string {
	qs := make([]string, benchSearches)
	for i := range qs {
		s, j := rng.IntN(benchServers), 5+rng.IntN(benchFiles-5)
		switch i % 5 {
		case 0: // one common word
			qs[i] = benchWords[rng.IntN(len(benchWords))]
		case 1: // a file's exact parts
			qs[i] = fmt.Sprintf("%04d-%02d", s, j)
		case 2: // two words
			qs[i] = fmt.Sprintf("course%02d %s", rng.IntN(20), benchExts[rng.IntN(len(benchExts))])
		case 3: // a miss
			qs[i] = fmt.Sprintf("nothing%d", i)
		case 4: // short word
			qs[i] = "mp"
		}
	}
	return qs
}

// BenchmarkEtcdCatalog registers 1 000 servers × 100 files through etcd,
// measures search latency on another master's watch-fed view, and times how
// long a dead master's registration takes to vanish (lease TTL 2 s, etcd's
// floor). Run with FXSH_ETCD_ENDPOINTS set:
//
//	go test -run '^$' -bench EtcdCatalog -benchtime 1x ./store/etcdcat/
func BenchmarkEtcdCatalog(b *testing.B) {
	eps := etcdEndpoints(b)
	for range b.N {
		prefix := testPrefix(b, eps)
		cfg := testConfig(eps, prefix, time.Minute)
		cfg.OpTimeout = 30 * time.Second
		a := newTestCatalog(b, cfg)
		reader := newTestCatalog(b, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()

		// Registration.
		start := time.Now()
		work := make(chan int)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var regLat []time.Duration
		for range benchWorkers {
			wg.Go(func() {
				for s := range work {
					t0 := time.Now()
					if err := a.Register(ctx, store.Server{Addr: fmt.Sprintf("10.1.%d.%d:7000", s/256, s%256)}, benchList(s)); err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					regLat = append(regLat, time.Since(t0))
					mu.Unlock()
				}
			})
		}
		for s := range benchServers {
			work <- s
		}
		close(work)
		wg.Wait()
		regTime := time.Since(start)
		if err := reader.sync(ctx); err != nil {
			b.Fatal(err)
		}
		seen := time.Since(start)
		srvs, _ := reader.Servers(ctx)
		all, _ := reader.Files(ctx, "")
		if len(srvs) != benchServers {
			b.Fatalf("reader sees %d servers", len(srvs))
		}

		// Search on the reader, one query at a time.
		rng := rand.New(rand.NewPCG(1, 2))
		lat := make([]time.Duration, 0, benchSearches)
		hits := 0
		for _, q := range benchQueries(rng) {
			t0 := time.Now()
			res, err := reader.Search(ctx, q, 100)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			hits += len(res)
		}
		slices.Sort(lat)
		slices.Sort(regLat)
		pct := func(ds []time.Duration, p float64) time.Duration { return ds[int(float64(len(ds)-1)*p)] }

		// A dead master's registration vanishes from the reader within the TTL.
		dcfg := testConfig(eps, prefix, 2*time.Second)
		dead := newTestCatalog(b, dcfg)
		if err := dead.Register(ctx, store.Server{Addr: "dead:1"}, benchList(benchServers)); err != nil {
			b.Fatal(err)
		}
		deadQuery := fmt.Sprintf("-%04d-", benchServers)
		if err := reader.sync(ctx); err != nil {
			b.Fatal(err)
		}
		if res, _ := reader.Search(ctx, deadQuery, 1000); len(res) != benchFiles-5 {
			b.Fatalf("dead server's own files: %d results, want %d", len(res), benchFiles-5)
		}
		dead.Close()
		closed := time.Now()
		waitView(b, reader, time.Minute, "dead registration never vanished", func() bool {
			res, _ := reader.Search(ctx, deadQuery, 1000)
			return len(res) == 0
		})
		vanish := time.Since(closed)

		b.ReportMetric(regTime.Seconds(), "register-s")
		b.ReportMetric(float64(benchServers)/regTime.Seconds(), "registrations/s")
		b.ReportMetric(float64(pct(regLat, 0.99).Microseconds())/1000, "register-p99-ms")
		b.ReportMetric(seen.Seconds(), "seen-by-reader-s")
		b.ReportMetric(float64(pct(lat, 0.5).Nanoseconds())/1000, "search-p50-µs")
		b.ReportMetric(float64(pct(lat, 0.99).Nanoseconds())/1000, "search-p99-µs")
		b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1000, "search-max-µs")
		b.ReportMetric(vanish.Seconds(), "vanish-s(ttl=2s)")
		b.Logf("%d entries on %d servers; %d searches returned %d results", len(all), len(srvs), len(lat), hits)
	}
}

// BenchmarkIndexSearch is the search alone, on the same 100 000 files, for
// comparison with the in-memory catalog.
func BenchmarkIndexSearch(b *testing.B) {
	x := newIndex()
	for s := range benchServers {
		x.set(fmt.Sprintf("10.1.%d.%d:7000", s/256, s%256), benchList(s))
	}
	qs := benchQueries(rand.New(rand.NewPCG(1, 2)))
	words := make([][]string, len(qs))
	for i, q := range qs {
		words[i] = splitLower(q)
	}
	b.ResetTimer()
	for i := range b.N {
		x.search(words[i%len(words)], 100)
	}
}
