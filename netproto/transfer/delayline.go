package transfer

import (
	"container/heap"
	"sync"
	"time"
)

// delayLine runs functions at their due times, in due-time order (ties in
// the order they were added), on one goroutine that exists only while
// something is waiting. Impair's delay goes through it so that a constant
// delay does not reorder datagrams, as one timer per datagram would.
type delayLine struct {
	mu      sync.Mutex
	q       delayQueue
	seq     uint64
	running bool
	kick    chan struct{}
}

type delayed struct {
	due time.Time
	seq uint64
	fn  func()
}

type delayQueue []delayed

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	if q[i].due.Equal(q[j].due) {
		return q[i].seq < q[j].seq
	}
	return q[i].due.Before(q[j].due)
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(delayed)) }
func (q *delayQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// MaxDelayed caps the datagrams an Impair delay holds per direction and
// socket; past it they are dropped, as a full router queue would.
const MaxDelayed = 1 << 16

func (d *delayLine) add(after time.Duration, fn func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.q) >= MaxDelayed {
		return false
	}
	d.seq++
	heap.Push(&d.q, delayed{due: time.Now().Add(after), seq: d.seq, fn: fn})
	if d.kick == nil {
		d.kick = make(chan struct{}, 1)
	}
	if !d.running {
		d.running = true
		go d.run()
	} else {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	return true
}

func (d *delayLine) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		if len(d.q) == 0 {
			d.running = false
			d.mu.Unlock()
			return
		}
		wait := time.Until(d.q[0].due)
		if wait <= 0 {
			x := heap.Pop(&d.q).(delayed)
			d.mu.Unlock()
			x.fn()
			continue
		}
		d.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-d.kick:
		}
	}
}
