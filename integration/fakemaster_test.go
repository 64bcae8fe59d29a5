package integration

import (
	"bufio"
	"net"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// fakemaster VAR FILE starts a master that lies: it listens on 127.0.0.1
// (port 0), sets VAR to its address, answers HELLO with HI, every LIST
// with FILE's lines as they are (records no honest master would relay:
// names with "..", absolute names), BYE with BYE, anything else with an
// ERR. It stops when the story ends.
func cmdFakemaster(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fakemaster VAR FILE")
	}
	answer := ts.ReadFile(args[1])
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Setenv(args[0], l.Addr().String())
	ts.Defer(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go fakeMasterConn(c, answer)
		}
	}()
}

func fakeMasterConn(c net.Conn, answer string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		req, err := r.ReadString('\n')
		if err != nil {
			return
		}
		var out string
		switch verb, _, _ := strings.Cut(strings.TrimSpace(req), " "); verb {
		case "HELLO":
			out = "HI fxsh/1 hb=10 ttl=30 maxline=4096 maxname=1024 maxfiles=10000\n"
		case "LIST":
			out = answer
		case "BYE":
			c.Write([]byte("BYE\n"))
			return
		default:
			out = "ERR 400 not here\n"
		}
		if _, err := c.Write([]byte(out)); err != nil {
			return
		}
	}
}
