//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The reference TCP copy: a server that sends whole files and a client that
// writes them to disk, each a read/write loop with a 1 MiB buffer (no
// sendfile, no splice), the congestion control set on every socket. The
// benchmark runs both as child processes of its own binary (the hidden
// subcommands below) so their CPU time and peak RSS are measured the same
// way as fxsh's.
//
// Wire: the client sends "GET <cc> <name>\n"; the server answers with the
// file size as 8 bytes big-endian, then the bytes. A refusal is the size
// all ones followed by a one-line reason.
const (
	cmdTCPServe = "__tcp-serve"
	cmdTCPGet   = "__tcp-get"

	// MaxRequestLine caps a request line.
	MaxRequestLine = 4096
	// MaxTCPConns caps the connections the TCP server serves at once; more
	// wait in the listen backlog (the cases use at most 20).
	MaxTCPConns = 64
	refusal     = ^uint64(0)
)

// setCC sets TCP_CONGESTION on a socket; "" leaves the system default.
func setCC(c syscall.RawConn, cc string) error {
	if cc == "" {
		return nil
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
	}); err != nil {
		return fmt.Errorf("setting congestion control: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("congestion control %q not available: %w", cc, serr)
	}
	return nil
}

// getCC reads the congestion control a TCP connection uses.
func getCC(conn *net.TCPConn) string {
	rc, err := conn.SyscallConn()
	if err != nil {
		return "?"
	}
	cc := "?"
	_ = rc.Control(func(fd uintptr) {
		if s, err := unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION); err == nil {
			cc = strings.TrimRight(s, "\x00")
		}
	})
	return cc
}

// tcpServer sends files from dir.
type tcpServer struct {
	root *os.Root
	sem  chan struct{} // MaxTCPConns slots
	wg   sync.WaitGroup
}

func newTCPServer(dir string) (*tcpServer, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening shared folder: %w", err)
	}
	return &tcpServer{root: r, sem: make(chan struct{}, MaxTCPConns)}, nil
}

// serve accepts until ln is closed, then waits for the open connections.
func (s *tcpServer) serve(ln net.Listener) error {
	defer s.wg.Wait()
	for {
		s.sem <- struct{}{}
		c, err := ln.Accept()
		if err != nil {
			<-s.sem
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accepting: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			defer c.Close()
			_ = s.serveConn(c) // the client sees the failure as a short or refused file
		}()
	}
}

func (s *tcpServer) close() error { return s.root.Close() }

func refuse(w io.Writer, why string) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], refusal)
	w.Write(append(b[:], strings.ReplaceAll(why, "\n", " ")+"\n"...))
	return errors.New(why)
}

func (s *tcpServer) serveConn(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReaderSize(io.LimitReader(c, MaxRequestLine), MaxRequestLine).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	c.SetReadDeadline(time.Time{})
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "GET" {
		return refuse(c, fmt.Sprintf("bad request %q", line))
	}
	if tc, ok := c.(*net.TCPConn); ok && f[1] != "-" {
		rc, err := tc.SyscallConn()
		if err != nil {
			return refuse(c, err.Error())
		}
		if err := setCC(rc, f[1]); err != nil {
			return refuse(c, err.Error())
		}
	}
	file, err := s.root.Open(f[2])
	if err != nil {
		return refuse(c, err.Error())
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return refuse(c, fmt.Sprintf("%q is not a regular file", f[2]))
	}
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(st.Size()))
	if _, err := c.Write(hdr[:]); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	// A plain loop: io.Copy would use sendfile and not be the read/write
	// copy the issue asks for.
	buf := make([]byte, copyBuf)
	for {
		n, rerr := file.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return fmt.Errorf("sending: %w", err)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("reading file: %w", rerr)
		}
	}
}

// fetchResult is what the client reports per file, one JSON line each.
type fetchResult struct {
	Name     string  `json:"name"`
	Bytes    int64   `json:"bytes"`
	Size     int64   `json:"size"`
	Seconds  float64 `json:"seconds"`
	Complete bool    `json:"complete"`
	Partial  bool    `json:"partial"` // the deadline came first
	CC       string  `json:"cc"`
	Err      string  `json:"error,omitempty"`
}

// fetch downloads name from addr into outDir, with congestion control cc
// on both ends; it stops at deadline (zero: none) and reports the bytes
// received so far as partial.
func fetch(ctx context.Context, addr, outDir, cc, name string, deadline time.Time, sync bool) fetchResult {
	res := fetchResult{Name: name}
	start := time.Now()
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	if !filepath.IsLocal(name) || strings.ContainsRune(name, '/') {
		res.Err = fmt.Sprintf("unsafe name %q", name)
		return res
	}
	d := net.Dialer{Deadline: deadline, Control: func(_, _ string, c syscall.RawConn) error { return setCC(c, cc) }}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer conn.Close()
	tc := conn.(*net.TCPConn)
	if !deadline.IsZero() {
		conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	wcc := cc
	if wcc == "" {
		wcc = "-"
	}
	if _, err := fmt.Fprintf(conn, "GET %s %s\n", wcc, name); err != nil {
		res.Err = err.Error()
		return res
	}
	res.CC = getCC(tc)
	var hdr [8]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		res.Err = fmt.Sprintf("reading size: %v", err)
		return res
	}
	size := binary.BigEndian.Uint64(hdr[:])
	if size == refusal {
		why, _ := bufio.NewReader(io.LimitReader(conn, MaxRequestLine)).ReadString('\n')
		res.Err = "refused: " + strings.TrimSpace(why)
		return res
	}
	if size > MaxSize {
		res.Err = fmt.Sprintf("size %d over the limit", size)
		return res
	}
	res.Size = int64(size)
	out, err := os.OpenFile(filepath.Join(outDir, name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer out.Close()
	buf := make([]byte, copyBuf)
	for res.Bytes < res.Size {
		n, rerr := conn.Read(buf[:min(int64(len(buf)), res.Size-res.Bytes)])
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				res.Err = fmt.Sprintf("writing: %v", err)
				return res
			}
			res.Bytes += int64(n)
		}
		if rerr != nil {
			if errors.Is(rerr, os.ErrDeadlineExceeded) && ctx.Err() == nil {
				res.Partial = true
				return res
			}
			if res.Bytes < res.Size {
				res.Err = fmt.Sprintf("receiving: %v", rerr)
				return res
			}
		}
	}
	if sync {
		if err := out.Sync(); err != nil {
			res.Err = fmt.Sprintf("syncing: %v", err)
			return res
		}
	}
	if err := out.Close(); err != nil {
		res.Err = fmt.Sprintf("closing: %v", err)
		return res
	}
	res.Complete = true
	return res
}

// runTCPServe is the hidden subcommand: serve files until SIGTERM/SIGINT,
// printing "listening ADDR" once ready.
func runTCPServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmdTCPServe, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	dir := fs.String("dir", "", "folder of files to send")
	cc := fs.String("cc", "", "congestion control of the listening socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := newTCPServer(*dir)
	if err != nil {
		fmt.Fprintln(stderr, "tcp-serve:", err)
		return 1
	}
	defer srv.close()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error { return setCC(c, *cc) }}
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "tcp-serve:", err)
		return 1
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	if err := srv.serve(ln); err != nil {
		fmt.Fprintln(stderr, "tcp-serve:", err)
		return 1
	}
	return 0
}

// runTCPGet is the hidden subcommand: fetch every name at once, print one
// JSON line per file; exit 1 if any failed (a partial file is no failure).
func runTCPGet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmdTCPGet, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "server address")
	out := fs.String("out", ".", "download folder")
	cc := fs.String("cc", "", "congestion control")
	limit := fs.Duration("deadline", 0, "stop after this long and report partial bytes (0: no limit)")
	doSync := fs.Bool("fsync", true, "fsync each file before closing it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var deadline time.Time
	if *limit > 0 {
		deadline = time.Now().Add(*limit)
	}
	results := make([]fetchResult, fs.NArg())
	var wg sync.WaitGroup
	for i, name := range fs.Args() {
		wg.Go(func() { results[i] = fetch(ctx, *addr, *out, *cc, name, deadline, *doSync) })
	}
	wg.Wait()
	code := 0
	enc := json.NewEncoder(stdout)
	for _, r := range results {
		enc.Encode(r)
		if !r.Complete && !r.Partial {
			code = 1
		}
	}
	return code
}
