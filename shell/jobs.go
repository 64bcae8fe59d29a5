package shell

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// JobState is where a job is in its life.
type JobState int

const (
	JobQueued JobState = iota
	JobRunning
	JobDone
	JobFailed
	JobCancelled
)

func (s JobState) String() string {
	return [...]string{"queued", "running", "done", "failed", "cancelled"}[s]
}

// ended reports whether the state is final.
func (s JobState) ended() bool { return s >= JobDone }

// Counter is one protocol counter shown by `jobs -v` and `stats`.
type Counter struct {
	Name  string
	Value string
}

// Job is one background task: a download, a push, an incoming file.
// Fields under mu change over the job's life; done and total are updated
// by the worker without the lock.
type Job struct {
	ID      int
	Kind    string // "get", "send", "recv"
	Name    string
	MayFail bool // started by a "-cmd": its failure does not fail the script

	done  atomic.Int64 // bytes done
	total atomic.Int64 // bytes in all, -1 if unknown

	mu       sync.Mutex // protects the fields below
	state    JobState
	err      error
	sources  []string
	counters func() []Counter
	started  time.Time
	ended    time.Time
	cancel   context.CancelFunc
	sampleT  time.Time // rate sampling: last sample time and bytes
	sampleB  int64
	rate     float64 // smoothed bytes per second
	base     int64   // bytes already there when the job started (a resume): not part of its rate
	endCh    chan struct{}
	run      func(ctx context.Context, j *Job) error
	userStop bool // cancelled by the user (not a failure)
}

// SetTotal records the job's size in bytes.
func (j *Job) SetTotal(n int64) { j.total.Store(n) }

// SetDone records how many bytes are done.
func (j *Job) SetDone(n int64) { j.done.Store(n) }

// SetResumed records the bytes a resumed job found already on disk: they
// count as done, but not toward its rate (they were not transferred now).
func (j *Job) SetResumed(n int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.done.Store(n)
	j.base = n
	j.sampleB = n
}

// AddDone adds n bytes done.
func (j *Job) AddDone(n int64) { j.done.Add(n) }

// SetSources records where the job's data comes from (or goes to).
func (j *Job) SetSources(s []string) {
	j.mu.Lock()
	j.sources = append([]string(nil), s...)
	j.mu.Unlock()
}

// SetCounters installs a function that reports protocol counters.
func (j *Job) SetCounters(f func() []Counter) {
	j.mu.Lock()
	j.counters = f
	j.mu.Unlock()
}

// JobSnapshot is a consistent view of a job for rendering.
type JobSnapshot struct {
	ID       int
	Kind     string
	Name     string
	State    JobState
	Err      error
	Done     int64
	Total    int64
	Rate     float64
	ETA      time.Duration // -1 if unknown
	Elapsed  time.Duration
	Sources  []string
	Counters []Counter
}

// Snapshot returns the job's current state, updating its smoothed rate.
func (j *Job) Snapshot(now time.Time) JobSnapshot {
	j.mu.Lock()
	defer j.mu.Unlock()
	done, total := j.done.Load(), j.total.Load()
	if j.state == JobRunning {
		if dt := now.Sub(j.sampleT); dt >= 250*time.Millisecond {
			inst := float64(done-j.sampleB) / dt.Seconds()
			if j.rate == 0 {
				j.rate = inst
			} else {
				j.rate = 0.6*j.rate + 0.4*inst
			}
			j.sampleT, j.sampleB = now, done
		}
	}
	s := JobSnapshot{
		ID: j.ID, Kind: j.Kind, Name: j.Name, State: j.state, Err: j.err,
		Done: done, Total: total, Rate: j.rate, ETA: -1,
		Sources: append([]string(nil), j.sources...),
	}
	switch {
	case j.state == JobRunning:
		s.Elapsed = now.Sub(j.started)
		if j.rate > 0 && total > 0 {
			s.ETA = time.Duration(float64(total-done) / j.rate * float64(time.Second))
		}
	case j.state.ended() && !j.started.IsZero():
		s.Elapsed = j.ended.Sub(j.started)
		if s.Elapsed > 0 {
			s.Rate = float64(done-j.base) / s.Elapsed.Seconds()
		}
	}
	if j.counters != nil {
		s.Counters = j.counters()
	}
	return s
}

// Done returns a channel closed when the job has ended.
func (j *Job) Done() <-chan struct{} { return j.endCh }

// State returns the job's state and error.
func (j *Job) State() (JobState, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.state, j.err
}

// JobEvent reports a job that ended.
type JobEvent struct {
	Job  *Job
	Snap JobSnapshot
}

// JobTable runs background jobs, at most Parallel at once; the rest queue
// in order. Job ids are never reused.
type JobTable struct {
	onEnd func(JobEvent) // called once per job, from the job's goroutine

	mu       sync.Mutex // protects the fields below
	jobs     []*Job
	nextID   int
	parallel int
	running  int
	queue    []*Job
	ctx      context.Context
}

// NewJobTable returns a table running at most parallel jobs at once.
func NewJobTable(ctx context.Context, parallel int, onEnd func(JobEvent)) *JobTable {
	return &JobTable{ctx: ctx, parallel: max(1, parallel), nextID: 1, onEnd: onEnd}
}

// SetParallel changes how many jobs run at once and starts queued ones.
func (t *JobTable) SetParallel(n int) {
	t.mu.Lock()
	t.parallel = max(1, n)
	t.mu.Unlock()
	t.schedule()
}

// Start adds a job; it runs now or when a slot frees up.
func (t *JobTable) Start(kind, name string, mayFail bool, run func(ctx context.Context, j *Job) error) *Job {
	j := &Job{Kind: kind, Name: name, MayFail: mayFail, run: run, endCh: make(chan struct{})}
	j.total.Store(-1)
	t.mu.Lock()
	j.ID = t.nextID
	t.nextID++
	t.jobs = append(t.jobs, j)
	t.queue = append(t.queue, j)
	t.mu.Unlock()
	t.schedule()
	return j
}

// schedule starts queued jobs while slots are free.
func (t *JobTable) schedule() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.running < t.parallel && len(t.queue) > 0 {
		j := t.queue[0]
		t.queue = t.queue[1:]
		j.mu.Lock()
		if j.state != JobQueued { // cancelled while queued
			j.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(t.ctx)
		j.state = JobRunning
		j.started = time.Now()
		j.sampleT = j.started
		j.cancel = cancel
		j.mu.Unlock()
		t.running++
		go t.runJob(ctx, j)
	}
}

func (t *JobTable) runJob(ctx context.Context, j *Job) {
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("internal error: %v", r)
			}
		}()
		err = j.run(ctx, j)
	}()
	j.mu.Lock()
	j.cancel()
	j.ended = time.Now()
	switch {
	case err == nil:
		j.state = JobDone
	case j.userStop || errors.Is(err, context.Canceled) && ctx.Err() != nil:
		j.state = JobCancelled
		j.err = err
	default:
		j.state = JobFailed
		j.err = err
	}
	j.mu.Unlock()
	t.mu.Lock()
	t.running--
	t.mu.Unlock()
	if t.onEnd != nil {
		t.onEnd(JobEvent{Job: j, Snap: j.Snapshot(time.Now())})
	}
	close(j.endCh)
	t.schedule()
}

// Cancel stops a job; a queued job never starts. It returns an error for an
// unknown id or a job that has already ended.
func (t *JobTable) Cancel(id int) error {
	j := t.Get(id)
	if j == nil {
		return fmt.Errorf("no job %d", id)
	}
	j.mu.Lock()
	switch {
	case j.state == JobQueued:
		j.state = JobCancelled
		j.userStop = true
		j.ended = time.Now()
		j.mu.Unlock()
		if t.onEnd != nil {
			t.onEnd(JobEvent{Job: j, Snap: j.Snapshot(time.Now())})
		}
		close(j.endCh)
		return nil
	case j.state.ended():
		st := j.state
		j.mu.Unlock()
		return fmt.Errorf("job %d has already ended (%s)", id, st)
	}
	j.userStop = true
	cancel := j.cancel
	j.mu.Unlock()
	cancel()
	return nil
}

// CancelAll stops every job that has not ended.
func (t *JobTable) CancelAll() {
	for _, j := range t.List() {
		if st, _ := j.State(); !st.ended() {
			t.Cancel(j.ID)
		}
	}
}

// Get returns job id, or nil.
func (t *JobTable) Get(id int) *Job {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, j := range t.jobs {
		if j.ID == id {
			return j
		}
	}
	return nil
}

// List returns every job in id order.
func (t *JobTable) List() []*Job {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]*Job(nil), t.jobs...)
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// Active returns the jobs that have not ended: queued, running, or ending
// (state set, end line not yet printed: Done is closed only after it is).
// So `wait` and the end of a script wait for a job's end to be reported.
func (t *JobTable) Active() []*Job {
	var out []*Job
	for _, j := range t.List() {
		select {
		case <-j.Done():
		default:
			out = append(out, j)
		}
	}
	return out
}

// Wait blocks until every job in jobs has ended or ctx is done.
func (t *JobTable) Wait(ctx context.Context, jobs []*Job) error {
	for _, j := range jobs {
		select {
		case <-j.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
