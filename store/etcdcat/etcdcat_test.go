package etcdcat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fxshell/fxsh/store"
)

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no endpoints", Config{}},
		{"prefix without slash", Config{Endpoints: []string{"127.0.0.1:1"}, Prefix: "/fxsh"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(context.Background(), tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestNewUnreachable(t *testing.T) {
	// A port nothing listens on: New must give up within DialTimeout.
	p := newProxy(t, "127.0.0.1:1")
	p.down()
	start := time.Now()
	_, err := New(context.Background(), Config{Endpoints: []string{p.addr}, DialTimeout: time.Second})
	if !isUnavailable(err) {
		t.Fatalf("New: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("New took %v", d)
	}
}

func TestTwoMasters(t *testing.T) {
	eps := etcdEndpoints(t)
	prefix := testPrefix(t, eps)
	ctx := testCtx(t)
	a := newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))
	b := newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))

	files := []store.File{
		{Name: "notes/Report Final.pdf", Size: 10, Type: "pdf", MTime: time.Unix(1700000000, 0).UTC(), Hash: hashOf("r")},
		{Name: "photo.jpg", Size: 20, Type: "jpg", MTime: time.Unix(1700000001, 5).UTC(), Hash: hashOf("p")},
		{Name: "a b/c=d\\e\nf 🎉.txt", Size: 30, Type: "text", MTime: time.Unix(1700000002, 0).UTC(), Hash: hashOf("x")},
	}
	if err := a.Register(ctx, store.Server{Addr: "10.0.0.1:9000", Role: store.RoleServer}, files); err != nil {
		t.Fatalf("Register: %v", err)
	}
	// Read your own write: no waiting on a.
	got, err := a.Files(ctx, "")
	if err != nil || len(got) != 3 {
		t.Fatalf("a.Files = %v, %v; want 3 entries", names(got), err)
	}
	if got[0].Name != files[2].Name || !got[0].MTime.Equal(files[2].MTime) || got[0].Size != 30 {
		t.Errorf("a.Files[0] = %+v", got[0])
	}
	// The other master sees it once it has caught up with etcd.
	if err := b.sync(ctx); err != nil {
		t.Fatalf("b.sync: %v", err)
	}
	for _, c := range []*Catalog{a, b} {
		res, err := c.Search(ctx, "REPORT final", 10)
		if err != nil || len(res) != 1 || res[0].Name != files[0].Name || !slices.Equal(res[0].Servers, []string{"10.0.0.1:9000"}) {
			t.Errorf("Search = %+v, %v", res, err)
		}
		srvs, err := c.Servers(ctx)
		if err != nil || len(srvs) != 1 || srvs[0].Addr != "10.0.0.1:9000" || srvs[0].Files != 3 || srvs[0].Role != store.RoleServer {
			t.Errorf("Servers = %+v, %v", srvs, err)
		}
	}

	// Same content on a second server, registered through b: one entry,
	// two sources, seen by a.
	if err := b.Register(ctx, store.Server{Addr: "10.0.0.2:9000"}, files[1:2]); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := a.sync(ctx); err != nil {
		t.Fatalf("a.sync: %v", err)
	}
	res, err := a.Search(ctx, "photo", 10)
	if err != nil || len(res) != 1 || !slices.Equal(res[0].Servers, []string{"10.0.0.1:9000", "10.0.0.2:9000"}) {
		t.Errorf("Search photo = %+v, %v", res, err)
	}

	// Heartbeats go through any master; Unregister only through the one
	// that holds the registration (another one's would be stale).
	if err := b.Heartbeat(ctx, "10.0.0.1:9000"); err != nil {
		t.Errorf("b.Heartbeat: %v", err)
	}
	if err := b.Unregister(ctx, "10.0.0.1:9000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b.Unregister of a's registration: %v, want ErrNotFound", err)
	}
	if err := a.Unregister(ctx, "10.0.0.1:9000"); err != nil {
		t.Fatalf("a.Unregister: %v", err)
	}
	if err := b.sync(ctx); err != nil {
		t.Fatalf("b.sync: %v", err)
	}
	srvs, _ := b.Servers(ctx)
	if len(srvs) != 1 || srvs[0].Addr != "10.0.0.2:9000" {
		t.Errorf("b.Servers after Unregister = %+v", srvs)
	}
	all, _ := a.Files(ctx, "*")
	if !slices.Equal(names(all), []string{"photo.jpg"}) {
		t.Errorf("a.Files after Unregister = %v", names(all))
	}
	for _, op := range []func(context.Context, string) error{a.Heartbeat, a.Unregister, b.Heartbeat, b.Unregister} {
		if err := op(ctx, "10.0.0.1:9000"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("op on unregistered server: %v, want ErrNotFound", err)
		}
	}
}

// keysUnder lists the keys under prefix in etcd, with their leases.
func keysUnder(t *testing.T, cli *clientv3.Client, prefix string) map[string]int64 {
	t.Helper()
	resp, err := cli.Get(testCtx(t), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	out := make(map[string]int64, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Lease
	}
	return out
}

func TestReplaceLeavesNoStaleKeys(t *testing.T) {
	eps := etcdEndpoints(t)
	prefix := testPrefix(t, eps)
	ctx := testCtx(t)
	cli := rawClient(t, eps)
	c := newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))
	const addr = "[::1]:7000"

	lists := [][]store.File{makeFiles("old-", 300), makeFiles("new-", 5), makeFiles("newer-", 200)}
	for i, files := range lists {
		if err := c.Register(ctx, store.Server{Addr: addr, Name: fmt.Sprint("round", i)}, files); err != nil {
			t.Fatalf("Register %d: %v", i, err)
		}
		got, err := c.Files(ctx, "")
		if err != nil || !slices.Equal(names(got), names(toEntries(files))) {
			t.Fatalf("round %d: Files = %d entries, %v; want %d", i, len(got), err, len(files))
		}
		srvs, _ := c.Servers(ctx)
		if len(srvs) != 1 || srvs[0].Files != len(files) || srvs[0].Name != fmt.Sprint("round", i) {
			t.Errorf("round %d: Servers = %+v", i, srvs)
		}
		// Every key in etcd belongs to the current lease.
		keys := keysUnder(t, cli, prefix)
		if len(keys) != len(files)+1 {
			t.Errorf("round %d: %d keys in etcd, want %d", i, len(keys), len(files)+1)
		}
		lease := keys[serverKey(prefix, addr)]
		for k, l := range keys {
			if l != lease {
				t.Errorf("round %d: key %s has lease %x, want %x", i, k, l, lease)
			}
		}
	}
}

func toEntries(files []store.File) []store.Entry {
	out := make([]store.Entry, len(files))
	for i, f := range files {
		out[i] = store.Entry{File: f}
	}
	slices.SortFunc(out, func(a, b store.Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// TestNoHalfLists registers lists that span many transactions through one
// master while another reads: the reader must see each list whole or not
// at all.
func TestNoHalfLists(t *testing.T) {
	eps := etcdEndpoints(t)
	prefix := testPrefix(t, eps)
	ctx := testCtx(t)
	a := newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))
	b := newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))
	const n = 1000 // 8 transactions of MaxOpsPerTxn
	sizes := []int{n, n / 2, n}

	stop := make(chan struct{})
	var bad []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b.mu.RLock()
			changed := b.changed
			b.mu.RUnlock()
			srvs, err1 := b.Servers(ctx)
			all, err2 := b.Files(ctx, "")
			if err1 == nil && err2 == nil {
				ok := len(srvs) == 0 && len(all) == 0 ||
					len(srvs) == 1 && len(all) == srvs[0].Files && slices.Contains(sizes, len(all))
				if !ok && len(srvs) == 1 {
					bad = append(bad, fmt.Sprintf("server with %d files, %d entries", srvs[0].Files, len(all)))
				} else if !ok {
					bad = append(bad, fmt.Sprintf("%d servers, %d entries", len(srvs), len(all)))
				}
			}
			select {
			case <-changed:
			case <-stop:
				return
			}
		}
	}()
	for i, size := range sizes {
		if err := a.Register(ctx, store.Server{Addr: "h:1"}, makeFiles(fmt.Sprint("r", i, "-"), size)); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	if err := b.sync(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	for _, s := range bad {
		t.Errorf("reader saw a partial list: %s", s)
	}
	all, _ := b.Files(ctx, "r2-*")
	if len(all) != n {
		t.Errorf("after the last registration: %d entries, want %d", len(all), n)
	}
}

// TestConcurrentReplace has two masters register the same address at once,
// as after a failover: in the end one list is visible, whole, and etcd holds
// no key of the losing registrations.
func TestConcurrentReplace(t *testing.T) {
	eps := etcdEndpoints(t)
	prefix := testPrefix(t, eps)
	ctx := testCtx(t)
	cli := rawClient(t, eps)
	a := newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))
	b := newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))
	const addr = "h:2"
	for round := range 3 {
		var wg sync.WaitGroup
		for i, c := range []*Catalog{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.Register(ctx, store.Server{Addr: addr}, makeFiles(fmt.Sprint("m", i, "-"), 150+i)); err != nil {
					t.Errorf("round %d: Register: %v", round, err)
				}
			}()
		}
		wg.Wait()
		for _, c := range []*Catalog{a, b} {
			if err := c.sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		keys := keysUnder(t, cli, prefix)
		lease, ok := keys[serverKey(prefix, addr)]
		if !ok {
			t.Fatalf("round %d: no server key", round)
		}
		want := 151
		if len(keys) == 151 {
			want = 150
		}
		for k, l := range keys {
			if l != lease {
				t.Errorf("round %d: stale key %s (lease %x, server key's %x)", round, k, l, lease)
			}
		}
		if len(keys) != want+1 {
			t.Errorf("round %d: %d keys, want %d", round, len(keys), want+1)
		}
		for _, c := range []*Catalog{a, b} {
			all, _ := c.Files(ctx, "")
			srvs, _ := c.Servers(ctx)
			if len(all) != want || len(srvs) != 1 || srvs[0].Files != want {
				t.Errorf("round %d: view has %d entries, servers %+v; want %d", round, len(all), srvs, want)
			}
		}
	}
}

// TestDeadMaster: a master dies (its catalog closes without unregistering);
// the other master sees its registrations vanish when their leases expire,
// unless someone keeps heartbeating them.
func TestDeadMaster(t *testing.T) {
	eps := etcdEndpoints(t)
	prefix := testPrefix(t, eps)
	ctx := testCtx(t)
	const ttl = 2 * time.Second // etcd's smallest lease TTL with default timing
	a := newTestCatalog(t, testConfig(eps, prefix, ttl))
	b := newTestCatalog(t, testConfig(eps, prefix, ttl))
	for _, addr := range []string{"dies:1", "lives:1"} {
		if err := a.Register(ctx, store.Server{Addr: addr}, makeFiles(addr+"-", 3)); err != nil {
			t.Fatal(err)
		}
	}
	registered := time.Now()
	a.Close()
	if err := a.Register(ctx, store.Server{Addr: "x:1"}, nil); !errors.Is(err, ErrClosed) || !isUnavailable(err) {
		t.Errorf("Register after Close: %v, want ErrClosed wrapping ErrUnavailable", err)
	}
	if _, err := a.Search(ctx, "x", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Search after Close: %v, want ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := b.sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The file server still alive moves its heartbeats to b.
	hbDone := make(chan struct{})
	hbStop := make(chan struct{})
	go func() {
		defer close(hbDone)
		tick := time.NewTicker(ttl / 4)
		defer tick.Stop()
		for {
			select {
			case <-hbStop:
				return
			case <-tick.C:
				if err := b.Heartbeat(ctx, "lives:1"); err != nil {
					t.Errorf("Heartbeat: %v", err)
					return
				}
			}
		}
	}()
	waitView(t, b, 10*ttl, "dead server still listed", func() bool {
		srvs, err := b.Servers(ctx)
		return err == nil && len(srvs) == 1 && srvs[0].Addr == "lives:1"
	})
	gone := time.Since(registered)
	close(hbStop)
	<-hbDone
	t.Logf("dead server's files vanished %v after its last keep-alive (TTL %v)", gone.Round(time.Millisecond), ttl)
	// The lease's clock starts inside etcd a moment before ours does, so
	// allow a little slack; vanishing clearly early would be a bug.
	if gone < ttl-100*time.Millisecond {
		t.Errorf("registration vanished after %v, before the TTL %v", gone, ttl)
	}
	res, _ := b.Search(ctx, "dies", 10)
	if len(res) != 0 {
		t.Errorf("Search dies = %v", names(res))
	}
	srvs, _ := b.Servers(ctx)
	if len(srvs) != 1 || !srvs[0].LastSeen.After(srvs[0].Registered) {
		t.Errorf("Servers = %+v; want LastSeen after Registered (heartbeats through b)", srvs)
	}
}

// TestOutage cuts one master off etcd: its calls fail with ErrUnavailable
// within OpTimeout, its reads fail once the view is StaleAfter old, nothing
// panics, and when etcd is back it catches up with what happened meanwhile
// (including a compaction that swallowed its watch's history).
func TestOutage(t *testing.T) {
	// Parallel with TestMasterEtcdOutage only (it has an etcd of its own),
	// since this test compacts the shared etcd: most of both is waiting.
	t.Parallel()
	eps := etcdEndpoints(t)
	prefix := testPrefix(t, eps)
	ctx := testCtx(t)
	cli := rawClient(t, eps)
	const ttl = 2 * time.Second
	p := newProxy(t, eps[0])
	cfg := testConfig([]string{p.addr}, prefix, ttl)
	cfg.StaleAfter = 2 * time.Second
	a := newTestCatalog(t, cfg)
	b := newTestCatalog(t, testConfig(eps, prefix, 30*time.Second)) // b's registrations outlive the test

	if err := a.Register(ctx, store.Server{Addr: "orphan:1"}, makeFiles("orphan-", 2)); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, store.Server{Addr: "leaves:1"}, makeFiles("leaves-", 2)); err != nil {
		t.Fatal(err)
	}
	if err := a.sync(ctx); err != nil {
		t.Fatal(err)
	}
	reloads := a.Stats().Reloads

	p.down()
	// Writes fail within OpTimeout (plus slack for a loaded machine).
	for name, op := range map[string]func() error{
		"Register":  func() error { return a.Register(ctx, store.Server{Addr: "new:1"}, makeFiles("new-", 1)) },
		"Heartbeat": func() error { return a.Heartbeat(ctx, "orphan:1") },
	} {
		start := time.Now()
		err := op()
		if !isUnavailable(err) {
			t.Errorf("%s during outage: %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > cfg.OpTimeout+5*time.Second {
			t.Errorf("%s took %v, want about OpTimeout %v", name, d, cfg.OpTimeout)
		}
	}
	// Reads fail once the view is too old to trust.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := a.Search(ctx, "orphan", 10)
		if isUnavailable(err) {
			break
		}
		if err != nil {
			t.Fatalf("Search during outage: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("reads never failed during the outage")
		case <-tick.C:
		}
	}
	// Meanwhile: "leaves" unregisters through b, "orphan" (heartbeated by
	// no one) expires, and etcd compacts its history.
	if err := b.Unregister(ctx, "leaves:1"); err != nil {
		t.Fatal(err)
	}
	waitView(t, b, 10*ttl, "orphan never expired", func() bool {
		srvs, _ := b.Servers(ctx)
		return len(srvs) == 0
	})
	resp, err := cli.Get(ctx, "compaction-marker")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatalf("Compact: %v", err)
	}

	p.up(t)
	waitView(t, a, 30*time.Second, "a never recovered", func() bool {
		srvs, err := a.Servers(ctx)
		return err == nil && len(srvs) == 0
	})
	if all, err := a.Files(ctx, ""); err != nil || len(all) != 0 {
		t.Errorf("after recovery: Files = %v, %v; want none", names(all), err)
	}
	if got := a.Stats().Reloads; got <= reloads {
		t.Errorf("Reloads = %d, want more than %d (the watch was compacted)", got, reloads)
	}
	if err := a.Register(ctx, store.Server{Addr: "back:1"}, makeFiles("back-", 1)); err != nil {
		t.Errorf("Register after recovery: %v", err)
	}
}

// TestGarbageKeys: whatever else sits under the prefix is ignored.
func TestGarbageKeys(t *testing.T) {
	eps := etcdEndpoints(t)
	prefix := testPrefix(t, eps)
	ctx := testCtx(t)
	cli := rawClient(t, eps)
	c := newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))
	if err := c.Register(ctx, store.Server{Addr: "good:1"}, makeFiles("good-", 2)); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	junk := map[string]string{
		prefix + "servers/bad:1":    "not a record",
		prefix + "servers/":         "",
		prefix + "files/bad:1/zz/x": "",
		prefix + "files/good%3A1/" + leaseHex(int64(lease.ID)) + "/x": "\x00",
		prefix + "other":             "x",
		prefix + "servers/nolease:1": string(appendServerRecord(nil, serverRecord{Role: "server"})),
	}
	for k, v := range junk {
		if _, err := cli.Put(ctx, k, v, clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, prefix+"servers/nolease2:1", string(appendServerRecord(nil, serverRecord{}))); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(c *Catalog) {
		t.Helper()
		srvs, err := c.Servers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var addrs []string
		for _, s := range srvs {
			addrs = append(addrs, s.Addr)
		}
		// nolease:1 is well-formed and has a lease: it counts, with no files.
		if !slices.Equal(addrs, []string{"good:1", "nolease:1"}) {
			t.Errorf("Servers = %v", addrs)
		}
		if all, _ := c.Files(ctx, ""); len(all) != 2 {
			t.Errorf("Files = %v", names(all))
		}
		if c.Stats().Bad == 0 {
			t.Error("Stats.Bad = 0")
		}
	}
	check(c)
	check(newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))) // loaded by a reload
}

func TestRegisterLimits(t *testing.T) {
	eps := etcdEndpoints(t)
	prefix := testPrefix(t, eps)
	ctx := testCtx(t)
	c := newTestCatalog(t, testConfig(eps, prefix, 10*time.Second))
	bigName := strings.Repeat("n", MaxTxnBytes)
	tests := []struct {
		name  string
		srv   store.Server
		files []store.File
	}{
		{"empty address", store.Server{}, makeFiles("a", 1)},
		{"too many files", store.Server{Addr: "h:1"}, make([]store.File, MaxFiles+1)},
		{"record too large", store.Server{Addr: "h:1"}, []store.File{{Name: bigName, Hash: hashOf("b")}}},
		{"negative size", store.Server{Addr: "h:1"}, []store.File{{Name: "x", Size: -1, Hash: hashOf("x")}}},
		{"time out of range", store.Server{Addr: "h:1"}, []store.File{{Name: "x", MTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Hash: hashOf("x")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Register(ctx, tt.srv, tt.files); err == nil {
				t.Fatal("Register succeeded")
			}
			if srvs, _ := c.Servers(ctx); len(srvs) != 0 {
				t.Errorf("Servers = %+v", srvs)
			}
		})
	}
}
