package master

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/catalogtest"
	"github.com/fxshell/fxsh/store/memcat"
)

// scriptConn is a connection whose peer sends a fixed script and then
// hangs up; what the master writes is kept.
type scriptConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

var scriptAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func (c *scriptConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return scriptAddr }
func (c *scriptConn) RemoteAddr() net.Addr             { return scriptAddr }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// runScript serves one connection that sends in, on a fresh master with
// small limits (so that short inputs reach them), and returns what the
// master wrote.
func runScript(in []byte) []byte {
	cat := memcat.New(time.Minute)
	defer cat.Close()
	s := New(Config{Catalog: cat, MaxLine: 512, MaxName: 64, MaxFiles: 4, Burst: 40,
		RegisterBurst: 12, MaxCatalogFiles: 3, MaxCatalogNameBytes: 100})
	c := &scriptConn{in: bytes.NewReader(in)}
	ss := newSession(s, c)
	s.mu.Lock()
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	ss.serve()
	return c.out.Bytes()
}

// masterVerbs are the lines a master sends.
var masterVerbs = map[string]bool{
	line.VerbHi: true, line.VerbAuth: true, line.VerbOK: true, line.VerbPong: true, line.VerbFound: true,
	line.VerbFile: true, line.VerbPeer: true, line.VerbEnd: true, line.VerbNot: true, line.VerbBye: true,
	line.VerbErr: true, line.VerbOffer: true, line.VerbAccept: true, line.VerbRefuse: true, line.VerbDone: true,
}

// FuzzSession feeds arbitrary input to a master's connection: it must not
// panic, must answer only in well-formed lines of its own verbs, serve
// nothing before HELLO, and say nothing after an ERR that closes.
func FuzzSession(f *testing.F) {
	enc := func(msgs ...line.Msg) []byte {
		var b []byte
		for _, m := range msgs {
			var err error
			if b, err = line.AppendMsg(b, m); err != nil {
				f.Fatal(err)
			}
		}
		return b
	}
	hello := func(role string) line.Msg { return line.NewMsg(line.VerbHello, line.Version).With("role", role) }
	file := func(name string) line.Msg { return line.FileMsg(store.Entry{File: catalogtest.File(name, name)}) }
	f.Add(enc(hello("server"),
		line.NewMsg(line.VerbRegister).With("addr", ":5000").WithInt("n", 2), file("a b.txt"), file("dir/c=d"), line.NewMsg(line.VerbEnd),
		line.NewMsg(line.VerbList), line.NewMsg(line.VerbList).With("glob", "dir/*"), line.NewMsg(line.VerbSearch).With("q", "B TXT"),
		line.NewMsg(line.VerbPeers), line.NewMsg(line.VerbPing), line.NewMsg(line.VerbBye)))
	f.Add(enc(hello("receiver"),
		line.NewMsg(line.VerbRegister).With("addr", ":6000").WithInt("n", 0).With("name", "bob"), line.NewMsg(line.VerbEnd),
		line.NewMsg(line.VerbOffer).With("to", "bob").With("name", "x").WithInt("size", 1).With("hash", catalogtest.Hash("x")).With("from", ":6000"),
		line.NewMsg(line.VerbAccept).With("offer", "1"), line.NewMsg(line.VerbDone).With("offer", "1"),
		line.NewMsg(line.VerbRefuse).With("offer", "1").With("reason", "no")))
	f.Add(enc(hello("client"), line.NewMsg(line.VerbList).With("glob", "["), line.NewMsg(line.VerbSearch).With("q", "").WithInt("max", 0),
		line.NewMsg(line.VerbRegister).With("addr", ":1").WithInt("n", 5)))
	f.Add(enc(hello("server"), line.NewMsg(line.VerbRegister).With("addr", ":1").WithInt("n", 1), file("../x"), line.NewMsg(line.VerbEnd), line.NewMsg(line.VerbPing)))
	// Over the catalog's bound (3 files), then over the registration
	// bucket (12 files, a REGISTER of n costs n+1).
	f.Add(enc(hello("server"),
		line.NewMsg(line.VerbRegister).With("addr", ":1").WithInt("n", 4), file("a"), file("b"), file("c"), file("d"), line.NewMsg(line.VerbEnd),
		line.NewMsg(line.VerbRegister).With("addr", ":1").WithInt("n", 3), file("a"), file("b"), file("c"), line.NewMsg(line.VerbEnd),
		line.NewMsg(line.VerbRegister).With("addr", ":1").WithInt("n", 3), file("a"), file("b"), file("c"), line.NewMsg(line.VerbEnd)))
	f.Add([]byte("LIST\n"))
	f.Add([]byte("hello fxsh/1 role=client\r\nsearch q=\\xff\n\xff\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := runScript(in)
		if len(out) > 0 && out[len(out)-1] != '\n' {
			t.Fatalf("output does not end a line: %q", out)
		}
		closed := ""
		for i, l := range strings.SplitAfter(string(out), "\n") {
			if l == "" {
				continue
			}
			if closed != "" {
				t.Fatalf("%q after %q", l, closed)
			}
			if len(l) > 512 {
				t.Fatalf("line %d longer than MaxLine: %q", i, l)
			}
			m, _, err := line.ParseMsg([]byte(l))
			if err != nil {
				t.Fatalf("line %d %q: %v", i, l, err)
			}
			if !masterVerbs[m.Verb] {
				t.Fatalf("line %d: verb %q", i, m.Verb)
			}
			if i == 0 && m.Verb != line.VerbHi && m.Verb != line.VerbErr {
				t.Fatalf("served before HELLO: %q", l)
			}
			if m.Verb == line.VerbErr {
				e, err := line.ParseError(m)
				if err != nil {
					t.Fatalf("line %d %q: %v", i, l, err)
				}
				switch e.Code {
				case line.CodeSyntax, line.CodeState, line.CodeNotFound, line.CodeUnavailable, line.CodeFull:
				case line.CodeAuth, line.CodeTooLong, line.CodeTooMany, line.CodeSlowDown:
					closed = l
				default:
					t.Fatalf("line %d: code %d", i, e.Code)
				}
			}
		}
	})
}
