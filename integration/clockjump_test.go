//go:build linux

package integration

// Clock jumps: testdata/clockjump/ stories step the machine's real wall
// clock (CLOCK_REALTIME) during fxsh work, to show that every timer and
// TTL runs on the monotonic clock. They need root (CAP_SYS_TIME) and change
// the clock for every process on the machine, so they run only with
// FXSH_CLOCK_JUMP=1, and skip when the clock cannot be set.
//
// Putting the clock back is what matters most here (no NTP is assumed).
// The true time is never read back from the clock being stepped: it is
// computed as wall0 + (CLOCK_MONOTONIC now - mono0) from one paired reading
// taken before the first step, so a step cannot corrupt it; the clock is
// moved by the exact difference (clock_adjtime ADJ_SETOFFSET). The story
// restores at its end (ts.Defer, even when it fails), the test restores in
// t.Cleanup, and a guard process (this test binary again, TestClockGuard)
// restores the clock if the test dies (its stdin closes without an "ok"
// line) or leaves the clock stepped longer than MaxClockStepped.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

const (
	// MaxClockStep is the farthest clockjump may move the wall clock from
	// the true time.
	MaxClockStep = 3 * time.Hour
	// ClockRestoreTolerance is how close to the true time a restore must
	// put the wall clock.
	ClockRestoreTolerance = time.Millisecond

	// adjSetOffset and adjNano are ADJ_SETOFFSET and ADJ_NANO
	// (linux/timex.h), not in x/sys/unix: clock_adjtime(ADJ_SETOFFSET)
	// adds an offset to the wall clock in one step (zero: a permission
	// probe that moves nothing).
	adjSetOffset = 0x0100
	adjNano      = 0x2000
)

// clockNow reads a clock in nanoseconds.
func clockNow(id int32) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		panic(fmt.Sprintf("clock_gettime(%d): %v", id, err)) // cannot fail for these clocks on Linux
	}
	return ts.Nano()
}

// pairedReading reads the wall clock and the monotonic clock at (nearly)
// the same instant.
func pairedReading() (wall, mono int64) {
	m1 := clockNow(unix.CLOCK_MONOTONIC)
	wall = clockNow(unix.CLOCK_REALTIME)
	m2 := clockNow(unix.CLOCK_MONOTONIC)
	return wall, m1 + (m2-m1)/2
}

// trueClock is the true wall-clock time as seen from the monotonic clock
// (system-wide, so another process computes the same).
type trueClock struct{ wall0, mono0 int64 }

func newTrueClock() trueClock {
	w, m := pairedReading()
	return trueClock{w, m}
}

func (tc trueClock) at(mono int64) int64 { return tc.wall0 + mono - tc.mono0 }

// offset says how far the wall clock is from the true time now.
func (tc trueClock) offset() time.Duration {
	w, m := pairedReading()
	return time.Duration(w - tc.at(m))
}

// set sets the wall clock to the true time plus off. It measures how far
// the clock is now and steps it by the difference with
// clock_adjtime(ADJ_SETOFFSET), which the kernel applies exactly, so no
// syscall latency creeps into the clock.
func (tc trueClock) set(off time.Duration) error {
	if err := stepClock(off - tc.offset()); err != nil {
		return fmt.Errorf("setting the wall clock: %w", err)
	}
	return nil
}

// stepClock moves the wall clock by d.
func stepClock(d time.Duration) error {
	// ADJ_NANO: Time.Usec holds nanoseconds, in [0, 1e9) even for a
	// negative step.
	sec, nsec := int64(d/time.Second), int64(d%time.Second)
	if nsec < 0 {
		sec, nsec = sec-1, nsec+int64(time.Second)
	}
	tx := unix.Timex{Modes: adjSetOffset | adjNano}
	setInt(&tx.Time.Sec, sec)
	setInt(&tx.Time.Usec, nsec)
	_, err := unix.ClockAdjtime(unix.CLOCK_REALTIME, &tx)
	return err
}

// setInt stores v in a Timeval field, 32 or 64 bits wide by platform.
func setInt[T ~int32 | ~int64](p *T, v int64) { *p = T(v) }

// clockStepper steps the wall clock for one test, watched by a guard.
type clockStepper struct {
	tc    trueClock
	guard *clockGuard

	mu      sync.Mutex // guards stepped, and the clock itself
	stepped time.Duration
}

// canSetClock probes for the right to set the wall clock without moving it.
func canSetClock() error {
	return stepClock(0)
}

// newClockStepper skips t unless the wall clock may be stepped here, and
// starts the guard.
func newClockStepper(t *testing.T) *clockStepper {
	t.Helper()
	if os.Getenv("FXSH_CLOCK_JUMP") != "1" {
		t.Skip("steps the machine's wall clock: set FXSH_CLOCK_JUMP=1 to run (root, CAP_SYS_TIME)")
	}
	if err := canSetClock(); errors.Is(err, unix.EPERM) {
		t.Skipf("FXSH_CLOCK_JUMP=1 but the wall clock cannot be set here (%v): needs root with CAP_SYS_TIME", err)
	} else if err != nil {
		t.Fatalf("probing clock_adjtime: %v", err)
	}
	c := &clockStepper{tc: newTrueClock()}
	g, err := startClockGuard(c.tc, MaxClockStepped, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	c.guard = g
	t.Cleanup(func() {
		if err := c.restore(); err != nil {
			t.Error(err)
		}
		if err := g.stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// step moves the wall clock by d from where the stepper last put it.
func (c *clockStepper) step(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.stepped + d
	if next > MaxClockStep || next < -MaxClockStep {
		return fmt.Errorf("clockjump %v: the clock would be %v off, more than %v", d, next, MaxClockStep)
	}
	if err := c.guard.tell("stepped"); err != nil { // no guard, no step
		return err
	}
	if err := c.tc.set(next); err != nil {
		return err
	}
	c.stepped = next
	return nil
}

// restore puts the wall clock back on the true time and checks it.
func (c *clockStepper) restore() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stepped == 0 && absClockOffset(c.tc.offset()) <= ClockRestoreTolerance {
		return nil
	}
	if err := c.tc.set(0); err != nil {
		return err
	}
	c.stepped = 0
	if off := c.tc.offset(); absClockOffset(off) > ClockRestoreTolerance {
		return fmt.Errorf("wall clock %v off the true time after restoring it", off)
	}
	return c.guard.tell("restored")
}

func absClockOffset(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// cmd is the story command:
//
//	clockjump +1h | -2h | ...   step the wall clock by that much
//	clockjump restore           put it back on the true time (checked)
//
// The first step of a story also defers a restore to the story's end.
func (c *clockStepper) cmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: clockjump +DURATION|-DURATION|restore")
	}
	if args[0] == "restore" {
		ts.Check(c.restore())
		ts.Logf("wall clock restored: %v off the true time", c.tc.offset())
		return
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	c.mu.Lock()
	first := c.stepped == 0
	c.mu.Unlock()
	if first {
		ts.Defer(func() {
			// On failure TestClockJump's cleanup tries again and fails the test.
			if err := c.restore(); err != nil {
				ts.Logf("restoring the wall clock: %v", err)
			}
		})
	}
	ts.Check(c.step(d))
	ts.Logf("wall clock stepped %v: now %v off the true time", d, c.tc.offset().Round(time.Millisecond))
}

// clockGuard is the guard process (TestClockGuard in this test binary again):
// it restores the wall clock if its test dies (its stdin closes without an
// "ok" line) or leaves the clock stepped for longer than
// MaxClockStepped. Its stdin takes "stepped", "restored" and "ok" lines.
type clockGuard struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

// MaxClockStepped is the longest the guard lets the wall clock stay
// stepped (since the first "stepped" after a "restored") before it
// restores it, whatever the test is doing.
const MaxClockStepped = 30 * time.Second

// startClockGuard starts a guard for tc that lets the clock stay stepped for
// maxStepped, and waits until it is ready; what it says goes to stderr.
func startClockGuard(tc trueClock, maxStepped time.Duration, stderr io.Writer) (*clockGuard, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	g := &clockGuard{cmd: exec.Command(exe, "-test.run=^TestClockGuard$", "-test.count=1")}
	g.cmd.Env = append(os.Environ(), fmt.Sprintf("FXSH_CLOCK_GUARD=%d %d %d", tc.wall0, tc.mono0, int64(maxStepped)))
	g.cmd.Stderr = stderr
	if g.in, err = g.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := g.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the clock guard: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == guardReady {
				ready <- nil
				io.Copy(io.Discard, out)
				return
			}
		}
		ready <- fmt.Errorf("clock guard ended before it was ready: %v", sc.Err())
	}()
	select {
	case err = <-ready:
	case <-time.After(30 * time.Second):
		err = errors.New("clock guard not ready after 30s")
	}
	if err != nil {
		g.cmd.Process.Kill()
		g.cmd.Wait()
		return nil, err
	}
	return g, nil
}

const guardReady = "clock guard ready"

func (g *clockGuard) tell(line string) error {
	if _, err := fmt.Fprintln(g.in, line); err != nil {
		return fmt.Errorf("telling the clock guard %q: %w", line, err)
	}
	return nil
}

// stop tells the guard that the clock is back and waits for it to end.
func (g *clockGuard) stop() error {
	err := g.tell("ok")
	g.in.Close()
	if werr := g.cmd.Wait(); werr != nil {
		return fmt.Errorf("clock guard: %w", werr)
	}
	return err
}

// TestClockGuard is the guard process that the clock-jump tests start (it
// skips otherwise). FXSH_CLOCK_GUARD holds "WALL0 MONO0 MAXSTEPPED" in
// nanoseconds: the true clock, and how long the clock may stay stepped.
func TestClockGuard(t *testing.T) {
	spec := os.Getenv("FXSH_CLOCK_GUARD")
	if spec == "" {
		t.Skip("the guard process of the clock-jump tests; they start it")
	}
	var tc trueClock
	var maxStepped time.Duration
	if _, err := fmt.Sscanf(spec, "%d %d %d", &tc.wall0, &tc.mono0, &maxStepped); err != nil || maxStepped <= 0 {
		t.Fatalf("FXSH_CLOCK_GUARD=%q: want WALL0 MONO0 MAXSTEPPED (%v)", spec, err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	restore := func(why string) {
		off := tc.offset()
		if absClockOffset(off) <= ClockRestoreTolerance {
			return
		}
		if err := tc.set(0); err != nil {
			fmt.Fprintf(os.Stderr, "clock guard: %s, and the wall clock (%v off) could not be restored: %v\n", why, off, err)
			return
		}
		fmt.Fprintf(os.Stderr, "clock guard: %s; wall clock restored (it was %v off, now %v)\n", why, off, tc.offset())
	}
	fmt.Println(guardReady)
	var expire <-chan time.Time // armed while the clock is stepped
	for {
		select {
		case l, ok := <-lines:
			switch {
			case !ok:
				restore("its test died")
				return
			case l == "ok":
				return
			case l == "stepped" && expire == nil:
				expire = time.After(maxStepped)
			case l == "restored":
				expire = nil
			}
		case <-expire:
			restore(fmt.Sprintf("the clock stayed stepped over %v", maxStepped))
			expire = nil
		}
	}
}

// TestClockRestore checks the restore logic on its own with small steps
// before any story trusts it: step, read the offset, restore; and the
// guard restoring when its test "dies" (stdin closed without ok).
func TestClockRestore(t *testing.T) {
	c := newClockStepper(t)
	for _, d := range []time.Duration{2 * time.Second, -3 * time.Second} {
		if err := c.step(d); err != nil {
			t.Fatal(err)
		}
		want := c.stepped
		if off := c.tc.offset(); absClockOffset(off-want) > ClockRestoreTolerance {
			t.Errorf("after stepping %v the clock is %v off, want %v", d, off, want)
		}
	}
	if err := c.restore(); err != nil {
		t.Fatal(err)
	}
	if off := c.tc.offset(); absClockOffset(off) > ClockRestoreTolerance {
		t.Errorf("after restore the clock is %v off", off)
	}

	// A second guard whose test dies with the clock a second ahead: it
	// must put the clock back by itself.
	var said strings.Builder
	g, err := startClockGuard(c.tc, MaxClockStepped, &said)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.step(time.Second); err != nil {
		g.in.Close()
		g.cmd.Wait()
		t.Fatal(err)
	}
	g.in.Close() // the "test" dies
	if err := g.cmd.Wait(); err != nil {
		t.Errorf("guard: %v\n%s", err, said.String())
	}
	if !regexp.MustCompile(`its test died; wall clock restored \(it was (999\.\d+ms|1\.00\d*s|1s) off`).MatchString(said.String()) {
		t.Errorf("guard said %q, want it to restore a clock 1s off", said.String())
	}
	if off := c.tc.offset(); absClockOffset(off) > ClockRestoreTolerance {
		t.Errorf("after the guard restored, the clock is %v off", off)
	}
	c.mu.Lock()
	c.stepped = 0 // the second guard put it back
	c.mu.Unlock()

	// A guard whose test leaves the clock stepped too long (here 200ms):
	// it restores the clock and keeps guarding.
	var said2 lockedBuilder
	g, err = startClockGuard(c.tc, 200*time.Millisecond, &said2)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.tell("stepped"); err != nil {
		t.Fatal(err)
	}
	if err := c.step(time.Second); err != nil {
		g.stop()
		t.Fatal(err)
	}
	for start := time.Now(); !strings.Contains(said2.String(), "restored"); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			break
		}
	}
	if err := g.stop(); err != nil {
		t.Error(err)
	}
	if !regexp.MustCompile(`the clock stayed stepped over 200ms; wall clock restored \(it was (999\.\d+ms|1\.00\d*s|1s) off`).MatchString(said2.String()) {
		t.Errorf("guard said %q, want it to restore a clock left 1s off", said2.String())
	}
	if off := c.tc.offset(); absClockOffset(off) > ClockRestoreTolerance {
		t.Errorf("after the guard restored, the clock is %v off", off)
	}
	c.mu.Lock()
	c.stepped = 0
	c.mu.Unlock()
	if err := c.guard.tell("restored"); err != nil {
		t.Error(err)
	}
}

// lockedBuilder is a strings.Builder that a process may write while a test
// reads it.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *lockedBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestClockJump runs the stories in testdata/clockjump with the clockjump
// command.
func TestClockJump(t *testing.T) {
	c := newClockStepper(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/clockjump",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("NO_COLOR", "")
			e.Setenv("XDG_STATE_HOME", e.WorkDir+"/.state")
			e.Setenv("XDG_CACHE_HOME", e.WorkDir+"/.cache")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"clockjump": c.cmd,
			"nomore":    cmdNomore,
			"freeport":  cmdFreeport,
			"waitport":  cmdWaitport,
			"poll":      cmdPoll,
			"mkfile":    cmdMkfile,
			"sleep":     cmdSleep,
		},
	})
}

// nomore BASE FILE COUNTER... checks that each COUNTER (a row of the
// `stats` table, such as "timeouts (PTO)") is no higher in FILE than in
// BASE: a run under clock jumps had no extra timeout or retry.
func cmdNomore(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: nomore BASE FILE COUNTER...")
	}
	base, got := ts.ReadFile(args[0]), ts.ReadFile(args[1])
	for _, name := range args[2:] {
		b, err := statsCounter(base, name)
		ts.Check(err)
		g, err := statsCounter(got, name)
		ts.Check(err)
		if g > b {
			ts.Fatalf("%s: %d in %s, more than %d in %s", name, g, args[1], b, args[0])
		}
		ts.Logf("%s: %d (base %d)", name, g, b)
	}
}

// statsCounter reads one integer row of the `stats` table in out.
func statsCounter(out, name string) (int64, error) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` +(\d+)$`)
	m := re.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		return 0, fmt.Errorf("want one %q row in the stats table, found %d", name, len(m))
	}
	return strconv.ParseInt(m[0][1], 10, 64)
}
