//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// How the benchmark drives fxsh and the TCP reference. Both have a
// long-lived server process per case and one client process per download;
// the client is timed from process start to exit, its CPU and peak RSS come
// from rusage, the server's CPU over the transfer from /proc. Every file a
// client reports complete is verified against the source's SHA-256 before
// it is deleted.

// Implementation names.
const (
	implFxsh      = "fxsh"
	implFxsh1200  = "fxsh-chunk1200" // fxsh with `set chunk 1200` on the client
	implFxshKey   = "fxsh-key"       // fxsh with --key on both ends (sealed datagrams)
	implTCP       = "tcp-"           // + congestion control
	scratchBuffer = 1 << 20
)

// isFxsh says whether impl is fxsh in one of its settings.
func isFxsh(impl string) bool { return strings.HasPrefix(impl, implFxsh) }

// Fixed ports inside the namespaces, which hold nothing else.
const (
	nsMasterPort = 7100
	nsUDPPort    = 7101
	nsTCPPort    = 7200
	nsBlastPort  = 7300
)

// ServerReadyLimit bounds a server's start, including fxsh indexing
// (hashing) the shared folder.
const ServerReadyLimit = 5 * time.Minute

var (
	reFxshMaster = regexp.MustCompile(`master listening on (\S+)`)
	// "sharing 1 file from …" since the shell's plural words (f150b73):
	// the many-clients case shares one file and never saw its server start.
	reFxshShare = regexp.MustCompile(`sharing (\d+) files?\b.*udp (\S+)`)
	reFxshDone  = regexp.MustCompile(`done.* in \S+`)
	reTCPListen = regexp.MustCompile(`^listening (\S+)`)
)

// server is a running fxsh or TCP reference server.
type server struct {
	impl string // implFxsh or "tcp"
	p    *proc
	addr string // fxsh: the master; tcp: the TCP server
	set  *fileSet
	ns   string
	key  string // fxsh: the --key it runs with ("" none)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago (for
// fxsh, which is given its ports; the TCP server takes port 0 itself).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// scriptQuote quotes a path for an fxsh script.
func scriptQuote(s string) (string, error) {
	if strings.ContainsAny(s, "'\n\r") {
		return "", fmt.Errorf("path %q: quotes and newlines are not supported", s)
	}
	return "'" + s + "'", nil
}

func (b *bench) fxshEnv() []string {
	return []string{"NO_COLOR=1", "XDG_CACHE_HOME=" + filepath.Join(b.cfg.DataDir, "cache"),
		"XDG_STATE_HOME=" + filepath.Join(b.work, "state")}
}

// startFxshServer runs `fxsh -c 'serve master …; share FOLDER --udp …'` in
// namespace ns ("" for loopback) and waits for its "sharing" line. With a
// key, both its master and its file server run with --key.
func (b *bench) startFxshServer(ctx context.Context, ns, host string, set *fileSet, key string) (*server, error) {
	mport, uport := nsMasterPort, nsUDPPort
	if ns == "" {
		var err error
		if mport, err = freePort(); err != nil {
			return nil, err
		}
		if uport, err = freePort(); err != nil {
			return nil, err
		}
	}
	master := net.JoinHostPort(host, strconv.Itoa(mport))
	udp := net.JoinHostPort(host, strconv.Itoa(uport))
	folder, err := scriptQuote(set.Dir)
	if err != nil {
		return nil, err
	}
	dir := b.tempDir("fxsh-server")
	script := fmt.Sprintf("serve master %s; share %s --udp %s", master, folder, udp)
	if b.cfg.FxshServerCmds != "" {
		script = b.cfg.FxshServerCmds + "; " + script
	}
	args := []string{b.fxsh, "--master", master, "--dir", dir}
	if key != "" {
		args = append(args, "--key", key)
	}
	argv := inNS(ns, append(args, "-c", script)...)
	p, err := b.start(ctx, "fxsh server", argv, b.fxshEnv())
	if err != nil {
		return nil, err
	}
	if _, err := p.waitLine(ctx, reFxshShare, ServerReadyLimit); err != nil {
		p.stop()
		return nil, fmt.Errorf("fxsh server not ready: %w", err)
	}
	if m, err := p.waitLine(ctx, reFxshMaster, time.Second); err == nil && ns == "" {
		master = m[1]
	}
	return &server{impl: implFxsh, p: p, addr: master, set: set, ns: ns, key: key}, nil
}

// startTCPServer runs the reference TCP server in namespace ns.
func (b *bench) startTCPServer(ctx context.Context, ns, host string, set *fileSet) (*server, error) {
	port := 0
	if ns != "" {
		port = nsTCPPort
	}
	argv := inNS(ns, b.self, cmdTCPServe, "-listen", net.JoinHostPort(host, strconv.Itoa(port)), "-dir", set.Dir)
	p, err := b.start(ctx, "tcp server", argv, nil)
	if err != nil {
		return nil, err
	}
	m, err := p.waitLine(ctx, reTCPListen, ServerReadyLimit)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("tcp server not ready: %w", err)
	}
	return &server{impl: "tcp", p: p, addr: m[1], set: set, ns: ns}, nil
}

// client is one running download.
type client struct {
	impl  string
	p     *proc
	srv   *server
	names []string
	out   string
	limit time.Duration
	err   error // from waiting for the process
}

// startClient starts one download of names from srv by impl (implFxsh or
// "tcp-"+cc) in the server's peer namespace, stopping at limit.
func (b *bench) startClient(ctx context.Context, impl string, srv *server, names []string, limit time.Duration) (*client, error) {
	ns := ""
	if srv.ns != "" {
		ns = NSClient
	}
	out := b.tempDir("get-" + impl)
	var argv []string
	var env []string
	switch {
	case isFxsh(impl) && srv.impl == implFxsh && (impl == implFxshKey) == (srv.key != ""):
		qs := make([]string, len(names))
		for i, n := range names {
			q, err := scriptQuote(n)
			if err != nil {
				return nil, err
			}
			qs[i] = q
		}
		script := "get " + strings.Join(qs, " ") + "; wait"
		if impl == implFxsh1200 {
			script = "set chunk 1200; " + script
		}
		if b.cfg.FxshClientCmds != "" {
			script = b.cfg.FxshClientCmds + "; " + script
		}
		args := []string{b.fxsh, "--master", srv.addr, "--dir", out}
		if srv.key != "" {
			args = append(args, "--key", srv.key)
		}
		argv = inNS(ns, append(args, "-c", script)...)
		env = b.fxshEnv()
	case strings.HasPrefix(impl, implTCP) && srv.impl == "tcp":
		argv = inNS(ns, append([]string{b.self, cmdTCPGet, "-addr", srv.addr, "-out", out,
			"-cc", strings.TrimPrefix(impl, implTCP), "-deadline", limit.String(),
			"-fsync=" + strconv.FormatBool(b.cfg.TCPFsync)}, names...)...)
	default:
		return nil, fmt.Errorf("client %s cannot talk to a %s server", impl, srv.impl)
	}
	p, err := b.start(ctx, impl+" client", argv, env)
	if err != nil {
		return nil, err
	}
	return &client{impl: impl, p: p, srv: srv, names: names, out: out, limit: limit}, nil
}

// wait waits for the client to end and records its time and rusage; the
// received files are checked later by check, once no other client is
// running, so that hashing does not slow the transfers still under way.
// Start is in seconds since t0.
func (b *bench) wait(ctx context.Context, c *client, t0 time.Time) Transfer {
	t := Transfer{Impl: c.impl, Files: len(c.names), Start: c.p.start.Sub(t0).Seconds()}
	// The TCP client stops itself at the limit and reports what it got;
	// fxsh is stopped by us.
	limit := c.limit
	if !isFxsh(c.impl) {
		limit += 30 * time.Second
	}
	c.err = c.p.wait(ctx, limit)
	t.Seconds = c.p.elapsed().Seconds()
	t.ClientCPU, t.ClientRSSKiB = c.p.usage()
	return t
}

// check verifies what the client received against the source, removes
// it, and completes t.
func (b *bench) check(ctx context.Context, c *client, t *Transfer) {
	defer os.RemoveAll(c.out)
	if errors.Is(c.err, errTimeout) {
		t.Err = fmt.Sprintf("no result within the time limit (%s)", c.limit)
		return
	}
	if isFxsh(c.impl) {
		for _, l := range c.p.output() {
			if reFxshDone.MatchString(l) {
				t.Reported = strings.TrimSpace(l)
			}
		}
		if c.err != nil {
			t.Err = c.err.Error()
			return
		}
		for _, n := range c.names {
			if err := verify(ctx, filepath.Join(c.out, n), c.srv.set.Size, c.srv.set.Hashes[n]); err != nil {
				t.Err = err.Error()
				return
			}
			t.Bytes += c.srv.set.Size
		}
		t.OK = true
		t.MBps = mbps(t.Bytes, t.Seconds)
		return
	}
	results, perr := parseFetchResults(c.p.output())
	if perr != nil || len(results) != len(c.names) {
		t.Err = fmt.Sprintf("tcp client: %v (%d results for %d files): %s", perr, len(results), len(c.names), c.p.tail(4))
		return
	}
	complete := true
	for _, r := range results {
		t.CC = r.CC
		if r.Err != "" {
			t.Err = r.Name + ": " + r.Err
			return
		}
		p := filepath.Join(c.out, r.Name)
		if r.Complete {
			if err := verify(ctx, p, c.srv.set.Size, c.srv.set.Hashes[r.Name]); err != nil {
				t.Err = err.Error()
				return
			}
		} else {
			complete = false
			if err := verifyPrefix(p, c.srv.set.path(r.Name), r.Bytes); err != nil {
				t.Err = err.Error()
				return
			}
		}
		t.Bytes += r.Bytes
	}
	if want := strings.TrimPrefix(c.impl, implTCP); t.CC != want {
		t.Err = fmt.Sprintf("congestion control in use is %q, not %q", t.CC, want)
		return
	}
	t.OK, t.Partial = complete, !complete
	t.MBps = mbps(t.Bytes, t.Seconds)
}

func parseFetchResults(lines []string) ([]fetchResult, error) {
	var out []fetchResult
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var r fetchResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			return out, fmt.Errorf("parsing %q: %w", l, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// verifyPrefix checks that got holds exactly the first n bytes of src: a
// transfer stopped at its time limit is checked for what it delivered.
func verifyPrefix(got, src string, n int64) error {
	g, err := os.Open(got)
	if err != nil {
		return fmt.Errorf("verifying partial file: %w", err)
	}
	defer g.Close()
	s, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("verifying partial file: %w", err)
	}
	defer s.Close()
	if st, err := g.Stat(); err != nil || st.Size() != n {
		return fmt.Errorf("verifying partial file: size is not %d", n)
	}
	a, bb := make([]byte, copyBuf), make([]byte, copyBuf)
	for off := int64(0); off < n; {
		k := int(min(int64(copyBuf), n-off))
		if _, err := io.ReadFull(g, a[:k]); err != nil {
			return fmt.Errorf("verifying partial file: %w", err)
		}
		if _, err := io.ReadFull(s, bb[:k]); err != nil {
			return fmt.Errorf("verifying partial file: %w", err)
		}
		if !bytes.Equal(a[:k], bb[:k]) {
			return fmt.Errorf("partial file differs from the source near byte %d: %w", off, errMismatch)
		}
		off += int64(k)
	}
	return nil
}

// measure runs one download of names from srv by impl and fills in the
// server's CPU over it and its peak RSS after it.
func (b *bench) measure(ctx context.Context, impl string, srv *server, names []string, limit time.Duration) Transfer {
	if err := b.recyclePages(int64(len(names)) * srv.set.Size); err != nil {
		return Transfer{Impl: impl, Files: len(names), Err: err.Error()}
	}
	t0 := time.Now()
	cpu0, _ := srv.p.cpuNow()
	c, err := b.startClient(ctx, impl, srv, names, limit)
	if err != nil {
		return Transfer{Impl: impl, Files: len(names), Err: err.Error()}
	}
	t := b.wait(ctx, c, t0)
	if cpu1, err := srv.p.cpuNow(); err == nil {
		t.ServerCPU = cpu1 - cpu0
	}
	t.ServerRSSKiB = srv.p.hwmKiB()
	b.check(ctx, c, &t)
	if srv.p.exited() {
		t.OK, t.Partial = false, false
		t.Err = strings.TrimSpace(t.Err + " (server exited: " + srv.p.tail(4) + ")")
	}
	return t
}

// measureMany runs n clients of impl at once, each fetching names, and
// returns their transfers.
func (b *bench) measureMany(ctx context.Context, impl string, srv *server, names []string, n int, limit time.Duration) ([]Transfer, float64) {
	if err := b.recyclePages(int64(n*len(names)) * srv.set.Size); err != nil {
		out := make([]Transfer, n)
		for i := range out {
			out[i] = Transfer{Impl: impl, Files: len(names), Err: err.Error()}
		}
		return out, math.NaN()
	}
	t0 := time.Now()
	cpu0, _ := srv.p.cpuNow()
	cs := make([]*client, n)
	out := make([]Transfer, n)
	for i := range cs {
		c, err := b.startClient(ctx, impl, srv, names, limit)
		if err != nil {
			out[i] = Transfer{Impl: impl, Files: len(names), Err: err.Error()}
			continue
		}
		cs[i] = c
	}
	done := make(chan struct{})
	for i, c := range cs {
		if c == nil {
			continue
		}
		go func() {
			out[i] = b.wait(ctx, c, t0)
			done <- struct{}{}
		}()
	}
	for _, c := range cs {
		if c != nil {
			<-done
		}
	}
	serverCPU := 0.0
	if cpu1, err := srv.p.cpuNow(); err == nil {
		serverCPU = cpu1 - cpu0
	}
	rss := srv.p.hwmKiB()
	for i := range out {
		if cs[i] != nil {
			b.check(ctx, cs[i], &out[i])
		}
		out[i].Label = fmt.Sprintf("client %d/%d", i+1, n)
		out[i].ServerRSSKiB = rss
	}
	return out, serverCPU
}

// recyclePages writes a scratch file of size bytes into the work folder and
// deletes it, so that the download that follows writes into page-cache
// pages the kernel has just freed, like every download after the first on
// a busy machine: on these VMs memory never touched before is much slower
// to write into, and whichever tool ran first would pay for it.
func (b *bench) recyclePages(size int64) error {
	p := filepath.Join(b.work, "scratch")
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("recycling pages: %w", err)
	}
	defer os.Remove(p)
	buf := make([]byte, scratchBuffer)
	for i := range buf {
		buf[i] = byte(i) | 1 // not a zero page
	}
	for left := size; left > 0; left -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			f.Close()
			return fmt.Errorf("recycling pages: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("recycling pages: %w", err)
	}
	return os.Remove(p)
}
