package shell

// send: the sending side of a push (cmd_push.go has the command table and
// the receiving side). The role is netproto/push's Sender; a send job
// renders what it reports.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/push"
	"github.com/fxshell/fxsh/store"
)

// sender returns the shell's push Sender (made on first use).
func (s *Shell) sender() *push.Sender {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pushSender == nil {
		s.pushSender = push.NewSender(s.ctx, push.SenderConfig{
			Key: s.opts.Key, Impair: s.impair, Counters: s.counters, Trace: s.traceUDP("send"), Capture: s.captureUDP,
		})
	}
	return s.pushSender
}

func cmdSend(ctx context.Context, s *Shell, c *call) error {
	path, err := ExpandPath(c.args[0])
	if err != nil {
		return err
	}
	peer := c.args[1]
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	name := filepath.Base(path)
	if err := line.CheckName(name, 0); err != nil {
		return fmt.Errorf("%s cannot be offered: %w", path, err)
	}
	if err := s.findReceiver(ctx, peer); err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	size := st.Size()
	j := s.jobs.Start("send", name, c.cmd.MayFail, func(ctx context.Context, j *Job) error {
		return s.runSend(ctx, j, push.Push{Path: abs, Name: name, To: peer})
	})
	j.SetTotal(size)
	j.SetSources([]string{peer})
	s.out("job %d: offering %s (%s) to %s\n", j.ID, name, humanBytes(size), peer)
	return nil
}

// findReceiver checks that peer is a receiver the master knows: a typo
// fails the command, not a job.
func (s *Shell) findReceiver(ctx context.Context, peer string) error {
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	peers, err := cl.Peers(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, p := range peers {
		if p.Role != store.RoleReceiver {
			if p.Addr == peer {
				return fmt.Errorf("%s is a file server, not a receiver (it must run receive)", peer)
			}
			continue
		}
		names = append(names, p.Addr)
		if p.Name != "" {
			names = append(names, p.Name)
		}
		if p.Addr == peer || p.Name == peer {
			return nil
		}
	}
	msg := fmt.Sprintf("no receiver %q on master %s", peer, cl.Master())
	if sug := suggest(peer, names); sug != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", sug)
	} else if len(names) == 0 {
		msg += " (no peer is in receive mode)"
	} else {
		msg += " (peers lists the receivers)"
	}
	return errors.New(msg)
}

// runSend is a send job: the Sender hashes, serves and offers the file
// and waits for the answer and then the result; the job shows its
// progress and the push server's counters.
func (s *Shell) runSend(ctx context.Context, j *Job, p push.Push) error {
	cl, err := s.client(ctx)
	if err != nil {
		return err
	}
	p.Progress = func(done int64) {
		if done > j.done.Load() {
			j.SetDone(done)
		}
	}
	p.OnEvent = func(ev push.SendEvent) {
		switch ev.Kind {
		case push.Serving:
			j.SetTotal(ev.Size)
			j.SetCounters(serverJobCounters(ev.Counters).rows)
		case push.Offered:
			s.notify(fmt.Sprintf("job %d: offer %s of %s is waiting for %s to answer", j.ID, ev.ID, p.Name, p.To))
		case push.Accepted:
			s.notify(fmt.Sprintf("job %d: %s accepted %s and is pulling it", j.ID, p.To, p.Name))
		}
	}
	return s.sender().Send(ctx, cl, p)
}
