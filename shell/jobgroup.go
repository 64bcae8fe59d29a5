package shell

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A job group is the jobs of one folder download (get -r, mirror): each
// file is a job of its own, queued and run like any other, and the group
// adds them up under one total, shown by `jobs` and `wait` and reported
// once when the last of them ends. A member that fails fails the exit
// status as any job does.

// jobGroup is one folder download's jobs.
type jobGroup struct {
	ID      int
	Kind    string // "mirror" or "get -r"
	Name    string // "lectures/ → dl"
	Skipped int    // files already here with the same content: no job
	Refused int    // files this system cannot hold: no job, a failure
	jobs    []*Job // under groupTable.mu
	ended   int    // members ended; under groupTable.mu
}

// groupTable holds the job groups. Its mutex is held while a group's jobs
// are started, so a member that ends at once still finds its group (its
// end waits for the lock). Lock order: groupTable.mu, then the job table's
// and the jobs' own locks; job ends take it with no other lock held.
type groupTable struct {
	mu     sync.Mutex // protects the fields below
	groups []*jobGroup
	byJob  map[int]*jobGroup
	nextID int
}

// start registers a group and starts its jobs with start, under the
// table's lock.
func (t *groupTable) start(g *jobGroup, n int, start func(i int) *Job) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nextID++
	g.ID = t.nextID
	if t.byJob == nil {
		t.byJob = map[int]*jobGroup{}
	}
	t.groups = append(t.groups, g)
	for i := range n {
		j := start(i)
		g.jobs = append(g.jobs, j)
		t.byJob[j.ID] = g
	}
}

// jobEnded counts a member's end and returns its group when that was the
// last member, else nil.
func (t *groupTable) jobEnded(id int) *jobGroup {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.byJob[id]
	if g == nil {
		return nil
	}
	g.ended++
	if g.ended == len(g.jobs) {
		return g
	}
	return nil
}

// groupSnapshot is a group's members added up.
type groupSnapshot struct {
	ID                                       int
	Kind, Name                               string
	Files, Skipped, Refused                  int
	Running, Queued, Done, Failed, Cancelled int
	DoneBytes, TotalBytes                    int64
	Rate                                     float64
	IDs                                      []int // the members' job ids
}

// snapshots returns every group that has a member among ids (all groups
// when ids is nil), added up from snaps (the members' snapshots by id).
func (t *groupTable) snapshots(snaps map[int]JobSnapshot, ids map[int]bool) []groupSnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []groupSnapshot
	for _, g := range t.groups {
		gs := groupSnapshot{ID: g.ID, Kind: g.Kind, Name: g.Name, Files: len(g.jobs) + g.Skipped + g.Refused,
			Skipped: g.Skipped, Refused: g.Refused}
		in := ids == nil
		for _, j := range g.jobs {
			in = in || ids[j.ID]
			sn, ok := snaps[j.ID]
			if !ok {
				sn = j.Snapshot(time.Now())
			}
			gs.IDs = append(gs.IDs, j.ID)
			gs.DoneBytes += sn.Done
			gs.TotalBytes += max(sn.Total, 0)
			switch sn.State {
			case JobRunning:
				gs.Running++
				gs.Rate += sn.Rate
			case JobQueued:
				gs.Queued++
			case JobDone:
				gs.Done++
			case JobFailed:
				gs.Failed++
			case JobCancelled:
				gs.Cancelled++
			}
		}
		if in {
			out = append(out, gs)
		}
	}
	return out
}

// parse reads a group id, "gN" (or "%gN"): ok says arg is one, and then
// members are the group's jobs, or err says there is no such group.
func (t *groupTable) parse(arg string) (members []*Job, ok bool, err error) {
	n, isGroup := strings.CutPrefix(strings.TrimPrefix(arg, "%"), "g")
	if !isGroup {
		return nil, false, nil
	}
	id, err := strconv.Atoi(n)
	if err != nil {
		return nil, true, fmt.Errorf("bad group id %q (a folder download is gN)", arg)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, g := range t.groups {
		if g.ID == id {
			return slices.Clone(g.jobs), true, nil
		}
	}
	return nil, true, fmt.Errorf("no folder download g%d", id)
}

// active returns the ids ("gN") of the groups with a member not ended.
func (t *groupTable) active() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, g := range t.groups {
		if g.ended < len(g.jobs) {
			out = append(out, fmt.Sprintf("g%d", g.ID))
		}
	}
	return out
}

// member reports whether job id belongs to a group.
func (t *groupTable) member(id int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byJob[id] != nil
}

// renderGroup is a group's line in `jobs` and `wait`: its files by state
// and its bytes, fitted to width cells (0: no limit).
func renderGroup(gs groupSnapshot, width int) string {
	parts := []string{fmt.Sprintf("%d/%d done", gs.Done+gs.Skipped, gs.Files)}
	for _, c := range []struct {
		n    int
		what string
	}{{gs.Running, "running"}, {gs.Queued, "queued"}, {gs.Failed, "failed"}, {gs.Cancelled, "cancelled"},
		{gs.Skipped, "skipped"}, {gs.Refused, "refused"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	line := fmt.Sprintf("[g%d] %s %s: %s", gs.ID, gs.Kind, gs.Name, strings.Join(parts, ", "))
	if gs.TotalBytes > 0 {
		line += fmt.Sprintf("; %s/%s %3.0f%%", humanBytes(gs.DoneBytes), humanBytes(gs.TotalBytes),
			100*float64(gs.DoneBytes)/float64(gs.TotalBytes))
		if gs.Running > 0 {
			line += " " + humanRate(gs.Rate)
		}
	}
	if width > 0 {
		line = clipCells(line, width-1)
	}
	return line
}

// groupLines renders the groups with a member among jobs (every group when
// jobs is nil) from the members' snapshots.
func (s *Shell) groupLines(snaps []JobSnapshot, jobs []*Job, width int) string {
	by := make(map[int]JobSnapshot, len(snaps))
	for _, sn := range snaps {
		by[sn.ID] = sn
	}
	var ids map[int]bool
	if jobs != nil {
		ids = make(map[int]bool, len(jobs))
		for _, j := range jobs {
			ids[j.ID] = true
		}
	}
	var b strings.Builder
	for _, gs := range s.grp.snapshots(by, ids) {
		b.WriteString(renderGroup(gs, width) + "\n")
	}
	return b.String()
}

// groupJobEnded reports a group whose last member has just ended: one line
// with what the whole folder download did.
func (s *Shell) groupJobEnded(id int) {
	g := s.grp.jobEnded(id)
	if g == nil {
		return
	}
	gs := s.grp.snapshots(nil, map[int]bool{id: true})
	if len(gs) == 0 {
		return
	}
	sum := gs[0]
	mark, word, isErr := s.pal.ok.Sprint("✓"), "done", false
	if sum.Failed+sum.Cancelled+sum.Refused > 0 {
		mark, word, isErr = s.epal.err.Sprint("✗"), "failed", true
	}
	s.notifySync(fmt.Sprintf("%s %s g%d %s: %s: %s", mark, g.Kind, g.ID, word, g.Name, groupTally(sum)), isErr)
}

// groupTally says what a group's files came to.
func groupTally(gs groupSnapshot) string {
	parts := []string{fmt.Sprintf("%s fetched (%s)", plural(gs.Done, "file", "files"), humanBytes(gs.DoneBytes))}
	for _, c := range []struct {
		n    int
		what string
	}{{gs.Skipped, "skipped (already here, same content)"}, {gs.Failed, "failed"}, {gs.Cancelled, "cancelled"},
		{gs.Refused, "refused (names this system cannot hold)"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

// jsonGroup is a job group in `jobs --json`.
type jsonGroup struct {
	ID         int    `json:"id"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Files      int    `json:"files"`
	Done       int    `json:"done"`
	Running    int    `json:"running"`
	Queued     int    `json:"queued"`
	Failed     int    `json:"failed"`
	Cancelled  int    `json:"cancelled"`
	Skipped    int    `json:"skipped"`
	Refused    int    `json:"refused"`
	DoneBytes  int64  `json:"done_bytes"`
	TotalBytes int64  `json:"total_bytes"`
	Jobs       []int  `json:"jobs"`
}

func groupsJSON(gss []groupSnapshot) []jsonGroup {
	out := []jsonGroup{}
	for _, g := range gss {
		out = append(out, jsonGroup{ID: g.ID, Kind: g.Kind, Name: g.Name, Files: g.Files, Done: g.Done,
			Running: g.Running, Queued: g.Queued, Failed: g.Failed, Cancelled: g.Cancelled, Skipped: g.Skipped,
			Refused: g.Refused, DoneBytes: g.DoneBytes, TotalBytes: g.TotalBytes, Jobs: append([]int{}, g.IDs...)})
	}
	return out
}
