package master

// The hostile-peer kit: raw TCP peers that misbehave against a real master
// on loopback. Every case checks three things:
//   - the error the hostile peer gets (and whether its connection ends);
//   - that honest peers are still served: a registrar that heartbeats and
//     a client whose SEARCH finds the registrar's file, on connections
//     opened before the attack and on one opened after it;
//   - that resources come back: the goroutine count returns to what it was
//     before the case, and the live heap grows by less than a stated bound.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store/catalogtest"
)

// footprint is what a case may not leave behind.
type footprint struct {
	goroutines int
	heap       uint64
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func measure() footprint {
	return footprint{goroutines: runtime.NumGoroutine(), heap: liveHeap()}
}

// settled waits for the goroutine count to come back to base (the master
// ends a session's goroutine shortly after the close the test observed),
// then checks that the live heap grew by at most heapBound.
func (base footprint) settled(t *testing.T, heapBound uint64) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for runtime.NumGoroutine() > base.goroutines {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d, want at most %d as before\n%s",
				runtime.NumGoroutine(), base.goroutines, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h := liveHeap(); h > base.heap+heapBound {
		t.Errorf("live heap grew by %d KiB, bound %d KiB", (h-base.heap)>>10, heapBound>>10)
	}
}

// sessions returns how many connections the master is serving.
func sessions(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// waitSessions waits until the master serves exactly n connections.
func waitSessions(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for sessions(s) != n {
		if time.Now().After(deadline) {
			t.Fatalf("master serves %d connections, want %d", sessions(s), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// honestPeers are a registrar and a client that behave.
type honestPeers struct {
	addr     string
	key      []byte
	reg, cli *tconn
	word     string // in the registrar's file name, and in nothing else
}

func startHonest(t *testing.T, addr string, key []byte) *honestPeers {
	t.Helper()
	h := &honestPeers{addr: addr, key: key, word: "honestfile"}
	h.reg = handshake(t, addr, "server", key)
	h.reg.send("REGISTER addr=:4000 n=1", fline("honest/"+h.word+".txt", "honest"), "END")
	h.reg.expectLike("OK addr=127.0.0.1:4000 files=1")
	h.cli = handshake(t, addr, "client", key)
	h.check(t)
	return h
}

// check sees the honest peers served: a heartbeat, a SEARCH on the
// client's old connection and one on a new connection.
func (h *honestPeers) check(t *testing.T) {
	t.Helper()
	h.reg.send("PING")
	h.reg.expectLike("PONG")
	search := func(c *tconn) {
		t.Helper()
		c.send("SEARCH q=" + strings.ToUpper(h.word))
		c.expectLike("FOUND n=1", "F name=honest/"+h.word+".txt * servers=127.0.0.1:4000", "END")
	}
	search(h.cli)
	fresh := handshake(t, h.addr, "client", h.key)
	search(fresh)
	fresh.send("BYE")
	fresh.expectLike("BYE")
	fresh.expectClosed()
	fresh.nc.Close()
}

// handshake says HELLO, and answers the challenge when key is set.
func handshake(t *testing.T, addr, role string, key []byte) *tconn {
	t.Helper()
	if key == nil {
		return hello(t, addr, role)
	}
	c := dial(t, addr)
	cn := line.NewNonce()
	c.send("HELLO fxsh/1 role=" + role + " nonce=" + cn)
	mn := c.challenge()
	c.send("AUTH mac=" + line.ClientMAC(key, role, mn, cn))
	c.expectLike("HI fxsh/1 * mac=" + line.MasterMAC(key, mn, cn))
	return c
}

// expectLike is expect with "*" matching any run of characters anywhere.
func (c *tconn) expectLike(want ...string) {
	c.t.Helper()
	for _, w := range want {
		got, err := c.readLine()
		if err != nil {
			c.t.Fatalf("reading, want %q: %v", w, err)
		}
		if !wildMatch(w, got) {
			c.t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func wildMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(s, p)
		}
		j := strings.Index(s, p)
		if j < 0 {
			return false
		}
		s = s[j+len(p):]
	}
	return s == ""
}

// challenge reads "AUTH hmac-sha256 nonce=..." and returns the nonce.
func (c *tconn) challenge() string {
	c.t.Helper()
	got, err := c.readLine()
	if err != nil {
		c.t.Fatal(err)
	}
	m, _, err := line.ParseMsg([]byte(got + "\n"))
	if err != nil || m.Verb != line.VerbAuth || m.Arg(0) != line.AuthScheme || !line.ValidNonce(m.Value("nonce")) {
		c.t.Fatalf("challenge %q", got)
	}
	return m.Value("nonce")
}

// sendAsync writes b from another goroutine, as a peer that does not wait
// for answers would; the master may close in the middle, so write errors
// are expected. The returned func waits for the writer.
func (c *tconn) sendAsync(b []byte) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.nc.SetWriteDeadline(time.Now().Add(ioWait))
		c.nc.Write(b)
	}()
	return func() { <-done }
}

// junk returns n bytes of random binary without LF, from a fixed seed so
// that a failure replays.
func junk(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
		if b[i] == '\n' {
			b[i] = 0
		}
	}
	return b
}

// fileLines returns a REGISTER of n files named prefix-I.txt, with the
// given count in its header, and END.
func fileLines(header, n int, prefix string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "REGISTER addr=:4100 n=%d\n", header)
	for i := range n {
		fmt.Fprintf(&b, "F name=%s-%d.txt size=%d type=text mtime=1700000000 hash=blake3:%064x\n", prefix, i, i, i)
	}
	b.WriteString("END\n")
	return b.Bytes()
}

// A case's heap bound is per hostile connection plus a fixed slack for
// the runtime's own caches.
const heapSlack = 4 << 20

func TestHostileGarbage(t *testing.T) {
	_, addr := startMaster(t, Config{HelloTimeout: 2 * time.Second})
	h := startHonest(t, addr, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	longest := "LIST glob=" + strings.Repeat("x", line.MaxLine-len("LIST glob=")-1) // LF makes MaxLine

	tests := []struct {
		name  string
		hello bool     // say HELLO first
		send  []byte   // written at once, or from another goroutine when large
		want  []string // lines expected back ("*" suffix: prefix)
		open  bool     // the connection stays usable (PING answered)
	}{
		{"binary junk first", false, append(junk(rng, 64), '\n'), []string{"ERR 400 invalid UTF-8: *"}, false},
		{"NULs first", false, []byte("\x00\x00\x00\n"), []string{`ERR 400 invalid verb: "\x00\x00\x00"`}, false},
		{"invalid UTF-8 HELLO", false, []byte("HELLO fxsh/1 role=client\xff\n"),
			[]string{`ERR 400 invalid UTF-8: "HELLO fxsh/1 role=client\xff"`}, false},
		{"HTTP request", false, []byte("GET / HTTP/1.1\r\nHost: master\r\n\r\n"), []string{"ERR 403 say HELLO fxsh/1 first"}, false},
		{"TLS hello", false, append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, '\n'),
			[]string{"ERR 400 invalid UTF-8: *"}, false},
		{"long line first", false, []byte(strings.Repeat("A", line.MaxLine) + "\n"),
			[]string{"ERR 413 line longer than 4096 bytes"}, false},
		{"long line", true, []byte("LIST glob=" + strings.Repeat("x", line.MaxLine) + "\n"),
			[]string{"ERR 413 line longer than 4096 bytes"}, false},
		{"endless line", true, bytes.Repeat([]byte("SEARCH q=aaaaaaa "), 1<<16), // 1 MiB, no LF
			[]string{"ERR 413 line longer than 4096 bytes"}, false},
		{"longest line", true, []byte(longest + "\n"), []string{"NOT FOUND"}, true},
		{"control and empty lines", true, []byte("\r\n\n   \nLIST\r\r\nLIST\x1b[2J\nSEARCH q=\x07\n"),
			[]string{`ERR 400 empty line: ""`, `ERR 400 empty line: ""`, `ERR 400 empty line: ""`,
				`ERR 400 invalid verb: "LIST\r"`, `ERR 400 invalid verb: "LIST\x1b[2J"`,
				`ERR 400 raw control character: "\a"`}, true},
		{"escapes", true, []byte(`SEARCH q=\x41` + "\n" + `SEARCH q=\` + "\n" + `SEARCH q=\x0` + "\n" + `SEARCH q=\u00e9` + "\n"),
			[]string{`ERR 400 bad \x escape: "\\x41"`, `ERR 400 dangling backslash: "\\"`,
				`ERR 400 short \x escape: "\\x0"`, `ERR 400 unknown escape: "\\u00e9"`}, true},
		{"too many tokens", true, []byte("LIST" + strings.Repeat(" a", line.MaxTokens) + "\n"),
			[]string{`ERR 400 too many tokens: "a"`}, true},
	}
	// 100 lines of random bytes after HELLO: one ERR 400 each.
	var lines []byte
	var want []string
	for range 100 {
		lines = append(append(lines, junk(rng, 1+rng.IntN(300))...), '\n')
		want = append(want, "ERR 400 *")
	}
	tests = append(tests, struct {
		name  string
		hello bool
		send  []byte
		want  []string
		open  bool
	}{"random lines", true, lines, want, true})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := measure()
			c := dial(t, addr)
			if tt.hello {
				c.send("HELLO fxsh/1 role=client")
				c.expectLike("HI *")
			}
			wait := c.sendAsync(tt.send)
			c.expectLike(tt.want...)
			if tt.open {
				c.send("PING")
				c.expectLike("PONG")
			} else {
				c.expectClosed()
			}
			wait()
			c.nc.Close()
			h.check(t)
			base.settled(t, heapSlack)
		})
	}
}

func TestHostileRegistration(t *testing.T) {
	_, addr := startMaster(t, Config{})
	h := startHonest(t, addr, nil)
	hash := catalogtest.Hash

	t.Run("10001 files", func(t *testing.T) {
		for _, full := range []bool{false, true} {
			base := measure()
			c := hello(t, addr, "server")
			if full { // the whole list at once, as a careless registrar would
				wait := c.sendAsync(fileLines(line.MaxFiles+1, line.MaxFiles+1, "big"))
				c.expectLike("ERR 414 too many files: 10001, at most 10000 a registration; closing")
				c.expectClosed()
				wait()
			} else {
				c.send("REGISTER addr=:4100 n=10001")
				c.expectLike("ERR 414 too many files: 10001, at most 10000 a registration; closing")
				c.expectClosed()
			}
			c.nc.Close()
			h.check(t)
			base.settled(t, heapSlack)
		}
	})
	t.Run("10000 claimed, 10001 sent", func(t *testing.T) {
		base := measure()
		c := hello(t, addr, "server")
		b := fileLines(line.MaxFiles, line.MaxFiles+1, "big")
		wait := c.sendAsync(b)
		c.expectLike("ERR 400 registration: expected END after 10000 F lines; closing")
		c.expectClosed()
		wait()
		c.nc.Close()
		h.check(t)
		base.settled(t, heapSlack)
	})
	t.Run("10000 files, the limit", func(t *testing.T) {
		// F lines are not counted by the request bucket but by the
		// registration bucket, whose burst holds two full lists: 10 000
		// of them at once (50 times the request burst) are accepted.
		base := measure()
		c := hello(t, addr, "server")
		c.sendAsync(fileLines(line.MaxFiles, line.MaxFiles, "big"))()
		c.expectLike("OK addr=127.0.0.1:4100 files=10000")
		h.cli.send("SEARCH q=big-9999.txt", "LIST glob=big-* max=1")
		h.cli.expectLike("FOUND n=1", "F name=big-9999.txt *", "END", "FOUND n=1 more=1", "F name=big-0.txt *", "END")
		c.send("BYE")
		c.expectLike("BYE")
		c.expectClosed()
		h.cli.send("SEARCH q=big")
		h.cli.expectLike("NOT FOUND")
		c.nc.Close()
		h.check(t)
		base.settled(t, heapSlack)
	})

	// Bad F lines. The registration is refused as a whole after END (no
	// file of it, good or bad, enters the catalog), the first fault is
	// named, the registration the connection held before stays, and the
	// connection stays usable.
	long := strings.Repeat("n", line.MaxName+1)
	good := fline("fine/kept.txt", "kept")
	bad := []struct {
		name string
		f    string // the second F line
		want string
	}{
		{"dot dot", fline("../etc/passwd", "p"), `bad name: ".." component: "../etc/passwd"`},
		{"dot dot inside", fline("a/../../b", "p"), `bad name: ".." component: "a/../../b"`},
		{"absolute", fline("/etc/passwd", "p"), `bad name: absolute: "/etc/passwd"`},
		{"NUL escaped", fline("a\x00b", "p"), `bad name: control character: "a\x00b"`},
		{"NUL raw", "F name=a\x00b size=1 type=text mtime=1 hash=" + hash("p"), `raw control character: "a\x00b"`},
		{"terminal escape", fline("evil\x1b[2J.txt", "p"), `bad name: control character: "evil\x1b[2J.txt"`},
		{"C1 control", fline("a\u009bb", "p"), `bad name: control character: "a\u009bb"`},
		{"bidi override", fline("photo\u202egpj.exe", "p"), `bad name: control character: "photo\u202egpj.exe"`},
		{"newline", fline("a\nb", "p"), `bad name: control character: "a\nb"`},
		{"too long", fline(long, "p"), `bad name: longer than 1024 bytes: "` + long[:80] + `..."`},
		{"not clean", fline("a//b", "p"), `bad name: empty component: "a//b"`},
		{"trailing slash", fline("dir/", "p"), `bad name: empty component: "dir/"`},
		{"dot", fline(".", "p"), `bad name: "." component: "."`},
		{"empty name", "F name= size=1 type=text mtime=1 hash=" + hash("p"), `bad name: empty: ""`},
		{"invalid UTF-8", "F name=\xff size=1 type=text mtime=1 hash=" + hash("p"), `invalid UTF-8: "F name=\xff size=1 type=text mtime=1 hash=blake3:*`},
		{"short hash", "F name=x size=1 type=text mtime=1 hash=blake3:00", `bad hash: "blake3:00"`},
		{"upper-case hash", "F name=x size=1 type=text mtime=1 hash=" + strings.ToUpper(hash("p")), `bad hash: "BLAKE3:*`},
		{"md5 hash", "F name=x size=1 type=text mtime=1 hash=md5:d41d8cd98f00b204e9800998ecf8427e", `bad hash: "md5:d41d8cd98f00b204e9800998ecf8427e"`},
		{"no hash", "F name=x size=1 type=text mtime=1", `missing field: "hash"`},
		{"negative size", "F name=x size=-1 type=text mtime=1 hash=" + hash("p"), `negative size: "-1"`},
		{"huge size", "F name=x size=99999999999999999999 type=text mtime=1 hash=" + hash("p"), `field size: not an integer: "99999999999999999999"`},
		{"bad type", "F name=x size=1 type=a/b mtime=1 hash=" + hash("p"), `bad type: "a/b"`},
		{"duplicate", good, `duplicate name: "fine/kept.txt"`},
		{"several faults", fline("../a", "p") + "\n" + fline("/b", "p"), `bad name: ".." component: "../a"`},
	}
	t.Run("bad files", func(t *testing.T) {
		base := measure()
		c := hello(t, addr, "server")
		c.send("REGISTER addr=:4200 n=1", fline("before.txt", "b"), "END")
		c.expectLike("OK addr=127.0.0.1:4200 files=1")
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) {
				n := 2 + strings.Count(tt.f, "\n")
				c.send(fmt.Sprintf("REGISTER addr=:4200 n=%d", n), good, tt.f, "END")
				c.expectLike("ERR 400 registration: F line 2: " + tt.want)
				h.cli.send("SEARCH q=kept", "SEARCH q=before")
				h.cli.expectLike("NOT FOUND", "FOUND n=1", "F name=before.txt *", "END")
				c.send("PING")
				c.expectLike("PONG")
			})
		}
		// Corrected, the same registration goes through.
		c.send("REGISTER addr=:4200 n=1", good, "END")
		c.expectLike("OK addr=127.0.0.1:4200 files=1")
		h.cli.send("SEARCH q=kept", "SEARCH q=before")
		h.cli.expectLike("FOUND n=1", "F name=fine/kept.txt *", "END", "NOT FOUND")
		c.nc.Close()
		waitFor(t, h.cli, "SEARCH q=kept", "NOT FOUND")
		h.check(t)
		base.settled(t, heapSlack)
	})
}

// A REGISTER header claims up to MaxFiles files; what the master allocates
// must follow the F lines that arrive, not the claim (it preallocated the
// claim: 200 headers of 30 bytes took 240 MB).
func TestPendingRegistrationsCostLittle(t *testing.T) {
	const conns, perConn = 200, 64 << 10 // heap per pending registration, both ends
	firsts := make(chan struct{}, conns)
	s, addr := startMaster(t, Config{Trace: func(e TraceEvent) {
		if e.Dir == line.In && strings.HasPrefix(e.Line, "F name=first.txt ") {
			firsts <- struct{}{}
		}
	}})
	h := startHonest(t, addr, nil)
	waitSessions(t, s, 2)
	base := measure()
	var cs []net.Conn // not tconns: their 1 MiB read buffers would swamp the figure
	for i := range conns {
		c := hello(t, addr, "server")
		c.send(fmt.Sprintf("REGISTER addr=:%d n=%d", 5000+i, line.MaxFiles), fline("first.txt", "f"))
		cs = append(cs, c.nc)
	}
	for range conns { // every session has read its header and one F line
		<-firsts
	}
	h.check(t)
	if grown := int64(liveHeap()) - int64(base.heap); grown > conns*perConn {
		t.Errorf("%d pending registrations take %d KiB, bound %d KiB", conns, grown>>10, conns*perConn>>10)
	} else {
		t.Logf("%d pending registrations take %d KiB (%d B each)", conns, grown>>10, grown/conns)
	}
	for _, nc := range cs {
		nc.Close()
	}
	waitSessions(t, s, 2)
	h.check(t)
	base.settled(t, heapSlack)
}

func TestHostileBeforeHello(t *testing.T) {
	_, addr := startMaster(t, Config{})
	h := startHonest(t, addr, nil)
	for _, req := range []string{
		"LIST", "SEARCH q=honestfile", "PEERS", "PING", "BYE", "REGISTER addr=:1 n=10000",
		fline("a.txt", "a"), "END", "AUTH mac=00", "OFFER to=bob name=a size=1", "HI fxsh/1", "ACCEPT offer=1",
	} {
		t.Run(req, func(t *testing.T) {
			base := measure()
			c := dial(t, addr)
			c.send(req)
			c.expectLike("ERR 403 say HELLO fxsh/1 first")
			c.expectClosed()
			c.nc.Close()
			h.check(t)
			base.settled(t, heapSlack)
		})
	}
}

func TestHostileAuth(t *testing.T) {
	key := []byte("classroom secret")
	_, addr := startMaster(t, Config{Key: key, HelloTimeout: time.Second, MaxHandshakesPerIP: -1}) // the guesses come from 127.0.0.1 like the honest peers
	h := startHonest(t, addr, key)

	// A genuine exchange an eavesdropper recorded.
	rec := dial(t, addr)
	recCN := line.NewNonce()
	rec.send("HELLO fxsh/1 role=server nonce=" + recCN)
	recMN := rec.challenge()
	recMAC := line.ClientMAC(key, "server", recMN, recCN)
	rec.send("AUTH mac=" + recMAC)
	rec.expectLike("HI fxsh/1 * mac=" + line.MasterMAC(key, recMN, recCN))
	rec.nc.Close()

	tests := []struct {
		name   string
		nonce  string                     // client nonce in HELLO ("" for none)
		answer func(mnonce string) string // "" sends nothing
	}{
		{"wrong key", "", func(mn string) string { return "AUTH mac=" + line.ClientMAC([]byte("guess"), "server", mn, "") }},
		{"missing key: PING", "", func(string) string { return "PING" }},
		{"missing key: REGISTER", "", func(string) string { return "REGISTER addr=:1 n=0" }},
		{"missing key: AUTH", "", func(string) string { return "AUTH" }},
		{"missing key: empty mac", "", func(string) string { return "AUTH mac=" }},
		{"random mac", "", func(string) string { return "AUTH mac=" + line.NewNonce() + line.NewNonce() }},
		{"replayed AUTH", recCN, func(string) string { return "AUTH mac=" + recMAC }},
		{"replayed HI mac", recCN, func(string) string { return "AUTH mac=" + line.MasterMAC(key, recMN, recCN) }},
		{"second HELLO", "", func(string) string { return "HELLO fxsh/1 role=server" }},
		{"silent", "", func(string) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := measure()
			c := dial(t, addr)
			hello := "HELLO fxsh/1 role=server"
			if tt.nonce != "" {
				hello += " nonce=" + tt.nonce
			}
			c.send(hello)
			mn := c.challenge()
			if mn == recMN {
				t.Fatal("the master reused a nonce")
			}
			if a := tt.answer(mn); a != "" {
				c.send(a)
				c.expectLike("ERR 401 authentication failed")
			} // else: closed at HelloTimeout, without a word
			c.expectClosed()
			c.nc.Close()
			h.check(t)
			base.settled(t, heapSlack)
		})
	}
	t.Run("guessing", func(t *testing.T) {
		// No lockout: each guess costs the guesser a connection and a
		// 2^-256 chance. 200 guesses, 20 at a time.
		base := measure()
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for g := range 20 {
			wg.Go(func() {
				for range 10 {
					nc, err := net.Dial("tcp", addr)
					if err != nil {
						errs <- err
						return
					}
					nc.SetDeadline(time.Now().Add(ioWait))
					r := line.NewReader(nc, 0)
					io.WriteString(nc, "HELLO fxsh/1 role=client\n")
					m, err := r.ReadMsg()
					if err == nil {
						io.WriteString(nc, "AUTH mac="+line.ClientMAC([]byte(fmt.Sprint("guess", g)), "client", m.Value("nonce"), "")+"\n")
						m, err = r.ReadMsg()
					}
					if err == nil && (m.Verb != "ERR" || m.Arg(0) != "401") {
						err = fmt.Errorf("guess answered %v", m)
					}
					if err == nil {
						if _, err2 := r.ReadLine(); err2 != io.EOF {
							err = fmt.Errorf("after 401: %v, want EOF", err2)
						}
					}
					nc.Close()
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		h.check(t)
		base.settled(t, heapSlack)
	})
}

func TestHostileFlood(t *testing.T) {
	_, addr := startMaster(t, Config{}) // the real limits: 100 requests/s, burst 200
	h := startHonest(t, addr, nil)
	junkLine := "FROB x=1\n"
	tests := []struct {
		name, line, reply string
	}{
		{"PING", "PING\n", "PONG"},
		{"garbage", junkLine, `ERR 400 unknown verb "FROB"`},
		{"F outside a registration", fline("a", "a") + "\n", "ERR 403 F outside a registration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := measure()
			c := hello(t, addr, "client") // HELLO took one token
			start := time.Now()
			wait := c.sendAsync(bytes.Repeat([]byte(tt.line), 10*DefaultBurst))
			n := 0
			for {
				got, err := c.readLine()
				if err != nil {
					t.Fatalf("after %d replies: %v", n, err)
				}
				if got == "ERR 429 slow down: more than 100 requests a second" {
					break
				}
				if got != tt.reply {
					t.Fatalf("reply %d: %q, want %q", n, got, tt.reply)
				}
				n++
			}
			c.expectClosed()
			wait()
			// The burst less HELLO's token, plus what refilled meanwhile.
			refill := int(time.Since(start).Seconds()*DefaultRate) + 1
			if n < DefaultBurst-1 || n > DefaultBurst-1+refill {
				t.Errorf("%d requests answered before 429, want %d to %d", n, DefaultBurst-1, DefaultBurst-1+refill)
			}
			c.nc.Close()
			h.check(t)
			base.settled(t, heapSlack)
		})
	}
	t.Run("20 flooders", func(t *testing.T) {
		base := measure()
		var wg sync.WaitGroup
		for range 20 {
			c := hello(t, addr, "client")
			wg.Go(func() {
				c.nc.Write(bytes.Repeat([]byte("SEARCH q=honestfile\n"), 10*DefaultBurst))
			})
			wg.Go(func() {
				// Read to the end: the last line must be the 429.
				c.nc.SetReadDeadline(time.Now().Add(ioWait))
				b, _ := io.ReadAll(c.nc)
				c.nc.Close()
				if !bytes.HasSuffix(b, []byte("\nERR 429 slow down: more than 100 requests a second\n")) {
					t.Errorf("flood ended with %q", b[max(0, len(b)-80):])
				}
			})
		}
		h.check(t) // while they flood
		wg.Wait()
		h.check(t)
		base.settled(t, heapSlack)
	})
}

func TestSlowloris(t *testing.T) {
	const (
		conns        = 1000
		helloTimeout = 4 * time.Second
		perConn      = 32 << 10 // heap per pending connection, both ends
	)
	// The handshake cap is raised above conns here so that the deadline
	// is what ends them; TestHandshakeFlood floods the real cap.
	s, addr := startMaster(t, Config{HelloTimeout: helloTimeout, MaxHandshakes: conns + 10, MaxHandshakesPerIP: -1})
	h := startHonest(t, addr, nil)
	const honest = 2
	waitSessions(t, s, honest)
	base := measure()

	type loris struct {
		nc    net.Conn
		start time.Time
	}
	ls := make([]loris, conns)
	for i := range ls {
		start := time.Now()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer nc.Close()
		// A quarter start a HELLO they never finish.
		if i%4 == 0 {
			io.WriteString(nc, "HELLO fxsh/1 ro")
		}
		ls[i] = loris{nc, start}
	}
	waitSessions(t, s, honest+conns)
	grown := int64(liveHeap()) - int64(base.heap)
	t.Logf("%d connections without HELLO: %d KiB of heap (%d B each), %d goroutines",
		conns, grown>>10, grown/conns, runtime.NumGoroutine())
	if grown > conns*perConn {
		t.Errorf("%d pending connections take %d KiB, bound %d KiB", conns, grown>>10, conns*perConn>>10)
	}
	// The honest peers are served while every slow connection is open.
	for range 3 {
		h.check(t)
	}
	if n := sessions(s); n < honest+conns {
		t.Fatalf("only %d connections open after the honest checks, want %d: the test ran slower than HelloTimeout", n, honest+conns)
	}

	// Each is closed at HelloTimeout, never before, without a word.
	for i, l := range ls {
		l.nc.SetReadDeadline(time.Now().Add(helloTimeout + ioWait))
		b, err := io.ReadAll(l.nc)
		if len(b) > 0 || err != nil {
			t.Fatalf("connection %d: got %q, %v; want a silent close", i, b, err)
		}
		if d := time.Since(l.start); d < helloTimeout {
			t.Fatalf("connection %d closed after %v, before HelloTimeout %v", i, d, helloTimeout)
		}
		l.nc.Close()
	}
	waitSessions(t, s, honest)
	h.check(t)
	base.settled(t, heapSlack)
}

// helloRaw opens a connection and says HELLO as a client, without the
// 1 MiB read buffer of a tconn (a thousand of those would swamp the heap
// figures).
func helloRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(ioWait))
	io.WriteString(nc, "HELLO fxsh/1 role=client\n")
	var got []byte
	var b [1]byte
	for !bytes.HasSuffix(got, []byte("\n")) {
		if _, err := nc.Read(b[:]); err != nil {
			t.Fatalf("after HELLO: %q, %v", got, err)
		}
		got = append(got, b[0])
	}
	if !bytes.HasPrefix(got, []byte("HI fxsh/1 ")) {
		t.Fatalf("after HELLO: %q", got)
	}
	nc.SetDeadline(time.Time{})
	return nc
}

func TestOverCap(t *testing.T) {
	// The real cap, line.MaxConns, filled with sessions past HELLO (the
	// connections still handshaking have their own cap: see
	// TestHandshakeFlood).
	var mu sync.Mutex
	refused := 0
	// Every connection comes from 127.0.0.1: the per-IP cap is off here
	// (TestConnsPerIP tests it).
	s, addr := startMaster(t, Config{MaxConnsPerIP: -1, OnEvent: func(e Event) {
		if e.Kind == ConnRefused && e.Reason == "too many connections" {
			mu.Lock()
			refused++
			mu.Unlock()
		}
	}})
	h := startHonest(t, addr, nil)
	const honest = 2
	waitSessions(t, s, honest)
	base := measure()
	var idle []net.Conn
	for range line.MaxConns - honest {
		idle = append(idle, helloRaw(t, addr))
	}
	waitSessions(t, s, line.MaxConns)

	// Over the cap: the master accepts, says 503 and closes, without
	// serving what the peer sent (half of these send HELLO at once). The
	// peer reads the 503 and then a clean end of stream, not a reset
	// (lingerClose). The connections the master serves are not disturbed.
	const over = 200
	var wg sync.WaitGroup
	errs := make(chan error, over)
	for i := range over {
		wg.Go(func() {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			if i%2 == 0 {
				io.WriteString(nc, "HELLO fxsh/1 role=client\n")
			}
			nc.SetReadDeadline(time.Now().Add(ioWait))
			b, err := io.ReadAll(nc)
			if string(b) != "ERR 503 too many connections, try later\n" || err != nil {
				errs <- fmt.Errorf("over the cap: got %q, %v", b, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := sessions(s); n != line.MaxConns {
		t.Errorf("serving %d connections, want %d", n, line.MaxConns)
	}
	// The honest peers' old connections still work; a new one is refused.
	h.reg.send("PING")
	h.reg.expectLike("PONG")
	h.cli.send("SEARCH q=honestfile")
	h.cli.expectLike("FOUND n=1", "F name=honest/honestfile.txt *", "END")
	late := dial(t, addr)
	late.expectLike("ERR 503 too many connections, try later")
	late.expectClosed()
	mu.Lock()
	if refused != over+1 {
		t.Errorf("%d ConnRefused events, want %d", refused, over+1)
	}
	mu.Unlock()

	// The slots free up as the idle connections go.
	for _, nc := range idle {
		nc.Close()
	}
	waitSessions(t, s, honest)
	h.check(t)
	base.settled(t, heapSlack)
}

func TestPeerThatDoesNotRead(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	s, addr := startMaster(t, Config{WriteTimeout: writeTimeout})
	h := startHonest(t, addr, nil)
	big := hello(t, addr, "server")
	const files = 2000 // a LIST reply of about 250 KB
	big.sendAsync(fileLines(files, files, "bulk"))()
	big.expectLike(fmt.Sprintf("OK addr=127.0.0.1:4100 files=%d", files))

	t.Run("idle longer than WriteTimeout", func(t *testing.T) {
		// A reply larger than the write buffer, after an idle spell:
		// the deadline of the previous reply must not cut this one.
		c := hello(t, addr, "client")
		time.Sleep(2 * writeTimeout)
		c.send("LIST glob=bulk-*")
		c.expectLike(fmt.Sprintf("FOUND n=%d", files))
		for range files {
			c.expectLike("F name=bulk-*")
		}
		c.expectLike("END")
	})
	t.Run("never reads", func(t *testing.T) {
		base := measure()
		before := sessions(s)
		c := hello(t, addr, "client")
		c.nc.(*net.TCPConn).SetReadBuffer(4096)
		c.send(strings.Repeat("LIST glob=bulk-*\n", 100)) // 25 MB of replies
		// The master gives up on the write after WriteTimeout and ends
		// the session; the honest peers are served meanwhile.
		h.check(t)
		waitSessions(t, s, before)
		c.nc.Close()
		h.check(t)
		base.settled(t, heapSlack)
	})
}
