package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
	"github.com/fxshell/fxsh/store/memcat"
)

const ioWait = 10 * time.Second // generous: tests assert outcomes, not timing

func startMaster(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Catalog == nil {
		ttl := cfg.TTL
		if ttl == 0 {
			ttl = line.DefaultTTL
		}
		cat := memcat.New(ttl)
		t.Cleanup(func() { cat.Close() })
		cfg.Catalog = cat
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioWait)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

type tconn struct {
	t  *testing.T
	nc net.Conn
	r  *line.Reader
}

func dial(t *testing.T, addr string) *tconn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &tconn{t: t, nc: nc, r: line.NewReader(nc, 1<<20)}
}

func (c *tconn) send(lines ...string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(ioWait))
	if _, err := io.WriteString(c.nc, strings.Join(lines, "\n")+"\n"); err != nil {
		c.t.Fatalf("send %q: %v", lines, err)
	}
}

func (c *tconn) readLine() (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(ioWait))
	b, err := c.r.ReadLine()
	return strings.TrimRight(string(b), "\r\n"), err
}

// expect reads one line per want and compares exactly; a want ending in
// "*" compares as a prefix.
func (c *tconn) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		got, err := c.readLine()
		if err != nil {
			c.t.Fatalf("reading, want %q: %v", w, err)
		}
		if p, ok := strings.CutSuffix(w, "*"); ok && strings.HasPrefix(got, p) {
			continue
		}
		if got != w {
			c.t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func (c *tconn) expectClosed() {
	c.t.Helper()
	if got, err := c.readLine(); err == nil {
		c.t.Fatalf("got %q, want the connection closed", got)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", ioWait)
	}
}

const hiDefault = "HI fxsh/1 hb=10 ttl=30 maxline=4096 maxname=1024 maxfiles=10000"

func hello(t *testing.T, addr, role string) *tconn {
	t.Helper()
	c := dial(t, addr)
	c.send("HELLO fxsh/1 role=" + role)
	c.expect("HI fxsh/1 *")
	return c
}

func fline(name, content string) string {
	f := catalogtest.File(name, content)
	b, _ := line.AppendMsg(nil, line.FileMsg(store.Entry{File: f}))
	return strings.TrimSuffix(string(b), "\n")
}

func TestHandshake(t *testing.T) {
	_, addr := startMaster(t, Config{HelloTimeout: 300 * time.Millisecond})
	tests := []struct {
		name   string
		send   []string
		expect []string
		closed bool
	}{
		{"hello", []string{"HELLO fxsh/1 role=client"}, []string{hiDefault}, false},
		{"lower case verb, crlf", []string{"hello fxsh/1 role=server\r"}, []string{hiDefault}, false},
		{"request first", []string{"LIST"}, []string{"ERR 403 say HELLO fxsh/1 first"}, true},
		{"bad version", []string{"HELLO fxsh/9 role=client"}, []string{`ERR 400 unsupported version "fxsh/9"; this master speaks fxsh/1`}, true},
		{"bad role", []string{"HELLO fxsh/1 role=king"}, []string{`ERR 400 role must be client, server or receiver, not "king"`}, true},
		{"garbage", []string{"\x01\x02"}, []string{`ERR 400 invalid verb: "\x01\x02"`}, true},
		{"silent", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			if tt.send != nil {
				c.send(tt.send...)
			}
			c.expect(tt.expect...)
			if tt.closed {
				c.expectClosed()
				return
			}
			c.send("PING", "HELLO fxsh/1 role=client")
			c.expect("PONG", "ERR 403 HELLO: handshake already done")
		})
	}
}

func TestKey(t *testing.T) {
	key := []byte("s3cret")
	_, addr := startMaster(t, Config{Key: key})
	readNonce := func(c *tconn) string {
		got, err := c.readLine()
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := line.ParseMsg([]byte(got + "\n"))
		if err != nil || m.Verb != "AUTH" || m.Arg(0) != line.AuthScheme || !line.ValidNonce(m.Value("nonce")) {
			t.Fatalf("challenge %q", got)
		}
		return m.Value("nonce")
	}
	t.Run("right key", func(t *testing.T) {
		c := dial(t, addr)
		cn := line.NewNonce()
		c.send("HELLO fxsh/1 role=server nonce=" + cn)
		mn := readNonce(c)
		c.send("AUTH mac=" + line.ClientMAC(key, "server", mn, cn))
		c.expect("HI fxsh/1 hb=10 ttl=30 maxline=4096 maxname=1024 maxfiles=10000 mac=" + line.MasterMAC(key, mn, cn))
		c.send("PING")
		c.expect("PONG")
	})
	for _, tt := range []struct{ name, answer string }{
		{"wrong key", "AUTH mac=" + line.ClientMAC([]byte("guess"), "server", "x", "")},
		{"role swapped", ""}, // filled below: a MAC for another role
		{"no answer", "PING"},
		{"replayed nonce", "AUTH mac=" + line.ClientMAC(key, "server", strings.Repeat("0", 32), "")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			c.send("HELLO fxsh/1 role=server")
			mn := readNonce(c)
			answer := tt.answer
			if answer == "" {
				answer = "AUTH mac=" + line.ClientMAC(key, "client", mn, "")
			}
			c.send(answer)
			c.expect("ERR 401 authentication failed")
			c.expectClosed()
		})
	}
}

func TestRegisterListSearchPeers(t *testing.T) {
	_, addr := startMaster(t, Config{})
	a := hello(t, addr, "server")
	a.send("REGISTER addr=:5001 n=2", fline("docs/Report 2024.pdf", "r"), fline("a=b.txt", "x"), "END")
	a.expect("OK addr=127.0.0.1:5001 files=2")
	b := hello(t, addr, "server")
	b.send("REGISTER addr=10.1.2.3:5002 n=1", fline("docs/Report 2024.pdf", "r"), "END")
	b.expect("OK addr=10.1.2.3:5002 files=1")
	rx := hello(t, addr, "receiver")
	rx.send("REGISTER addr=:6000 n=0 name=bob", "END")
	rx.expect("OK addr=127.0.0.1:6000 files=0")

	c := hello(t, addr, "client")
	c.send("LIST")
	c.expect("FOUND n=2",
		"F name=a=b.txt size=1 type=text mtime=1700000000 hash="+catalogtest.Hash("x")+" servers=127.0.0.1:5001",
		`F name=docs/Report\s2024.pdf size=1 type=text mtime=1700000000 hash=`+catalogtest.Hash("r")+" servers=10.1.2.3:5002,127.0.0.1:5001",
		"END")
	c.send("LIST glob=docs/*", "LIST glob=*.mp3", "LIST glob=[", "LIST max=1")
	c.expect("FOUND n=1", "F name=docs/Report*", "END", "NOT FOUND", `ERR 400 bad glob "["`, "FOUND n=1 more=1", "F name=a=b.txt *", "END")
	c.send(`SEARCH q=REPORT\spdf`, "SEARCH q=nothing", "SEARCH q=", "SEARCH q=x max=0", "SEARCH q=t max=1")
	c.expect("FOUND n=1", "F name=docs/Report*", "END", "NOT FOUND", "ERR 400 SEARCH needs q=WORDS",
		"ERR 400 max must be a number from 1 to 10000", "FOUND n=1 more=1", "F *", "END")
	c.send("PEERS")
	c.expect("FOUND n=3",
		"P addr=10.1.2.3:5002 role=server files=1 since=*",
		"P addr=127.0.0.1:5001 role=server files=2 since=*",
		"P addr=127.0.0.1:6000 role=receiver files=0 since=*",
		"END")

	// Replacement, then BYE removes at once, closing removes at once.
	a.send("REGISTER addr=:5001 n=1", fline("new.txt", "n"), "END")
	a.expect("OK addr=127.0.0.1:5001 files=1")
	c.send("LIST glob=*.txt")
	c.expect("FOUND n=1", "F name=new.txt *", "END")
	a.send("BYE")
	a.expect("BYE")
	a.expectClosed()
	b.nc.Close()
	waitFor(t, c, "LIST", "NOT FOUND")
	c.send("PEERS")
	c.expect("FOUND n=1", "P addr=127.0.0.1:6000 role=receiver files=0 since=*", "END")
}

// TestListFolder reads a folder by pages: only names under the prefix, at
// any depth, each page continued after its last record, and the refusals
// of a bad folder query.
func TestListFolder(t *testing.T) {
	_, addr := startMaster(t, Config{})
	a := hello(t, addr, "server")
	a.send("REGISTER addr=:5001 n=5", fline("lectures/a.pdf", "1"), fline("lectures/w1/b.pdf", "2"),
		fline("lectures/w1/deep/c.txt", "3"), fline("lecturesx/d.txt", "4"), fline("top.txt", "5"), "END")
	a.expect("OK addr=127.0.0.1:5001 files=5")
	c := hello(t, addr, "client")
	c.send("LIST prefix=lectures/")
	c.expect("FOUND n=3", "F name=lectures/a.pdf *", "F name=lectures/w1/b.pdf *", "F name=lectures/w1/deep/c.txt *", "END")
	c.send("LIST prefix=lectures/ max=2")
	c.expect("FOUND n=2 more=1", "F name=lectures/a.pdf *", "F name=lectures/w1/b.pdf *", "END")
	c.send("LIST prefix=lectures/ after=lectures/w1/b.pdf afterhash=" + catalogtest.Hash("2") + " max=2")
	c.expect("FOUND n=1", "F name=lectures/w1/deep/c.txt *", "END")
	c.send("LIST prefix=lectures/w1/deep/ after=lectures/w1/deep/c.txt", "LIST prefix=nothing/")
	c.expect("NOT FOUND", "NOT FOUND")
	c.send("LIST prefix= max=10")
	c.expect("FOUND n=5", "F name=lectures/a.pdf *", "F *", "F *", "F name=lecturesx/d.txt *", "F name=top.txt *", "END")
	c.send("LIST prefix=lectures", "LIST prefix=../", "LIST prefix=a/ glob=*", "LIST after=x", "LIST prefix=a/ max=0")
	c.expect(`ERR 400 LIST: prefix must be a folder ending in "/": "lectures"`,
		`ERR 400 LIST: bad prefix: bad name: ".." component: "../"`,
		`ERR 400 LIST: LIST takes glob= or prefix=, not both: "*"`,
		`ERR 400 LIST: after= needs prefix=: "x"`,
		"ERR 400 max must be a number from 1 to 10000")
}

// TestListFolderDefaultPage: without max= a page holds DefaultPageMax
// records, and max= above MaxResults is capped to it.
func TestListFolderDefaultPage(t *testing.T) {
	_, addr := startMaster(t, Config{})
	a := hello(t, addr, "server")
	n := line.DefaultPageMax + 1
	lines := []string{fmt.Sprintf("REGISTER addr=:5001 n=%d", n)}
	for i := range n {
		lines = append(lines, fline(fmt.Sprintf("d/f%05d", i), fmt.Sprint(i)))
	}
	a.send(append(lines, "END")...)
	a.expect(fmt.Sprintf("OK addr=127.0.0.1:5001 files=%d", n))
	c := hello(t, addr, "client")
	for _, req := range []string{"LIST prefix=d/", "LIST prefix=d/ max=99999"} {
		c.send(req)
		head, err := c.readLine()
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("FOUND n=%d more=1", line.DefaultPageMax)
		if req != "LIST prefix=d/" {
			want = fmt.Sprintf("FOUND n=%d", n)
		}
		if head != want {
			t.Fatalf("%s: %q, want %q", req, head, want)
		}
		var k int
		for head, _ = c.readLine(); head != "END"; head, _ = c.readLine() {
			k++
		}
		if fmt.Sprintf("FOUND n=%d", k) != strings.TrimSuffix(want, " more=1") {
			t.Fatalf("%s: %d records after %q", req, k, want)
		}
	}
}

// waitFor repeats req on c until its first reply line is want.
func waitFor(t *testing.T, c *tconn, req, want string) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for {
		c.send(req)
		got, err := c.readLine()
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		for got != "END" && !strings.HasPrefix(got, "ERR") && got != "NOT FOUND" {
			if got, err = c.readLine(); err != nil {
				t.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %q", req, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRegisterRefusals(t *testing.T) {
	_, addr := startMaster(t, Config{MaxFiles: 10, MaxName: 20})
	tests := []struct {
		name   string
		role   string
		send   []string
		expect string
		closed bool
	}{
		{"no files", "server", []string{"REGISTER addr=:1 n=0", "END"},
			"ERR 400 nothing to share: a file server registers at least one file (a receiver says HELLO role=receiver)", false},
		{"client role", "client", []string{"REGISTER addr=:1 n=1", fline("a", "a"), "END"},
			"ERR 403 role client cannot register; say HELLO role=server or role=receiver", false},
		{"receiver with files", "receiver", []string{"REGISTER addr=:1 n=1", fline("a", "a"), "END"},
			"ERR 400 a receiver registers no files (n=0)", false},
		{"dot dot", "server", []string{"REGISTER addr=:1 n=2", fline("ok", "a"), fline("../etc/passwd", "b"), "END"},
			`ERR 400 registration: F line 2: bad name: ".." component: "../etc/passwd"`, false},
		{"absolute", "server", []string{"REGISTER addr=:1 n=1", fline("/etc/passwd", "b"), "END"},
			`ERR 400 registration: F line 1: bad name: absolute: "/etc/passwd"`, false},
		{"control char", "server", []string{"REGISTER addr=:1 n=1", `F name=a\x01 size=1 type=t mtime=1 hash=` + catalogtest.Hash("a"), "END"},
			`ERR 400 registration: F line 1: bad name: control character: "a\x01"`, false},
		{"long name", "server", []string{"REGISTER addr=:1 n=1", fline(strings.Repeat("n", 21), "a"), "END"},
			"ERR 400 registration: F line 1: bad name: longer than 20 bytes: *", false},
		{"bad hash", "server", []string{"REGISTER addr=:1 n=1", "F name=a size=1 type=t mtime=1 hash=blake3:00", "END"},
			`ERR 400 registration: F line 1: bad hash: "blake3:00"`, false},
		{"duplicate", "server", []string{"REGISTER addr=:1 n=2", fline("a", "a"), fline("a", "b"), "END"},
			`ERR 400 registration: F line 2: duplicate name: "a"`, false},
		{"bad addr", "server", []string{"REGISTER addr=nowhere n=1", fline("a", "a"), "END"},
			`ERR 400 bad addr "nowhere": want HOST:PORT`, false},
		{"bad port", "server", []string{"REGISTER addr=h:0 n=1", fline("a", "a"), "END"},
			`ERR 400 bad port in addr "h:0"`, false},
		{"bad peer name", "receiver", []string{"REGISTER addr=:1 n=0 name=a:b", "END"},
			`ERR 400 bad name "a:b": use letters, digits, '.', '_' and '-'`, false},
		{"too many files", "server", []string{"REGISTER addr=:1 n=11"},
			"ERR 414 too many files: 11, at most 10 a registration; closing", true},
		{"no count", "server", []string{"REGISTER addr=:1"}, "ERR 400 REGISTER needs n=COUNT (0 or more); closing", true},
		{"short list", "server", []string{"REGISTER addr=:1 n=2", fline("a", "a"), "END"},
			"ERR 400 registration: line 2 of 2 is END, not F; closing", true},
		{"no end", "server", []string{"REGISTER addr=:1 n=1", fline("a", "a"), "PING"},
			"ERR 400 registration: expected END after 1 F lines; closing", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := hello(t, addr, tt.role)
			c.send(tt.send...)
			c.expect(tt.expect)
			if tt.closed {
				c.expectClosed()
				return
			}
			c.send("PING", "PEERS")
			c.expect("PONG", "NOT FOUND")
		})
	}
}

func TestBadLinesKeepServing(t *testing.T) {
	_, addr := startMaster(t, Config{MaxLine: 200})
	srv := hello(t, addr, "server")
	srv.send("REGISTER addr=:7 n=1", fline("kept.txt", "k"), "END")
	srv.expect("OK *")
	c := hello(t, addr, "client")
	c.send("FROB x=1", "LIST Glob=x", "LIST q=\xff", "", "F name=a", "END", `SEARCH q=a\q`, "LIST")
	c.expect(`ERR 400 unknown verb "FROB"`, `ERR 400 invalid key: "Glob=x"`, `ERR 400 invalid UTF-8: "LIST q=\xff"`,
		`ERR 400 empty line: ""`, "ERR 403 F outside a registration", "ERR 403 END outside a registration",
		`ERR 400 unknown escape: "a\\q"`, "FOUND n=1", "F name=kept.txt *", "END")

	long := dial(t, addr)
	long.send("HELLO fxsh/1 role=client", "LIST glob="+strings.Repeat("x", 300))
	long.expect("HI *", "ERR 413 line longer than 200 bytes")
	long.expectClosed()
	c.send("PING")
	c.expect("PONG")
	srv.send("PING")
	srv.expect("PONG")
}

func TestFlood(t *testing.T) {
	_, addr := startMaster(t, Config{Rate: 1, Burst: 5})
	c := hello(t, addr, "client") // HELLO took one token
	c.send("PING", "PING", "PING", "PING", "PING", "PING")
	c.expect("PONG", "PONG", "PONG", "PONG", "ERR 429 slow down: more than 1 requests a second")
	c.expectClosed()
	other := hello(t, addr, "client")
	other.send("PING")
	other.expect("PONG")
}

func TestSilentConnectionDropped(t *testing.T) {
	_, addr := startMaster(t, Config{Heartbeat: 100 * time.Millisecond, TTL: 500 * time.Millisecond})
	srv := hello(t, addr, "server")
	srv.send("REGISTER addr=:9 n=1", fline("quiet.txt", "q"), "END")
	srv.expect("OK *")
	// The server stops heartbeating: the master drops it after the TTL.
	srv.expectClosed()
	c := hello(t, addr, "client")
	c.send("LIST")
	c.expect("NOT FOUND")
}

func TestTakeover(t *testing.T) {
	// Another connection takes an address over only with the token the
	// master sent to it (hostile_owner_test.go has the attacks).
	_, addr := startMaster(t, Config{})
	u := newUDPPeer(t)
	old := hello(t, addr, "server")
	old.send("REGISTER addr="+u.addr()+" n=1", fline("old.txt", "o"), "END")
	old.expect("OK *")
	nu := hello(t, addr, "server")
	nu.send("REGISTER addr="+u.addr()+" n=1", fline("new.txt", "n"), "END")
	nu.expect("ERR 409 *")
	nu.send("REGISTER addr="+u.addr()+" n=1 proof="+u.token(), fline("new.txt", "n"), "END")
	nu.expect("OK *")
	old.nc.Close() // the stale connection goes: the registration stays
	c := hello(t, addr, "client")
	time.Sleep(100 * time.Millisecond) // let the master notice the close; the assertion does not depend on it
	c.send("LIST")
	c.expect("FOUND n=1", "F name=new.txt *", "END")
}

func TestMaxConns(t *testing.T) {
	var mu sync.Mutex
	var evs []Event
	_, addr := startMaster(t, Config{MaxConns: 2, OnEvent: func(e Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() }})
	a, b := hello(t, addr, "client"), hello(t, addr, "client")
	c := dial(t, addr)
	c.expect("ERR 503 too many connections, try later")
	c.expectClosed()
	a.send("BYE")
	a.expect("BYE")
	a.expectClosed()
	b.send("PING")
	b.expect("PONG")
	deadline := time.Now().Add(ioWait)
	for {
		d := dial(t, addr)
		d.send("HELLO fxsh/1 role=client")
		if got, _ := d.readLine(); strings.HasPrefix(got, "HI ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a freed slot was never reused")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(evs) == 0 || evs[0].Kind != ConnRefused || evs[0].Reason != "too many connections" {
		t.Errorf("events %+v, want a refusal", evs)
	}
}

// downCatalog fails every call as an unreachable backing store would.
type downCatalog struct{}

func (downCatalog) Register(context.Context, store.Server, []store.File) error {
	return store.ErrUnavailable
}
func (downCatalog) Heartbeat(context.Context, string) error         { return store.ErrUnavailable }
func (downCatalog) Unregister(context.Context, string) error        { return store.ErrUnavailable }
func (downCatalog) Servers(context.Context) ([]store.Server, error) { return nil, store.ErrUnavailable }
func (downCatalog) Files(context.Context, string) ([]store.Entry, error) {
	return nil, store.ErrUnavailable
}
func (downCatalog) FilesUnder(context.Context, string, store.Cursor, int) ([]store.Entry, error) {
	return nil, store.ErrUnavailable
}
func (downCatalog) Search(context.Context, string, int) ([]store.Entry, error) {
	return nil, fmt.Errorf("etcd: %w", store.ErrUnavailable)
}
func (downCatalog) Close() error { return nil }

func TestCatalogUnavailable(t *testing.T) {
	_, addr := startMaster(t, Config{Catalog: downCatalog{}})
	c := hello(t, addr, "server")
	c.send("REGISTER addr=:1 n=1", fline("a", "a"), "END", "LIST", "SEARCH q=a", "PEERS", "PING")
	for range 4 {
		c.expect("ERR 503 catalog unavailable, try later")
	}
	c.expect("PONG")
}

func TestTraceAndEvents(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	var evs []Event
	_, addr := startMaster(t, Config{
		Trace:   func(e TraceEvent) { mu.Lock(); lines = append(lines, e.Dir.String()+" "+e.Line); mu.Unlock() },
		OnEvent: func(e Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() },
	})
	c := hello(t, addr, "server")
	c.send("REGISTER addr=:5 n=1", fline("t", "t"), "END", "BYE")
	c.expect("OK *", "BYE")
	c.expectClosed()
	mu.Lock()
	defer mu.Unlock()
	want := []string{"<- HELLO fxsh/1 role=server", "-> " + hiDefault, "<- REGISTER addr=:5 n=1",
		"<- " + fline("t", "t"), "<- END", "-> OK addr=127.0.0.1:5 files=1", "<- BYE", "-> BYE"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("trace:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if len(evs) != 2 || evs[0].Kind != PeerRegistered || evs[0].Addr != "127.0.0.1:5" || evs[0].Files != 1 ||
		evs[1].Kind != PeerLeft || evs[1].Addr != "127.0.0.1:5" {
		t.Errorf("events %+v", evs)
	}
}

func TestShutdown(t *testing.T) {
	cat := memcat.New(time.Minute)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Catalog: cat})
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	c := hello(t, ln.Addr().String(), "client")
	idle := dial(t, ln.Addr().String()) // mid-handshake
	ctx, cancel := context.WithTimeout(context.Background(), ioWait)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v", err)
	}
	c.expectClosed()
	idle.expectClosed()
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("still accepting after Shutdown")
	}
	if err := New(Config{Catalog: cat}).Serve(ln); !errors.Is(err, ErrServerClosed) && err == nil {
		t.Error("Serve on a closed listener succeeded")
	}
}

func TestOffers(t *testing.T) {
	_, addr := startMaster(t, Config{})
	rx := hello(t, addr, "receiver")
	rx.send("REGISTER addr=:6000 n=0 name=bob", "END")
	rx.expect("OK *")
	tx := hello(t, addr, "server")
	tx.send("REGISTER addr=:5000 n=1 name=alice", fline("song.mp3", "s"), "END")
	tx.expect("OK *")
	h := catalogtest.Hash("s")

	tx.send("OFFER to=bob name=song.mp3 size=1 hash=" + h + " from=:5000")
	tx.expect("OK offer=1")
	rx.expect("OFFER offer=1 name=song.mp3 size=1 hash=" + h + " from=127.0.0.1:5000 by=alice@127.0.0.1:5000")
	rx.send("ACCEPT offer=1")
	rx.expect("OK offer=1")
	tx.expect("ACCEPT offer=1")

	tx.send("OFFER to=127.0.0.1:6000 name=song.mp3 size=1 hash=" + h + " from=:5000")
	tx.expect("OK offer=2")
	rx.expect("OFFER offer=2 *")
	rx.send(`REFUSE offer=2 reason=disk\sfull`, "ACCEPT offer=2", "ACCEPT offer=1")
	rx.expect("OK offer=2", `ERR 404 no offer "2" waiting for this receiver`, `ERR 404 no offer "1" waiting for this receiver`)
	tx.expect(`REFUSE offer=2 reason=disk\sfull`)

	tx.send("OFFER to=carol name=x size=1 hash="+h+" from=:5000", "OFFER to=bob name=../x size=1 hash="+h+" from=:5000",
		"OFFER to=127.0.0.1:5000 name=x size=1 hash="+h+" from=:5000")
	tx.expect(`ERR 404 no receiver "carol" on this master`, `ERR 400 OFFER: bad name: ".." component: "../x"`,
		`ERR 404 no receiver "127.0.0.1:5000" on this master`)

	// An accepted offer waits for the receiver's DONE, which reaches the
	// sender; a second DONE, or one for an offer not accepted, is refused.
	rx.send("DONE offer=1", "DONE offer=1")
	rx.expect("OK offer=1", `ERR 404 no offer "1" accepted by this receiver`)
	tx.expect("DONE offer=1")

	tx.send("OFFER to=bob name=song.mp3 size=1 hash=" + h + " from=:5000")
	tx.expect("OK offer=3")
	rx.expect("OFFER offer=3 *")
	rx.send("DONE offer=3", "ACCEPT offer=3", `DONE offer=3 error=hash\smismatch`)
	rx.expect(`ERR 403 offer "3" is not accepted yet: ACCEPT or REFUSE it`, "OK offer=3", "OK offer=3")
	tx.expect("ACCEPT offer=3", `DONE offer=3 error=hash\smismatch`)

	// The receiver goes: a waiting offer is refused, an accepted one fails.
	tx.send("OFFER to=bob name=song.mp3 size=1 hash=" + h + " from=:5000")
	tx.expect("OK offer=4")
	rx.expect("OFFER offer=4 *")
	rx.send("ACCEPT offer=4")
	rx.expect("OK offer=4")
	tx.expect("ACCEPT offer=4")
	tx.send("OFFER to=bob name=song.mp3 size=1 hash=" + h + " from=:5000")
	tx.expect("OK offer=5")
	rx.expect("OFFER offer=5 *")
	rx.nc.Close()
	var got []string
	for range 2 {
		l, err := tx.readLine()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
	}
	slices.Sort(got)
	if want := []string{"DONE offer=4 error=receiver\\sgone", "REFUSE offer=5 reason=receiver\\sgone"}; !slices.Equal(got, want) {
		t.Errorf("after the receiver left: %q, want %q", got, want)
	}
}

func TestOfferCap(t *testing.T) {
	_, addr := startMaster(t, Config{})
	rx := hello(t, addr, "receiver")
	rx.send("REGISTER addr=:6000 n=0 name=bob", "END")
	rx.expect("OK *")
	tx := hello(t, addr, "client")
	h := catalogtest.Hash("s")
	// Accepted offers count against MaxOffers until their DONE.
	for i := 1; i <= MaxOffers; i++ {
		tx.send("OFFER to=bob name=f size=1 hash=" + h + " from=:5000")
		tx.expect(fmt.Sprintf("OK offer=%d", i))
		rx.expect(fmt.Sprintf("OFFER offer=%d *", i))
		rx.send(fmt.Sprintf("ACCEPT offer=%d", i))
		rx.expect(fmt.Sprintf("OK offer=%d", i))
		tx.expect(fmt.Sprintf("ACCEPT offer=%d", i))
	}
	tx.send("OFFER to=bob name=f size=1 hash=" + h + " from=:5000")
	tx.expect(fmt.Sprintf("ERR 403 %d offers already waiting for an answer or a result", MaxOffers))
	rx.send("DONE offer=1")
	rx.expect("OK offer=1")
	tx.expect("DONE offer=1")
	tx.send("OFFER to=bob name=f size=1 hash=" + h + " from=:5000")
	tx.expect(fmt.Sprintf("OK offer=%d", MaxOffers+1))
}
