package fileserver

import (
	"bufio"
	"context"
	"fmt"
	"net"

	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/memcat"
)

// startMaster runs a master with an in-memory catalog on loopback until
// the test ends and returns its address.
func startMaster(t *testing.T) string {
	t.Helper()
	cat := memcat.New(time.Minute)
	t.Cleanup(func() { cat.Close() })
	m := master.New(master.Config{Catalog: cat})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(ln)
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	return ln.Addr().String()
}

// A squatter that registered a file server's address before it started
// does not keep it: the master challenges the real server's UDP socket,
// the registrar echoes the token, and the squatter's next PING is told
// ERR 404. (Before issue 18 any connection could take any address, and
// the newest kept it.)
func TestRegistrarProvesAddress(t *testing.T) {
	mAddr := startMaster(t)

	// A free UDP port for the file server to come.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp := pc.LocalAddr().String()
	pc.Close()

	sq, err := net.Dial("tcp", mAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	r := bufio.NewReader(sq)
	readLine := func() string {
		sq.SetReadDeadline(time.Now().Add(wait))
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("squatter: %v", err)
		}
		return strings.TrimSpace(l)
	}
	fmt.Fprintf(sq, "HELLO fxsh/1 role=server\n")
	readLine()
	fake, _ := line.AppendMsg(nil, line.FileMsg(store.Entry{File: store.File{Name: "notes.txt", Size: 3, Type: "text", Hash: hashOf([]byte("bad"))}}))
	fmt.Fprintf(sq, "REGISTER addr=%s n=1\n%sEND\n", udp, fake)
	if l := readLine(); !strings.HasPrefix(l, "OK ") {
		t.Fatalf("squatter: %q", l)
	}

	dir := t.TempDir()
	good := []byte("the real notes")
	writeOld(t, filepath.Join(dir, "notes.txt"), good)
	var ev events
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, _, err := Start(ctx, Config{Paths: []string{dir}, UDPAddr: udp, Masters: []string{mAddr},
		Rescan: time.Hour, OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.WaitRegistered(ctx); err != nil {
		t.Fatalf("the real server did not register: %v", err)
	}
	fmt.Fprintf(sq, "PING\n")
	if l := readLine(); l != "ERR 404 not registered" {
		t.Errorf("squatter's PING: %q, want ERR 404 not registered", l)
	}
	cl, err := masterclient.Dial(ctx, masterclient.Config{Masters: []string{mAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	es, _, err := cl.List(ctx, "notes.txt", 0)
	if err != nil || len(es) != 1 || es[0].Hash != hashOf(good) {
		t.Fatalf("LIST notes.txt = %+v, %v; want the real server's", es, err)
	}

}
