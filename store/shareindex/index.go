// Package shareindex is the index of what a file server shares.
//
// Index holds the shared paths of one `share` command. Scan walks them and
// returns a store.File for every file it can offer, plus a Warning for each
// thing it skipped (an unsafe name, a symlink leading outside the shared
// folder, an unreadable file, a name collision, a corrupt hash cache). Open
// gives the UDP server a File to read by content hash, and refuses a file
// that changed since it was indexed (ErrModified), so new content is never
// served under an old hash. Generation tells cheaply whether a Scan changed
// the list.
//
// Naming rule. One shared folder offers its contents at the top ("a.txt",
// "sub/b.txt"). With several paths, each folder's contents appear under the
// folder's base name ("photos/a.jpg"). A shared file is always offered under
// its base name. When two paths produce the same name the first path given
// wins and the others are skipped with an ErrNameCollision warning.
//
// Confinement. Every file is opened through an os.Root of its shared folder
// (for a shared file, of the folder holding it), so a symlink, or a folder
// swapped for a symlink during a transfer, can never lead outside. Symlinks
// to files inside the folder are offered under the link's name; symlinks to
// folders are not followed (no loops). A path given in Config may itself be
// a symlink: the user chose it.
//
// Hashes. The content hash (store.NewHash, BLAKE3) is computed by a pool of Config.Workers goroutines that
// stream each file, and cached by path, size, mtime, device and inode in
// Config.CachePath (see AppendCache) so a restart does not rehash unchanged
// files. The cache is rewritten atomically when it changes; a corrupt cache
// is ignored with a warning.
//
// The parts: index.go (Index, Scan, Open, File), names.go (CheckName),
// types.go (TypeOf), cache.go (the hash cache codec and file).
package shareindex

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/tree"
)

// Limits and defaults.
const (
	// HashWorkers is the default number of files hashed at once: enough to
	// overlap I/O with hashing, few enough to leave the CPU to transfers.
	HashWorkers = 2
	// MaxHashWorkers caps Config.Workers.
	MaxHashWorkers = 16
	// DefaultMaxFiles is the default cap on indexed files; it matches the
	// line protocol's limit on one registration.
	DefaultMaxFiles = 10000
	// ModCheckBytes is how many bytes a File serves between checks that the
	// file on disk is still the indexed version.
	ModCheckBytes = 4 << 20
	// hashBufSize is each hashing worker's read buffer.
	hashBufSize = 256 << 10
)

// Errors. Warnings carry the ones from ErrUnsafeName on.
var (
	ErrNothingToShare = errors.New("nothing to share")
	ErrNotFound       = errors.New("no shared file has that hash")
	ErrModified       = errors.New("file modified since it was indexed")
	ErrClosed         = errors.New("share index closed")

	ErrUnsafeName    = errors.New("unsafe name")
	ErrOutside       = errors.New("symlink leads outside the shared folder")
	ErrSymlinkDir    = errors.New("symlink to a folder not followed")
	ErrNameCollision = errors.New("name already offered by an earlier path")
	ErrNotRegular    = errors.New("not a regular file")
	ErrUnreadable    = errors.New("unreadable")
	ErrChanged       = errors.New("changed while being hashed; skipped until the next scan")
	ErrTooManyFiles  = errors.New("too many files")
	ErrCacheCorrupt  = errors.New("hash cache ignored")
)

// Config says what to share.
type Config struct {
	Paths     []string // folders and files to share
	CachePath string   // hash cache file ("" keeps the cache in memory only)
	Workers   int      // hashing goroutines; 0 means HashWorkers
	MaxFiles  int      // cap on indexed files; 0 means DefaultMaxFiles
}

// Warning is something Scan skipped, and why.
type Warning struct {
	Path string // OS path of what was skipped (or of the cache file)
	Err  error  // why; wraps one of the Err values above where one applies
}

// String describes the warning on one line; a path that is not printable
// text is quoted, so it cannot play tricks on a terminal.
func (w Warning) String() string {
	p := w.Path
	if !printable(p) {
		p = strconv.Quote(p)
	}
	msg := w.Err.Error()
	if !printable(msg) {
		msg = strings.Trim(strconv.Quote(msg), `"`)
	}
	return p + ": " + msg
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// Stats counts an Index's work since New.
type Stats struct {
	Generation  uint64 // see Index.Generation
	Files       int    // files in the current list
	Hashed      int64  // files hashed (cache misses)
	HashedBytes int64  // bytes hashed
	CacheHits   int64  // files whose hash came from the cache
}

// File is an indexed file opened for serving. ReadAt never reads past Size
// and fails with an error wrapping ErrModified once it notices that the file
// on disk is no longer the indexed version (it checks every ModCheckBytes).
// Check makes that test at once (e.g. before a transfer's last chunk).
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
	Check() error
}

// Index is the index of one share. Its methods are safe for concurrent use.
type Index struct {
	// Set by New, then read-only.
	paths     []string // absolute
	cachePath string
	workers   int
	maxFiles  int
	openFile  func(r *os.Root, name string) (*os.File, error) // tests replace it

	// scanMu serializes Scan and protects cache and cacheLoaded.
	scanMu      sync.Mutex
	cache       map[cacheKey]CacheEntry
	cacheLoaded bool
	trees       map[string]*tree.Tree // hex content hash -> tree, for cache hits

	// mu protects the fields below. Open holds it (read) while it opens a
	// file, so Scan never closes a root under it.
	mu     sync.RWMutex
	snap   *snapshot
	gen    uint64
	closed bool

	hashed, hashedBytes, cacheHits atomic.Int64
}

// snapshot is the result of one Scan.
type snapshot struct {
	files  []store.File
	byHash map[string]*entry
	roots  []*os.Root
}

// entry is how Open finds and checks an indexed file.
type entry struct {
	root     *os.Root
	rel      string // name inside root, '/'-separated
	size     int64
	mtime    time.Time
	dev, ino uint64
	tree     *tree.Tree // nil for a file of at most one group (see store/tree)
}

// New returns an index of cfg.Paths. It checks that every path exists but
// reads nothing else; call Scan.
func New(cfg Config) (*Index, error) {
	if len(cfg.Paths) == 0 {
		return nil, errors.New("no paths to share")
	}
	if cfg.CachePath != "" {
		abs, err := filepath.Abs(cfg.CachePath)
		if err != nil {
			return nil, fmt.Errorf("hash cache %s: %w", cfg.CachePath, err)
		}
		cfg.CachePath = abs
	}
	x := &Index{
		cachePath: cfg.CachePath,
		workers:   cfg.Workers,
		maxFiles:  cfg.MaxFiles,
		openFile:  func(r *os.Root, name string) (*os.File, error) { return r.Open(name) },
		cache:     make(map[cacheKey]CacheEntry),
		snap:      &snapshot{byHash: map[string]*entry{}},
	}
	if x.workers <= 0 {
		x.workers = HashWorkers
	}
	x.workers = min(x.workers, MaxHashWorkers)
	if x.maxFiles <= 0 {
		x.maxFiles = DefaultMaxFiles
	}
	for _, p := range cfg.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("share %s: %w", p, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, err // names the path; the caller names the command
		}
		x.paths = append(x.paths, abs)
	}
	return x, nil
}

// Paths returns the shared paths, absolute.
func (x *Index) Paths() []string { return slices.Clone(x.paths) }

// Generation is a number that changes whenever a Scan returns a list that
// differs from the one before (names, sizes, mtimes, types or hashes).
func (x *Index) Generation() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.gen
}

// Files returns the list of the last successful Scan, sorted by name.
func (x *Index) Files() []store.File {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Clone(x.snap.files)
}

// Stats returns counters of the index's work.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	s := Stats{Generation: x.gen, Files: len(x.snap.files)}
	x.mu.RUnlock()
	s.Hashed = x.hashed.Load()
	s.HashedBytes = x.hashedBytes.Load()
	s.CacheHits = x.cacheHits.Load()
	return s
}

// Close releases the index's folder handles. Files already opened stay
// readable; Open and Scan fail afterwards.
func (x *Index) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil
	}
	x.closed = true
	closeRoots(x.snap.roots)
	x.snap = &snapshot{byHash: map[string]*entry{}}
	return nil
}

// shareRoot is one configured path, opened for a scan.
type shareRoot struct {
	path   string   // as configured (absolute)
	dir    string   // real (symlink-free) path of the folder root opens
	root   *os.Root // the shared folder, or the folder holding a shared file
	prefix string   // name prefix for a folder's contents ("" at the top)
	file   string   // for a shared file: its name inside root; "" for a folder
	name   string   // for a shared file: the name offered
}

// candidate is a file found by the walk, before hashing.
type candidate struct {
	sr   *shareRoot
	rel  string // inside sr.root, '/'-separated
	name string // offered name
	fi   fs.FileInfo
}

func (c candidate) osPath() string { return filepath.Join(c.sr.dir, filepath.FromSlash(c.rel)) }

// result is one indexed file.
type result struct {
	file  store.File
	entry *entry
	cache CacheEntry
	fresh bool // hashed by this scan (not a cache hit)
}

// Scan indexes the shared paths again and returns the files, sorted by
// name, and warnings for what it skipped. An empty result is an error
// wrapping ErrNothingToShare ("nothing to share in PATH"); the list is then
// empty too. If ctx ends, Scan returns its error and keeps the previous list.
func (x *Index) Scan(ctx context.Context) ([]store.File, []Warning, error) {
	x.scanMu.Lock()
	defer x.scanMu.Unlock()
	x.mu.RLock()
	closed := x.closed
	x.mu.RUnlock()
	if closed {
		return nil, nil, ErrClosed
	}

	var warns []Warning
	warn := func(p string, err error) { warns = append(warns, Warning{Path: p, Err: err}) }
	if !x.cacheLoaded {
		m, err := loadCache(x.cachePath)
		if err != nil {
			warn(x.cachePath, err)
		}
		x.cache, x.cacheLoaded = m, true
	}

	roots := x.openRoots(warn)
	cands := x.walk(ctx, roots, warn)
	if err := ctx.Err(); err != nil {
		closeRoots(rootsOf(roots))
		return nil, nil, err
	}

	results, hashWarns, err := x.hashAll(ctx, cands)
	if err != nil {
		closeRoots(rootsOf(roots))
		return nil, nil, err
	}
	warns = append(warns, hashWarns...)
	slices.SortFunc(results, func(a, b result) int { return strings.Compare(a.file.Name, b.file.Name) })

	if w, ok := x.updateCache(results); !ok {
		warns = append(warns, w)
	}

	snap := &snapshot{byHash: make(map[string]*entry, len(results)), roots: rootsOf(roots)}
	for _, r := range results {
		snap.files = append(snap.files, r.file)
		if _, ok := snap.byHash[r.file.Hash]; !ok {
			snap.byHash[r.file.Hash] = r.entry
		}
	}
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		closeRoots(snap.roots)
		return nil, nil, ErrClosed
	}
	old := x.snap
	x.snap = snap
	if !sameFiles(old.files, snap.files) {
		x.gen++
	}
	closeRoots(old.roots)
	x.mu.Unlock()

	if len(snap.files) == 0 {
		return nil, warns, fmt.Errorf("%w in %s", ErrNothingToShare, strings.Join(x.paths, ", "))
	}
	return slices.Clone(snap.files), warns, nil
}

// openRoots opens every configured path for this scan and decides its
// naming prefix.
func (x *Index) openRoots(warn func(string, error)) []*shareRoot {
	var roots []*shareRoot
	for _, p := range x.paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			warn(p, err)
			continue
		}
		fi, err := os.Stat(real)
		if err != nil {
			warn(p, err)
			continue
		}
		sr := &shareRoot{path: p}
		switch {
		case fi.IsDir():
			sr.dir = real
			if len(x.paths) > 1 {
				sr.prefix = filepath.Base(p)
				if err := CheckName(sr.prefix); err != nil {
					warn(p, err)
					continue
				}
			}
		case fi.Mode().IsRegular():
			sr.dir, sr.file = filepath.Split(real)
			sr.name = filepath.Base(p)
			if err := CheckName(sr.name); err != nil {
				warn(p, err)
				continue
			}
		default:
			warn(p, ErrNotRegular)
			continue
		}
		if sr.root, err = os.OpenRoot(sr.dir); err != nil {
			warn(p, fmt.Errorf("%w: %w", ErrUnreadable, err))
			continue
		}
		roots = append(roots, sr)
	}
	return roots
}

// walk lists the files to offer, in path order, with their names checked
// and collisions and the file cap resolved.
//
// Kept whole: one walk whose callback makes every skip decision in one
// place, in the order the package doc gives.
func (x *Index) walk(ctx context.Context, roots []*shareRoot, warn func(string, error)) []candidate {
	var cands []candidate
	seen := make(map[string]string) // offered name -> OS path
	capped := false
	add := func(c candidate) {
		if other, dup := seen[c.name]; dup {
			warn(c.osPath(), fmt.Errorf("%w (%s): %q", ErrNameCollision, other, c.name))
			return
		}
		if len(cands) >= x.maxFiles {
			if !capped {
				capped = true
				warn(c.osPath(), fmt.Errorf("%w: only the first %d are offered", ErrTooManyFiles, x.maxFiles))
			}
			return
		}
		seen[c.name] = c.osPath()
		cands = append(cands, c)
	}
	for _, sr := range roots {
		if sr.file != "" {
			fi, err := sr.root.Stat(sr.file)
			if err != nil {
				warn(sr.path, fmt.Errorf("%w: %w", ErrUnreadable, err))
				continue
			}
			add(candidate{sr: sr, rel: sr.file, name: sr.name, fi: fi})
			continue
		}
		fsys := sr.root.FS()
		_ = fs.WalkDir(fsys, ".", func(rel string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil || capped {
				return fs.SkipAll
			}
			osPath := filepath.Join(sr.dir, filepath.FromSlash(rel))
			if err != nil {
				warn(osPath, fmt.Errorf("%w: %w", ErrUnreadable, err))
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if rel == "." {
				return nil
			}
			name := rel
			if sr.prefix != "" {
				name = sr.prefix + "/" + rel
			}
			if d.IsDir() {
				// A folder whose name cannot be sent hides everything in it.
				if err := CheckName(name + "/x"); err != nil {
					warn(osPath, fmt.Errorf("folder skipped: %w", err))
					return fs.SkipDir
				}
				return nil
			}
			if store.IsPartial(path.Base(rel)) || osPath == x.cachePath {
				return nil
			}
			if err := CheckName(name); err != nil {
				warn(osPath, err)
				return nil
			}
			var fi fs.FileInfo
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				// Stat through the root follows the link only if it stays
				// inside.
				fi, err = sr.root.Stat(rel)
				switch {
				case err != nil && store.IsPathEscape(err):
					warn(osPath, ErrOutside)
					return nil
				case err != nil:
					warn(osPath, fmt.Errorf("%w: %w", ErrUnreadable, err))
					return nil
				case fi.IsDir():
					warn(osPath, ErrSymlinkDir)
					return nil
				}
			case d.Type().IsRegular():
				if fi, err = d.Info(); err != nil {
					warn(osPath, fmt.Errorf("%w: %w", ErrUnreadable, err))
					return nil
				}
			default:
				warn(osPath, ErrNotRegular)
				return nil
			}
			if !fi.Mode().IsRegular() {
				warn(osPath, ErrNotRegular)
				return nil
			}
			add(candidate{sr: sr, rel: rel, name: name, fi: fi})
			return nil
		})
	}
	return cands
}

// hashAll turns candidates into results: cache hits at once, the rest
// hashed by x.workers goroutines.
func (x *Index) hashAll(ctx context.Context, cands []candidate) ([]result, []Warning, error) {
	var (
		results []result
		warns   []Warning
		mu      sync.Mutex // protects results and warns while workers run
	)
	jobs := make(chan candidate)
	var wg sync.WaitGroup
	for range x.workers {
		wg.Go(func() {
			buf := make([]byte, hashBufSize)
			for c := range jobs {
				r, err := x.hashFile(ctx, c, buf)
				mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						warns = append(warns, Warning{Path: c.osPath(), Err: err})
					}
				} else {
					results = append(results, r)
				}
				mu.Unlock()
			}
		})
	}
	for _, c := range cands {
		dev, ino := fileID(c.fi)
		k := cacheKey{c.osPath(), c.fi.Size(), c.fi.ModTime().UnixNano(), dev, ino}
		if ce, ok := x.cache[k]; ok {
			r := makeResult(c, c.fi, ce)
			if r.entry.tree = x.cachedTree(ce); r.entry.tree != nil || !tree.Checkable(ce.Size) {
				x.cacheHits.Add(1)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				continue
			}
			// The tree is missing or damaged: hash the file again.
		}
		select {
		case jobs <- c:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	slices.SortFunc(warns, func(a, b Warning) int { return strings.Compare(a.Path, b.Path) })
	return results, warns, nil
}

func makeResult(c candidate, fi fs.FileInfo, ce CacheEntry) result {
	dev, ino := fileID(fi)
	return result{
		file: store.File{
			Name:  c.name,
			Size:  fi.Size(),
			Type:  ce.Type,
			MTime: fi.ModTime(),
			Hash:  store.HashPrefix + ce.Hash,
		},
		entry: &entry{root: c.sr.root, rel: c.rel, size: fi.Size(), mtime: fi.ModTime(), dev: dev, ino: ino},
		cache: ce,
	}
}

// hashFile streams one file through the content hash and sniffs its type. It opens
// the file through the root and describes the version it read: if the file
// changes while it is read, it is skipped (ErrChanged).
func (x *Index) hashFile(ctx context.Context, c candidate, buf []byte) (result, error) {
	f, err := x.openFile(c.sr.root, c.rel)
	if err != nil {
		if store.IsPathEscape(err) {
			return result{}, ErrOutside
		}
		return result{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return result{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	if !fi.Mode().IsRegular() {
		return result{}, ErrNotRegular
	}
	h := tree.NewBuilder()
	var head []byte
	var n int64
	r := io.LimitReader(f, fi.Size())
	for {
		if err := ctx.Err(); err != nil {
			return result{}, err
		}
		m, err := r.Read(buf)
		if head == nil && m > 0 {
			head = slices.Clone(buf[:min(m, SniffLen)])
		}
		h.Write(buf[:m])
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return result{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
	}
	x.hashed.Add(1)
	x.hashedBytes.Add(n)
	after, err := f.Stat()
	if err != nil {
		return result{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	if n != fi.Size() || !sameVersion(fi, after) {
		return result{}, ErrChanged
	}
	dev, ino := fileID(fi)
	ce := CacheEntry{
		Path: c.osPath(), Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Dev: dev, Ino: ino,
	}
	root, tr := h.Sum()
	ce.Type, ce.Hash = TypeOf(c.name, head), hex.EncodeToString(root[:])
	res := makeResult(c, fi, ce)
	res.fresh = true
	if tree.Checkable(fi.Size()) {
		res.entry.tree = tr
	}
	return res, nil
}

func sameVersion(a, b fs.FileInfo) bool {
	ad, ai := fileID(a)
	bd, bi := fileID(b)
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && ad == bd && ai == bi
}

// updateCache replaces the cache with the entries of this scan and writes
// it when it changed. It reports a warning when writing fails.
func (x *Index) updateCache(results []result) (Warning, bool) {
	next := make(map[cacheKey]CacheEntry, len(results))
	changed := false
	for _, r := range results {
		k := r.cache.key()
		next[k] = r.cache
		if _, ok := x.cache[k]; !ok {
			changed = true
		}
	}
	if len(next) != len(x.cache) {
		changed = true
	}
	x.cache = next
	trees := make(map[string]*tree.Tree)
	for _, r := range results {
		if r.entry.tree != nil {
			if _, ok := x.trees[r.cache.Hash]; !ok && r.fresh {
				if err := x.saveTree(r.cache.Hash, r.entry.tree); err != nil {
					return Warning{Path: x.treeDir(), Err: err}, false
				}
				changed = true
			}
			trees[r.cache.Hash] = r.entry.tree
		}
	}
	x.trees = trees
	if changed {
		keep := make(map[string]bool, len(trees))
		for h := range trees {
			keep[h] = true
		}
		x.pruneTrees(keep)
	}
	if !changed || x.cachePath == "" {
		return Warning{}, true
	}
	entries := make([]CacheEntry, 0, len(next))
	for _, r := range results {
		entries = append(entries, r.cache)
	}
	if err := saveCache(x.cachePath, entries); err != nil {
		return Warning{Path: x.cachePath, Err: err}, false
	}
	return Warning{}, true
}

func sameFiles(a, b []store.File) bool {
	return slices.EqualFunc(a, b, func(x, y store.File) bool {
		return x.Name == y.Name && x.Size == y.Size && x.Type == y.Type &&
			x.Hash == y.Hash && x.MTime.Equal(y.MTime)
	})
}

func rootsOf(srs []*shareRoot) []*os.Root {
	var rs []*os.Root
	for _, sr := range srs {
		rs = append(rs, sr.root)
	}
	return rs
}

func closeRoots(rs []*os.Root) {
	for _, r := range rs {
		r.Close()
	}
}

// Open opens the indexed file with the given hash (store.HashPrefix + hex,
// as in store.File) for reading. It fails with ErrNotFound for an unknown hash and
// with an error wrapping ErrModified when the file's size, mtime or inode
// changed since it was indexed (rescan, then offer the new version).
func (x *Index) Open(hash string) (File, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return nil, ErrClosed
	}
	e, ok := x.snap.byHash[hash]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, hash)
	}
	f, err := e.root.Open(e.rel)
	if err != nil {
		if store.IsPathEscape(err) {
			return nil, fmt.Errorf("opening %s: %w", e.rel, ErrOutside)
		}
		return nil, fmt.Errorf("opening %s: %w", e.rel, err)
	}
	sf := &sharedFile{f: f, e: *e}
	if err := sf.Check(); err != nil {
		f.Close()
		return nil, err
	}
	return sf, nil
}

// sharedFile is a File.
type sharedFile struct {
	f     *os.File
	e     entry        // the indexed version
	since atomic.Int64 // bytes served since the last check
}

func (s *sharedFile) Size() int64  { return s.e.size }
func (s *sharedFile) Close() error { return s.f.Close() }

func (s *sharedFile) Check() error {
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("checking %s: %w", s.e.rel, err)
	}
	dev, ino := fileID(fi)
	if !fi.Mode().IsRegular() || fi.Size() != s.e.size || !fi.ModTime().Equal(s.e.mtime) || dev != s.e.dev || ino != s.e.ino {
		return fmt.Errorf("%s: %w", s.e.rel, ErrModified)
	}
	return nil
}

func (s *sharedFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading %s: negative offset", s.e.rel)
	}
	if off >= s.e.size {
		return 0, io.EOF
	}
	eof := false
	if rest := s.e.size - off; int64(len(p)) > rest {
		p, eof = p[:rest], true
	}
	if s.since.Add(int64(len(p))) >= ModCheckBytes {
		s.since.Store(0)
		if err := s.Check(); err != nil {
			return 0, err
		}
	}
	n, err := s.f.ReadAt(p, off)
	if err == io.EOF && n < len(p) {
		return n, fmt.Errorf("%s: shrank: %w", s.e.rel, ErrModified)
	}
	if err == nil && eof {
		err = io.EOF
	}
	return n, err
}
