package master

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/memcat"
)

func TestCatalogBudget(t *testing.T) {
	type op struct {
		kind       string // "reserve" (then commit), "hold" (reserve only), "cancel", "release"
		addr, prev string
		l          load
		wantErr    string // reserve: a prefix of the refusal, or ""
	}
	tests := []struct {
		name     string
		ops      []op
		used     load
		pending  load
		byAddrAt map[string]load
	}{
		{"fits", []op{{kind: "reserve", addr: "a", l: load{5, 50}}}, load{5, 50}, load{}, map[string]load{"a": {5, 50}}},
		{"files over", []op{
			{kind: "reserve", addr: "a", l: load{8, 10}},
			{kind: "reserve", addr: "b", l: load{3, 10}, wantErr: "catalog full: 8 of 10 files"},
		}, load{8, 10}, load{}, nil},
		{"names over", []op{
			{kind: "reserve", addr: "a", l: load{1, 90}},
			{kind: "reserve", addr: "b", l: load{1, 11}, wantErr: "catalog full: 90 of 100 bytes of names"},
		}, load{1, 90}, load{}, nil},
		{"full: same size again", []op{
			{kind: "reserve", addr: "a", l: load{10, 100}},
			{kind: "reserve", addr: "a", l: load{10, 100}},
		}, load{10, 100}, load{}, nil},
		{"full: fewer files, longer names over", []op{
			{kind: "reserve", addr: "a", l: load{10, 100}},
			{kind: "reserve", addr: "a", l: load{9, 101}, wantErr: "catalog full: 100 of 100 bytes"},
		}, load{10, 100}, load{}, nil},
		{"move releases prev", []op{
			{kind: "reserve", addr: "a", l: load{10, 100}},
			{kind: "reserve", addr: "b", prev: "a", l: load{10, 100}},
		}, load{10, 100}, load{}, map[string]load{"b": {10, 100}}},
		{"a refused move keeps prev", []op{
			{kind: "reserve", addr: "a", l: load{6, 10}},
			{kind: "reserve", addr: "c", l: load{3, 10}},
			{kind: "reserve", addr: "b", prev: "a", l: load{8, 10}, wantErr: "catalog full: 3 of 10 files"},
		}, load{9, 20}, load{}, map[string]load{"a": {6, 10}, "c": {3, 10}}},
		{"in flight counts", []op{
			{kind: "hold", addr: "a", l: load{6, 10}},
			{kind: "reserve", addr: "b", l: load{5, 10}, wantErr: "catalog full: 6 of 10 files"},
		}, load{}, load{6, 10}, nil},
		{"cancel", []op{
			{kind: "hold", addr: "a", l: load{6, 10}},
			{kind: "cancel", l: load{6, 10}},
			{kind: "reserve", addr: "b", l: load{10, 10}},
		}, load{10, 10}, load{}, map[string]load{"b": {10, 10}}},
		{"release", []op{
			{kind: "reserve", addr: "a", l: load{10, 100}},
			{kind: "release", addr: "a"},
			{kind: "reserve", addr: "b", l: load{10, 100}},
		}, load{10, 100}, load{}, map[string]load{"b": {10, 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newCatalogBudget(load{10, 100})
			for i, o := range tt.ops {
				switch o.kind {
				case "reserve", "hold":
					g, err := b.reserve(o.addr, o.prev, o.l)
					switch {
					case o.wantErr == "" && err != nil:
						t.Fatalf("op %d: %v", i, err)
					case o.wantErr != "" && (err == nil || err.Code != line.CodeFull || !strings.HasPrefix(err.Msg, o.wantErr)):
						t.Fatalf("op %d: %v, want ERR 507 %s...", i, err, o.wantErr)
					case err == nil && o.kind == "reserve":
						b.commit(o.addr, o.l, g)
					}
				case "cancel":
					b.cancel(o.l)
				case "release":
					b.release(o.addr)
				}
			}
			if b.used != tt.used || b.pending != tt.pending {
				t.Errorf("%v; want used %v, pending %v", &b, tt.used, tt.pending)
			}
			for addr, l := range tt.byAddrAt {
				if b.byAddr[addr] != l {
					t.Errorf("%s holds %v, want %v", addr, b.byAddr[addr], l)
				}
			}
			if tt.byAddrAt != nil && len(b.byAddr) != len(tt.byAddrAt) {
				t.Errorf("%d registrations, want %d", len(b.byAddr), len(tt.byAddrAt))
			}
		})
	}
}

// BenchmarkCatalogFootprint measures what the catalog (memcat) holds per
// entry, which sets MaxCatalogFiles and MaxCatalogNameBytes (not run by
// CI):
//
//	go test -run '^$' -bench CatalogFootprint -benchtime 1x ./netproto/master/
//
// For each kind of name it registers the entries 10 000 to a server and
// reports live heap (HeapInuse after GC) and RSS growth per entry and per
// byte of name, and how fast the catalog took them (under its write lock,
// while searches wait). It also checks that the issue-3 benchmark network
// (10 000 servers x 100 files) fits the limits.
func BenchmarkCatalogFootprint(b *testing.B) {
	var all load
	for i := range 10000 {
		_, files := soakServer(i, 100)
		all = all.add(loadOf(files))
	}
	b.Logf("benchmark network: %d files, %d MiB of names: %.1fx under MaxCatalogFiles, %.1fx under MaxCatalogNameBytes",
		all.files, all.names>>20, float64(MaxCatalogFiles)/float64(all.files), float64(MaxCatalogNameBytes)/float64(all.names))
	if all.files > MaxCatalogFiles || all.names > MaxCatalogNameBytes {
		b.Errorf("the benchmark network does not fit the limits")
	}

	const ascii = "abcdefghijklmnopqrstuvwxyz0123456789 ._-"
	var server []store.File
	kinds := []struct {
		name    string
		entries int
		gen     func(rng *rand.Rand, i int) string
	}{
		{"classroom", 200_000, func(rng *rand.Rand, i int) string {
			if i%100 == 0 {
				_, server = soakServer(i/100, 100)
			}
			return server[i%100].Name
		}},
		{"ascii-256", 50_000, func(rng *rand.Rand, i int) string { return randomName(rng, i, 256, ascii, false) }},
		{"ascii-1024", 20_000, func(rng *rand.Rand, i int) string { return randomName(rng, i, 1024, ascii, false) }},
		{"utf8-1024", 20_000, func(rng *rand.Rand, i int) string { return randomName(rng, i, 1024, "", true) }},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			for range b.N {
				measureFootprint(b, k.entries, k.gen)
			}
		})
	}
}

// randomName returns a name of about n bytes: random characters of
// alphabet, or random 2- and 3-byte UTF-8 characters, then "-i".
func randomName(rng *rand.Rand, i, n int, alphabet string, utf8 bool) string {
	var sb strings.Builder
	for sb.Len() < n-8 {
		switch {
		case !utf8:
			sb.WriteByte(alphabet[rng.IntN(len(alphabet))])
		case rng.IntN(2) == 0:
			sb.WriteRune(rune(0xa0 + rng.IntN(0x7ff-0xa0)))
		default:
			sb.WriteRune(rune(0x4e00 + rng.IntN(0x9fff-0x4e00)))
		}
	}
	fmt.Fprintf(&sb, "-%d", i)
	return sb.String()
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func measureFootprint(b *testing.B, n int, gen func(*rand.Rand, int) string) {
	b.StopTimer()
	rng := rand.New(rand.NewPCG(1, 1))
	const per = 10000
	var batches [][]store.File
	var names int64
	for i := range n {
		if i%per == 0 {
			batches = append(batches, make([]store.File, 0, per))
		}
		name := gen(rng, i)
		names += int64(len(name))
		last := &batches[len(batches)-1]
		*last = append(*last, store.File{Name: name, Size: 1, Type: "bin",
			MTime: time.Unix(1700000000, 0), Hash: fmt.Sprintf("blake3:%064x", i)})
	}
	cat := memcat.New(time.Hour)
	defer cat.Close()
	heap0, rss0 := heapInuse(), procStatus("VmRSS")
	b.StartTimer()
	start := time.Now()
	for j, files := range batches {
		srv := store.Server{Addr: fmt.Sprintf("10.0.%d.%d:5000", j>>8, j&255)}
		if err := cat.Register(context.Background(), srv, files); err != nil {
			b.Fatal(err)
		}
	}
	took := time.Since(start)
	b.StopTimer()
	batches = nil
	heap := float64(heapInuse() - heap0)
	rss := (procStatus("VmRSS") - rss0) * 1024
	runtime.KeepAlive(cat)
	b.ReportMetric(float64(n), "entries")
	b.ReportMetric(float64(names)/float64(n), "name-B/entry")
	b.ReportMetric(heap/float64(n), "heap-B/entry")
	b.ReportMetric(heap/float64(names), "heap-B/name-byte")
	b.ReportMetric(rss/float64(n), "rss-B/entry")
	b.ReportMetric(float64(took.Nanoseconds())/float64(names), "register-ns/name-byte")
	b.ReportMetric(float64(n)/took.Seconds(), "entries/s")
}

// BenchmarkCatalogFull fills one master with the real limits over loopback
// (not run by CI): connections register 10 000 classroom files each until
// the master answers ERR 507. It reports the files held, their names, the
// live heap and RSS at the cap, how long filling took, and checks that at
// the cap a search is answered and a registration that does not grow is
// taken.
//
//	go test -run '^$' -bench CatalogFull -benchtime 1x -timeout 30m ./netproto/master/
func BenchmarkCatalogFull(b *testing.B) {
	for range b.N {
		cat := memcat.New(time.Hour)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := New(Config{Catalog: cat, TTL: time.Hour, MaxConnsPerIP: -1, MaxFilesPerIP: -1})
		go s.Serve(ln)
		addr := ln.Addr().String()
		heap0, rss0 := heapInuse(), procStatus("VmRSS")

		type conn struct {
			nc net.Conn
			r  *bufio.Reader
		}
		open := func() conn {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			r := bufio.NewReader(nc)
			io.WriteString(nc, "HELLO fxsh/1 role=server\n")
			if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "HI ") {
				b.Fatalf("HELLO: %q, %v", l, err)
			}
			return conn{nc, r}
		}
		register := func(c conn, i int) string {
			_, files := soakServer(i, line.MaxFiles)
			msgs := []line.Msg{line.NewMsg(line.VerbRegister).With("addr", fmt.Sprintf("10.9.%d.%d:5000", i>>8, i&255)).
				WithInt("n", int64(len(files)))}
			for _, f := range files {
				msgs = append(msgs, line.FileMsg(store.Entry{File: f}))
			}
			var buf []byte
			for _, m := range append(msgs, line.NewMsg(line.VerbEnd)) {
				buf, _ = line.AppendMsg(buf, m)
			}
			go c.nc.Write(buf)
			l, err := c.r.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			return strings.TrimSuffix(l, "\n")
		}
		start := time.Now()
		var conns []conn
		refusal := ""
		for i := 0; refusal == ""; i++ {
			c := open()
			conns = append(conns, c)
			if got := register(c, i); !strings.HasPrefix(got, "OK ") {
				refusal = got
			}
		}
		fill := time.Since(start)
		heap, rss := heapInuse()-heap0, procStatus("VmRSS")-rss0
		used, _, regs := budgetOf(s)
		b.Logf("full after %d registrations in %v: %s", regs, fill.Round(time.Millisecond), refusal)
		if !strings.HasPrefix(refusal, "ERR 507 catalog full: ") || used.files > MaxCatalogFiles {
			b.Errorf("refusal %q with %d files held", refusal, used.files)
		}

		// At the cap: a search, and connection 0 registering another
		// list of the same size.
		cli := open()
		t0 := time.Now()
		io.WriteString(cli.nc, "SEARCH q=photos max=1\n")
		if n, err := readReply(cli.r); err != nil || n != 1 {
			b.Errorf("search at the cap: %d records, %v", n, err)
		}
		searchAtCap := time.Since(t0)
		if got := register(conns[0], len(conns)); !strings.HasPrefix(got, "OK ") {
			b.Errorf("same-size registration at the cap: %q", got)
		}

		b.ReportMetric(float64(used.files), "files")
		b.ReportMetric(float64(used.names)/(1<<20), "names-MiB")
		b.ReportMetric(fill.Seconds(), "fill-s")
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		b.ReportMetric(rss/1024, "rss-MiB")
		b.ReportMetric(procStatus("VmHWM")/1024, "peakRSS-MiB")
		b.ReportMetric(float64(searchAtCap.Microseconds())/1000, "search-at-cap-ms")
		for _, c := range append(conns, cli) {
			c.nc.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s.Shutdown(ctx)
		cancel()
		cat.Close()
	}
}
