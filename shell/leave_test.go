package shell

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// busyShare starts a shell that serves a master and shares an 8 MB file at
// 1 MB/s, and a client shell downloading it; it returns both once the
// share counts the download.
func busyShare(t *testing.T, terminal bool) (srv *Shell, srvUI *fakeUI, cl *Shell, clUI *fakeUI) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), bytes.Repeat([]byte("leaving "), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	srvUI = newFakeUI(terminal)
	srv = testShell(t, srvUI)
	t.Cleanup(srv.closeRoles)
	if !runLines(t, srv, "set rate 1MB/s", "serve master 127.0.0.1:0", "share "+Quote(dir)+" --udp 127.0.0.1:0") {
		t.Fatalf("server: %s", srvUI.stderr())
	}
	clUI = newFakeUI(false)
	cl = testShell(t, clUI)
	cl.opts.Masters = srv.masters()
	dl := t.TempDir()
	waitFor(t, "the registration", func() bool {
		return runLines(t, cl, "list big.bin") && strings.Contains(clUI.stdout(), "big.bin")
	})
	if !runLines(t, cl, "get big.bin -o "+Quote(dl)) {
		t.Fatalf("get: %s", clUI.stderr())
	}
	// Past the file's tree (a transfer of its own), into the file itself.
	waitFor(t, "the download from the share", func() bool {
		a := cl.jobs.Active()
		n, _ := srv.shareDownloads()
		return len(a) == 1 && a[0].Snapshot(time.Now()).Done > 100_000 && n == 1
	})
	return srv, srvUI, cl, clUI
}

// waitOut is waitFor, showing what the shell printed when it times out.
func waitOut(t *testing.T, ui *fakeUI, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s:\nstdout %s\nstderr %s", what, ui.stdout(), ui.stderr())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clientTold waits for the client's job to fail because the server left
// and returns how long after since that was.
func clientTold(t *testing.T, clUI *fakeUI, since time.Time) time.Duration {
	t.Helper()
	re := regexp.MustCompile(`job 1 failed: big\.bin: .*server 127\.0\.0\.1:\d+ left; the partial file is kept`)
	deadline := time.Now().Add(10 * time.Second)
	for !re.MatchString(clUI.stderr()) {
		if time.Now().After(deadline) {
			t.Fatalf("the client's job did not fail naming the server that left:\nstdout %s\nstderr %s", clUI.stdout(), clUI.stderr())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(since)
}

// TestQuitAsksWhileOthersDownload: at the prompt, quit and Ctrl-D on a
// shell whose share serves a download warn and ask; anything but y keeps
// serving; y, quit -f, or Ctrl-C twice on an empty line leave, and the
// client's job then fails at once naming the server.
func TestQuitAsksWhileOthersDownload(t *testing.T) {
	for _, way := range []string{"y", "quit -f", "ctrl-c twice"} {
		t.Run(way, func(t *testing.T) {
			srv, ui, _, clUI := busyShare(t, true)
			finished := make(chan struct{})
			go func() { srv.interactive(context.Background()); close(finished) }()

			warning := "1 download from your share is running (1 host); quit -f leaves anyway"
			ui.in <- fakeInput{err: io.EOF} // Ctrl-D
			waitFor(t, "the warning", func() bool { return strings.Contains(ui.stderr(), warning) })
			waitFor(t, "the question", func() bool { ui.mu.Lock(); defer ui.mu.Unlock(); return ui.prompt == leaveQuestion && ui.reading })
			ui.in <- fakeInput{line: "n"}
			waitFor(t, "the refusal", func() bool { return strings.Contains(ui.stderr(), "not quitting: your share keeps serving") })
			ui.in <- fakeInput{line: "quit"}
			waitOut(t, ui, "the second question", func() bool { return strings.Count(ui.stderr(), warning) == 2 })
			ui.in <- fakeInput{err: ErrInterrupt} // Ctrl-C at the question: no
			waitFor(t, "the second refusal", func() bool { return strings.Count(ui.stderr(), "not quitting") == 2 })
			if srv.quitting() || srv.role("share") == nil {
				t.Fatal("the share stopped without a yes")
			}
			if n, _ := srv.shareDownloads(); n != 1 {
				t.Fatalf("%d downloads after the refusals, want the one still running", n)
			}
			// Ctrl-C with text on the line only drops it.
			ui.in <- fakeInput{line: "lis", err: ErrInterrupt}
			ui.in <- fakeInput{line: "echo still here"}
			waitFor(t, "the next command", func() bool { return strings.Contains(ui.stdout(), "still here\n") })
			if strings.Contains(ui.stderr(), "Ctrl-C again") {
				t.Fatalf("a Ctrl-C that dropped a line offered to stop: %q", ui.stderr())
			}

			switch way {
			case "y":
				ui.in <- fakeInput{line: "quit"}
				waitFor(t, "the third question", func() bool { return strings.Count(ui.stderr(), warning) == 3 })
				ui.in <- fakeInput{line: "y"}
			case "quit -f":
				ui.in <- fakeInput{line: "quit -f"}
			case "ctrl-c twice":
				ui.in <- fakeInput{err: ErrInterrupt}
				waitFor(t, "the hint", func() bool {
					return strings.Contains(ui.stderr(), "1 download from your share is running (1 host): Ctrl-C again stops serving and quits (or type quit)")
				})
				ui.in <- fakeInput{err: ErrInterrupt}
			}
			select {
			case <-finished:
			case <-time.After(10 * time.Second):
				t.Fatal("the shell did not quit")
			}
			if strings.Count(ui.stderr(), warning) > 3 {
				t.Errorf("asked again: %q", ui.stderr())
			}
			start := time.Now()
			srv.closeRoles() // what the session's end does after quit
			closed := time.Since(start)
			told := clientTold(t, clUI, start)
			t.Logf("closing the roles took %v; the client's job failed %v after they began", closed.Round(time.Millisecond), told.Round(time.Millisecond))
			if told > 3*time.Second {
				t.Errorf("the client noticed after %v", told)
			}
		})
	}
}

// TestQuitScriptNotAsked: a script (no terminal) is never asked; its quit
// leaves, and the client is told.
func TestQuitScriptNotAsked(t *testing.T) {
	srv, ui, _, clUI := busyShare(t, false)
	if !runLines(t, srv, "quit") {
		t.Fatalf("quit in a script failed: %s", ui.stderr())
	}
	if strings.Contains(ui.stderr(), "quit -f leaves anyway") || !srv.quitting() {
		t.Fatalf("a script was asked, or did not quit: %q", ui.stderr())
	}
	start := time.Now()
	srv.closeRoles()
	clientTold(t, clUI, start)
}

// TestUnshareTellsClients: unshare with a download running says it cut it,
// and the client fails at once.
func TestUnshareTellsClients(t *testing.T) {
	srv, ui, _, clUI := busyShare(t, false)
	start := time.Now()
	if !runLines(t, srv, "unshare") {
		t.Fatalf("unshare: %s", ui.stderr())
	}
	if !strings.Contains(ui.stdout(), "stopped sharing (1 download cut: their clients were told)") {
		t.Errorf("stdout = %q", ui.stdout())
	}
	clientTold(t, clUI, start)
}

// TestCtrlCServingHint: at the prompt of a shell that serves with nobody
// downloading, Ctrl-C on an empty line says how to stop; a second one
// within CtrlCAgain quits; a shell that serves nothing is not stopped by
// Ctrl-C at all.
func TestCtrlCServingHint(t *testing.T) {
	t.Run("not serving", func(t *testing.T) {
		ui := newFakeUI(true)
		s := testShell(t, ui)
		finished := make(chan struct{})
		go func() { s.interactive(context.Background()); close(finished) }()
		ui.in <- fakeInput{err: ErrInterrupt}
		ui.in <- fakeInput{err: ErrInterrupt}
		ui.in <- fakeInput{line: "echo here"}
		waitFor(t, "the prompt", func() bool { return strings.Contains(ui.stdout(), "here\n") })
		if s.quitting() || strings.Contains(ui.stderr(), "Ctrl-C again") {
			t.Errorf("Ctrl-C twice on a shell serving nothing: quitting %v, stderr %q", s.quitting(), ui.stderr())
		}
		ui.in <- fakeInput{err: io.EOF}
		<-finished
	})
	t.Run("serving", func(t *testing.T) {
		ui := newFakeUI(true)
		s := testShell(t, ui)
		t.Cleanup(s.closeRoles)
		if !runLines(t, s, "serve master 127.0.0.1:0") {
			t.Fatal(ui.stderr())
		}
		finished := make(chan struct{})
		go func() { s.interactive(context.Background()); close(finished) }()
		ui.in <- fakeInput{err: ErrInterrupt}
		waitFor(t, "the hint", func() bool {
			return strings.Contains(ui.stderr(), "this shell serves (master): Ctrl-C again stops serving and quits (or type quit)")
		})
		// Anything typed in between disarms it.
		ui.in <- fakeInput{line: "echo between"}
		ui.in <- fakeInput{err: ErrInterrupt}
		waitFor(t, "the second hint", func() bool { return strings.Count(ui.stderr(), "Ctrl-C again") == 2 })
		if s.quitting() {
			t.Fatal("quit after a Ctrl-C that followed a command")
		}
		ui.in <- fakeInput{err: ErrInterrupt}
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatal("Ctrl-C twice did not stop a serving shell")
		}
		if !strings.Contains(ui.stdout(), "quit\n") {
			t.Errorf("stdout = %q, want the quit shown", ui.stdout())
		}
	})
}
