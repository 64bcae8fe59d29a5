// Package tree is the BLAKE3 tree of a shared file, cut at groups of
// GroupSize bytes, so that each group can be checked on its own against the
// file's content hash (BLAKE3 "verified streaming", the Bao format).
//
// BLAKE3 hashes 1 KiB chunks into a left-balanced binary tree. A group of
// GroupChunks chunks that starts at a multiple of GroupSize is a whole
// subtree, so its chaining value (CV) depends only on its bytes and its
// place. Tree holds the CV of every group (the bottom row of a Bao
// outboard, whose parent nodes follow from it): Root rebuilds the content
// hash from them (N-1 parent compressions), so a client that checks
// Root() == hash may then trust each CV, and Check tells whether a group's
// bytes are the file's. A file of one group has no tree: its group is
// checked against the content hash itself.
//
// The parts: tree.go (Tree, Check, Root, the codec), builder.go (Builder,
// which computes a Tree while reading a file once), bao.go (the Bao outboard
// form, for interoperability and tests), have.go (Have, a bitmap of checked
// groups shared by a download and the server offering its groups).
package tree

import (
	"encoding/binary"
	"errors"
	"fmt"

	"lukechampine.com/blake3/guts"

	"github.com/fxshell/fxsh/store"
)

const (
	// GroupLog is log2 of the chunks in a group (Bao's "chunk group").
	//
	// Why 64 KiB (measured on this 2-core AVX-512 machine, README
	// "Verified streaming"): the tree costs 32 bytes per group, 0.05 % of
	// the file (512 KiB for 1 GiB; 16 KiB groups would make it 2 MiB);
	// hashing a 64 KiB group runs the 16-way SIMD compressor on four full
	// buffers, at the speed of hashing the whole file; one group is about
	// one loopback datagram (63 KiB), so a group completes with every
	// datagram and a lie costs at most two datagrams to repeat; and the
	// bitmap of groups a peer holds stays small (4096 bits for 256 MiB).
	GroupLog = 6
	// GroupChunks is the BLAKE3 chunks (1 KiB) in a group.
	GroupChunks = 1 << GroupLog
	// GroupSize is the bytes in a group; the last group may be shorter.
	GroupSize = GroupChunks * guts.ChunkSize
	// CVSize is the bytes of one chaining value.
	CVSize = 32
	// MaxGroups caps the groups of a file (file size ≤ 2^50 bytes, the
	// chunk protocol's limit): 2^34 groups, whose tree would be 512 GiB.
	// Trees are held in memory, so MaxTreeBytes caps what is accepted.
	MaxGroups = 1 << 34
	// MaxTreeBytes caps a tree a peer may make us hold: 64 MiB of CVs,
	// the tree of a 128 GiB file. Bigger files are checked whole.
	MaxTreeBytes = 64 << 20
)

// ErrBadTree is a tree whose CVs do not lead to the content hash, or that
// is malformed.
var ErrBadTree = errors.New("bad tree")

// CV is a chaining value: the 32-byte digest of a subtree.
type CV [CVSize]byte

// Tree is the CVs of a file's groups.
type Tree struct {
	Size int64 // file size in bytes
	CVs  []CV  // one per group; empty for a file of at most one group
}

// Groups returns the number of groups of a file of size bytes (0 for an
// empty file).
func Groups(size int64) int {
	if size <= 0 {
		return 0
	}
	return int((size + GroupSize - 1) / GroupSize)
}

// Bytes returns the size of the tree object of a file of size bytes: 32
// bytes per group, or 0 for a file of at most one group (the content hash is
// its tree).
func Bytes(size int64) int64 {
	if g := Groups(size); g > 1 {
		return int64(g) * CVSize
	}
	return 0
}

// Span returns the byte range [off, end) of group g in a file of size bytes.
func Span(size int64, g int) (off, end int64) {
	off = int64(g) * GroupSize
	return off, min(off+GroupSize, size)
}

// Checkable reports whether files of size bytes are checked group by group:
// a tree exists (more than one group) and is not over MaxTreeBytes.
func Checkable(size int64) bool {
	b := Bytes(size)
	return b > 0 && b <= MaxTreeBytes
}

// Root returns the content hash the CVs lead to.
func (t *Tree) Root() store.Sum {
	if len(t.CVs) == 0 {
		return store.Sum{}
	}
	cvs := make([][8]uint32, len(t.CVs))
	for i := range t.CVs {
		cvs[i] = words(&t.CVs[i])
	}
	return rootOf(cvs)
}

// Verify checks that t is the tree of a file of the given size and hash.
func (t *Tree) Verify(size int64, hash store.Sum) error {
	if t.Size != size || len(t.CVs) != Groups(size) || len(t.CVs) < 2 {
		return fmt.Errorf("%w: %d CVs for %d bytes (want %d)", ErrBadTree, len(t.CVs), size, Groups(size))
	}
	if got := t.Root(); got != hash {
		return fmt.Errorf("%w: it leads to %s, not %s", ErrBadTree, got, hash)
	}
	return nil
}

// Check reports whether data is group g of the file: its CV is the tree's.
// data must be the whole group (Span).
func (t *Tree) Check(g int, data []byte) bool {
	if g < 0 || g >= len(t.CVs) {
		return false
	}
	off, end := Span(t.Size, g)
	if int64(len(data)) != end-off {
		return false
	}
	return GroupCV(data, g) == t.CVs[g]
}

// CheckWhole reports whether data, a whole file of one group, has the
// content hash.
func CheckWhole(data []byte, hash store.Sum) bool {
	return len(data) <= GroupSize && rootBytes(groupNode(data, 0)) == hash
}

// GroupCV returns the chaining value of group g whose bytes are data (a
// group that is not the whole file).
func GroupCV(data []byte, g int) CV {
	cv := guts.ChainingValue(groupNode(data, uint64(g)*GroupChunks))
	return cvBytes(&cv)
}

// AppendTree appends the tree object: the CVs end to end (Bytes(size)
// bytes; the size is known from the catalog).
func AppendTree(b []byte, t *Tree) []byte {
	for i := range t.CVs {
		b = append(b, t.CVs[i][:]...)
	}
	return b
}

// ParseTree reads the tree object of a file of size bytes. It does not
// check the CVs against a hash: call Verify.
func ParseTree(b []byte, size int64) (*Tree, error) {
	want := Bytes(size)
	if want == 0 || want > MaxTreeBytes {
		return nil, fmt.Errorf("%w: a file of %d bytes has no tree object", ErrBadTree, size)
	}
	if int64(len(b)) != want {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadTree, len(b), want)
	}
	t := &Tree{Size: size, CVs: make([]CV, len(b)/CVSize)}
	for i := range t.CVs {
		copy(t.CVs[i][:], b[i*CVSize:])
	}
	return t, nil
}

// groupNode returns the (uncompressed) root node of a group's subtree:
// data is at most GroupSize bytes and counter the index of its first chunk.
// The group is compressed MaxSIMD chunks at a time (the SIMD width) and the
// pieces merged as BLAKE3 does: pairwise, an odd last one carried up, which
// is the left-balanced tree since only the last piece may be short.
func groupNode(data []byte, counter uint64) guts.Node {
	const piece = guts.MaxSIMD * guts.ChunkSize
	if len(data) <= piece {
		var buf [piece]byte
		n := copy(buf[:], data)
		return guts.CompressBuffer(&buf, n, &guts.IV, counter, 0)
	}
	var cvs [GroupSize / piece][8]uint32
	n := 0
	for off := 0; off < len(data); off += piece {
		var node guts.Node
		if len(data)-off >= piece {
			node = guts.CompressBuffer((*[piece]byte)(data[off:off+piece]), piece, &guts.IV, counter+uint64(off/guts.ChunkSize), 0)
		} else {
			var buf [piece]byte
			m := copy(buf[:], data[off:])
			node = guts.CompressBuffer(&buf, m, &guts.IV, counter+uint64(off/guts.ChunkSize), 0)
		}
		cvs[n] = guts.ChainingValue(node)
		n++
	}
	return merge(cvs[:n])
}

// merge returns the parent node over subtrees whose CVs are cvs (at least
// two; all but the last of equal power-of-two size). cvs is overwritten.
func merge(cvs [][8]uint32) guts.Node {
	for len(cvs) > 2 {
		k := 0
		for i := 0; i+1 < len(cvs); i += 2 {
			cvs[k] = guts.ChainingValue(guts.ParentNode(cvs[i], cvs[i+1], &guts.IV, 0))
			k++
		}
		if len(cvs)%2 == 1 {
			cvs[k] = cvs[len(cvs)-1]
			k++
		}
		cvs = cvs[:k]
	}
	return guts.ParentNode(cvs[0], cvs[1], &guts.IV, 0)
}

// rootOf returns the content hash over group CVs (at least two).
func rootOf(cvs [][8]uint32) store.Sum {
	return rootBytes(merge(cvs))
}

func rootBytes(n guts.Node) store.Sum {
	n.Flags |= guts.FlagRoot
	cv := guts.ChainingValue(n)
	return store.Sum(cvBytes(&cv))
}

func words(b *CV) (w [8]uint32) {
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w
}

func cvBytes(w *[8]uint32) (b CV) {
	for i, x := range w {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return b
}

func chaining(n guts.Node) [8]uint32 { return guts.ChainingValue(n) }
