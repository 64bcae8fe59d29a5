//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Limits on what a child process can make the benchmark keep.
const (
	MaxChildLines   = 2000 // output lines kept per child (the last ones)
	MaxChildLineLen = 4096 // longer lines are cut
	// StopGrace is how long a child has to leave after SIGTERM before
	// SIGKILL.
	StopGrace = 5 * time.Second
	// RSSSampleEvery is how often a child's VmHWM is read while it runs.
	RSSSampleEvery = 50 * time.Millisecond
	// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on
	// every Linux architecture Go supports).
	clockTicks = 100
)

var (
	errExited  = errors.New("process exited")
	errTimeout = errors.New("time limit reached")
)

// proc is a child process of the benchmark. Its output (stdout and stderr
// together) is kept line by line, bounded, so the caller can wait for a
// readiness line and parse results; its CPU time and peak RSS are read from
// /proc while it runs and from rusage when it has ended. It runs in its own
// process group, is stopped when the run's context ends, and gets SIGKILL if
// the benchmark dies (PR_SET_PDEATHSIG).
type proc struct {
	name  string
	cmd   *exec.Cmd
	start time.Time

	mu      sync.Mutex // guards the fields below
	lines   []string   // the last MaxChildLines lines
	changed chan struct{}

	peakKiB  atomic.Int64  // highest VmHWM seen while it ran
	readDone chan struct{} // output reader finished (EOF)
	done     chan struct{} // process waited for; end and err are set
	end      time.Time
	err      error
}

// startProc starts argv with env added to the benchmark's environment.
func startProc(ctx context.Context, name string, argv []string, env []string) (*proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("starting process: empty command")
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, changed: make(chan struct{}), readDone: make(chan struct{}), done: make(chan struct{})}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	pw.Close()
	go p.read(pr)
	go p.sampleRSS()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.end, p.err = time.Now(), err
		p.mu.Unlock()
		close(p.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			p.stop()
		case <-p.done:
		}
	}()
	return p, nil
}

func (p *proc) read(r io.ReadCloser) {
	defer close(p.readDone)
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			s := strings.TrimRight(string(line[:min(len(line), MaxChildLineLen)]), "\r\n")
			for err == bufio.ErrBufferFull { // skip the rest of an over-long line
				_, err = br.ReadSlice('\n')
			}
			p.mu.Lock()
			if len(p.lines) == MaxChildLines {
				copy(p.lines, p.lines[1:])
				p.lines = p.lines[:len(p.lines)-1]
			}
			p.lines = append(p.lines, s)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// output returns the lines kept so far.
func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// tail is the last n lines, joined, for error messages.
func (p *proc) tail(n int) string {
	ls := p.output()
	return strings.Join(ls[max(0, len(ls)-n):], " | ")
}

// waitLine waits until a line matches re and returns its submatches. It
// fails when the process exits first, at the time limit, or with ctx.
func (p *proc) waitLine(ctx context.Context, re *regexp.Regexp, limit time.Duration) ([]string, error) {
	t := time.NewTimer(limit)
	defer t.Stop()
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if m := re.FindStringSubmatch(p.lines[seen]); m != nil {
				p.mu.Unlock()
				return m, nil
			}
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
			// Lines shift once MaxChildLines is reached; scan again from 0
			// (a readiness line comes early, so this does not repeat).
			seen = 0
		case <-p.readDone:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if seen >= n {
				return nil, fmt.Errorf("%s: waiting for %q: %w: %s", p.name, re, errExited, p.tail(8))
			}
		case <-t.C:
			return nil, fmt.Errorf("%s: waiting for %q: %w (%s): %s", p.name, re, errTimeout, limit, p.tail(8))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// wait waits for the process to end by itself within limit; past it the
// process is stopped and wait returns errTimeout. Its output is complete
// when wait returns (the reader is given a moment to reach EOF).
func (p *proc) wait(ctx context.Context, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	var err error
	select {
	case <-p.done:
	case <-t.C:
		p.stop()
		err = errTimeout
	case <-ctx.Done():
		p.stop()
		err = ctx.Err()
	}
	select {
	case <-p.readDone:
	case <-time.After(2 * time.Second): // a grandchild holds the pipe
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w: %s", p.name, p.err, p.tail(8))
	}
	return nil
}

// stop sends SIGTERM to the process group, then SIGKILL after StopGrace,
// and waits for the process.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	pid := p.cmd.Process.Pid
	_ = unix.Kill(-pid, unix.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(StopGrace):
	}
	_ = unix.Kill(-pid, unix.SIGKILL)
	<-p.done
}

// exited tells whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// elapsed is the time from start to exit (or to now while running).
func (p *proc) elapsed() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.end.IsZero() {
		return time.Since(p.start)
	}
	return p.end.Sub(p.start)
}

// sampleRSS keeps the highest VmHWM of the process until it ends.
//
// Peak RSS cannot come from rusage here: Go starts children with
// clone(CLONE_VM|CLONE_VFORK), and at exec Linux folds the high-water RSS of
// the mm being left (the benchmark's own, shared until exec) into the
// child's ru_maxrss, so ru_maxrss reports the benchmark's peak when that is
// larger. VmHWM belongs to the mm the child has after exec. A zombie has
// no VmHWM line, which reads as 0 and changes nothing.
func (p *proc) sampleRSS() {
	t := time.NewTicker(RSSSampleEvery)
	defer t.Stop()
	for {
		if kib := p.hwmKiB(); kib > p.peakKiB.Load() {
			p.peakKiB.Store(kib)
		}
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
}

// usage is CPU seconds (user+sys, from rusage) and peak RSS (KiB, VmHWM
// sampled while it ran); valid once the process has ended.
func (p *proc) usage() (cpu float64, rssKiB int64) {
	if !p.exited() || p.cmd.ProcessState == nil {
		return 0, 0
	}
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, p.peakKiB.Load()
	}
	return tv(ru.Utime) + tv(ru.Stime), p.peakKiB.Load()
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// cpuNow is the CPU seconds (user+sys, all threads) the running process
// has used so far, from /proc/PID/stat.
func (p *proc) cpuNow() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("reading cpu time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime+stime from a /proc/PID/stat line. The command
// name may hold spaces and parentheses, so fields count from the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc stat %.40q: no ')'", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parsing /proc stat %.40q: %d fields", s, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc stat %.40q: bad times", s)
	}
	return float64(u+st) / clockTicks, nil
}

// hwmKiB is the running process's peak RSS (VmHWM) in KiB.
func (p *proc) hwmKiB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	return parseHWM(b)
}

func parseHWM(b []byte) int64 {
	for l := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return n
				}
			}
		}
	}
	return 0
}
