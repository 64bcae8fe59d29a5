package master

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
	"github.com/fxshell/fxsh/store/memcat"
)

// BenchmarkSoak is the load test of issue 7 (not run by CI): many client
// connections to one master, each running SEARCH in a loop for a fixed
// time, over a catalog of 10 000 file servers x 100 files (one million
// entries). It reports latency percentiles, errors (any ERR, broken or
// malformed reply: must be 0), searches a second, peak RSS and goroutines.
//
//	go test -run '^$' -bench Soak -benchtime 1x ./netproto/master/
//
// Knobs (environment): FXSH_SOAK_DURATION (60s), FXSH_SOAK_CONNS (1000),
// FXSH_SOAK_SERVERS (10000; 100 files each).
//
// The master caps connections at line.MaxConns (1000). The benchmark
// raises the cap through Config to the client count plus soakHeadroom, so
// that 1000 clients are measured, not refused at the edge; the refusal at
// the cap is TestOverCap's business. Clients and master share the process
// (and the machine's cores), so the figures are for both.
func BenchmarkSoak(b *testing.B) {
	dur := envDuration(b, "FXSH_SOAK_DURATION", 60*time.Second)
	conns := envInt(b, "FXSH_SOAK_CONNS", 1000)
	servers := envInt(b, "FXSH_SOAK_SERVERS", 10000)
	const filesPer = 100

	cat := memcat.New(time.Hour)
	defer cat.Close()
	buildStart := time.Now()
	for i := range servers {
		srv, files := soakServer(i, filesPer)
		if err := cat.Register(context.Background(), srv, files); err != nil {
			b.Fatal(err)
		}
	}
	build := time.Since(buildStart)
	hwmBuild := procStatus("VmHWM") // building leaves garbage: the peak may be here
	runtime.GC()
	rssCatalog := procStatus("VmRSS")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := New(Config{Catalog: cat, MaxConns: conns + soakHeadroom, MaxConnsPerIP: -1})
	go s.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()
	goroutinesBefore := runtime.NumGoroutine()

	// Connect and say HELLO on every connection before the clock starts.
	type client struct {
		nc net.Conn
		r  *bufio.Reader
	}
	cs := make([]client, conns)
	for i := range cs {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		defer nc.Close()
		r := bufio.NewReaderSize(nc, line.MaxLine)
		io.WriteString(nc, "HELLO fxsh/1 role=client\n")
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "HI ") {
			b.Fatalf("connection %d: %q, %v", i, l, err)
		}
		cs[i] = client{nc, r}
	}

	queries := soakQueries()
	var errs, results atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, conns)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, c := range cs {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			lat := make([]time.Duration, 0, 1024)
			defer func() { lats[i] = lat }()
			fail := func(err error) {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
			var req []byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				q := queries[rng.IntN(len(queries))]
				req, _ = line.AppendMsg(req[:0], line.NewMsg(line.VerbSearch).With("q", q))
				t0 := time.Now()
				c.nc.SetDeadline(t0.Add(30 * time.Second))
				if _, err := c.nc.Write(req); err != nil {
					fail(err)
					return
				}
				n, err := readReply(c.r)
				if err != nil {
					fail(fmt.Errorf("SEARCH q=%q: %w", q, err))
					return
				}
				lat = append(lat, time.Since(t0))
				results.Add(int64(n))
			}
		})
	}

	// Sample goroutines and RSS while it runs.
	peakG := 0
	tick := time.NewTicker(time.Second)
	deadline := time.After(dur)
sample:
	for {
		select {
		case <-tick.C:
			peakG = max(peakG, runtime.NumGoroutine())
		case <-deadline:
			break sample
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(q*float64(len(all))))].Microseconds()) / 1000
	}

	// Every client hangs up: the master's goroutines must go.
	for _, c := range cs {
		c.nc.Close()
	}
	goroutinesAfter := 0
	for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
		if goroutinesAfter = runtime.NumGoroutine(); goroutinesAfter <= goroutinesBefore {
			break
		}
	}

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(conns), "conns")
	b.ReportMetric(float64(servers*filesPer), "entries")
	b.ReportMetric(build.Seconds(), "build-s")
	b.ReportMetric(elapsed.Seconds(), "run-s")
	b.ReportMetric(float64(len(all)), "searches")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "searches/s")
	b.ReportMetric(float64(results.Load())/float64(max(1, len(all))), "records/search")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(0.999), "p99.9-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(errs.Load()), "errors")
	b.ReportMetric(rssCatalog/1024, "catalogRSS-MiB")
	b.ReportMetric(hwmBuild/1024, "buildPeakRSS-MiB")
	b.ReportMetric(procStatus("VmRSS")/1024, "endRSS-MiB")
	b.ReportMetric(procStatus("VmHWM")/1024, "peakRSS-MiB")
	b.ReportMetric(float64(peakG), "goroutines-peak")
	b.ReportMetric(float64(goroutinesAfter-goroutinesBefore), "goroutines-left")
	if n := errs.Load(); n > 0 {
		b.Errorf("%d errors; first: %v", n, firstErr.Load())
	}
	if goroutinesAfter > goroutinesBefore {
		b.Errorf("%d goroutines after the clients left, %d before", goroutinesAfter, goroutinesBefore)
	}
}

// soakHeadroom is how far above the client count the benchmark sets the
// connection cap.
const soakHeadroom = 24

// readReply reads one SEARCH reply: NOT FOUND, or FOUND n=K, K F records
// and END. It returns K; an ERR or anything else is an error.
func readReply(r *bufio.Reader) (int, error) {
	head, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if bytes.Equal(head, []byte("NOT FOUND\n")) {
		return 0, nil
	}
	rest, ok := bytes.CutPrefix(head, []byte("FOUND n="))
	if !ok {
		return 0, fmt.Errorf("reply %q", head)
	}
	num, _, _ := bytes.Cut(bytes.TrimSuffix(rest, []byte("\n")), []byte(" "))
	n, err := strconv.Atoi(string(num))
	if err != nil || n < 1 || n > line.MaxResults {
		return 0, fmt.Errorf("reply %q", head)
	}
	for i := 0; i <= n; i++ {
		l, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if i < n && !bytes.HasPrefix(l, []byte("F name=")) || i == n && !bytes.Equal(l, []byte("END\n")) {
			return 0, fmt.Errorf("line %d of a reply of %d: %q", i, n, l)
		}
	}
	return n, nil
}

// soakServer is file server i of the classroom network, with n files.
func soakServer(i, n int) (store.Server, []store.File) { return catalogtest.ClassroomServer(i, n) }

// soakQueries is what users type: one word, two words, a word and an
// extension, a short prefix, a folder and a word, a bare extension (many
// hits: the reply is capped at 100 records), and misses.
func soakQueries() []string {
	rng := rand.New(rand.NewPCG(3, 3))
	var qs []string
	for i := range 700 {
		qs = append(qs, catalogtest.ClassroomQuery(rng, i%catalogtest.ClassroomKinds))
	}
	return qs
}

func envDuration(b *testing.B, key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a duration such as 10s", key, v)
	}
	return d
}

func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", key, v)
	}
	return n
}

// procStatus returns a "kB" field of /proc/self/status (0 where there is
// none).
func procStatus(field string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb
		}
	}
	return 0
}
