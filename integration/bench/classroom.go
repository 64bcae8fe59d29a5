//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The classroom case (issue 16): one file server capped at a teacher's
// uplink, N shells get the same file at once; each seeds what it has checked
// to the others. Measured on loopback, every process on this machine:
//   - one client alone under the cap, then N at once: the last one's time
//     over the one alone (target ≤ 2), the spread of finish times;
//   - what the origin sent over the file size (target ≤ 3), and what each
//     client served to the others;
//   - every copy byte-identical (cmp against the original);
//   - 1 GiB on clean loopback, verified streaming (groups checked as they
//     land) against the whole-file check at the end (`set verify whole`),
//     in the same run, alternating (target ≥ 1).
// Settings: FXSH_CLASSROOM="CLIENTS,SIZE_MIB,RATE" (default "30,256,40MB/s")
// and FXSH_CLASSROOM_VERIFY_MIB (default 1024; 0 skips it).

type classroomConfig struct {
	clients int
	sizeMiB int
	rate    string
	verify  int
}

func classroomSettings() classroomConfig {
	c := classroomConfig{clients: 30, sizeMiB: 256, rate: "40MB/s", verify: 1024}
	if v := os.Getenv("FXSH_CLASSROOM"); v != "" {
		p := strings.Split(v, ",")
		if len(p) == 3 {
			c.clients, _ = strconv.Atoi(p[0])
			c.sizeMiB, _ = strconv.Atoi(p[1])
			c.rate = p[2]
		}
	}
	if v := os.Getenv("FXSH_CLASSROOM_VERIFY_MIB"); v != "" {
		c.verify, _ = strconv.Atoi(v)
	}
	c.clients = max(1, min(c.clients, 60))
	c.sizeMiB = max(1, c.sizeMiB)
	return c
}

// shellProc is an fxsh driven line by line on its standard input.
type shellProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	mu    sync.Mutex
	out   strings.Builder
	lines chan string
}

func (b *bench) startShell(ctx context.Context, dir string, env []string, args ...string) (*shellProc, error) {
	cmd := exec.CommandContext(ctx, b.fxsh, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	p := &shellProc{cmd: cmd, in: in, lines: make(chan string, 4096)}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	return p, nil
}

func (p *shellProc) send(lines ...string) {
	for _, l := range lines {
		fmt.Fprintln(p.in, l)
	}
}

// waitFor reads lines until one matches re (true) or the shell ends.
func (p *shellProc) waitFor(re *regexp.Regexp, timeout time.Duration) (string, bool) {
	t := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return "", false
			}
			if re.MatchString(l) {
				return l, true
			}
		case <-t:
			return "", false
		}
	}
}

// askAll sends cmd to every shell and waits (10 s at most) until each has
// printed one more line matching end: on a loaded machine a shell may take
// seconds to answer, and a fixed wait read half the class's counters.
func askAll(ps []*shellProc, cmd string, end *regexp.Regexp) {
	before := make([]int, len(ps))
	for i, p := range ps {
		before[i] = len(end.FindAllStringIndex(p.output(), -1))
		p.send(cmd)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i, p := range ps {
		for len(end.FindAllStringIndex(p.output(), -1)) <= before[i] && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (p *shellProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *shellProc) quit() {
	p.send("quit")
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

var (
	reJobEnd   = regexp.MustCompile(`job 1 (done|failed)`)
	reSent     = regexp.MustCompile(`(?m)^bytes sent\s+([0-9.]+) ([kMGT]?B)\s*$`)
	reServed   = regexp.MustCompile(`(?m)seeding: .*; ([0-9.]+) ([kMGT]?B) sent to peers`)
	reListed   = regexp.MustCompile(`big\.bin`)
	reMasterUp = regexp.MustCompile(`master listening on`)
	// The last line of status and of stats.
	reStatusEnd = regexp.MustCompile(`(?m)^jobs: `)
	reStatsEnd  = regexp.MustCompile(`(?m)^pacing rate\s`)
)

func parseHuman(num, unit string) float64 {
	v, _ := strconv.ParseFloat(num, 64)
	switch unit {
	case "kB":
		v *= 1e3
	case "MB":
		v *= 1e6
	case "GB":
		v *= 1e9
	case "TB":
		v *= 1e12
	}
	return v
}

// waitListed waits until the master lists the class's file (a `list`
// run by a fresh fxsh with env), at most within.
func (b *bench) waitListed(ctx context.Context, env []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		lc := exec.CommandContext(ctx, b.fxsh, "-c", "list")
		lc.Env = append(os.Environ(), env...)
		out, _ := lc.CombinedOutput()
		if reListed.Match(out) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the file was never listed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuSeconds sums the CPU the processes have used so far (user and system,
// from /proc; 0 for a process it cannot read).
func cpuSeconds(procs []*shellProc) float64 {
	var cpu float64
	for _, p := range procs {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid)); err == nil {
			if c, err := parseStatCPU(b); err == nil {
				cpu += c
			}
		}
	}
	return cpu
}

// classServed asks every shell of the class, once all are done, what each
// client served to the others and what the origin sent, and logs the
// clients' counters summed.
func (b *bench) classServed(tag string, origin *shellProc, clients []*shellProc) (served []float64, originSent float64) {
	// Everyone is done: what did each serve, and the origin send?
	served = make([]float64, len(clients))
	askAll(append([]*shellProc{origin}, clients...), "status", reStatusEnd)
	for i, c := range clients {
		if m := reServed.FindAllStringSubmatch(c.output(), -1); len(m) > 0 {
			last := m[len(m)-1]
			served[i] = parseHuman(last[1], last[2])
		}
	}
	// Each client's own counters say where its time went: "not yet"
	// answers (asked a peer too early), duplicates (two sources sent the
	// same chunk), request timeouts, busy answers.
	askAll(append([]*shellProc{origin}, clients...), "stats", reStatsEnd)
	var sum clientCounters
	for _, c := range clients {
		sum.add(parseCounters(c.output()))
	}
	if len(clients) > 1 {
		b.logf("%s: the %d clients' counters summed: %s", tag, len(clients), sum)
	}
	if m := reSent.FindAllStringSubmatch(origin.output(), -1); len(m) > 0 {
		last := m[len(m)-1]
		originSent = parseHuman(last[1], last[2])
	}
	return served, originSent
}

// classroomRun starts a master and a capped origin sharing a file of
// sizeMiB, runs n clients at once (after waiting for the listing) and
// returns each client's time, what each served and what the origin sent.
func (b *bench) classroomRun(ctx context.Context, tag string, n, sizeMiB int, rate string, settings ...string) (times, served []float64, originSent float64, identical bool, err error) {
	root := filepath.Join(b.work, "classroom-"+tag)
	os.RemoveAll(root)
	if err := os.MkdirAll(filepath.Join(root, "origin"), 0o755); err != nil {
		return nil, nil, 0, false, err
	}
	src := filepath.Join(root, "origin", "big.bin")
	if err := writeRandomFile(src, int64(sizeMiB)<<20); err != nil {
		return nil, nil, 0, false, err
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, 0, false, err
	}
	env := []string{"FXSH_MASTER=127.0.0.1:" + strconv.Itoa(port), "FXSH_DISCOVERY=off", "NO_COLOR=1", "XDG_STATE_HOME=" + root + "/state", "XDG_CACHE_HOME=" + root + "/cache"}
	master, err := b.startShell(ctx, root, env)
	if err != nil {
		return nil, nil, 0, false, err
	}
	defer master.quit()
	master.send(fmt.Sprintf("serve master 127.0.0.1:%d", port))
	if _, ok := master.waitFor(reMasterUp, 10*time.Second); !ok {
		return nil, nil, 0, false, fmt.Errorf("master did not start: %s", master.output())
	}
	origin, err := b.startShell(ctx, root, env)
	if err != nil {
		return nil, nil, 0, false, err
	}
	defer origin.quit()
	origin.send("set rate "+rate, "share origin")
	if err := b.waitListed(ctx, env, 60*time.Second); err != nil {
		return nil, nil, 0, false, err
	}
	clients := make([]*shellProc, n)
	for i := range clients {
		if clients[i], err = b.startShell(ctx, root, env, "--dir", fmt.Sprintf("c%d", i)); err != nil {
			return nil, nil, 0, false, err
		}
		defer clients[i].quit()
		clients[i].send(settings...)
	}
	times = make([]float64, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		c.send("get big.bin")
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, ok := c.waitFor(reJobEnd, 20*time.Minute)
			times[i] = time.Since(start).Seconds()
			if !ok || strings.Contains(l, "failed") {
				times[i] = math.NaN()
			}
		}()
	}
	wg.Wait()
	// The CPU every fxsh of the class used (clients, origin, master): on a
	// shared machine the wall time says how much CPU the others left us,
	// this says how much the class needed.
	cpu := cpuSeconds(append([]*shellProc{master, origin}, clients...))
	gib := float64(n) * float64(int64(sizeMiB)<<20) / (1 << 30)
	b.logf("%s: CPU of every fxsh (%d clients, origin, master) %.1f s = %.2f CPU-s per GiB received; wall %.1f s, so %.2f of the 2 cores",
		tag, n, cpu, cpu/gib, time.Since(start).Seconds(), cpu/time.Since(start).Seconds()/2)
	served, originSent = b.classServed(tag, origin, clients)
	identical = true
	for i := range clients {
		if !sameFile(src, filepath.Join(root, fmt.Sprintf("c%d", i), "big.bin")) {
			identical = false
			b.logf("client %d: copy differs or is missing", i)
		}
	}
	return times, served, originSent, identical, nil
}

func (b *bench) caseClassroom(ctx context.Context) (CaseResult, error) {
	c := classroomSettings()
	var cr CaseResult
	size := float64(int64(c.sizeMiB) << 20)
	b.logf("classroom: 1 client alone, then %d at once, %d MiB, origin at %s (loopback; the machine is shared)", c.clients, c.sizeMiB, c.rate)
	alone, _, aloneSent, okAlone, err := b.classroomRun(ctx, "alone", 1, c.sizeMiB, c.rate)
	if err != nil {
		return cr, err
	}
	b.logf("alone: %.2f s (origin sent %.0f MB)", alone[0], aloneSent/1e6)
	times, served, sent, okAll, err := b.classroomRun(ctx, "class", c.clients, c.sizeMiB, c.rate)
	if err != nil {
		return cr, err
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	last := sorted[len(sorted)-1]
	b.logf("%d at once: first %.2f s, median %.2f s, last %.2f s; origin sent %.0f MB = %.2f × the file; identical %v",
		c.clients, sorted[0], sorted[len(sorted)/2], last, sent/1e6, sent/size, okAll && okAlone)
	var servedMB []string
	for i := range served {
		servedMB = append(servedMB, fmt.Sprintf("c%d %.0f", i, served[i]/1e6))
	}
	b.logf("served to peers (MB): %s", strings.Join(servedMB, ", "))
	cr.Rows = append(cr.Rows,
		Row{Case: fmt.Sprintf("classroom: last of %d finishes / one alone (%d MiB, origin %s)", c.clients, c.sizeMiB, c.rate), Unit: "×",
			Fxsh: []float64{last / alone[0]}, Target: Target{Of: "fxsh", Op: "<=", Value: 2}},
		Row{Case: "classroom: origin sent / file size", Unit: "×", Fxsh: []float64{sent / size}, Target: Target{Of: "fxsh", Op: "<=", Value: 3}},
	)
	identical := 0.0
	if okAll && okAlone {
		identical = 1
	}
	cr.Rows = append(cr.Rows, Row{Case: "classroom: every copy byte-identical", Unit: "1=yes", Fxsh: []float64{identical}, Target: Target{Of: "fxsh", Op: ">=", Value: 1}})
	cr.Extra = map[string]any{"alone_s": alone[0], "times_s": times, "served_bytes": served, "origin_sent_bytes": sent}
	cr.Info = append(cr.Info, fmt.Sprintf("finish times (s): %v", roundAll(times)), fmt.Sprintf("served to peers (MB): %s", strings.Join(servedMB, ", ")))

	if c.verify > 0 {
		var grp, whole []float64
		for r := 0; r < 2; r++ {
			for _, mode := range []string{"groups", "whole"} {
				t, _, _, ok, err := b.classroomRun(ctx, "verify-"+mode, 1, c.verify, "unlimited", "set verify "+mode)
				if err != nil {
					return cr, err
				}
				mbps := float64(int64(c.verify)<<20) / t[0] / 1e6
				if !ok {
					mbps = math.NaN()
				}
				b.logf("%d MiB clean loopback, verify %s: %.2f s = %.0f MB/s", c.verify, mode, t[0], mbps)
				if mode == "groups" {
					grp = append(grp, mbps)
				} else {
					whole = append(whole, mbps)
				}
			}
		}
		cr.Rows = append(cr.Rows, Row{Case: fmt.Sprintf("%d MiB loopback: verified streaming vs whole-file check", c.verify), Unit: "MB/s",
			Fxsh: grp, Ref: whole, RefIs: "whole-file check", Target: Target{Of: "ratio", Op: ">=", Value: 1}})
	}
	return cr, nil
}

// clientCounters are the counters of a client's `stats` that show idle
// time or waste.
type clientCounters struct {
	notYet, dups, timeouts, busy, retransmits, readBack, wakeups int64
	// Every datagram a client sent, and the DATA among them (what it
	// served as a peer): the rest are its ACKs and REQUESTs.
	datagramsSent, chunksSent, chunksReceived int64
}

var reCounter = regexp.MustCompile(`(?m)^(not yet replies|duplicates|timeouts \(PTO\)|busy replies|retransmits|groups read back|timer wake-ups \(client\)|datagrams sent|chunks sent|chunks received)\s+(\d+)\s*$`)

// parseCounters reads the last value of each counter in a shell's output.
func parseCounters(out string) clientCounters {
	var c clientCounters
	for _, m := range reCounter.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseInt(m[2], 10, 64)
		switch m[1] {
		case "not yet replies":
			c.notYet = v
		case "duplicates":
			c.dups = v
		case "timeouts (PTO)":
			c.timeouts = v
		case "busy replies":
			c.busy = v
		case "retransmits":
			c.retransmits = v
		case "groups read back":
			c.readBack = v
		case "timer wake-ups (client)":
			c.wakeups = v
		case "datagrams sent":
			c.datagramsSent = v
		case "chunks sent":
			c.chunksSent = v
		case "chunks received":
			c.chunksReceived = v
		}
	}
	return c
}

func (c *clientCounters) add(o clientCounters) {
	c.notYet += o.notYet
	c.dups += o.dups
	c.timeouts += o.timeouts
	c.busy += o.busy
	c.retransmits += o.retransmits
	c.readBack += o.readBack
	c.wakeups += o.wakeups
	c.datagramsSent += o.datagramsSent
	c.chunksSent += o.chunksSent
	c.chunksReceived += o.chunksReceived
}

func (c clientCounters) String() string {
	ctl := c.datagramsSent - c.chunksSent
	return fmt.Sprintf("chunks received %d, ACK/REQUEST datagrams sent %d (%.2f a chunk), not yet %d, duplicates %d, timeouts %d, busy %d, retransmits %d, groups read back %d, timer wake-ups %d",
		c.chunksReceived, ctl, float64(ctl)/float64(max(1, c.chunksReceived)), c.notYet, c.dups, c.timeouts, c.busy, c.retransmits, c.readBack, c.wakeups)
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Round(x*100) / 100
	}
	return out
}

// writeRandomFile writes size pseudo-random bytes (not compressible, not
// all the same) to path.
func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var x uint64 = 0x9e3779b97f4a7c15 ^ uint64(size)
	for off := int64(0); off < size; off += int64(len(buf)) {
		for i := 0; i+8 <= len(buf); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(x >> (8 * j))
			}
		}
		n := min(int64(len(buf)), size-off)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// sameFile reports whether two files have the same bytes.
func sameFile(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || string(ba[:na]) != string(bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return ea == eb || (ea == io.ErrUnexpectedEOF || ea == io.EOF) && (eb == io.ErrUnexpectedEOF || eb == io.EOF)
		}
	}
}
