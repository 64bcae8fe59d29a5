package tree

import (
	"encoding/binary"

	"lukechampine.com/blake3/guts"
)

// Bao returns the tree in Bao's outboard encoding with chunk groups of
// GroupSize (group parameter GroupLog): the file size (8 bytes, little
// endian), then the parent nodes, each its two children's CVs, in pre-order.
// fxsh sends and stores only the bottom row (the CVs); this is the same tree
// in the standard form, for tools that speak Bao.
func (t *Tree) Bao() []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(t.Size))
	if len(t.CVs) < 2 {
		return out
	}
	cvs := make([][8]uint32, len(t.CVs))
	for i := range t.CVs {
		cvs[i] = words(&t.CVs[i])
	}
	var rec func(cvs [][8]uint32) [8]uint32
	rec = func(cvs [][8]uint32) [8]uint32 {
		if len(cvs) == 1 {
			return cvs[0]
		}
		left := 1
		for left*2 < len(cvs) {
			left *= 2
		}
		at := len(out)
		out = append(out, make([]byte, 2*CVSize)...)
		l, r := rec(cvs[:left]), rec(cvs[left:])
		lb, rb := cvBytes(&l), cvBytes(&r)
		copy(out[at:], lb[:])
		copy(out[at+CVSize:], rb[:])
		return guts.ChainingValue(guts.ParentNode(l, r, &guts.IV, 0))
	}
	rec(cvs)
	return out
}
