package transfer

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"

	"github.com/fxshell/fxsh/store/tree"
)

// Verified streaming (client). With ClientConfig.Tree set, Fetch checks
// each 64 KiB group of the file against the file's tree (store/tree) the
// moment its last byte arrives, and the fetch is complete only when every
// group checked: the root is proven by the groups, so nothing reads the
// file back at the end.
//
// Bytes are copied into a group buffer as their chunks arrive (chunks and
// groups do not align: a chunk may feed two groups), so a group is hashed
// from memory while its bytes are hot; at most MaxOpenGroups buffers exist,
// and a group that could not be buffered whole (many open at once, chunks
// resumed from disk) is read back from the sink instead (GroupsReadBack).
// Hashing runs on verifyWorkers goroutines, off the receive loop.
//
// Every group records which sources delivered its bytes (a bit per
// source; MaxSources is 64). A group that fails is dropped from the file
// (its chunks, and the checked marks of the neighbours that share a chunk
// with it) and fetched again; if one source delivered it, that source lied
// and is dropped from this download, named in its error (ErrBadGroup).

// MaxOpenGroups caps the group buffers of one fetch (64 KiB each): groups
// being filled at once are about one per source, plus those a loss holds
// open.
const MaxOpenGroups = 128

// ErrBadGroup is wrapped by the error of a source dropped for sending bytes
// that are not the file's.
var ErrBadGroup = errors.New("sent bytes that are not the file's")

// BadGroupError names the group a lying source was caught at.
type BadGroupError struct {
	Group int // 64 KiB group index
}

func (e *BadGroupError) Error() string {
	return fmt.Sprintf("%v: group %d (bytes %d-%d) failed its BLAKE3 tree check", ErrBadGroup, e.Group,
		int64(e.Group)*tree.GroupSize, int64(e.Group+1)*tree.GroupSize-1)
}

func (e *BadGroupError) Unwrap() error { return ErrBadGroup }

// ReadSink is a Sink that can read back what it stored and forget chunks
// whose bytes were wrong; Fetch needs it to check groups (store/partfile
// implements it).
type ReadSink interface {
	Sink
	ReadAt(p []byte, off int64) (int, error)
	Forget(i int) // chunk i is no longer stored: Have(i) is false
}

type groupBuf struct {
	b      []byte
	filled int // bytes copied in
}

type verifyJob struct {
	g       int
	buf     *groupBuf // nil: read the group back from the sink
	contrib uint64
}

// verifier is a fetch's group checking. Its fields are guarded by
// fetcher.mu, except tree, groups and sink (read-only or safe).
type verifier struct {
	tree    *tree.Tree
	groups  *tree.Have
	sink    ReadSink
	contrib []uint64 // per group: a bit per source index that delivered bytes of it
	open    map[int]*groupBuf
	free    []*groupBuf
	nbufs   int
	queue   []verifyJob
	running int // jobs taken by workers and not yet applied
	closed  bool
	rb      []byte     // the receive loop's read-back buffer (dispatchVerify)
	cond    *sync.Cond // on fetcher.mu: a job was queued or the fetch ended
	wg      sync.WaitGroup
}

func verifyWorkers() int { return max(1, min(2, runtime.GOMAXPROCS(0))) }

func (f *fetcher) newVerifier(t *tree.Tree, groups *tree.Have) error {
	rs, ok := f.sink.(ReadSink)
	if !ok {
		return errors.New("transfer: checking groups needs a sink that reads back (ReadSink)")
	}
	if t.Size != f.req.Size || len(t.CVs) != tree.Groups(f.req.Size) {
		return fmt.Errorf("transfer: a tree of %d groups for a file of %d", len(t.CVs), tree.Groups(f.req.Size))
	}
	if groups == nil || groups.Len() != len(t.CVs) {
		groups = tree.NewHave(f.req.Size)
	}
	f.ver = &verifier{tree: t, groups: groups, sink: rs, contrib: make([]uint64, len(t.CVs)), open: map[int]*groupBuf{}, cond: sync.NewCond(&f.mu)}
	// Resume: groups found whole on disk are checked again before they count.
	for g := range t.CVs {
		if f.groupComplete(g) && !groups.Has(g) {
			f.ver.queue = append(f.ver.queue, verifyJob{g: g})
		}
	}
	return nil
}

// groupChunks returns the chunks holding bytes of group g.
func (f *fetcher) groupChunks(g int) (first, last int) {
	off, end := tree.Span(f.req.Size, g)
	return int(off / int64(f.chunkSize)), int((end - 1) / int64(f.chunkSize))
}

// groupComplete reports whether every chunk of group g is stored.
func (f *fetcher) groupComplete(g int) bool {
	c0, c1 := f.groupChunks(g)
	return f.have.NextMissing(c0) > c1
}

// startVerify starts the workers; stopVerify ends them (Fetch returns).
func (f *fetcher) startVerify() {
	for range verifyWorkers() {
		f.ver.wg.Add(1)
		go f.verifyLoop()
	}
}

func (f *fetcher) stopVerify() {
	f.mu.Lock()
	f.ver.closed = true
	f.ver.cond.Broadcast()
	f.mu.Unlock()
	f.ver.wg.Wait()
}

// arrived feeds the groups of chunk i (just stored) from source s. Called
// with f.mu held.
func (f *fetcher) arrived(s *source, i int, data []byte) {
	v := f.ver
	off := int64(i) * int64(f.chunkSize)
	end := off + int64(len(data))
	for g := int(off / tree.GroupSize); g < len(v.contrib) && int64(g)*tree.GroupSize < end; g++ {
		v.contrib[g] |= 1 << uint(s.idx)
		goff, gend := tree.Span(f.req.Size, g)
		gb := v.open[g]
		if gb == nil {
			gb = v.buffer()
			v.open[g] = gb
		}
		if gb.b != nil {
			lo, hi := max(off, goff), min(end, gend)
			copy(gb.b[lo-goff:], data[lo-off:hi-off])
			gb.filled += int(hi - lo)
		}
		if !f.groupComplete(g) {
			continue
		}
		delete(v.open, g)
		job := verifyJob{g: g, contrib: v.contrib[g]}
		if gb.b != nil && int64(gb.filled) == gend-goff {
			job.buf = gb
		} else {
			v.release(gb)
			if !f.flushRun() { // the read-back must see every chunk
				return
			}
		}
		v.queue = append(v.queue, job) // dispatchVerify hands it out after the batch
	}
}

// buffer returns a group buffer, or one without memory when MaxOpenGroups
// are in use (that group will be read back).
func (v *verifier) buffer() *groupBuf {
	if n := len(v.free); n > 0 {
		gb := v.free[n-1]
		v.free = v.free[:n-1]
		gb.filled = 0
		return gb
	}
	if v.nbufs < MaxOpenGroups {
		v.nbufs++
		return &groupBuf{b: make([]byte, tree.GroupSize)}
	}
	return &groupBuf{}
}

func (v *verifier) release(gb *groupBuf) {
	if gb != nil && gb.b != nil {
		v.free = append(v.free, gb)
	}
}

func (f *fetcher) verifyLoop() {
	defer f.ver.wg.Done()
	v := f.ver
	var rb []byte
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		for len(v.queue) == 0 && !v.closed {
			v.cond.Wait()
		}
		if v.closed {
			return
		}
		rb = f.checkNext(rb)
	}
}

// MaxInlineChecks is how many queued groups the receive loop checks itself
// after a batch of fewer than coalesceBelow datagrams, instead of waking a
// verify worker: a trickling download (a classroom's: a chunk every few
// milliseconds from each of thirty peers) would otherwise pay a thread
// wake-up per group, which costs this machine's VMs more CPU (about 50 µs)
// than hashing the group (15 µs). A fast download's batches go to the
// workers, which hash in parallel with the receive loop.
const MaxInlineChecks = 2

// dispatchVerify hands the queued groups to the workers, or, after a small
// batch (inline) with no worker busy and few groups waiting, checks them
// on the calling goroutine. Called with f.mu held (released while hashing).
func (f *fetcher) dispatchVerify(inline bool) {
	v := f.ver
	if v == nil || len(v.queue) == 0 {
		return
	}
	if !inline || v.running > 0 || len(v.queue) > MaxInlineChecks {
		v.cond.Broadcast()
		return
	}
	for range MaxInlineChecks {
		if len(v.queue) == 0 || v.closed || f.finished {
			return
		}
		v.rb = f.checkNext(v.rb)
		f.stats.add(GroupsInline, 1)
	}
	if len(v.queue) > 0 {
		v.cond.Broadcast() // queued by another goroutine while we hashed
	}
}

// checkNext checks the first queued group, hashing it with f.mu released,
// and applies the result (rb: a read-back buffer, returned for reuse).
// Called with f.mu held.
func (f *fetcher) checkNext(rb []byte) []byte {
	v := f.ver
	job := v.queue[0]
	v.queue = v.queue[1:]
	v.running++
	f.mu.Unlock()

	off, end := tree.Span(f.req.Size, job.g)
	var data []byte
	var readErr error
	if job.buf != nil {
		data = job.buf.b[:end-off]
	} else {
		if rb == nil {
			rb = make([]byte, tree.GroupSize)
		}
		data = rb[:end-off]
		f.stats.add(GroupsReadBack, 1)
		if n, err := v.sink.ReadAt(data, off); n < len(data) {
			readErr = fmt.Errorf("reading group %d back: %w", job.g, err)
		}
	}
	ok := readErr == nil && v.tree.Check(job.g, data)

	f.mu.Lock()
	v.running--
	v.release(job.buf)
	switch {
	case f.finished:
	case readErr != nil:
		f.finish(fmt.Errorf("transfer: %w", readErr))
	case !f.groupComplete(job.g):
		// A neighbour's failure took one of its chunks meanwhile: it
		// is checked again when whole.
	case ok:
		v.groups.Set(job.g)
		f.stats.add(GroupsVerified, 1)
		f.maybeDone()
	default:
		f.badGroup(job.g, job.contrib)
		f.poke() // its chunks are wanted again: REQUESTs are due
	}
	return rb
}

// verifiedAll reports whether the fetch may end: every chunk stored and,
// when groups are checked, every group checked.
func (f *fetcher) verifiedAll() bool {
	if !f.have.Full() {
		return false
	}
	return f.ver == nil || f.ver.groups.Full()
}

// maybeDone ends the fetch when it is complete. Called with f.mu held.
func (f *fetcher) maybeDone() {
	if f.verifiedAll() && f.flushRun() {
		f.finish(nil)
	}
}

// badGroup drops group g, whose bytes failed the tree check, and the
// source that sent it if only one did. Called with f.mu held.
func (f *fetcher) badGroup(g int, contrib uint64) {
	v := f.ver
	f.stats.add(GroupsFailed, 1)
	c0, c1 := f.groupChunks(g)
	for c := c0; c <= c1; c++ {
		if f.have.Clear(c) {
			f.haveBytes -= int64(f.chunkLen(c))
			v.sink.Forget(c)
		}
	}
	// Neighbours sharing a boundary chunk are no longer whole: they are
	// checked again (and not served) until it is back.
	for _, c := range []int{c0, c1} {
		off := int64(c) * int64(f.chunkSize)
		for n := int(off / tree.GroupSize); n < len(v.contrib) && int64(n)*tree.GroupSize < off+int64(f.chunkLen(c)); n++ {
			v.groups.Clear(n)
		}
	}
	v.contrib[g] = 0
	f.cum = min(f.cum, c0)
	if bits.OnesCount64(contrib) == 1 {
		s := f.srcs[bits.TrailingZeros64(contrib)]
		if s.state != srcFailed {
			f.stats.add(LiarsDropped, 1)
			f.fail(s, &BadGroupError{Group: g})
		}
	}
	f.sw.reclaim(c0, c1+1)
}
