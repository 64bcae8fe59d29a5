package shell

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/netproto/pcap"
	"github.com/fxshell/fxsh/netproto/transfer"
)

// capture is the process's pcap capture (`trace --pcap FILE`): every role's
// UDP datagrams and TCP lines go to the one file while it is on.
type capture struct {
	w atomic.Pointer[pcap.Writer] // read on every datagram

	mu   sync.Mutex // serializes starting and stopping; guards path
	path string
}

// captureUDP is the transfer Capture hook of every role: it costs one
// atomic load while no capture runs.
func (s *Shell) captureUDP(dir transfer.Direction, local, peer netip.AddrPort, b []byte) {
	w := s.capture.w.Load()
	if w == nil {
		return
	}
	if dir == transfer.Sent {
		w.UDP(local, peer, b)
	} else {
		w.UDP(peer, local, b)
	}
}

// captureTCP captures one traced protocol line.
func (s *Shell) captureTCP(ev line.TraceEvent) {
	w := s.capture.w.Load()
	if w == nil {
		return
	}
	local, err1 := netip.ParseAddrPort(ev.Local)
	remote, err2 := netip.ParseAddrPort(ev.Remote)
	if err1 != nil || err2 != nil {
		return // not an IP connection (tests on pipes)
	}
	b := make([]byte, 0, len(ev.Line)+len(ev.End))
	b = append(append(b, ev.Line...), ev.End...)
	if ev.Dir == line.Out {
		w.TCP(local, remote, b)
	} else {
		w.TCP(remote, local, b)
	}
}

// startCapture starts writing a capture to path, replacing one in progress.
func (s *Shell) startCapture(path string, max int64) error {
	s.capture.mu.Lock()
	defer s.capture.mu.Unlock()
	var w *pcap.Writer
	w, err := pcap.Create(path, pcap.Options{MaxBytes: max, OnFull: func() {
		st := w.Stats()
		s.notifyErr(s.epal.warn.Sprint(fmt.Sprintf("trace: %s reached its cap of %s after %d packets; capture stopped (trace --pcap %s off closes it)",
			path, humanBytes(max), st.Packets, path)))
	}})
	if err != nil {
		return err
	}
	if old := s.capture.w.Swap(w); old != nil {
		s.reportCapture(s.capture.path, old)
	}
	s.capture.path = path
	return nil
}

// stopCapture ends the capture to path ("" = any) and reports its figures.
func (s *Shell) stopCapture(path string) error {
	s.capture.mu.Lock()
	defer s.capture.mu.Unlock()
	w := s.capture.w.Load()
	if w == nil {
		return errors.New("no capture is running")
	}
	if path != "" && path != s.capture.path {
		return fmt.Errorf("the capture running is %s, not %s", s.capture.path, path)
	}
	s.capture.w.Store(nil)
	return s.reportCapture(s.capture.path, w)
}

func (s *Shell) reportCapture(path string, w *pcap.Writer) error {
	st, err := w.Close()
	if err != nil {
		return fmt.Errorf("capture %s: %w", path, err)
	}
	msg := fmt.Sprintf("trace: wrote %s: %d packets, %s", path, st.Packets, humanBytes(st.Bytes))
	if st.Dropped > 0 {
		msg += fmt.Sprintf(" (%d not captured: ", st.Dropped)
		if st.Full {
			msg += "the cap was reached)"
		} else {
			msg += "the disk fell behind)"
		}
	}
	s.out("%s\n", msg)
	return nil
}

// closeCapture ends a capture still running when the shell ends.
func (s *Shell) closeCapture() {
	if s.capture.w.Load() != nil {
		if err := s.stopCapture(""); err != nil {
			s.warn("%v", err)
		}
	}
}

// cmdTrace: trace on|all|off, trace --pcap FILE [--max SIZE] [off].
func cmdTrace(_ context.Context, s *Shell, c *call) error {
	pos, fl, err := c.flags(map[string]bool{"--pcap": true, "--max": true})
	if err != nil {
		return err
	}
	file, capturing := fl["--pcap"]
	if !capturing {
		if _, ok := fl["--max"]; ok {
			return errors.New("--max goes with --pcap FILE")
		}
		if len(pos) != 1 {
			return fmt.Errorf("usage: %s", c.spec.usage)
		}
		_, err := s.set.Set("trace", pos[0])
		return err
	}
	if file == "" {
		return errors.New("--pcap needs a file name")
	}
	if file, err = ExpandPath(file); err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		max := int64(pcap.DefaultMaxBytes)
		if v, ok := fl["--max"]; ok {
			if max, err = parseSize(v); err != nil || max < 1<<10 {
				return fmt.Errorf("--max: want a size of at least 1KB, not %q", v)
			}
		}
		if err := s.startCapture(file, max); err != nil {
			return err
		}
		s.out("trace: capturing every datagram and line of this process to %s (cap %s; trace --pcap %s off ends it)\n",
			file, humanBytes(max), file)
		return nil
	case len(pos) == 1 && pos[0] == "off":
		return s.stopCapture(file)
	}
	return fmt.Errorf("usage: %s", c.spec.usage)
}
