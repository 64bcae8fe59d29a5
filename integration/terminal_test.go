package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tmux drives fxsh in a real terminal: the prompt, colour, completion, and
// background messages above a half-typed line. testscript only gives stdin a
// pty, so this story runs here.
type tmux struct {
	t       *testing.T
	session string
	socket  string
}

func newTmux(t *testing.T, width, height int, env []string, argv ...string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("FXSH_REQUIRE_TMUX") == "1" {
			t.Fatal("tmux is required (FXSH_REQUIRE_TMUX=1) but not installed")
		}
		t.Skip("tmux not installed")
	}
	tm := &tmux{t: t, session: "fxsh", socket: filepath.Join(t.TempDir(), "tmux.sock")}
	args := []string{"-S", tm.socket, "new-session", "-d", "-s", tm.session,
		"-x", itoa(width), "-y", itoa(height), "env"}
	args = append(args, env...)
	args = append(args, argv...)
	tm.run(args...)
	t.Cleanup(func() { exec.Command("tmux", "-S", tm.socket, "kill-server").Run() })
	return tm
}

func itoa(n int) string { return strconv.Itoa(n) }

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", args...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// keys sends keys (tmux key names, e.g. "Tab", "C-c", or literal text with -l).
func (tm *tmux) keys(keys ...string) {
	tm.t.Helper()
	tm.run(append([]string{"-S", tm.socket, "send-keys", "-t", tm.session}, keys...)...)
}

// text types literal text.
func (tm *tmux) text(s string) {
	tm.t.Helper()
	tm.run("-S", tm.socket, "send-keys", "-t", tm.session, "-l", s)
}

// screen returns the visible pane; withEscapes keeps colour codes.
func (tm *tmux) screen(withEscapes bool) string {
	args := []string{"-S", tm.socket, "capture-pane", "-p", "-t", tm.session}
	if withEscapes {
		args = append(args, "-e")
	}
	out, err := exec.Command("tmux", args...).CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// waitScreen waits until cond holds on the screen, failing after a deadline.
func (tm *tmux) waitScreen(what string, cond func(screen string) bool) string {
	tm.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := tm.screen(false)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("timed out waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastLine returns the last non-empty line of a screen.
func lastLine(screen string) string {
	lines := strings.Split(strings.TrimRight(screen, "\n "), "\n")
	return strings.TrimRight(lines[len(lines)-1], " ")
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildFxsh builds the fxsh binary once per test run, with the race detector.
func buildFxsh(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fxsh-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "fxsh")
		out, err := exec.Command("go", "build", "-race", "-o", builtBin, "github.com/fxshell/fxsh").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestTerminalPrompt(t *testing.T) {
	bin := buildFxsh(t)
	state := t.TempDir()
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "notes one.txt"), []byte("x"), 0o644)
	tm := newTmux(t, 100, 30, []string{"-u", "NO_COLOR", "XDG_STATE_HOME=" + state, "TERM=xterm-256color", "HOME=" + work, "XDG_CONFIG_HOME=" + work, "FXSH_DISCOVERY=off"},
		"sh", "-c", "cd "+work+" && exec "+bin)

	// The prompt, coloured.
	tm.waitScreen("the prompt", func(s string) bool { return strings.Contains(s, "fxsh>") })
	if esc := tm.screen(true); !strings.Contains(esc, "\x1b[") {
		t.Errorf("prompt is not coloured on a terminal:\n%q", esc)
	}

	// Completion of the second argument.
	tm.text("set errexit of")
	tm.keys("Tab")
	tm.waitScreen("completion of the second argument", func(s string) bool {
		return strings.HasSuffix(lastLine(s), "fxsh> set errexit off")
	})
	// Ctrl-C drops the line.
	tm.keys("C-c")
	tm.waitScreen("a fresh prompt after Ctrl-C", func(s string) bool { return lastLine(s) == "fxsh>" })

	// A local path completes for source, with the space escaped.
	tm.text("source not")
	tm.keys("Tab")
	tm.waitScreen("path completion", func(s string) bool {
		return strings.HasSuffix(lastLine(s), `fxsh> source notes\ one.txt`)
	})
	tm.keys("C-c")

	// Ctrl-Z does not stop the process: the prompt still answers.
	tm.keys("C-z")
	tm.text("echo still here")
	tm.keys("Enter")
	tm.waitScreen("a command after Ctrl-Z", func(s string) bool { return strings.Contains(s, "\nstill here") })

	// History file: created 0600, only lines that parsed.
	tm.text(`echo "unterminated`)
	tm.keys("Enter")
	tm.waitScreen("parse error", func(s string) bool { return strings.Contains(s, "unterminated quote") })

	// Ctrl-D on an empty line quits.
	tm.keys("C-d")
	deadline := time.Now().Add(20 * time.Second)
	for exec.Command("tmux", "-S", tm.socket, "has-session", "-t", tm.session).Run() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("fxsh did not quit on Ctrl-D:\n%s", tm.screen(false))
		}
		time.Sleep(50 * time.Millisecond)
	}
	hist := filepath.Join(state, "fxsh", "history")
	st, err := os.Stat(hist)
	if err != nil {
		t.Fatalf("history file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("history mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(hist)
	if !strings.Contains(string(b), "echo still here") || strings.Contains(string(b), "unterminated") {
		t.Errorf("history = %q: want the parsed lines only", b)
	}
}

// TestTerminalBackgroundMessage: a file server registering with the master
// running at the prompt prints a line above the prompt while a half-typed
// line stays intact; remote names complete for every argument of get.
func TestTerminalBackgroundMessage(t *testing.T) {
	bin := buildFxsh(t)
	work := t.TempDir()
	share := filepath.Join(work, "share")
	os.MkdirAll(share, 0o755)
	os.WriteFile(filepath.Join(share, "alpha.txt"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(share, "beta one.txt"), []byte("b"), 0o644)
	big := writeBig(t, filepath.Join(share, "big.bin"), 3<<20)
	addr := freeAddr(t)
	tm := newTmux(t, 120, 30, []string{"-u", "NO_COLOR", "XDG_STATE_HOME=" + work, "XDG_CACHE_HOME=" + work, "TERM=xterm-256color", "HOME=" + work, "XDG_CONFIG_HOME=" + work, "FXSH_DISCOVERY=off"},
		"sh", "-c", "cd "+work+" && exec "+bin)
	tm.waitScreen("the prompt", func(s string) bool { return strings.Contains(s, "fxsh>") })
	tm.text("serve master " + addr)
	tm.keys("Enter")
	tm.waitScreen("the master", func(s string) bool { return strings.Contains(s, "master listening on "+addr) })

	// Half a line typed, then a file server registers from another process.
	tm.text("echo half-typed")
	// The file server sends at most 500 kB/s, so a download lasts a while.
	srv := exec.Command(bin, "--master", addr, "-c", "set rate 500kB/s; set chunk 8192; share "+share)
	srv.Env = append(os.Environ(), "XDG_CACHE_HOME="+work, "XDG_CONFIG_HOME="+work, "FXSH_DISCOVERY=off")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	screen := tm.waitScreen("the registration event", func(s string) bool {
		return strings.Contains(s, "registered: 3 files")
	})
	if got := lastLine(screen); got != "fxsh> echo half-typed" {
		t.Errorf("half-typed line after a background message = %q, want it intact; screen:\n%s", got, screen)
	}
	tm.keys("Enter")
	tm.waitScreen("the finished line's output", func(s string) bool { return strings.Contains(s, "\nhalf-typed\n") })

	// Remote names complete for the second argument of get.
	tm.text("list")
	tm.keys("Enter")
	tm.waitScreen("the listing", func(s string) bool { return strings.Contains(s, "beta one.txt") })
	tm.text("get alpha.txt be")
	tm.keys("Tab")
	tm.waitScreen("completion of get's second argument", func(s string) bool {
		return strings.HasSuffix(lastLine(s), `fxsh> get alpha.txt beta\ one.txt`)
	})
	tm.keys("C-c")

	// wait redraws a live block of bars; Ctrl-C stops the wait, not the job.
	tm.text("get big.bin")
	tm.keys("Enter")
	tm.waitScreen("the job", func(s string) bool { return strings.Contains(s, "job 1: big.bin") })
	tm.text("wait")
	tm.keys("Enter")
	tm.waitScreen("a live progress bar", func(s string) bool {
		return strings.Contains(s, "[1] running   get [#")
	})
	tm.keys("C-c")
	tm.waitScreen("the wait interrupted", func(s string) bool {
		return strings.Contains(s, "wait: interrupted (the jobs go on)")
	})
	if strings.Contains(tm.screen(false), "job 1 cancelled") {
		t.Fatal("Ctrl-C during wait cancelled the job")
	}
	tm.text("wait")
	tm.keys("Enter")
	tm.waitScreen("the job done", func(s string) bool { return strings.Contains(s, "job 1 done: big.bin") })
	got, err := os.ReadFile(filepath.Join(work, "big.bin"))
	if err != nil || !bytes.Equal(got, big) {
		t.Errorf("downloaded big.bin differs (%v)", err)
	}
	tm.text("quit")
	tm.keys("Enter")
}

// writeBig writes a file of size bytes of a simple pattern and returns them.
func writeBig(t *testing.T, path string, size int) []byte {
	t.Helper()
	big := make([]byte, size)
	for i := range big {
		big[i] = byte(i * 7 >> 3)
	}
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	return big
}

// freeAddr returns a loopback TCP address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestTerminalLeaving: an interactive file server with a client
// downloading from it: Ctrl-C that drops typed text does nothing more;
// Ctrl-C on an empty line says how many downloads it would cut and how to
// stop; Ctrl-D warns and asks, and "n" keeps serving; Ctrl-C twice stops
// it, and the client's fxsh fails at once naming the server.
func TestTerminalLeaving(t *testing.T) {
	bin := buildFxsh(t)
	work := t.TempDir()
	share := filepath.Join(work, "share")
	os.MkdirAll(share, 0o755)
	writeBig(t, filepath.Join(share, "big.bin"), 8<<20)
	addr := freeAddr(t)
	env := []string{"XDG_STATE_HOME=" + work, "XDG_CACHE_HOME=" + work, "HOME=" + work, "XDG_CONFIG_HOME=" + work, "FXSH_DISCOVERY=off"}
	tm := newTmux(t, 120, 30, append([]string{"-u", "NO_COLOR", "TERM=xterm-256color"}, env...), "sh", "-c", "cd "+work+" && exec "+bin)
	tm.waitScreen("the prompt", func(s string) bool { return strings.Contains(s, "fxsh>") })
	tm.text("serve master " + addr + "; set rate 1MB/s; share share --udp 127.0.0.1:0")
	tm.keys("Enter")
	tm.waitScreen("the share", func(s string) bool { return strings.Contains(s, "sharing 1 file from share") })

	dl := filepath.Join(work, "dl")
	var clErr bytes.Buffer
	cl := exec.Command(bin, "--master", addr, "--dir", dl, "-c", "get big.bin; wait")
	cl.Env = append(os.Environ(), env...)
	cl.Stderr = &clErr
	if err := cl.Start(); err != nil {
		t.Fatal(err)
	}
	clDone := make(chan time.Time, 1)
	go func() { cl.Wait(); clDone <- time.Now() }()
	defer cl.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(filepath.Join(dl, ".big.bin.fxpart")); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client did not start downloading")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)

	hint := "1 download from your share is running (1 host): Ctrl-C again stops serving and quits (or type quit)"
	tm.text("lis")
	tm.keys("C-c")
	tm.waitScreen("a fresh prompt", func(s string) bool { return lastLine(s) == "fxsh>" })
	if strings.Contains(tm.screen(false), "Ctrl-C again") {
		t.Fatalf("a Ctrl-C that dropped typed text offered to stop:\n%s", tm.screen(false))
	}
	tm.keys("C-c")
	tm.waitScreen("the hint", func(s string) bool { return strings.Contains(s, hint) })
	tm.text("echo between")
	tm.keys("Enter")
	tm.waitScreen("the command", func(s string) bool { return strings.Contains(s, "\nbetween\n") })

	tm.keys("C-d")
	tm.waitScreen("the question", func(s string) bool {
		return strings.Contains(s, "1 download from your share is running (1 host); quit -f leaves anyway") &&
			strings.HasSuffix(lastLine(s), "leave anyway? [y/N]")
	})
	tm.text("n")
	tm.keys("Enter")
	tm.waitScreen("the refusal", func(s string) bool {
		return strings.Contains(s, "not quitting: your share keeps serving") && lastLine(s) == "fxsh>"
	})
	select {
	case <-clDone:
		t.Fatalf("the client ended while the share kept serving: %s", clErr.String())
	default:
	}

	tm.keys("C-c")
	tm.waitScreen("the hint again", func(s string) bool { return strings.Count(s, hint) == 2 })
	start := time.Now()
	tm.keys("C-c")
	var end time.Time
	select {
	case end = <-clDone:
	case <-time.After(20 * time.Second):
		t.Fatalf("the client did not end after the share stopped; screen:\n%s", tm.screen(false))
	}
	t.Logf("the client's fxsh exited %v after the second Ctrl-C", end.Sub(start).Round(time.Millisecond))
	if !strings.Contains(clErr.String(), "left; the partial file is kept for a resume") {
		t.Errorf("client stderr = %q, want the server named as gone", clErr.String())
	}
	if d := end.Sub(start); d > 3*time.Second {
		t.Errorf("the client ended %v after the share stopped, want within a couple of seconds", d)
	}
	deadline = time.Now().Add(20 * time.Second)
	for exec.Command("tmux", "-S", tm.socket, "has-session", "-t", tm.session).Run() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("fxsh did not quit on the second Ctrl-C:\n%s", tm.screen(false))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
