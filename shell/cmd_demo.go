package shell

// demo: the first command a teacher runs. In this one process it starts a
// master on a free loopback port, two file servers on generated sample
// files, and a download of a file both servers hold, with some injected
// loss, and narrates each step and what the protocol did. This file is
// the command and what stays running at the prompt; demo_steps.go is the
// demo itself, one function per narrated step.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Demo parameters.
const (
	// DemoFileSize is the size of the file the demo downloads: big enough
	// to see losses repaired, small enough to take about a second.
	DemoFileSize = 8 << 20
	// DemoLoss is the default loss the demo injects on this process.
	DemoLoss = "0.05"
	// DemoRate caps this process's sending rate during the demo, so that
	// the download lasts long enough to be watched.
	DemoRate = "8MB/s"
	// DefaultDemoPause is the pause between the demo's steps at the
	// prompt, for a teacher to talk over (Options.DemoPause); a script
	// runs the demo without pauses.
	DefaultDemoPause = 2 * time.Second
	// demoProgressEvery is how often the demo reports the download.
	demoProgressEvery = 400 * time.Millisecond
	// demoTimeout bounds the whole demo (pauses included).
	demoTimeout = 2 * time.Minute
)

func demoCommands() []*cmdSpec {
	return []*cmdSpec{
		{
			name: "demo", group: "Transfers", usage: "demo [--loss P] | demo off", maxArgs: 2,
			summary: "watch fxsh work: a master, two file servers and a lossy download, in this process, narrated",
			detail: "Generates sample files in a temporary folder, starts a master on a free loopback port and\n" +
				"two file servers, downloads a file both servers hold from both at once with loss P injected\n" +
				"on this process (default " + DemoLoss + ", restored afterwards), and explains what happened.\n" +
				"In a script everything stops at the end of the demo; at the prompt the master and servers\n" +
				"keep running for you to explore (list, peers, get, trace on) until demo off or quit, which\n" +
				"remove the folder.",
			example:  "demo --loss 0.1",
			run:      cmdDemo,
			complete: func(*Shell, *compCtx) []string { return []string{"--loss", "off"} },
		},
	}
}

// demoRole is what a demo leaves running at the prompt: its world (master,
// two servers, folder), until demo off or the end of the session.
type demoRole struct {
	w        *demoWorld
	prevMstr []string // the shell's masters before the demo
	given    bool
	once     sync.Once
}

func (d *demoRole) Describe() string {
	var udp []string
	for _, fs := range d.w.servers {
		udp = append(udp, fs.Addr())
	}
	return fmt.Sprintf("demo master on %s, file servers on udp %s, files in %s (demo off removes them)",
		d.w.addr, strings.Join(udp, " and "), d.w.dir)
}

// Close stops the demo's world and points the shell back at its own
// master(s), unless the user chose another meanwhile.
func (d *demoRole) Close(ctx context.Context) error {
	var err error
	d.once.Do(func() {
		err = d.w.close(ctx)
		s := d.w.s
		s.mu.Lock()
		ours := len(s.opts.Masters) == 1 && s.opts.Masters[0] == d.w.addr
		s.mu.Unlock()
		if ours {
			s.useMasters(d.prevMstr, d.given)
		}
	})
	return err
}

func cmdDemo(ctx context.Context, s *Shell, c *call) error {
	pos, f, err := c.flags(map[string]bool{"--loss": true})
	if err != nil {
		return err
	}
	if len(pos) == 1 && pos[0] == "off" && len(f) == 0 {
		return stopDemo(ctx, s)
	}
	if len(pos) > 0 {
		return errors.New("usage: demo [--loss P] | demo off")
	}
	if s.role("demo") != nil {
		return errors.New("a demo is already running (demo off stops it)")
	}
	loss := DemoLoss
	if v, ok := f["--loss"]; ok {
		if loss, err = probability(v); err != nil {
			return fmt.Errorf("--loss: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	w := newDemoWorld(s, loss)
	keep := false
	defer func() {
		if !keep {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			w.close(cctx)
			cancel()
		}
	}()
	if err := w.run(ctx); err != nil {
		if ctx.Err() != nil {
			return errors.New("demo interrupted; everything it started is stopped and its folder removed")
		}
		return err
	}
	if s.ui.IsTerminal() {
		// At the prompt the demo's world stays up to be explored.
		keep = true
		d := &demoRole{w: w}
		d.prevMstr, d.given = s.useMasters([]string{w.addr}, true)
		s.addRole("demo", d)
		w.n.step("Your turn")
		w.n.say("The demo's master and both servers keep running, and this shell now uses that master.")
		w.n.say("Try: list · peers · search notes · trace on · get readme.txt · stats · status")
		w.n.say("demo off (or quit) stops them and removes " + w.dir + ".")
		return nil
	}
	w.n.step("Cleaning up")
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = w.close(cctx)
	ccancel()
	if err != nil {
		return fmt.Errorf("stopping the demo: %w", err)
	}
	w.n.say("Both servers said BYE (the master dropped their files at once), the master stopped,")
	w.n.say("and the demo folder is removed. Run `help` to see every command.")
	return nil
}

func stopDemo(ctx context.Context, s *Shell) error {
	r := s.role("demo")
	if r == nil {
		return errors.New("no demo is running")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := r.Close(cctx)
	s.removeRole("demo")
	if err == nil {
		s.out("demo stopped; its folder is removed\n")
	}
	return err
}

// narrator numbers the demo's steps and prints its sentences. At the
// prompt it pauses before each step after the first, for a teacher to
// talk over; in a script it does not.
type narrator struct {
	s     *Shell
	n     int
	pause time.Duration
}

func (n *narrator) step(title string) {
	n.n++
	n.s.out("\n%s\n", n.s.pal.head.Sprint(fmt.Sprintf("%d. %s", n.n, title)))
}

// wait pauses between steps; false if ctx ended meanwhile.
func (n *narrator) wait(ctx context.Context) bool {
	if n.pause <= 0 || n.n == 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(n.pause)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (n *narrator) say(format string, a ...any) {
	n.s.out("   "+format+"\n", a...)
}

// removeDir removes the demo folder, if it was made.
func removeDir(dir string) error {
	if dir == "" {
		return nil
	}
	return os.RemoveAll(dir)
}
