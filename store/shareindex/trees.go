package shareindex

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fxshell/fxsh/store"
	"github.com/fxshell/fxsh/store/tree"
)

// The tree cache. Beside the hash cache file (CachePath) a folder
// CachePath+".trees" holds one file per content hash that has a tree
// (tree.Checkable), named by the hash's 64 hex digits:
//
//	"fxsh-tree" SP version LF    (TreeCacheVersion)
//	size        8 bytes, big endian
//	group log   1 byte (tree.GroupLog)
//	CVs         tree.Bytes(size) bytes
//
// A tree is read back only for a hash cache hit, and only if its CVs lead
// to that hash (Tree.Verify): a damaged, foreign or stale file is rehashed.
const (
	treeMagic = "fxsh-tree"
	// TreeCacheVersion is the tree cache format; another one is ignored
	// (the file is rehashed once).
	TreeCacheVersion = 1
	// TreeDirSuffix names the tree cache folder beside CachePath.
	TreeDirSuffix = ".trees"
)

func treeHeader() string { return fmt.Sprintf("%s %d\n", treeMagic, TreeCacheVersion) }

// AppendTreeFile appends the tree cache encoding of t.
func AppendTreeFile(b []byte, t *tree.Tree) []byte {
	b = append(b, treeHeader()...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Size))
	b = append(b, tree.GroupLog)
	return tree.AppendTree(b, t)
}

// ParseTreeFile reads a tree cache file and checks it against the content
// hash it is for.
func ParseTreeFile(b []byte, hash store.Sum) (*tree.Tree, error) {
	rest, ok := bytes.CutPrefix(b, []byte(treeHeader()))
	if !ok {
		return nil, errors.New("not a tree file of this version")
	}
	if len(rest) < 9 {
		return nil, errors.New("short tree file")
	}
	size := int64(binary.BigEndian.Uint64(rest))
	if size < 0 || rest[8] != tree.GroupLog {
		return nil, fmt.Errorf("tree of size %d and group log %d", size, rest[8])
	}
	t, err := tree.ParseTree(rest[9:], size)
	if err != nil {
		return nil, err
	}
	if err := t.Verify(size, hash); err != nil {
		return nil, err
	}
	return t, nil
}

func (x *Index) treeDir() string {
	if x.cachePath == "" {
		return ""
	}
	return x.cachePath + TreeDirSuffix
}

// loadTree reads the cached tree of hash (hex digits), or nil.
func (x *Index) loadTree(hexHash string, size int64) *tree.Tree {
	dir := x.treeDir()
	sum, err := store.ParseHash(store.HashPrefix + hexHash)
	if dir == "" || err != nil {
		return nil
	}
	f, err := os.Open(filepath.Join(dir, hexHash))
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(len(treeHeader()))+9+tree.MaxTreeBytes+1))
	if err != nil {
		return nil
	}
	t, err := ParseTreeFile(b, sum)
	if err != nil || t.Size != size {
		return nil
	}
	return t
}

// saveTree writes the tree of hash (hex digits) atomically.
func (x *Index) saveTree(hexHash string, t *tree.Tree) error {
	dir := x.treeDir()
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating tree cache: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tree-*.tmp")
	if err != nil {
		return fmt.Errorf("creating tree cache: %w", err)
	}
	_, err = f.Write(AppendTreeFile(nil, t))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, hexHash))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing tree cache: %w", err)
	}
	return nil
}

// pruneTrees removes cached trees of hashes no longer indexed (and
// temporary files a crash left).
func (x *Index) pruneTrees(keep map[string]bool) {
	dir := x.treeDir()
	if dir == "" {
		return
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		if n := de.Name(); !keep[n] && (len(n) == 2*store.HashSize || strings.HasPrefix(n, ".tree-")) {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// Tree returns the tree of an indexed file (store.HashPrefix + hex), or an
// error wrapping ErrNotFound when there is none (no such file, or a file
// of one group, whose tree is its hash).
func (x *Index) Tree(hash string) (*tree.Tree, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.snap.byHash[hash]
	if !ok || e.tree == nil {
		return nil, fmt.Errorf("%w: no tree for %q", ErrNotFound, hash)
	}
	return e.tree, nil
}

// cachedTree returns the tree of a hash cache hit: the one in memory, or
// the one on disk if it checks out. Called with scanMu held.
func (x *Index) cachedTree(ce CacheEntry) *tree.Tree {
	if !tree.Checkable(ce.Size) {
		return nil
	}
	if t := x.trees[ce.Hash]; t != nil && t.Size == ce.Size {
		return t
	}
	return x.loadTree(ce.Hash, ce.Size)
}
