package shell

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

func jobCommands() []*cmdSpec {
	jobIDs := func(s *Shell, c *compCtx) []string {
		var out []string
		for _, j := range s.jobs.Active() {
			out = append(out, strconv.Itoa(j.ID))
		}
		return append(out, s.grp.active()...)
	}
	return []*cmdSpec{
		{
			name: "watch", group: "Jobs", usage: "watch ID", minArgs: 1, maxArgs: 1,
			summary:  "redraw one download until it ends: its chunk map (█ stored, ▒ on its way, ░ missing), rate and RTT sparklines",
			run:      cmdWatch,
			complete: jobIDs,
		},
		{
			name: "jobs", group: "Jobs", usage: "jobs [-v] [--json]", maxArgs: 1, json: true,
			summary: "list jobs: state, progress, rate, ETA, sources; -v adds protocol counters, the chunk map and rate/RTT sparklines",
			run:     cmdJobs,
		},
		{
			name: "wait", group: "Jobs", usage: "wait [ID...]", maxArgs: -1,
			summary: "block until jobs (default: all) end; fails if any of them failed",
			detail:  "Ctrl-C stops the wait, not the jobs. On a terminal the progress bars redraw in place.\ngN: every job of folder download N (get -r, mirror).",
			example: "get a b c; wait",
			run:     cmdWait, complete: jobIDs,
		},
		{
			name: "cancel", group: "Jobs", usage: "cancel ID...", minArgs: 1, maxArgs: -1,
			summary: "stop jobs (gN: a folder download's); partial files are kept, and get resumes them",
			run:     cmdCancel, complete: jobIDs,
		},
	}
}

// parseJobIDs reads job ids and finds the jobs.
func (s *Shell) parseJobIDs(args []string) ([]*Job, error) {
	var out []*Job
	for _, a := range args {
		if members, ok, err := s.grp.parse(a); ok { // gN: a folder download's jobs
			if err != nil {
				return nil, err
			}
			out = append(out, members...)
			continue
		}
		id, err := strconv.Atoi(strings.TrimPrefix(a, "%"))
		if err != nil {
			return nil, fmt.Errorf("bad job id %q", a)
		}
		j := s.jobs.Get(id)
		if j == nil {
			return nil, fmt.Errorf("no job %d", id)
		}
		out = append(out, j)
	}
	return out, nil
}

func cmdJobs(_ context.Context, s *Shell, c *call) error {
	_, f, err := c.flags(map[string]bool{"-v": false})
	if err != nil {
		return err
	}
	_, verbose := f["-v"]
	all := s.jobs.List()
	if c.json {
		var snaps []JobSnapshot
		now := time.Now()
		for _, j := range all {
			snaps = append(snaps, j.Snapshot(now))
		}
		by := make(map[int]JobSnapshot, len(snaps))
		for _, sn := range snaps {
			by[sn.ID] = sn
		}
		return s.outJSON(jobsJSON(snaps, s.grp.snapshots(by, nil), verbose))
	}
	if len(all) == 0 {
		s.out("no jobs\n")
		return nil
	}
	now := time.Now()
	width := s.ui.Width()
	var b strings.Builder
	var snaps []JobSnapshot
	for _, j := range all {
		sn := j.Snapshot(now)
		snaps = append(snaps, sn)
		b.WriteString(renderJob(s.pal, sn, width) + "\n")
		if verbose && len(sn.Counters) > 0 {
			var parts, sources, lives []string
			for _, ct := range sn.Counters {
				if ct.Name == sourceCounter {
					sources = append(sources, ct.Value)
					continue
				}
				if ct.Name == liveCounter {
					lives = append(lives, ct.Value)
					continue
				}
				parts = append(parts, ct.Name+"="+ct.Value)
			}
			b.WriteString(s.pal.dim.Sprint("    "+wrapText(strings.Join(parts, " "), max(0, width-1), "    ")) + "\n")
			for _, src := range sources {
				b.WriteString(s.pal.dim.Sprint("    source "+wrapText(src, max(0, width-1), "           ")) + "\n")
			}
			for _, l := range lives {
				b.WriteString("    " + fitCols(l, max(0, width-4)) + "\n")
			}
		}
	}
	b.WriteString(s.groupLines(snaps, nil, width))
	b.WriteString(jobsSummary(snaps, width) + "\n")
	s.out("%s", b.String())
	return nil
}

// jobsSummary is the last line of `jobs` and of wait's live block: how many
// jobs are in each state and, for the active ones, bytes, rate and ETA.
func jobsSummary(snaps []JobSnapshot, width int) string {
	var done, total int64
	var rate float64
	counts := map[JobState]int{}
	for _, sn := range snaps {
		counts[sn.State]++
		if !sn.State.ended() {
			done += sn.Done
			total += max(sn.Total, 0)
			rate += sn.Rate
		}
	}
	var parts []string
	for _, st := range []JobState{JobRunning, JobQueued, JobDone, JobFailed, JobCancelled} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	line := "total: " + strings.Join(parts, ", ")
	if total > 0 {
		line += fmt.Sprintf("; active %s/%s at %s", humanBytes(done), humanBytes(total), humanRate(rate))
		if rate > 0 && done < total {
			line += " eta " + humanDuration(time.Duration(float64(total-done)/rate*float64(time.Second)))
		}
	}
	if width > 0 {
		line = clipCells(line, width-1)
	}
	return line
}

func cmdWait(ctx context.Context, s *Shell, c *call) error {
	jobs, err := s.parseJobIDs(c.args)
	if err != nil {
		return err
	}
	if len(c.args) == 0 {
		jobs = s.jobs.Active()
	}
	if err := s.waitJobs(ctx, jobs); err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("interrupted (the jobs go on)")
		}
		return err
	}
	var failed []string
	for _, j := range jobs {
		switch st, err := j.State(); {
		case j.MayFail:
		case st == JobFailed:
			failed = append(failed, fmt.Sprintf("job %d (%s): %v", j.ID, j.Name, err))
		case st == JobCancelled:
			failed = append(failed, fmt.Sprintf("job %d (%s): cancelled", j.ID, j.Name))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s did not finish: %s", plural(len(failed), "job", "jobs"), strings.Join(failed, "; "))
	}
	return nil
}

// waitJobs blocks until jobs end or ctx is cancelled; when standard output
// is a terminal it redraws a live block in place: one line per job still
// running or queued, then the summary, each fitted to the width so a line
// is one screen row. A resized window is redrawn at once (SIGWINCH, unix).
func (s *Shell) waitJobs(ctx context.Context, jobs []*Job) error {
	if !s.ui.IsTerminal() && !s.opts.LiveOut || len(jobs) == 0 {
		return s.jobs.Wait(ctx, jobs)
	}
	done := make(chan error, 1)
	go func() { done <- s.jobs.Wait(ctx, jobs) }()
	resized, stopResize := resizeSignals()
	defer stopResize()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	defer s.clearLive()
	for {
		s.drawLive(jobs)
		select {
		case err := <-done:
			return err
		case <-t.C:
		case <-resized:
		}
	}
}

// drawLive redraws the live block for jobs still running or queued.
func (s *Shell) drawLive(jobs []*Job) {
	now := time.Now()
	width := s.ui.Width()
	var b strings.Builder
	var snaps []JobSnapshot
	for _, j := range jobs {
		sn := j.Snapshot(now)
		snaps = append(snaps, sn)
		// A folder download's queued files are counted on its group's
		// line, not drawn one by one.
		if sn.State.ended() || sn.State == JobQueued && s.grp.member(sn.ID) {
			continue
		}
		b.WriteString(renderJob(s.pal, sn, width) + "\n")
	}
	b.WriteString(s.groupLines(snaps, jobs, width))
	b.WriteString(jobsSummary(snaps, width) + "\n")
	text := b.String()
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.eraseLiveLocked()
	s.ui.Print(text)
	s.liveText = text
}

// clearLive erases the live block.
func (s *Shell) clearLive() {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.eraseLiveLocked()
}

func cmdCancel(_ context.Context, s *Shell, c *call) error {
	jobs, err := s.parseJobIDs(c.args)
	if err != nil {
		return err
	}
	var errs []string
	for _, j := range jobs {
		if st, _ := j.State(); st.ended() && s.grp.member(j.ID) {
			continue // gN cancels the folder's jobs that have not ended
		}
		if err := s.jobs.Cancel(j.ID); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
