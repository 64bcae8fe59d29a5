package etcdcat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/memcat"
)

// benchMasterTTL is the registrations' TTL in BenchmarkMaster: short, so
// that the time for a dead master's servers to vanish is quick to measure.
const benchMasterTTL = 5 * time.Second

// BenchmarkMaster is issue 6's benchmark end to end, through the masters'
// TCP protocol as fxsh runs it: 1 000 file servers × 100 files register
// through master A (benchWorkers at a time, each on its own connection),
// a client searches master B, whose catalog is fed by its watch (and the
// same queries run in B's catalog directly, without the network), and then
// the files of a killed file server, and of a killed master's 999 file
// servers, vanish from B. "memory" is the same workload on one master with
// the in-memory catalog (A and B are the same), for comparison. Run with
// FXSH_ETCD_ENDPOINTS set:
//
//	go test -run '^$' -bench Master -benchtime 1x ./store/etcdcat/
func BenchmarkMaster(b *testing.B) {
	for _, kind := range []string{"memory", "etcd"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				benchMaster(b, kind)
			}
		})
	}
}

// benchMasterServer is one master of BenchmarkMaster.
type benchMasterServer struct {
	srv    *master.Server
	addr   string
	served chan error
}

func startBenchMaster(b *testing.B, cat store.Catalog) *benchMasterServer {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	m := &benchMasterServer{
		srv: master.New(master.Config{Catalog: cat, TTL: benchMasterTTL, Heartbeat: benchMasterTTL / 3,
			// One client sends all the searches, as fast as it can.
			MaxConns: 2 * benchServers, Rate: 1e6, Burst: 1e6}),
		addr:   ln.Addr().String(),
		served: make(chan error, 1),
	}
	go func() { m.served <- m.srv.Serve(ln) }()
	b.Cleanup(func() { m.stop() })
	return m
}

// stop ends the master as a kill -9 would: every connection closed at
// once, no registration removed (the catalog is the caller's to close).
// Hence Shutdown with a context already done: it closes every connection
// without waiting for the sessions to wind down.
func (m *benchMasterServer) stop() {
	if m.served == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.srv.Shutdown(ctx)
	<-m.served
	m.served = nil
}

func benchAddr(s int) string { return fmt.Sprintf("127.0.0.1:%d", 10000+s) }

func benchMaster(b *testing.B, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var catA, catB store.Catalog
	switch kind {
	case "memory":
		m := memcat.New(benchMasterTTL)
		defer m.Close()
		catA, catB = m, m
	case "etcd":
		eps := etcdEndpoints(b)
		cfg := testConfig(eps, testPrefix(b, eps), benchMasterTTL)
		cfg.OpTimeout = 30 * time.Second
		catA, catB = newTestCatalog(b, cfg), newTestCatalog(b, cfg)
	}
	a := startBenchMaster(b, catA)
	bm := a
	if catB != catA {
		bm = startBenchMaster(b, catB)
	}

	// Registration: each file server on its own connection to A.
	start := time.Now()
	stops := make([]context.CancelFunc, benchServers) // a file server's kill -9
	defer func() {
		for _, stop := range stops {
			if stop != nil {
				stop()
			}
		}
	}()
	var mu sync.Mutex
	var regLat []time.Duration
	var wg sync.WaitGroup
	sem := make(chan struct{}, benchWorkers)
	for s := range benchServers {
		rctx, stop := context.WithCancel(ctx)
		stops[s] = stop
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			r, err := masterclient.StartRegistrar(rctx, masterclient.Config{Masters: []string{a.addr}},
				masterclient.Registration{Addr: benchAddr(s), Files: benchList(s)})
			if err == nil {
				err = r.WaitRegistered(ctx)
			}
			if err != nil {
				b.Errorf("registering %d: %v", s, err)
				return
			}
			mu.Lock()
			regLat = append(regLat, time.Since(t0))
			mu.Unlock()
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	regTime := time.Since(start)

	client, err := masterclient.Dial(ctx, masterclient.Config{Masters: []string{bm.addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	until := func(what string, within time.Duration, cond func() bool) time.Duration {
		t0 := time.Now()
		for !cond() {
			if time.Since(t0) > within {
				b.Fatalf("after %v: %s", within, what)
			}
			time.Sleep(10 * time.Millisecond) // polling another master over TCP
		}
		return time.Since(t0)
	}
	peers := func() int {
		ps, err := client.Peers(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return len(ps)
	}
	until("B never saw every registration", time.Minute, func() bool { return peers() == benchServers })
	seen := time.Since(start)

	// Search B over TCP, one query at a time.
	lat := make([]time.Duration, 0, benchSearches)
	hits := 0
	for _, q := range benchQueries(rand.New(rand.NewPCG(1, 2))) {
		t0 := time.Now()
		es, _, err := client.Search(ctx, q, 100)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		hits += len(es)
	}
	// The same searches in B's catalog, without the network: the part
	// etcd could change, since B's reads are local either way.
	local := make([]time.Duration, 0, benchSearches)
	for _, q := range benchQueries(rand.New(rand.NewPCG(1, 2))) {
		t0 := time.Now()
		_, err := catB.Search(ctx, q, 100)
		local = append(local, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(local)
	slices.Sort(lat)
	slices.Sort(regLat)
	pct := func(ds []time.Duration, p float64) time.Duration { return ds[int(float64(len(ds)-1)*p)] }

	// A file server dies (its connection closes): its files vanish from B.
	count := func(q string) int {
		es, _, err := client.Search(ctx, q, 1000)
		if err != nil {
			b.Fatal(err)
		}
		return len(es)
	}
	if n := count("-0000-"); n != benchFiles-5 {
		b.Fatalf("server 0's own files: %d, want %d", n, benchFiles-5)
	}
	stops[0]()
	vanishOne := until("a dead file server's files never vanished", time.Minute, func() bool { return count("-0000-") == 0 })

	b.ReportMetric(regTime.Seconds(), "register-s")
	b.ReportMetric(float64(benchServers)/regTime.Seconds(), "registrations/s")
	b.ReportMetric(float64(pct(regLat, 0.99).Microseconds())/1000, "register-p99-ms")
	b.ReportMetric(seen.Seconds(), "seen-on-B-s")
	b.ReportMetric(float64(pct(lat, 0.5).Nanoseconds())/1000, "search-p50-µs")
	b.ReportMetric(float64(pct(lat, 0.99).Nanoseconds())/1000, "search-p99-µs")
	b.ReportMetric(float64(pct(local, 0.5).Nanoseconds())/1000, "catalog-search-p50-µs")
	b.ReportMetric(float64(pct(local, 0.99).Nanoseconds())/1000, "catalog-search-p99-µs")
	b.ReportMetric(vanishOne.Seconds(), "vanish-one-s")
	b.Logf("%s: %d servers; %d searches over TCP returned %d results", kind, benchServers, len(lat), hits)
	if catA == catB {
		return
	}

	// Master A dies with its 999 file servers (no BYE, no revoke): their
	// leases run out and everything vanishes from B.
	died := time.Now()
	a.stop()
	catA.Close()
	for _, stop := range stops {
		stop()
	}
	b.Logf("master A stopped in %v", time.Since(died).Round(time.Millisecond))
	until("a dead master's registrations never vanished", 2*time.Minute, func() bool { return peers() == 0 })
	vanishAll := time.Since(died)
	if n := count("pdf"); n != 0 {
		b.Fatalf("after every lease expired, %d files still found", n)
	}
	b.ReportMetric(vanishAll.Seconds(), fmt.Sprintf("vanish-all-s(ttl=%v)", benchMasterTTL))
}
