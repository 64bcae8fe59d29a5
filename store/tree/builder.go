package tree

import (
	"github.com/fxshell/fxsh/store"
)

// Builder computes a file's content hash and tree in one pass over its
// bytes, written in order (it replaces store.NewHash where the tree is
// wanted too). A group is hashed as soon as it is full, from the caller's
// buffer when the write covers it whole, else from the Builder's own.
type Builder struct {
	buf  []byte // the group being filled (len = its bytes so far)
	cvs  [][8]uint32
	size int64
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder { return &Builder{buf: make([]byte, 0, GroupSize)} }

// Write adds p to the file. It never fails.
func (b *Builder) Write(p []byte) (int, error) {
	n := len(p)
	b.size += int64(n)
	for len(p) > 0 {
		if len(b.buf) == GroupSize {
			b.push(b.buf)
			b.buf = b.buf[:0]
		}
		if len(b.buf) == 0 && len(p) > GroupSize {
			// A whole group that is not the last: hash it in place.
			b.push(p[:GroupSize])
			p = p[GroupSize:]
			continue
		}
		m := copy(b.buf[len(b.buf):GroupSize], p)
		b.buf = b.buf[:len(b.buf)+m]
		p = p[m:]
	}
	return n, nil
}

func (b *Builder) push(group []byte) {
	b.cvs = append(b.cvs, chaining(groupNode(group, uint64(len(b.cvs))*GroupChunks)))
}

// Size returns the bytes written.
func (b *Builder) Size() int64 { return b.size }

// Sum returns the content hash and the tree of the bytes written (a tree
// with no CVs for a file of at most one group). The Builder must not be
// written to afterwards.
func (b *Builder) Sum() (store.Sum, *Tree) {
	t := &Tree{Size: b.size}
	if len(b.cvs) == 0 {
		return rootBytes(groupNode(b.buf, 0)), t
	}
	cvs := append(b.cvs, chaining(groupNode(b.buf, uint64(len(b.cvs))*GroupChunks)))
	t.CVs = make([]CV, len(cvs))
	for i := range cvs {
		t.CVs[i] = cvBytes(&cvs[i])
	}
	return rootOf(append([][8]uint32(nil), cvs...)), t
}
