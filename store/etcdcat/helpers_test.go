package etcdcat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/fxshell/fxsh/store"
)

// etcdEndpoints returns the endpoints of the etcd the tests run against
// (FXSH_ETCD_ENDPOINTS, comma-separated). Without one the test is skipped,
// unless FXSH_REQUIRE_ETCD=1, when it fails instead.
func etcdEndpoints(t testing.TB) []string {
	t.Helper()
	env := os.Getenv("FXSH_ETCD_ENDPOINTS")
	if env == "" {
		if os.Getenv("FXSH_REQUIRE_ETCD") == "1" {
			t.Fatal("FXSH_REQUIRE_ETCD=1 but FXSH_ETCD_ENDPOINTS is not set (start one with .ci/etcd.sh start DIR)")
		}
		t.Skip("FXSH_ETCD_ENDPOINTS not set; start an etcd with .ci/etcd.sh start DIR")
	}
	return strings.Split(env, ",")
}

// testPrefix returns a fresh key prefix, and deletes everything under it
// when the test ends.
func testPrefix(t testing.TB, endpoints []string) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	prefix := "/fxsh-test/" + hex.EncodeToString(b[:]) + "/"
	t.Cleanup(func() {
		cli := rawClient(t, endpoints)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.Delete(ctx, prefix, clientv3.WithPrefix()); err != nil {
			t.Logf("cleaning up %s: %v", prefix, err)
		}
	})
	return prefix
}

// rawClient is a plain etcd client, for looking at or tampering with keys.
func rawClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// testConfig is a Config with short timeouts, so that outage tests end
// quickly, but generous enough for a loaded CI machine: reads fail only
// after 5 s without word from etcd (TestOutage shortens it).
func testConfig(endpoints []string, prefix string, ttl time.Duration) Config {
	return Config{
		Endpoints:   endpoints,
		Prefix:      prefix,
		TTL:         ttl,
		DialTimeout: 5 * time.Second,
		OpTimeout:   3 * time.Second,
		StaleAfter:  5 * time.Second,
	}
}

func newTestCatalog(t testing.TB, cfg Config) *Catalog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// hashOf makes a well-formed content hash from a seed.
func hashOf(seed string) string {
	h := make([]byte, 32)
	copy(h, seed)
	return "blake3:" + hex.EncodeToString(h)
}

func makeFiles(prefix string, n int) []store.File {
	files := make([]store.File, n)
	for i := range files {
		name := fmt.Sprintf("%s%05d.txt", prefix, i)
		files[i] = store.File{Name: name, Size: int64(i), Type: "text", MTime: time.Unix(1700000000+int64(i), 0).UTC(), Hash: hashOf(name)}
	}
	return files
}

// waitView waits until cond holds, checking it each time c's view changes
// (an event, a progress notification or a reload). It is for outcomes
// decided outside the process, such as a lease expiring in etcd.
func waitView(t testing.TB, c *Catalog, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		c.mu.RLock()
		changed := c.changed
		c.mu.RUnlock()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("after %v: %s", within, what)
		}
	}
}

func names(es []store.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name
	}
	return out
}

// proxy is a loopback TCP proxy to etcd that a test can cut and restore, to
// play an etcd outage for one catalog without touching the shared etcd.
type proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	p := &proxy{target: target, conns: make(map[net.Conn]struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) pipe(c net.Conn) {
	if !p.track(c) {
		return
	}
	u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(u) {
		c.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(u, c); u.Close() }()
	go func() { defer wg.Done(); io.Copy(c, u); c.Close() }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// down closes the listener and every connection: etcd is unreachable.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// up listens again on the same address.
func (p *proxy) up(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		ln, err = net.Listen("tcp", p.addr)
		if err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(100 * time.Millisecond) // the port is in TIME_WAIT reuse; nothing to wait on
	}
	t.Fatalf("proxy up again on %s: %v", p.addr, err)
}

func isUnavailable(err error) bool { return errors.Is(err, store.ErrUnavailable) }
