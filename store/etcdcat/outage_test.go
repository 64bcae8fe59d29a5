package etcdcat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/netproto/masterclient"
)

// privateEtcd is an etcd of one test's own, which the test may kill and
// start again (on the same ports, with the same data), unlike the shared
// one of FXSH_ETCD_ENDPOINTS.
type privateEtcd struct {
	bin, dir   string
	addr, peer string // client and peer HOST:PORT
	cmd        *exec.Cmd
	exited     chan struct{} // closed when cmd has been waited for
}

// etcdBinary finds the etcd that .ci/etcd.sh runs: $FXSH_ETCD_BIN, else the
// one it builds ($XDG_CACHE_HOME, or ~/.cache, /fxsh/etcd-VERSION/etcd with
// VERSION from tools/etcd/go.mod), else etcd on PATH.
func etcdBinary() (string, error) {
	if b := os.Getenv("FXSH_ETCD_BIN"); b != "" {
		return b, nil
	}
	version := "v3.6.16"
	if mod, err := os.ReadFile("../../tools/etcd/go.mod"); err == nil {
		for _, l := range strings.Split(string(mod), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "require" && f[1] == "go.etcd.io/etcd/server/v3" {
				version = f[2]
			}
		}
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	if b := filepath.Join(cache, "fxsh", "etcd-"+version, "etcd"); cache != "" {
		if _, err := os.Stat(b); err == nil {
			return b, nil
		}
	}
	return exec.LookPath("etcd")
}

// startPrivateEtcd starts an etcd on free loopback ports. Without an etcd
// binary the test is skipped, unless FXSH_REQUIRE_ETCD=1.
func startPrivateEtcd(t *testing.T) *privateEtcd {
	t.Helper()
	bin, err := etcdBinary()
	if err != nil {
		if os.Getenv("FXSH_REQUIRE_ETCD") == "1" {
			t.Fatalf("FXSH_REQUIRE_ETCD=1 but no etcd binary (bash .ci/etcd.sh install): %v", err)
		}
		t.Skipf("no etcd binary (bash .ci/etcd.sh install): %v", err)
	}
	e := &privateEtcd{bin: bin, dir: t.TempDir()}
	t.Cleanup(e.kill)
	for try := 0; ; try++ {
		e.addr, e.peer = freeTCP(t), freeTCP(t)
		err := e.start(t)
		if err == nil {
			return e
		}
		if try == 2 {
			t.Fatalf("starting etcd: %v", err)
		}
		t.Logf("starting etcd (try %d): %v", try+1, err)
	}
}

func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs etcd and waits until it reports itself healthy.
func (e *privateEtcd) start(t *testing.T) error {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(e.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	e.cmd = exec.Command(e.bin, "--name", "private", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", "http://"+e.addr, "--advertise-client-urls", "http://"+e.addr,
		"--listen-peer-urls", "http://"+e.peer, "--initial-advertise-peer-urls", "http://"+e.peer,
		"--initial-cluster", "private=http://"+e.peer, "--log-level", "warn", "--unsafe-no-fsync")
	e.cmd.Stdout, e.cmd.Stderr = log, log
	if err := e.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	e.exited = exited
	go func() { e.cmd.Wait(); close(exited) }()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			tail, _ := os.ReadFile(filepath.Join(e.dir, "etcd.log"))
			return fmt.Errorf("etcd exited early: %s", lastLines(string(tail), 5))
		default:
		}
		if resp, err := hc.Get("http://" + e.addr + "/health"); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if strings.Contains(string(body), `"health":"true"`) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			e.kill()
			return errors.New("etcd not healthy after 30 s")
		}
		time.Sleep(100 * time.Millisecond) // polling /health: etcd has no other started signal
	}
}

// kill stops etcd with SIGKILL, as a crash would.
func (e *privateEtcd) kill() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	e.cmd.Process.Kill()
	<-e.exited
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// watchMaster collects a master's trace lines and events for a test to
// wait on.
type watchMaster struct {
	mu     sync.Mutex
	lines  []line.TraceEvent
	events []master.Event
	signal chan struct{} // receives a value (non-blocking) on every change
}

func (w *watchMaster) trace(ev line.TraceEvent) {
	w.mu.Lock()
	w.lines = append(w.lines, ev)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *watchMaster) event(ev master.Event) {
	w.mu.Lock()
	w.events = append(w.events, ev)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// waitFor waits until cond (called under w.mu) holds.
func (w *watchMaster) waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-w.signal:
		case <-deadline.C:
			t.Fatalf("after %v: %s", within, what)
		}
	}
}

// pollUntil calls f every 100 ms until it returns true; for outcomes that
// only show through a remote query, such as a master's answer.
func pollUntil(t *testing.T, within time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > within {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

func is503(err error) bool {
	var le *line.Error
	return errors.As(err, &le) && le.Code == line.CodeUnavailable
}

// TestMasterEtcdOutage kills the etcd under a master (SIGKILL, a real
// crash, not a proxy): the master answers ERR 503 to reads and
// registrations, keeps its connections and does not panic; a file server
// that dies meanwhile cannot be removed then; when etcd is back (same
// ports and data) the master answers again, the live file server is still
// listed, and the dead one's registration is gone within its lease TTL
// of the restart: nothing stale is left in etcd.
func TestMasterEtcdOutage(t *testing.T) {
	t.Parallel() // with TestOutage: most of both is waiting for timers
	etcd := startPrivateEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ttl = 3 * time.Second
	cfg := testConfig([]string{etcd.addr}, DefaultPrefix, ttl)
	cfg.OpTimeout, cfg.StaleAfter = 2*time.Second, 2*time.Second
	cat := newTestCatalog(t, cfg)

	w := &watchMaster{signal: make(chan struct{}, 1)}
	srv := master.New(master.Config{Catalog: cat, TTL: ttl, Heartbeat: ttl / 3, Trace: w.trace, OnEvent: w.event})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, master.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	mcfg := masterclient.Config{Masters: []string{ln.Addr().String()}, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second}

	register := func(rctx context.Context, addr, prefix string) (*masterclient.Registrar, error) {
		r, err := masterclient.StartRegistrar(rctx, mcfg, masterclient.Registration{Addr: addr, Files: makeFiles(prefix, 3)})
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		return r, r.WaitRegistered(wctx)
	}
	lives, err := register(ctx, "127.0.0.1:7001", "lives-")
	if err != nil {
		t.Fatal(err)
	}
	defer lives.Close(ctx)
	diesCtx, die := context.WithCancel(ctx)
	defer die()
	if _, err := register(diesCtx, "127.0.0.1:7002", "dies-"); err != nil {
		t.Fatal(err)
	}
	client, err := masterclient.Dial(ctx, mcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	found := func(q string) int {
		es, _, err := client.Search(ctx, q, 0)
		if err != nil {
			t.Fatalf("Search %q: %v", q, err)
		}
		return len(es)
	}
	if n, m := found("lives"), found("dies"); n != 3 || m != 3 {
		t.Fatalf("before the outage: %d lives, %d dies; want 3 each", n, m)
	}

	// etcd crashes. Reads get 503 once the view is StaleAfter old.
	etcd.kill()
	down := time.Now()
	pollUntil(t, 30*time.Second, "SEARCH never got ERR 503 with etcd down", func() bool {
		_, _, err := client.Search(ctx, "lives", 0)
		if err != nil && !is503(err) {
			t.Fatalf("Search with etcd down: %v, want ERR 503", err)
		}
		return err != nil
	})
	t.Logf("SEARCH answered ERR 503 %v after etcd died", time.Since(down).Round(time.Millisecond))
	for name, q := range map[string]func() error{
		"LIST":  func() error { _, _, err := client.List(ctx, "", 0); return err },
		"PEERS": func() error { _, err := client.Peers(ctx); return err },
	} {
		if err := q(); !is503(err) {
			t.Errorf("%s with etcd down: %v, want ERR 503", name, err)
		}
	}
	// A new registration is refused with 503.
	lateCtx, lateCancel := context.WithCancel(ctx)
	_, err = register(lateCtx, "127.0.0.1:7003", "late-")
	lateCancel()
	if !is503(err) {
		t.Errorf("REGISTER with etcd down: %v, want ERR 503", err)
	}
	// The live file server's heartbeats get 503 and it keeps its connection.
	w.waitFor(t, 30*time.Second, "no PING answered ERR 503", func() bool {
		for _, l := range w.lines {
			if l.Dir == line.Out && strings.HasPrefix(l.Line, "ERR 503") && l.Time.After(down) {
				for _, p := range w.lines {
					if p.Dir == line.In && p.Line == "PING" && p.Remote == l.Remote && p.Time.After(down) {
						return true
					}
				}
			}
		}
		return false
	})
	// A file server dies: the master cannot remove it from etcd now.
	die()
	w.waitFor(t, 30*time.Second, "the dead file server's connection never ended", func() bool {
		for _, ev := range w.events {
			if ev.Kind == master.PeerLeft && ev.Addr == "127.0.0.1:7002" {
				return true
			}
		}
		return false
	})

	// etcd comes back.
	restartErr := etcd.start(t)
	if restartErr != nil {
		t.Fatalf("restarting etcd: %v", restartErr)
	}
	up := time.Now()
	took := pollUntil(t, 60*time.Second, "the master never recovered with the live file server and without the dead one", func() bool {
		es, _, err := client.Search(ctx, "lives", 0)
		if err != nil || len(es) != 3 {
			return false
		}
		es, _, err = client.Search(ctx, "dies", 0)
		return err == nil && len(es) == 0
	})
	t.Logf("recovered %v after etcd restarted (lease TTL %v)", took.Round(time.Millisecond), ttl)
	peers, err := client.Peers(ctx)
	if err != nil || len(peers) != 1 || peers[0].Addr != "127.0.0.1:7001" {
		t.Errorf("PEERS after recovery = %+v, %v; want only 127.0.0.1:7001", peers, err)
	}
	// Nothing of the dead or the refused file server is left in etcd.
	raw := rawClient(t, []string{etcd.addr})
	for k := range keysUnder(t, raw, DefaultPrefix) {
		if strings.Contains(k, "7002") || strings.Contains(k, "7003") {
			t.Errorf("stale key after recovery: %s", k)
		}
	}
	// The master takes registrations again.
	again, err := register(ctx, "127.0.0.1:7004", "again-")
	if err != nil {
		t.Errorf("REGISTER after recovery: %v", err)
	} else {
		defer again.Close(ctx)
	}
	if n := found("again"); n != 3 {
		t.Errorf("after recovery: the new registration has %d files found, want 3", n)
	}
	t.Logf("whole recovery, new registration included: %v after etcd restarted", time.Since(up).Round(time.Millisecond))
}
