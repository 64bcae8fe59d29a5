package shareindex

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// The hash cache file is text, one header line then one line per file:
//
//	fxsh-hashcache 2
//	<64 hex content hash> <size> <mtime unix ns> <dev> <inode> <type> <path as a Go quoted string>
//
// Numbers are decimal without sign or leading zeros; the path is what
// strconv.Quote produces, so ParseCache and AppendCache are exact mirror
// images and a line never holds a raw newline.
const (
	cacheMagic = "fxsh-hashcache"
	// CacheVersion is the cache format version; another version is ignored
	// (everything is rehashed once). Version 2: the hashes are BLAKE3
	// (version 1 held SHA-256).
	CacheVersion = 2
	// MaxCacheEntries caps the entries read from a cache file, so a damaged
	// or hostile file cannot make a scan allocate without bound.
	MaxCacheEntries = 1 << 20
	// MaxCacheFileSize caps the bytes read from a cache file (about 400
	// bytes a line for MaxCacheEntries lines).
	MaxCacheFileSize = 512 << 20
	// MaxCachePathLen caps one cached path (PATH_MAX on Linux).
	MaxCachePathLen = 4096
	maxTypeLen      = 16
)

// CacheEntry is what the hash cache remembers about one file: its hash and
// type are reused while its path, size, mtime, device and inode are the same.
type CacheEntry struct {
	Path  string // absolute OS path of the file (after resolving the shared root)
	Size  int64
	MTime int64  // modification time, Unix nanoseconds
	Dev   uint64 // device number, 0 where unknown
	Ino   uint64 // inode number, 0 where unknown
	Type  string // type word, see TypeOf
	Hash  string // 64 lower-case hex digits, without store.HashPrefix
}

// cacheKey is a CacheEntry without its results.
type cacheKey struct {
	path       string
	size, mtim int64
	dev, ino   uint64
}

func (e CacheEntry) key() cacheKey { return cacheKey{e.Path, e.Size, e.MTime, e.Dev, e.Ino} }

func (e CacheEntry) validate() error {
	switch {
	case e.Path == "" || len(e.Path) > MaxCachePathLen:
		return errors.New("bad path length")
	case e.Size < 0:
		return errors.New("negative size")
	case e.MTime < 0:
		return errors.New("negative mtime")
	case !isHex64(e.Hash):
		return fmt.Errorf("bad hash %q", e.Hash)
	case !isTypeWord(e.Type):
		return fmt.Errorf("bad type %q", e.Type)
	}
	return nil
}

// AppendCache appends the cache file encoding of entries to b. Entries must
// be valid (as ParseCache would accept them).
func AppendCache(b []byte, entries []CacheEntry) []byte {
	b = append(b, cacheMagic...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, CacheVersion, 10)
	b = append(b, '\n')
	for _, e := range entries {
		b = append(b, e.Hash...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.Size, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.MTime, 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, e.Dev, 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, e.Ino, 10)
		b = append(b, ' ')
		b = append(b, e.Type...)
		b = append(b, ' ')
		b = strconv.AppendQuote(b, e.Path)
		b = append(b, '\n')
	}
	return b
}

// ParseCache parses a cache file written by AppendCache. It returns the
// entries and the number of bytes consumed (all of b on success).
func ParseCache(b []byte) ([]CacheEntry, int, error) {
	line, rest, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return nil, 0, errors.New("no header line")
	}
	want := cacheMagic + " " + strconv.Itoa(CacheVersion)
	if string(line) != want {
		return nil, 0, fmt.Errorf("header %q, want %q", truncate(line), want)
	}
	n := len(line) + 1
	var entries []CacheEntry
	for len(rest) > 0 {
		if len(entries) >= MaxCacheEntries {
			return nil, n, fmt.Errorf("more than %d entries", MaxCacheEntries)
		}
		line, rest, ok = bytes.Cut(rest, []byte{'\n'})
		if !ok {
			return nil, n, errors.New("last line not terminated")
		}
		e, err := parseCacheLine(line)
		if err != nil {
			return nil, n, fmt.Errorf("entry %d: %w", len(entries)+1, err)
		}
		entries = append(entries, e)
		n += len(line) + 1
	}
	return entries, n, nil
}

func parseCacheLine(line []byte) (CacheEntry, error) {
	var e CacheEntry
	f := make([][]byte, 0, 6)
	for range 6 {
		field, rest, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			return e, errors.New("too few fields")
		}
		f = append(f, field)
		line = rest
	}
	e.Hash = string(f[0])
	var err error
	if e.Size, err = parseCanonInt(f[1]); err != nil {
		return e, fmt.Errorf("size: %w", err)
	}
	if e.MTime, err = parseCanonInt(f[2]); err != nil {
		return e, fmt.Errorf("mtime: %w", err)
	}
	if e.Dev, err = parseCanonUint(f[3]); err != nil {
		return e, fmt.Errorf("dev: %w", err)
	}
	if e.Ino, err = parseCanonUint(f[4]); err != nil {
		return e, fmt.Errorf("inode: %w", err)
	}
	e.Type = string(f[5])
	if len(line) > MaxCachePathLen*4+2 {
		return e, errors.New("path too long")
	}
	if e.Path, err = strconv.Unquote(string(line)); err != nil {
		return e, fmt.Errorf("path %q: %w", truncate(line), err)
	}
	// Only the form strconv.Quote writes is accepted, so that parsing and
	// appending are mirror images.
	if strconv.Quote(e.Path) != string(line) {
		return e, fmt.Errorf("path %q not in canonical form", truncate(line))
	}
	return e, e.validate()
}

func parseCanonInt(b []byte) (int64, error) {
	u, err := parseCanonUint(b)
	if err != nil {
		return 0, err
	}
	if u > 1<<63-1 {
		return 0, errors.New("out of range")
	}
	return int64(u), nil
}

func parseCanonUint(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 20 || (b[0] == '0' && len(b) > 1) {
		return 0, fmt.Errorf("bad number %q", truncate(b))
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad number %q", truncate(b))
		}
	}
	return strconv.ParseUint(string(b), 10, 64)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isTypeWord(s string) bool {
	if s == "" || len(s) > maxTypeLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// loadCache reads the cache file at path. A missing file is an empty cache;
// an unreadable or corrupt one is an empty cache plus an error to report as
// a warning.
func loadCache(path string) (map[cacheKey]CacheEntry, error) {
	m := make(map[cacheKey]CacheEntry)
	if path == "" {
		return m, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrCacheCorrupt, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCacheFileSize+1))
	if err != nil {
		return m, fmt.Errorf("%w: reading: %w", ErrCacheCorrupt, err)
	}
	if len(b) > MaxCacheFileSize {
		return m, fmt.Errorf("%w: larger than %d bytes", ErrCacheCorrupt, MaxCacheFileSize)
	}
	if otherVersion(b) {
		return m, nil // another fxsh's format: rehash once, quietly
	}
	entries, _, err := ParseCache(b)
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrCacheCorrupt, err)
	}
	for _, e := range entries {
		m[e.key()] = e
	}
	return m, nil
}

// otherVersion reports whether b is a cache file of another format version:
// a well-formed header with a version number that is not CacheVersion.
func otherVersion(b []byte) bool {
	line, _, _ := bytes.Cut(b[:min(len(b), 64)], []byte{'\n'})
	v, ok := bytes.CutPrefix(line, []byte(cacheMagic+" "))
	if !ok {
		return false
	}
	n, err := strconv.Atoi(string(v))
	return err == nil && n >= 0 && n != CacheVersion
}

// saveCache writes entries to path atomically: a temporary file in the same
// folder, synced, then renamed over the old cache.
func saveCache(path string, entries []CacheEntry) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating cache folder: %w", err)
	}
	f, err := os.CreateTemp(dir, ".hashcache-*.tmp")
	if err != nil {
		return fmt.Errorf("creating cache: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(AppendCache(nil, entries)); err != nil {
		return fmt.Errorf("writing cache: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing cache: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("renaming cache: %w", err)
	}
	return nil
}
