package master

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store/memcat"
)

// TestStartClose: Start listens (port 0 resolved in Addr) and answers the
// handshake; Close ends the connections and the listener; a busy address
// or no catalog fails Start.
func TestStartClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cat := memcat.New(time.Minute)
	defer cat.Close()
	r, err := Start(ctx, Config{Addr: "127.0.0.1:0", Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(r.Addr, ":0") {
		t.Fatalf("Addr %s: port 0 not resolved", r.Addr)
	}
	nc, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write([]byte("HELLO fxsh/1 role=client\n")); err != nil {
		t.Fatal(err)
	}
	hi, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil || !strings.HasPrefix(hi, "HI fxsh/1") {
		t.Fatalf("handshake: %q, %v", hi, err)
	}

	if _, err := Start(ctx, Config{Addr: r.Addr, Catalog: cat}); err == nil {
		t.Error("Start on a busy address succeeded")
	}
	if _, err := Start(ctx, Config{Addr: "127.0.0.1:0"}); err == nil {
		t.Error("Start without a catalog succeeded")
	}

	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(ctx); err != nil { // again: no block, same result
		t.Fatalf("second Close: %v", err)
	}
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after Close")
	}
	if c, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
		c.Close()
		t.Error("still listening after Close")
	}
}
