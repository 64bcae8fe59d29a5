package master

// The master-wide limits against hostile peers: connections that never
// finish their handshake (MaxHandshakes, HelloTimeout), the sum of all
// registrations (MaxCatalogFiles, MaxCatalogNameBytes) and registration
// churn (RegisterRate, RegisterBurst).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
)

// handshaking returns how many connections the master holds before their
// handshake is done.
func handshaking(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshaking.Len()
}

const evictedLine = "ERR 503 too many connections handshaking, try again\n"

// readEnd reads what is left on nc until it ends.
func readEnd(nc net.Conn) ([]byte, error) {
	nc.SetReadDeadline(time.Now().Add(ioWait))
	return io.ReadAll(nc)
}

func TestHandshakeEviction(t *testing.T) {
	s, addr := startMaster(t, Config{MaxHandshakes: 2, HelloTimeout: time.Minute})
	a, b := dial(t, addr), dial(t, addr)
	waitSessions(t, s, 2)
	// A third handshaking connection crowds out the oldest, which is told
	// why; the other two are not disturbed.
	c := dial(t, addr)
	got, err := readEnd(a.nc)
	if string(got) != evictedLine || err != nil {
		t.Fatalf("oldest: %q, %v; want %q and the end", got, err, evictedLine)
	}
	waitSessions(t, s, 2)
	b.send("HELLO fxsh/1 role=client", "PING")
	b.expect("HI *", "PONG")
	// b is a session now: c and a new one fit among the handshaking.
	d := dial(t, addr)
	waitSessions(t, s, 3)
	c.send("HELLO fxsh/1 role=server")
	c.expect("HI *")
	d.send("HELLO fxsh/1 role=client")
	d.expect("HI *")
	if n := handshaking(s); n != 0 {
		t.Errorf("%d connections handshaking, want 0", n)
	}
}

func TestHandshakeOverCap(t *testing.T) {
	// A connection accepted while there was room, whose HELLO comes when
	// the sessions are full, is refused at HELLO.
	s, addr := startMaster(t, Config{MaxConns: 2})
	a := hello(t, addr, "client")
	x := dial(t, addr)
	waitSessions(t, s, 2)
	b := hello(t, addr, "client")
	x.send("HELLO fxsh/1 role=client")
	x.expect("ERR 503 too many connections, try later")
	x.expectClosed()
	for _, c := range []*tconn{a, b} {
		c.send("PING")
		c.expect("PONG")
	}
}

// TestHandshakeFlood holds 1 200 connections that never say HELLO (more
// than MaxConns) against a master with the real limits: they cost at most
// MaxHandshakes goroutines, the sessions already open are served, and a new
// file server and a new client get in and are served at once, long before
// HelloTimeout would have freed anything.
func TestHandshakeFlood(t *testing.T) {
	const (
		conns   = line.MaxConns + 200
		perConn = 32 << 10 // heap per handshaking connection, both ends
	)
	var evictions atomic.Int64
	// The flood comes from 127.0.0.1 like the honest peers: the per-IP
	// cap is off here (TestHandshakesPerIP tests it).
	s, addr := startMaster(t, Config{MaxHandshakesPerIP: -1, OnEvent: func(e Event) {
		if e.Kind == ConnRefused && e.Reason == "too many connections handshaking" {
			evictions.Add(1)
		}
	}})
	h := startHonest(t, addr, nil)
	const honest = 2
	waitSessions(t, s, honest)
	base := measure()
	start := time.Now()

	flood := make([]net.Conn, conns)
	for i := range flood {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer nc.Close()
		if i%4 == 0 { // a quarter start a HELLO they never finish
			io.WriteString(nc, "HELLO fxsh/1 ro")
		}
		flood[i] = nc
	}
	waitEvictions := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(ioWait)
		for evictions.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d evictions, want %d", evictions.Load(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitEvictions(conns - line.MaxHandshakes)
	if n := handshaking(s); n != line.MaxHandshakes {
		t.Errorf("%d connections handshaking, want %d", n, line.MaxHandshakes)
	}
	waitSessions(t, s, honest+line.MaxHandshakes)
	grown := int64(liveHeap()) - int64(base.heap)
	t.Logf("%d connections without HELLO opened in %v: %d held, %d KiB of heap, %d goroutines",
		conns, time.Since(start).Round(time.Millisecond), line.MaxHandshakes, grown>>10, runtime.NumGoroutine())
	if grown > line.MaxHandshakes*perConn+heapSlack {
		t.Errorf("the flood holds %d KiB of heap, bound %d KiB", grown>>10, (line.MaxHandshakes*perConn+heapSlack)>>10)
	}

	// With the flood still open: the sessions are served, and newcomers
	// (each new connection evicting one of the flood) register and search.
	t0 := time.Now()
	h.check(t)
	srv := handshake(t, addr, "server", nil)
	srv.send("REGISTER addr=:4300 n=1", fline("late/newcomer.txt", "late"), "END")
	srv.expectLike("OK addr=127.0.0.1:4300 files=1")
	cli := handshake(t, addr, "client", nil)
	cli.send("SEARCH q=newcomer")
	cli.expectLike("FOUND n=1", "F name=late/newcomer.txt * servers=127.0.0.1:4300", "END")
	t.Logf("during the flood: honest checks, a new file server registered and a new client searched in %v",
		time.Since(t0).Round(time.Millisecond))
	if d := time.Since(start); d >= line.HelloTimeout {
		t.Logf("(the test ran slower than HelloTimeout %v: %v)", line.HelloTimeout, d)
	}

	// MaxHandshakes more crowd out the rest of the flood: every one of it
	// is told why, except that a connection which sent a partial line may
	// see a reset instead (it is closed with input unread).
	var late []net.Conn
	for range line.MaxHandshakes {
		late = append(late, dial(t, addr).nc)
	}
	waitEvictions(conns)
	for i, nc := range flood {
		got, err := readEnd(nc)
		switch {
		case string(got) == evictedLine && err == nil:
		case i%4 == 0 && errors.Is(err, syscall.ECONNRESET) && (len(got) == 0 || string(got) == evictedLine):
		default:
			t.Fatalf("flood connection %d: %q, %v; want %q", i, got, err, evictedLine)
		}
		nc.Close()
	}
	for _, nc := range late {
		nc.Close()
	}
	for _, c := range []*tconn{srv, cli} {
		c.send("BYE")
		c.expectLike("BYE")
		c.nc.Close()
	}
	waitSessions(t, s, honest)
	h.check(t)
	base.settled(t, heapSlack)
}

// registerLines returns a REGISTER at addr of n files named prefix-I with
// names of nameLen bytes (at least), and END.
func registerLines(addr string, n, nameLen int, prefix string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "REGISTER addr=%s n=%d\n", addr, n)
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		name += strings.Repeat("x", max(0, nameLen-len(name)))
		fmt.Fprintf(&b, "F name=%s size=%d type=text mtime=1700000000 hash=blake3:%064x\n", name, i, i)
	}
	b.WriteString("END\n")
	return b.Bytes()
}

func budgetOf(s *Server) (used, pending load, regs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.budget.used, s.budget.pending, len(s.budget.byAddr)
}

func TestCatalogFull(t *testing.T) {
	const files, names = 1000, 50_000
	s, addr := startMaster(t, Config{MaxCatalogFiles: files, MaxCatalogNameBytes: names})
	h := startHonest(t, addr, nil) // 1 file, 22 bytes of name
	u := newUDPPeer(t)             // the address a and x compete for
	c := hello(t, addr, "client")

	reg := func(p *tconn, addr string, n, nameLen int, prefix, want string) {
		t.Helper()
		p.sendAsync(registerLines(addr, n, nameLen, prefix))()
		p.expectLike(want)
	}
	full := func(have int) string {
		return fmt.Sprintf("ERR 507 catalog full: %d of %d files registered here; try later or another master", have, files)
	}
	a, b, x := hello(t, addr, "server"), hello(t, addr, "server"), hello(t, addr, "server")
	steps := []struct {
		name string
		do   func()
	}{
		{"first fits", func() { reg(a, ":5001", 600, 10, "a", "OK addr=127.0.0.1:5001 files=600") }},
		{"over the files", func() { reg(b, ":5002", 400, 10, "b", full(601)) }},
		{"just fits", func() { reg(b, ":5002", 399, 10, "b", "OK addr=127.0.0.1:5002 files=399") }},
		{"full: a newcomer is refused", func() { reg(x, ":5003", 1, 10, "x", full(1000)) }},
		{"full: a rescan of the same size is taken", func() { reg(a, ":5001", 600, 10, "a2", "OK addr=127.0.0.1:5001 files=600") }},
		{"full: shrinking is taken", func() { reg(a, ":5001", 500, 10, "a3", "OK addr=127.0.0.1:5001 files=500") }},
		{"growing into the room made", func() { reg(b, ":5002", 499, 10, "b2", "OK addr=127.0.0.1:5002 files=499") }},
		{"growing past it", func() { reg(a, ":5001", 501, 10, "a4", full(1000)) }},
		{"full: moving to another address is taken", func() { reg(a, u.addr(), 500, 10, "a5", "OK addr="+u.addr()+" files=500") }},
		{"full: taking an address over is taken", func() {
			reg(x, u.addr(), 500, 10, "x2", "ERR 409 *") // with the proof that it is x's (hostile_owner_test.go)
			reg(x, u.addr()+" proof="+u.token(), 500, 10, "x2", "OK addr="+u.addr()+" files=500")
		}},
		{"the refused are still served", func() {
			for _, p := range []*tconn{b, x, h.reg} {
				p.send("PING")
				p.expectLike("PONG")
			}
			a.send("PING") // its address was taken over: it is told
			a.expectLike("ERR 404 not registered")
			c.send("SEARCH q=x2-499", "SEARCH q=b2-1 max=1", "SEARCH q=a5")
			c.expectLike("FOUND n=1", "F name=x2-499* servers="+u.addr(), "END",
				"FOUND n=1 more=1", "F name=b2-1*", "END", "NOT FOUND")
		}},
		{"leaving makes room", func() {
			b.send("BYE")
			b.expectLike("BYE")
			b.expectClosed()
			waitFor(t, c, "SEARCH q=b2-0", "NOT FOUND")
			reg(hello(t, addr, "server"), ":5004", 499, 10, "y", "OK addr=127.0.0.1:5004 files=499")
		}},
		{"over the names", func() {
			// 500 files left, with about 5 000 bytes of names: room for
			// 500 more files, but not for 46 000 more bytes of names.
			x.send("BYE")
			x.expectLike("BYE")
			x.expectClosed()
			waitFor(t, c, "SEARCH q=x2-0", "NOT FOUND")
			used, _, _ := budgetOf(s)
			if used.files != 500 || used.names+46_000 <= names {
				t.Fatalf("budget before: %v", &s.budget)
			}
			p := hello(t, addr, "server")
			reg(p, ":5005", 46, 1000, "long", fmt.Sprintf(
				"ERR 507 catalog full: %d of %d bytes of names registered here; try later or another master", used.names, names))
			reg(p, ":5005", 40, 1000, "long", "OK addr=127.0.0.1:5005 files=40")
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			used, pending, _ := budgetOf(s)
			if used.files > files || used.names > names || pending != (load{}) {
				t.Errorf("budget: %v", &s.budget)
			}
		})
	}
}

func TestCatalogFullRace(t *testing.T) {
	// 50 registrations of 100 files at once, room for 10: reservations
	// keep those in flight from passing the check together.
	const conns, per, room = 50, 100, 10
	s, addr := startMaster(t, Config{MaxCatalogFiles: room * per})
	var ps []*tconn
	for range conns {
		ps = append(ps, hello(t, addr, "server"))
	}
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { p.nc.Write(registerLines(fmt.Sprintf(":%d", 6000+i), per, 10, fmt.Sprint("r", i))) })
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, p := range ps {
		got, err := p.readLine()
		switch {
		case err != nil:
			t.Fatal(err)
		case strings.HasPrefix(got, "OK "):
			ok++
		case strings.HasPrefix(got, "ERR 507 catalog full: "):
			refused++
		default:
			t.Fatalf("reply %q", got)
		}
	}
	if ok != room || refused != conns-room {
		t.Errorf("%d registered, %d refused; want %d and %d", ok, refused, room, conns-room)
	}
	for _, p := range ps {
		p.nc.Close()
	}
	waitSessions(t, s, 0)
	if used, pending, regs := budgetOf(s); used != (load{}) || pending != (load{}) || regs != 0 {
		t.Errorf("after every peer left: %v", &s.budget)
	}
}

// TestRegisterChurn: a file server re-registering 10 000 files in a loop
// (two lists in turn, so that every registration rewrites the index) gets
// two registrations, then ERR 429 and the end of its connection, while a
// client's searches go on being answered.
func TestRegisterChurn(t *testing.T) {
	s, addr := startMaster(t, Config{})
	h := startHonest(t, addr, nil)
	lists := [][]byte{
		registerLines(":4400", line.MaxFiles, 0, "churn-a"),
		registerLines(":4400", line.MaxFiles, 0, "churn-b"),
	}

	stop := make(chan struct{})
	var lats []time.Duration
	searched := make(chan error, 1)
	c := hello(t, addr, "client")
	go func() { // the client searches meanwhile, 50 a second (under its request rate)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		searched <- func() error {
			for {
				select {
				case <-stop:
					return nil
				case <-tick.C:
				}
				t0 := time.Now()
				c.nc.SetDeadline(t0.Add(ioWait))
				if _, err := io.WriteString(c.nc, "SEARCH q=honestfile\n"); err != nil {
					return err
				}
				for _, want := range []string{"FOUND n=1", "F name=honest/honestfile.txt *", "END"} {
					got, err := c.r.ReadLine()
					if err != nil {
						return err
					}
					if g := strings.TrimSuffix(string(got), "\n"); !wildMatch(want, g) {
						return fmt.Errorf("search: got %q, want %q", g, want)
					}
				}
				lats = append(lats, time.Since(t0))
			}
		}()
	}()

	churner := hello(t, addr, "server")
	start := time.Now()
	accepted := 0
	const want = "ERR 429 slow down: more than 10000 files registered a minute; closing"
	for i := 0; ; i++ {
		wait := churner.sendAsync(lists[i%2])
		got, err := churner.readLine()
		wait()
		if err != nil {
			t.Fatalf("after %d registrations: %v", accepted, err)
		}
		if got == want {
			break
		}
		if got != "OK addr=127.0.0.1:4400 files=10000" {
			t.Fatalf("registration %d: %q", i+1, got)
		}
		accepted++
	}
	churner.expectClosed()
	elapsed := time.Since(start)
	close(stop)
	if err := <-searched; err != nil {
		t.Fatal(err)
	}
	// The burst holds two lists; the refill is one list a minute.
	if limit := 2 + int(elapsed.Seconds()*RegisterRate)/(line.MaxFiles+1); accepted < 2 || accepted > limit {
		t.Errorf("%d registrations of %d files taken in %v, want 2 to %d", accepted, line.MaxFiles, elapsed, limit)
	}
	waitFor(t, h.cli, "SEARCH q=churn", "NOT FOUND")
	if used, _, regs := budgetOf(s); used.files != 1 || regs != 1 {
		t.Errorf("after the churner left: %v", &s.budget)
	}
	slices.Sort(lats)
	if len(lats) == 0 {
		t.Fatal("no search completed")
	}
	t.Logf("churner: %d registrations of %d files, then 429, in %v; %d searches meanwhile: p50 %v, max %v",
		accepted, line.MaxFiles, elapsed.Round(time.Millisecond), len(lats),
		lats[len(lats)/2].Round(time.Microsecond), lats[len(lats)-1].Round(time.Microsecond))
	h.check(t)
}

func TestRegisterBucket(t *testing.T) {
	// Small numbers: a burst of 10 files at 1 file a second. A REGISTER
	// of n files costs n+1, checked at its header.
	_, addr := startMaster(t, Config{RegisterBurst: 10, RegisterRate: 1})
	c := hello(t, addr, "server")
	c.send("REGISTER addr=:1 n=4", fline("a", "a"), fline("b", "b"), fline("c", "c"), fline("d", "d"), "END")
	c.expect("OK addr=127.0.0.1:1 files=4")
	c.send("REGISTER addr=:1 n=3", fline("a", "a"), fline("b", "b"), fline("c", "c"), "END")
	c.expect("OK addr=127.0.0.1:1 files=3")
	// 1 token left (and what refilled meanwhile, well under 4).
	c.send("REGISTER addr=:1 n=3", fline("a", "a"))
	c.expect("ERR 429 slow down: more than 60 files registered a minute; closing")
	c.expectClosed()
	other := hello(t, addr, "server") // its own bucket
	other.send("REGISTER addr=:2 n=9", fline("a", "a"), fline("b", "b"), fline("c", "c"), fline("d", "d"),
		fline("e", "e"), fline("f", "f"), fline("g", "g"), fline("h", "h"), fline("i", "i"), "END")
	other.expect("OK addr=127.0.0.1:2 files=9")
}
