// Package partfile writes downloads so that they can resume and never land
// outside their folder.
//
// Open starts or resumes the download of one file into a folder and returns
// a Part. Chunks arrive in any order through WriteChunk (or a run of
// consecutive ones with one write through WriteChunks) and go to a hidden
// temporary file beside the final name (".NAME.fxpart"). Checkpoint syncs the
// data and then records the chunks on disk in a state file (".NAME.fxstate",
// see AppendState), so a chunk is marked only once its bytes are safe; a Part
// also checkpoints by itself every CheckpointBytes or CheckpointInterval.
// Close keeps both files, and a later Open of the same name, size and hash
// resumes where the last checkpoint left off (Have says which chunks are
// there). Finish checks the whole file's content hash (BLAKE3), syncs it and gives it its
// final name atomically; a background goroutine hashes the contiguous prefix
// of the file while chunks arrive, so Finish only reads what is left.
//
// Names come from peers and are never trusted: CheckName refuses anything
// that could leave the folder or mean something else on another system, and
// every file operation goes through an os.Root of the download folder, so a
// symlinked sub-folder cannot lead outside either.
//
// The parts: part.go (Open, Part), names.go (CheckName), state.go (the state
// file codec), errors.go (the named errors).
package partfile

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxshell/fxsh/store"
)

// Checkpoint triggers and buffers.
const (
	// CheckpointBytes of new data make a Part checkpoint by itself.
	CheckpointBytes = 16 << 20
	// CheckpointInterval is the longest a Part waits, while data arrives,
	// before it checkpoints by itself.
	CheckpointInterval = 5 * time.Second
	// hashBlock is how much the hashers read at a time.
	hashBlock = 1 << 20
)

// writerAt is where chunk data goes; tests put a failing one in front of
// the file.
type writerAt interface {
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
}

// Part is one download in progress. Its methods are safe for concurrent use:
// several goroutines may call WriteChunk at once.
type Part struct {
	// Set by Open, then read-only.
	root      *os.Root // the download folder
	name      string   // final name inside root, '/'-separated
	partName  string   // ".NAME.fxpart"
	stateName string   // ".NAME.fxstate"
	tmpName   string   // ".NAME.fxtmp": a state being written
	size      int64
	chunkSize int
	nchunks   int
	hash      store.Sum
	overwrite bool
	resumed   int // chunks found on disk by Open
	ckptBytes int64
	ckptEvery time.Duration
	f         *os.File
	w         writerAt // f, or a fault injector in tests

	// opMu is held shared by WriteChunk and Checkpoint while they use the
	// file, and exclusively by Finish, Close and Remove, which end the Part.
	opMu  sync.RWMutex
	ended bool

	// ckptMu serializes checkpoints.
	ckptMu sync.Mutex

	// mu protects the fields below.
	mu          sync.Mutex
	have        bitmap // chunks whose data is in the file
	busy        bitmap // chunks being written now
	count       int    // chunks in have
	prefix      int    // chunks [0, prefix) are all in have
	synced      bitmap // chunks the state file on disk records
	syncedCount int
	unsynced    int64 // bytes written since the last checkpoint
	lastCkpt    time.Time
	autoErr     error // a failed automatic checkpoint, for the next WriteChunk
	forgot      bool  // Forget dropped a chunk since the last checkpoint
	epoch       int   // bumped when written data may be lost: hashing restarts

	// The worker goroutine hashes the prefix and makes automatic
	// checkpoints. It is started and stopped under opMu (write); the hash
	// state below is its own while it runs, and Finish's (under opMu) when
	// it does not.
	stop      chan struct{} // nil when no worker runs
	done      chan struct{}
	kick      chan struct{} // cap 1: the prefix grew
	ckptKick  chan struct{} // cap 1: CheckpointBytes arrived
	h         hash.Hash
	hashed    int64        // bytes of the file in h
	hashEpoch int          // the epoch h was computed in
	hashedPub atomic.Int64 // p.hashed, for tests to watch
	noPrefix  bool         // leave all hashing to Finish (benchmarks)
	treeOK    atomic.Bool  // the caller checks every group against the tree: no whole-file hash (CheckedByTree)

	finishHashed int64 // bytes Finish hashed itself (under opMu)
}

// Open starts or resumes the download of name (as a peer reported it,
// '/'-separated) into the folder dir ("" is the current folder), which is
// created if needed. size and
// hash (store.HashPrefix + 64 hex digits) describe the file; chunkSize is the chunk
// size to use for a new download. If a state file for the same size and
// hash is there, the download resumes with the chunk size recorded in it
// (see ChunkSize); any other state, or a damaged one, is discarded and the
// download starts over. An existing file under the final name fails with
// ErrExists unless overwrite.
func Open(dir, name string, size int64, hash string, chunkSize int, overwrite bool) (*Part, error) {
	return open(dir, name, size, hash, chunkSize, overwrite, options{ckptBytes: CheckpointBytes, ckptEvery: CheckpointInterval})
}

// options are Open's tunables that tests and benchmarks change.
type options struct {
	ckptBytes int64
	ckptEvery time.Duration
	noPrefix  bool                      // leave all hashing to Finish
	wrap      func(f *os.File) writerAt // put something in front of the file
}

func open(dir, name string, size int64, hash string, chunkSize int, overwrite bool, o options) (*Part, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	sum, err := parseHash(hash)
	if err != nil {
		return nil, err
	}
	st := State{Size: size, ChunkSize: chunkSize, Hash: sum}
	st.Have = make([]byte, bitmapLen(min(st.NumChunks(), MaxChunks)))
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("downloading %q: %w", name, err)
	}
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating download folder: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening download folder: %w", err)
	}
	p := &Part{
		root:      root,
		name:      name,
		partName:  sideName(name, store.PartSuffix),
		stateName: sideName(name, store.StateSuffix),
		tmpName:   sideName(name, store.TmpSuffix),
		size:      size,
		hash:      sum,
		overwrite: overwrite,
		ckptBytes: o.ckptBytes,
		ckptEvery: o.ckptEvery,
		noPrefix:  o.noPrefix,
		kick:      make(chan struct{}, 1),
		ckptKick:  make(chan struct{}, 1),
		h:         store.NewHash(),
	}
	if err := p.open(st); err != nil {
		if p.f != nil {
			p.f.Close()
		}
		root.Close()
		return nil, err
	}
	if o.wrap != nil {
		p.w = o.wrap(p.f)
	}
	p.startWorker()
	return p, nil
}

func (p *Part) open(st State) error {
	if parent := path.Dir(p.name); parent != "." {
		if err := p.root.MkdirAll(parent, 0o755); err != nil {
			return p.rootErr("creating folder", err)
		}
	}
	if err := p.checkFinal(); err != nil {
		return err
	}
	// The temporary file must be a plain file of ours, not a link a local
	// user planted to make us write elsewhere in the folder.
	if fi, err := p.root.Lstat(p.partName); err == nil && !fi.Mode().IsRegular() {
		if err := p.root.Remove(p.partName); err != nil {
			return p.rootErr("removing stray temporary file", err)
		}
	}
	f, err := p.root.OpenFile(p.partName, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return p.rootErr("opening temporary file", err)
	}
	p.f, p.w = f, f
	if err := lockFile(f); err != nil {
		return fmt.Errorf("%w: %q", ErrBusy, p.name)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("opening temporary file: %w", err)
	}
	if old, err := p.readState(); err == nil && old.Size == st.Size && old.Hash == st.Hash && fi.Size() == st.Size {
		st = old
	} else {
		if err := p.root.Remove(p.stateName); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return p.rootErr("removing old state", err)
		}
		if err := f.Truncate(0); err != nil {
			return wrapIO("truncating temporary file", err)
		}
		if err := f.Truncate(st.Size); err != nil {
			return wrapIO("sizing temporary file", err)
		}
	}
	p.chunkSize = st.ChunkSize
	p.nchunks = st.NumChunks()
	p.have = bitmap(st.Have)
	p.busy = make(bitmap, len(st.Have))
	p.synced = bitmap(append([]byte(nil), st.Have...))
	p.count = p.have.count()
	p.syncedCount = p.count
	p.resumed = p.count
	p.prefix = p.have.firstMissing(0, p.nchunks)
	p.lastCkpt = time.Now()
	return nil
}

// checkFinal refuses a folder under the final name, and any existing file
// unless overwrite.
func (p *Part) checkFinal() error {
	fi, err := p.root.Lstat(p.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return p.rootErr("checking the final name", err)
	case fi.IsDir():
		return fmt.Errorf("%w: %q is a folder", ErrExists, p.name)
	case !p.overwrite:
		return fmt.Errorf("%w: %q", ErrExists, p.name)
	}
	return nil
}

func (p *Part) readState() (State, error) {
	f, err := p.root.Open(p.stateName)
	if err != nil {
		return State{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxStateLen+1))
	if err != nil {
		return State{}, err
	}
	st, n, err := ParseState(b)
	if err == nil && n != len(b) {
		err = errors.New("trailing bytes")
	}
	return st, err
}

// rootErr wraps an error of an os.Root operation: a path that leads out of
// the folder becomes ErrUnsafeName.
func (p *Part) rootErr(op string, err error) error {
	if store.IsPathEscape(err) {
		return fmt.Errorf("%w %q: leads outside the download folder", ErrUnsafeName, p.name)
	}
	return wrapIO(op, err)
}

func parseHash(s string) (store.Sum, error) { return store.ParseHash(s) }

// Name returns the final name, as given to Open.
func (p *Part) Name() string { return p.name }

// Size returns the file size.
func (p *Part) Size() int64 { return p.size }

// ChunkSize returns the chunk size in use: the one recorded in a resumed
// state, or the one given to Open.
func (p *Part) ChunkSize() int { return p.chunkSize }

// NumChunks returns the number of chunks (0 for an empty file).
func (p *Part) NumChunks() int { return p.nchunks }

// Resumed returns how many chunks Open found already on disk.
func (p *Part) Resumed() int { return p.resumed }

// chunkLen returns the length of chunk i: the last one may be short.
func (p *Part) chunkLen(i int) int {
	off := int64(i) * int64(p.chunkSize)
	return int(min(int64(p.chunkSize), p.size-off))
}

// Have reports whether chunk i is in the file.
func (p *Part) Have(i int) bool {
	if i < 0 || i >= p.nchunks {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.have.get(i)
}

// Count returns how many chunks are in the file, and their bytes.
func (p *Part) Count() (chunks int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	bytes = int64(p.count) * int64(p.chunkSize)
	if p.nchunks > 0 && p.have.get(p.nchunks-1) {
		bytes -= int64(p.chunkSize - p.chunkLen(p.nchunks-1))
	}
	return p.count, bytes
}

// WriteChunk writes chunk i (at offset i*ChunkSize). data must be exactly
// ChunkSize bytes, or the rest of the file for the last chunk; it is not
// kept after the call. A chunk already written is ignored. A full disk
// gives an error matching ErrNoSpace; the chunk is then not marked.
func (p *Part) WriteChunk(i int, data []byte) error {
	p.opMu.RLock()
	defer p.opMu.RUnlock()
	if p.ended {
		return ErrClosed
	}
	if i < 0 || i >= p.nchunks {
		return fmt.Errorf("%w: index %d of %d", ErrBadChunk, i, p.nchunks)
	}
	if want := p.chunkLen(i); len(data) != want {
		return fmt.Errorf("%w: chunk %d is %d bytes, want %d", ErrBadChunk, i, len(data), want)
	}
	p.mu.Lock()
	if err := p.autoErr; err != nil {
		p.autoErr = nil
		p.mu.Unlock()
		return err
	}
	// A chunk being written by another goroutine is a duplicate too: a
	// second write could change bytes the hasher has already read.
	if p.have.get(i) || p.busy.get(i) {
		p.mu.Unlock()
		return nil
	}
	p.busy.set(i)
	p.mu.Unlock()

	_, err := p.w.WriteAt(data, int64(i)*int64(p.chunkSize))

	p.mu.Lock()
	defer p.mu.Unlock()
	p.busy.clear(i)
	if err != nil {
		return wrapIO(fmt.Sprintf("writing chunk %d of %q", i, p.name), err)
	}
	p.have.set(i)
	p.count++
	p.unsynced += int64(len(data))
	if i == p.prefix {
		p.prefix = p.have.firstMissing(i, p.nchunks)
		signal(p.kick)
	}
	if p.unsynced >= p.ckptBytes {
		signal(p.ckptKick)
	}
	return nil
}

// WriteChunks writes the consecutive chunks first, first+1, ... whose bytes
// lie end to end in data, with one write: for small chunks that arrive in
// order it saves a system call per chunk. data must hold whole chunks (the
// file's last one may be short). If any of them is written already, or being
// written, each chunk goes through WriteChunk instead. Errors are
// WriteChunk's.
func (p *Part) WriteChunks(first int, data []byte) error {
	if first < 0 || first >= p.nchunks || p.chunkSize <= 0 {
		return fmt.Errorf("%w: index %d of %d", ErrBadChunk, first, p.nchunks)
	}
	n := (len(data) + p.chunkSize - 1) / p.chunkSize
	if n == 0 || first+n > p.nchunks || int64(len(data)) != min(int64(n)*int64(p.chunkSize), p.size-int64(first)*int64(p.chunkSize)) {
		return fmt.Errorf("%w: %d bytes for chunks from %d of %d", ErrBadChunk, len(data), first, p.nchunks)
	}
	if n > 1 {
		if done, err := p.writeRun(first, n, data); done {
			return err
		}
	}
	for i := first; len(data) > 0; i++ {
		m := min(len(data), p.chunkSize)
		if err := p.WriteChunk(i, data[:m]); err != nil {
			return err
		}
		data = data[m:]
	}
	return nil
}

// writeRun writes n chunks with one write; done is false (and nothing
// written) if one of them is there already or being written.
func (p *Part) writeRun(first, n int, data []byte) (done bool, err error) {
	p.opMu.RLock()
	defer p.opMu.RUnlock()
	if p.ended {
		return true, ErrClosed
	}
	p.mu.Lock()
	if err := p.autoErr; err != nil {
		p.autoErr = nil
		p.mu.Unlock()
		return true, err
	}
	for i := first; i < first+n; i++ {
		if p.have.get(i) || p.busy.get(i) {
			p.mu.Unlock()
			return false, nil
		}
	}
	for i := first; i < first+n; i++ {
		p.busy.set(i)
	}
	p.mu.Unlock()

	_, err = p.w.WriteAt(data, int64(first)*int64(p.chunkSize))

	p.mu.Lock()
	defer p.mu.Unlock()
	for i := first; i < first+n; i++ {
		p.busy.clear(i)
	}
	if err != nil {
		return true, wrapIO(fmt.Sprintf("writing chunks %d to %d of %q", first, first+n-1, p.name), err)
	}
	for i := first; i < first+n; i++ {
		p.have.set(i)
	}
	p.count += n
	p.unsynced += int64(len(data))
	if first <= p.prefix && p.prefix < first+n {
		p.prefix = p.have.firstMissing(first+n-1, p.nchunks)
		signal(p.kick)
	}
	if p.unsynced >= p.ckptBytes {
		signal(p.ckptKick)
	}
	return true, nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Checkpoint syncs the data written so far and then records those chunks in
// the state file (written to a temporary name, synced and renamed), so a
// crash at any moment leaves a state that claims only chunks on disk. It
// does nothing when no chunk arrived since the last checkpoint. If the sync
// fails, the chunks written since the last checkpoint are forgotten (Have
// turns false) because their data may be lost.
func (p *Part) Checkpoint() error {
	p.opMu.RLock()
	defer p.opMu.RUnlock()
	if p.ended {
		return ErrClosed
	}
	return p.checkpoint()
}

func (p *Part) checkpoint() error {
	p.ckptMu.Lock()
	defer p.ckptMu.Unlock()
	p.mu.Lock()
	if p.count == p.syncedCount && !p.forgot {
		p.mu.Unlock()
		return nil
	}
	p.forgot = false
	snap := bitmap(append([]byte(nil), p.have...))
	snapCount := p.count
	pending := p.unsynced
	p.unsynced = 0
	p.lastCkpt = time.Now()
	p.mu.Unlock()

	if err := p.w.Sync(); err != nil {
		p.mu.Lock()
		// Only chunks recorded in the state are known to be on disk.
		copy(p.have, p.synced)
		p.count = p.have.count()
		p.prefix = p.have.firstMissing(0, p.nchunks)
		p.epoch++
		p.mu.Unlock()
		return wrapIO(fmt.Sprintf("syncing %q", p.name), err)
	}
	if err := p.writeState(snap); err != nil {
		p.mu.Lock()
		p.unsynced += pending
		p.mu.Unlock()
		return err
	}
	p.mu.Lock()
	p.synced = snap
	p.syncedCount = snapCount
	p.mu.Unlock()
	return nil
}

// writeState replaces the state file atomically.
func (p *Part) writeState(have bitmap) error {
	b := AppendState(nil, State{Size: p.size, ChunkSize: p.chunkSize, Hash: p.hash, Have: have})
	if err := p.root.Remove(p.tmpName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return p.rootErr("removing old state", err)
	}
	// O_EXCL never follows a symlink.
	f, err := p.root.OpenFile(p.tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return p.rootErr("creating state", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = p.root.Rename(p.tmpName, p.stateName)
	}
	if err != nil {
		p.root.Remove(p.tmpName)
		return wrapIO(fmt.Sprintf("writing state of %q", p.name), err)
	}
	p.syncDir()
	return nil
}

// syncDir makes a rename in the final name's folder durable. Some file
// systems cannot sync a folder; a rename there is as durable as they make
// it, so errors are ignored.
func (p *Part) syncDir() {
	d, err := p.root.Open(path.Dir(p.name))
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// work runs until stop: it hashes the file's contiguous prefix as it grows
// and makes automatic checkpoints.
func (p *Part) work(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(p.ckptEvery)
	defer t.Stop()
	buf := make([]byte, max(1, min(hashBlock, p.size)))
	for {
		if !p.noPrefix && !p.treeOK.Load() {
			p.hashPrefix(stop, buf)
		}
		select {
		case <-stop:
			return
		case <-p.kick:
		case <-p.ckptKick:
			p.autoCheckpoint()
		case <-t.C:
			p.mu.Lock()
			due := p.unsynced > 0 && time.Since(p.lastCkpt) >= p.ckptEvery
			p.mu.Unlock()
			if due {
				p.autoCheckpoint()
			}
		}
	}
}

func (p *Part) autoCheckpoint() {
	if err := p.checkpoint(); err != nil {
		p.mu.Lock()
		p.autoErr = err
		p.mu.Unlock()
	}
}

// hashPrefix feeds h with the contiguous prefix written so far, a block at
// a time, until it catches up or the worker is told to stop. A checkpoint
// due meanwhile is made between blocks: hashing slower than the data arrives
// must not hold the state back.
func (p *Part) hashPrefix(stop <-chan struct{}, buf []byte) {
	for {
		select {
		case <-stop:
			return
		case <-p.ckptKick:
			p.autoCheckpoint()
		default:
		}
		p.mu.Lock()
		if p.hashEpoch != p.epoch {
			p.h.Reset()
			p.hashed = 0
			p.hashEpoch = p.epoch
		}
		end := min(int64(p.prefix)*int64(p.chunkSize), p.size)
		p.mu.Unlock()
		if p.hashed >= end {
			return
		}
		n := int(min(int64(len(buf)), end-p.hashed))
		if _, err := p.f.ReadAt(buf[:n], p.hashed); err != nil {
			return // Finish reads it again and reports the error
		}
		p.h.Write(buf[:n])
		p.hashed += int64(n)
		p.hashedPub.Store(p.hashed)
	}
}

// startWorker and stopWorker are called with opMu held for writing (or
// before the Part is shared). The worker never takes opMu.
func (p *Part) startWorker() {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.work(p.stop, p.done)
}

func (p *Part) stopWorker() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.stop, p.done = nil, nil
}

// Finish verifies the whole file against the hash given to Open, syncs it
// and renames it to its final name. It fails with ErrIncomplete while
// chunks are missing (the Part stays usable). On a hash mismatch it fails
// with ErrHashMismatch and removes the temporary and state files, so a
// retry starts clean and nothing appears under the final name. If a file
// appeared under the final name meanwhile and overwrite is off, it fails
// with ErrExists and keeps the complete download for a later Open with
// overwrite. If ctx ends during the check, the Part stays open: call Finish
// again or Close. After Finish succeeds or fails for good, the Part is ended.
func (p *Part) Finish(ctx context.Context) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.ended {
		return ErrClosed
	}
	p.mu.Lock()
	missing := p.nchunks - p.count
	p.mu.Unlock()
	if missing > 0 {
		return fmt.Errorf("%w: %q misses %d of %d chunks", ErrIncomplete, p.name, missing, p.nchunks)
	}
	// No write or checkpoint can run now (opMu), so with the worker
	// stopped the epoch and the hash state are Finish's.
	p.stopWorker()
	if err := p.finish(ctx); err != nil {
		if !p.ended {
			p.startWorker()
		}
		return err
	}
	return nil
}

func (p *Part) finish(ctx context.Context) error {
	p.mu.Lock()
	epoch := p.epoch
	p.mu.Unlock()
	if p.hashEpoch != epoch {
		p.h.Reset()
		p.hashed = 0
		p.hashEpoch = epoch
	}
	if p.treeOK.Load() {
		// Every group was checked against a tree whose root is the hash.
	} else if err := p.hashRest(ctx); err != nil {
		return err
	} else if got := p.h.Sum(nil); string(got) != string(p.hash[:]) {
		p.ended = true
		p.discard()
		return fmt.Errorf("%w for %q: expected %s, got %s", ErrHashMismatch, p.name, p.hash, store.FormatHash(got))
	}
	if err := p.f.Sync(); err != nil {
		return wrapIO(fmt.Sprintf("syncing %q", p.name), err)
	}
	// Record completion first: if anything below fails, the complete
	// download resumes instantly.
	if err := p.writeState(p.have); err != nil {
		return err
	}
	if err := p.rename(); err != nil {
		if errors.Is(err, ErrExists) {
			p.ended = true
			p.f.Close()
			p.root.Close()
		}
		return err
	}
	p.ended = true
	p.f.Close()
	p.root.Remove(p.stateName)
	p.syncDir()
	p.root.Close()
	return nil
}

// hashRest feeds h with the file from where the prefix hasher stopped.
func (p *Part) hashRest(ctx context.Context) error {
	buf := make([]byte, max(1, min(hashBlock, p.size-p.hashed)))
	from := p.hashed
	defer func() { p.finishHashed += p.hashed - from }()
	for p.hashed < p.size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(int64(len(buf)), p.size-p.hashed))
		if _, err := p.f.ReadAt(buf[:n], p.hashed); err != nil {
			return fmt.Errorf("reading %q back: %w", p.name, err)
		}
		p.h.Write(buf[:n])
		p.hashed += int64(n)
	}
	p.hashedPub.Store(p.hashed)
	return nil
}

// rename gives the verified file its final name. Without overwrite it uses
// a hard link, which fails if the name exists, so a file that appeared
// meanwhile is never replaced; where links are not supported it checks and
// renames.
func (p *Part) rename() error {
	if p.overwrite {
		if err := p.checkFinal(); err != nil {
			return err
		}
		if err := p.root.Rename(p.partName, p.name); err != nil {
			return p.rootErr(fmt.Sprintf("renaming to %q", p.name), err)
		}
		return nil
	}
	err := p.root.Link(p.partName, p.name)
	switch {
	case err == nil:
		p.root.Remove(p.partName)
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %q", ErrExists, p.name)
	case store.IsPathEscape(err):
		return p.rootErr("linking", err)
	}
	if err := p.checkFinal(); err != nil {
		return err
	}
	if err := p.root.Rename(p.partName, p.name); err != nil {
		return p.rootErr(fmt.Sprintf("renaming to %q", p.name), err)
	}
	return nil
}

// discard closes and removes the temporary and state files.
func (p *Part) discard() error {
	p.f.Close()
	var errs []error
	for _, n := range []string{p.partName, p.stateName, p.tmpName} {
		if err := p.root.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	p.root.Close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing partial download: %w", err)
	}
	return nil
}

// CheckedByTree tells the Part that its caller checks every byte against
// the file's BLAKE3 tree (store/tree) whose root is the content hash, group
// by group as the chunks arrive (transfer.ClientConfig.Tree), and that
// Finish is called only once every group passed: the Part then computes no
// whole-file hash (no prefix hashing, no read-back in Finish).
func (p *Part) CheckedByTree() { p.treeOK.Store(true) }

// ReadAt reads bytes back from the temporary file (to check a group). Bytes
// of chunks not written are zeros or stale.
func (p *Part) ReadAt(b []byte, off int64) (int, error) {
	p.opMu.RLock()
	defer p.opMu.RUnlock()
	if p.ended {
		return 0, ErrClosed
	}
	return p.f.ReadAt(b, off)
}

// OpenReader opens the temporary file for reading, apart from the Part:
// the descriptor stays valid after Finish, since the final name is the same
// file (a hard link or a rename). A seeding server reads checked groups
// through it while the download runs and the whole file after.
func (p *Part) OpenReader() (*os.File, error) {
	p.opMu.RLock()
	defer p.opMu.RUnlock()
	if p.ended {
		return nil, ErrClosed
	}
	f, err := p.root.Open(p.partName)
	if err != nil {
		return nil, p.rootErr("opening temporary file", err)
	}
	return f, nil
}

// Forget drops chunk i: its bytes were found wrong, Have(i) turns false and
// it may be written again. The next checkpoint records it.
func (p *Part) Forget(i int) {
	if i < 0 || i >= p.nchunks {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.have.get(i) {
		return
	}
	p.have.clear(i)
	p.count--
	p.forgot = true
	if i < p.prefix {
		p.prefix = i
		p.epoch++ // the prefix hash covered the wrong bytes: start over
	}
}

// Close checkpoints and keeps the partial file and its state for a later
// Open to resume. It returns the checkpoint's error, if any; the files are
// kept either way.
func (p *Part) Close() error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.ended {
		return nil
	}
	p.stopWorker()
	p.ended = true
	err := p.checkpoint()
	if cerr := p.f.Close(); err == nil && cerr != nil {
		err = wrapIO("closing temporary file", cerr)
	}
	p.root.Close()
	return err
}

// Remove discards the partial file and its state.
func (p *Part) Remove() error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.ended {
		return ErrClosed
	}
	p.stopWorker()
	p.ended = true
	return p.discard()
}

// HasPartial reports whether dir holds a partial download of name (its
// temporary file): a download of it would resume.
func HasPartial(dir, name string) bool {
	if CheckName(name) != nil {
		return false
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return false
	}
	defer root.Close()
	_, err = root.Lstat(sideName(name, store.PartSuffix))
	return err == nil
}

// Discard removes what a download of name into dir left behind (its
// temporary and state files), for a download that was closed and will not
// be resumed. Nothing there is not an error.
func Discard(dir, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening download folder: %w", err)
	}
	defer root.Close()
	var errs []error
	for _, suffix := range []string{store.PartSuffix, store.StateSuffix, store.TmpSuffix} {
		if err := root.Remove(sideName(name, suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing partial download: %w", err)
	}
	return nil
}
