//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the benchmark binary: the
// hidden subcommands run when it is re-executed as a child.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case cmdTCPServe:
			os.Exit(runTCPServe(os.Args[2:], os.Stdout, os.Stderr))
		case cmdTCPGet:
			os.Exit(runTCPGet(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(m.Run())
}

// defaultCC is the kernel's default congestion control, which any user may
// set on a socket.
func defaultCC(t *testing.T) string {
	cc := readTrim("/proc/sys/net/ipv4/tcp_congestion_control")
	if cc == "?" {
		t.Skip("no /proc/sys/net/ipv4/tcp_congestion_control")
	}
	return cc
}

func testSet(t *testing.T, size int64, n int) *fileSet {
	t.Helper()
	set, err := ensureFiles(context.Background(), t.TempDir(), size, n)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestEnsureFilesReuses(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	a, err := ensureFiles(ctx, root, 3<<20+5, 2)
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(a.path("f1.bin"))
	b, err := ensureFiles(ctx, root, 3<<20+5, 2)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(b.path("f1.bin"))
	if !st1.ModTime().Equal(st2.ModTime()) || a.Hashes["f1.bin"] != b.Hashes["f1.bin"] {
		t.Error("the second call wrote the files again")
	}
	if a.Hashes["f0.bin"] == a.Hashes["f1.bin"] {
		t.Error("two files of a set hold the same data")
	}
	for _, n := range a.Names {
		if err := verify(ctx, a.path(n), a.Size, a.Hashes[n]); err != nil {
			t.Errorf("verify %s: %v", n, err)
		}
	}
	// A changed file is noticed by verify, and rewritten by ensureFiles.
	if err := os.WriteFile(a.path("f0.bin"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verify(ctx, a.path("f0.bin"), a.Size, a.Hashes["f0.bin"]); err == nil {
		t.Error("verify accepted a changed file")
	}
	c, err := ensureFiles(ctx, root, 3<<20+5, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(ctx, c.path("f0.bin"), c.Size, c.Hashes["f0.bin"]); err != nil || c.Hashes["f0.bin"] != a.Hashes["f0.bin"] {
		t.Errorf("rewritten file: %v (same data: %v)", err, c.Hashes["f0.bin"] == a.Hashes["f0.bin"])
	}
	if _, err := ensureFiles(ctx, root, 10, MaxFilesPerSet+1); err == nil {
		t.Error("no error past MaxFilesPerSet")
	}
}

// TestFetchInProcess runs the TCP copy's server and client in this process.
func TestFetchInProcess(t *testing.T) {
	cc := defaultCC(t)
	set := testSet(t, 5<<20+3, 1)
	srv, err := newTCPServer(set.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.serve(ln) }()
	defer func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	ctx := context.Background()
	out := t.TempDir()
	tests := []struct {
		name, file, cc string
		want           string // error text, "" for success
	}{
		{"whole file", "f0.bin", cc, ""},
		{"default cc", "f0.bin", "", ""},
		{"missing file", "nope.bin", cc, "refused"},
		{"escaping name", "../x", cc, "unsafe name"},
		{"unknown cc", "f0.bin", "no-such-cc", "not available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fetch(ctx, ln.Addr().String(), out, tt.cc, tt.file, time.Now().Add(30*time.Second), true)
			if tt.want != "" {
				if r.Complete || !strings.Contains(r.Err, tt.want) {
					t.Fatalf("fetch = %+v, want an error with %q", r, tt.want)
				}
				return
			}
			if !r.Complete || r.Err != "" || r.Bytes != set.Size {
				t.Fatalf("fetch = %+v", r)
			}
			if tt.cc != "" && r.CC != tt.cc {
				t.Errorf("congestion control %q, want %q", r.CC, tt.cc)
			}
			if err := verify(ctx, filepath.Join(out, tt.file), set.Size, set.Hashes[tt.file]); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFetchPartial: a server that stalls after a few bytes; the client
// stops at its deadline and reports those bytes as partial.
func TestFetchPartial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var hdr [8]byte
		binary.BigEndian.PutUint64(hdr[:], 10<<20)
		c.Write(hdr[:])
		c.Write(make([]byte, 1000))
		<-release
	}()
	defer close(release)
	r := fetch(context.Background(), ln.Addr().String(), t.TempDir(), "", "f", time.Now().Add(300*time.Millisecond), false)
	if !r.Partial || r.Complete || r.Bytes != 1000 || r.Err != "" {
		t.Fatalf("fetch = %+v, want 1000 bytes, partial", r)
	}
}

func TestServeConnRefusesBadRequests(t *testing.T) {
	srv, err := newTCPServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	for _, req := range []string{"HELLO\n", "GET a\n", strings.Repeat("x", MaxRequestLine+10)} {
		t.Run(req[:min(len(req), 10)], func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			errc := make(chan error, 1)
			go func() { errc <- srv.serveConn(b); b.Close() }()
			go a.Write([]byte(req))
			resp, _ := io.ReadAll(io.LimitReader(a, 1<<10))
			if err := <-errc; err == nil {
				t.Fatalf("serveConn accepted %q", req)
			}
			if len(resp) > 0 && (len(resp) < 8 || binary.BigEndian.Uint64(resp) != refusal) {
				t.Fatalf("answer %q is not a refusal", resp)
			}
		})
	}
}

// TestMeasureTCPChildren runs the reference as the benchmark does: the
// server and the client as child processes (this test binary re-executed),
// timed, with rusage, and the file verified.
func TestMeasureTCPChildren(t *testing.T) {
	cc := defaultCC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	set := testSet(t, 8<<20, 2)
	b := &bench{cfg: Config{TCPFsync: true}, out: io.Discard, self: os.Args[0], work: t.TempDir(),
		facts: Facts{CCs: []string{cc}}}
	defer b.stopAll()
	srv, err := b.startTCPServer(ctx, "", "127.0.0.1", set)
	if err != nil {
		t.Fatal(err)
	}
	tr := b.measure(ctx, implTCP+cc, srv, set.Names, 30*time.Second)
	if !tr.OK || tr.Bytes != 2*set.Size || tr.CC != cc || tr.Err != "" {
		t.Fatalf("transfer %+v", tr)
	}
	if tr.Seconds <= 0 || tr.MBps <= 0 || tr.ClientRSSKiB <= 0 || tr.ServerRSSKiB <= 0 {
		t.Errorf("no measurement: %+v", tr)
	}
	ts, _ := b.measureMany(ctx, implTCP+cc, srv, set.Names[:1], 3, 30*time.Second)
	for _, tr := range ts {
		if !tr.OK || tr.Bytes != set.Size {
			t.Errorf("client %s: %+v", tr.Label, tr)
		}
	}
	if agg := manyAggregate(ts); !(agg > 0) {
		t.Errorf("aggregate %v", agg)
	}
	// Downloads are removed once verified.
	left, _ := filepath.Glob(filepath.Join(b.work, "get-*", "*"))
	if len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}
	srv.p.stop()
	if _, err := srv.p.cpuNow(); err == nil {
		t.Error("cpuNow of a stopped server: no error")
	}
}
