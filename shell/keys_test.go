package shell

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestQuitWaitInterrupt: Ctrl-D with a job running waits for it, Ctrl-C
// during that wait returns to the prompt (the job goes on), and a second
// Ctrl-D after the job ends quits.
func TestQuitWaitInterrupt(t *testing.T) {
	ui := newFakeUI(true)
	s := testShell(t, ui)
	finished := make(chan struct{})
	go func() { s.interactive(context.Background()); close(finished) }()

	release := make(chan struct{})
	j := s.jobs.Start("get", "big", false, func(ctx context.Context, j *Job) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	ui.in <- fakeInput{err: io.EOF}
	waitFor(t, "the exit wait", func() bool { return strings.Contains(ui.stderr(), "waiting for 1 job to end") })
	if e := ui.stderr(); !strings.Contains(e, "Ctrl-C returns to the prompt") {
		t.Errorf("the exit wait does not say how to leave it: %q", e)
	}
	waitFor(t, "a foreground command to interrupt", func() bool { return s.interruptForeground() })
	waitFor(t, "back at the prompt", func() bool {
		return strings.Contains(ui.stderr(), "not quitting: 1 job still running (quit -f cancels them)")
	})
	ui.in <- fakeInput{line: "echo still here"}
	waitFor(t, "a command after the interrupted quit", func() bool { return strings.Contains(ui.stdout(), "still here\n") })
	if st, _ := j.State(); st != JobRunning {
		t.Fatalf("job state %v after Ctrl-C in the exit wait, want running", st)
	}
	close(release)
	<-j.Done()
	ui.in <- fakeInput{err: io.EOF}
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-D did not quit once the job had ended")
	}
	if s.failed.Load() {
		t.Error("a job that succeeded failed the session")
	}
}

// TestCancelledJobFails: a cancelled job fails the exit status and `wait`,
// unless it was started by a "-cmd".
func TestCancelledJobFails(t *testing.T) {
	for _, mayFail := range []bool{false, true} {
		ui := newFakeUI(false)
		s := testShell(t, ui)
		j := s.jobs.Start("get", "big", mayFail, func(ctx context.Context, j *Job) error {
			<-ctx.Done()
			return ctx.Err()
		})
		if err := s.jobs.Cancel(j.ID); err != nil {
			t.Fatal(err)
		}
		<-j.Done()
		err := s.exec(context.Background(), Command{Words: []string{"wait", "1"}})
		if mayFail {
			if err != nil || s.failed.Load() {
				t.Errorf("-get cancelled: wait = %v, failed = %v; want neither", err, s.failed.Load())
			}
			continue
		}
		waitFor(t, "the failure flag", func() bool { return s.failed.Load() })
		if err == nil || !strings.Contains(err.Error(), "1 job did not finish: job 1 (big): cancelled") {
			t.Errorf("wait after cancel = %v", err)
		}
	}
}

// TestResumedRate: bytes found on disk at a resume count as done but not
// toward the rate, while running or at the end.
func TestResumedRate(t *testing.T) {
	tab := NewJobTable(context.Background(), 1, nil)
	release := make(chan struct{})
	j := tab.Start("get", "x", false, func(ctx context.Context, j *Job) error {
		j.SetTotal(10 << 20)
		j.SetResumed(9 << 20)
		<-release
		j.SetDone(9<<20 + 100<<10)
		<-release
		return nil
	})
	waitFor(t, "the resume", func() bool { return j.done.Load() == 9<<20 })
	time.Sleep(300 * time.Millisecond)
	release <- struct{}{}
	waitFor(t, "progress", func() bool { return j.done.Load() > 9<<20 })
	sn := j.Snapshot(time.Now())
	if sn.Rate > 1e6 {
		t.Errorf("running rate %.0f B/s counts the 9 MiB already on disk", sn.Rate)
	}
	close(release)
	<-j.Done()
	if sn := j.Snapshot(time.Now()); sn.Rate > 1e6 || sn.Rate <= 0 {
		t.Errorf("final rate %.0f B/s, want about 100 KiB over the job's time", sn.Rate)
	}
}
