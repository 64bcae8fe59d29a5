package shell

// The live view of a download: `jobs -v` and `watch ID` draw, under the
// job's line, its chunk map as a bar (█ stored, ▒ asked of a server and on
// its way, ░ missing) and the rate and RTT of the last samples as
// sparklines. The samples come with the download's progress reports
// (transfer.Progress, every DefaultProgressInterval).

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fxshell/fxsh/netproto/transfer"
)

// SparkSamples is how many progress samples a sparkline shows.
const SparkSamples = 24

// liveCounter names the counters jobs -v prints one per line, as they are:
// the chunk map and the sparklines.
const liveCounter = "live"

// history keeps a download's last samples for the live view.
type history struct {
	cmap []uint8
	rate []float64
	rtt  []float64
}

func (h *history) add(p transfer.Progress) {
	if p.Map != nil {
		h.cmap = p.Map
	}
	h.rate = appendSample(h.rate, p.Rate)
	if p.Stats.RTT > 0 {
		h.rtt = appendSample(h.rtt, float64(p.Stats.RTT))
	}
}

func appendSample(s []float64, v float64) []float64 {
	s = append(s, v)
	if len(s) > SparkSamples {
		s = s[len(s)-SparkSamples:]
	}
	return s
}

// lines draws the live view, each line at most width columns.
func (h *history) lines(width int) []string {
	var out []string
	if len(h.cmap) > 0 {
		var b strings.Builder
		have, flight := 0, 0
		for _, c := range h.cmap {
			switch c {
			case transfer.CellHave:
				b.WriteString("█")
				have++
			case transfer.CellInFlight:
				b.WriteString("▒")
				flight++
			default:
				b.WriteString("░")
			}
		}
		out = append(out, fitCols(fmt.Sprintf("map  %s", b.String()), width))
	}
	if len(h.rate) > 1 {
		last := h.rate[len(h.rate)-1]
		out = append(out, fitCols(fmt.Sprintf("rate %s %s", sparkline(h.rate), humanRate(last)), width))
	}
	if len(h.rtt) > 1 {
		last := time.Duration(h.rtt[len(h.rtt)-1])
		out = append(out, fitCols(fmt.Sprintf("rtt  %s %s", sparkline(h.rtt), last.Round(10*time.Microsecond)), width))
	}
	return out
}

// sparkline draws samples as ▁▂▃▄▅▆▇█ from their minimum to their maximum.
func sparkline(v []float64) string {
	const bars = "▁▂▃▄▅▆▇█"
	r := []rune(bars)
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	var b strings.Builder
	for _, x := range v {
		i := 0
		if hi > lo {
			i = int((x - lo) / (hi - lo) * float64(len(r)-1))
		}
		b.WriteRune(r[i])
	}
	return b.String()
}

// fitCols cuts s to width columns (0: no limit).
func fitCols(s string, width int) string {
	r := []rune(s)
	if width <= 0 || len(r) <= width {
		return s
	}
	return string(r[:width-1]) + "…"
}

// cmdWatch redraws one job's line and live view until it ends (Ctrl-C
// stops watching, not the job). Without a terminal it prints the view once
// when the job ends.
func cmdWatch(ctx context.Context, s *Shell, c *call) error {
	jobs, err := s.parseJobIDs(c.args)
	if err != nil {
		return err
	}
	j := jobs[0]
	draw := func() string {
		width := s.ui.Width()
		sn := j.Snapshot(time.Now())
		var b strings.Builder
		b.WriteString(renderJob(s.pal, sn, width) + "\n")
		for _, ct := range sn.Counters {
			if ct.Name == liveCounter {
				b.WriteString("    " + fitCols(ct.Value, max(0, width-4)) + "\n")
			}
		}
		return b.String()
	}
	done := make(chan error, 1)
	go func() { done <- s.jobs.Wait(ctx, []*Job{j}) }()
	if !s.ui.IsTerminal() && !s.opts.LiveOut {
		err := <-done
		s.out("%s", draw())
		return err
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	defer s.clearLive()
	for {
		text := draw()
		s.outMu.Lock()
		s.eraseLiveLocked()
		s.ui.Print(text)
		s.liveText = text
		s.outMu.Unlock()
		select {
		case err := <-done:
			s.outMu.Lock()
			s.liveText = "" // the last picture stays on the screen
			s.outMu.Unlock()
			return err
		case <-t.C:
		}
	}
}
