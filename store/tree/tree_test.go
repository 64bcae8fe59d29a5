package tree

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/zeebo/blake3"
	"lukechampine.com/blake3/bao"

	"github.com/fxshell/fxsh/store"
)

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// sizes around every boundary: BLAKE3 chunks, SIMD pieces, groups, and
// group counts that are and are not powers of two.
var sizes = []int{0, 1, 1023, 1024, 1025, 16 << 10, 16<<10 + 1, GroupSize - 1, GroupSize, GroupSize + 1,
	2 * GroupSize, 3*GroupSize - 7, 5*GroupSize + 1024, 7*GroupSize + 3, 8 * GroupSize, 13*GroupSize + 12345}

// TestBuilderMatchesBLAKE3 checks the root against zeebo/blake3 (the
// content hash of the catalog) and the tree against lukechampine's Bao
// outboard encoding with the same chunk groups, written in pieces of
// several sizes so every path of Write runs.
func TestBuilderMatchesBLAKE3(t *testing.T) {
	for _, n := range sizes {
		data := randBytes(uint64(n), n)
		want := store.Sum(blake3.Sum256(data))
		for _, step := range []int{1000, GroupSize, 3*GroupSize + 5, n + 1} {
			if step <= 0 {
				continue
			}
			b := NewBuilder()
			for off := 0; off < n; off += step {
				b.Write(data[off:min(off+step, n)])
			}
			root, tr := b.Sum()
			if root != want {
				t.Fatalf("size %d step %d: root %s, blake3 %s", n, step, root, want)
			}
			if len(tr.CVs) != 0 && len(tr.CVs) != Groups(int64(n)) || tr.Size != int64(n) {
				t.Fatalf("size %d: %d CVs for %d groups", n, len(tr.CVs), Groups(int64(n)))
			}
			if len(tr.CVs) == 0 {
				if n > GroupSize || !CheckWhole(data, want) {
					t.Fatalf("size %d: one group does not check whole", n)
				}
				continue
			}
			if tr.Root() != want {
				t.Fatalf("size %d: Root() %s, want %s", n, tr.Root(), want)
			}
			if err := tr.Verify(int64(n), want); err != nil {
				t.Fatal(err)
			}
			ob, broot := bao.EncodeBuf(data, GroupLog, true)
			if store.Sum(broot) != want {
				t.Fatalf("bao root differs")
			}
			if !bytes.Equal(tr.Bao(), ob) {
				t.Fatalf("size %d: outboard differs from bao's (%d vs %d bytes)", n, len(tr.Bao()), len(ob))
			}
			for g := range tr.CVs {
				off, end := Span(int64(n), g)
				if !tr.Check(g, data[off:end]) {
					t.Fatalf("size %d: group %d does not check", n, g)
				}
				if !bao.VerifyChunk(data[off:end], ob, GroupLog, uint64(off), broot) {
					t.Fatalf("size %d: bao disagrees on group %d", n, g)
				}
			}
		}
	}
}

// TestCheckCatchesEveryByte flips one bit in each group in turn and
// swaps two groups: Check refuses all of them.
func TestCheckCatchesEveryByte(t *testing.T) {
	n := 5*GroupSize + 777
	data := randBytes(9, n)
	b := NewBuilder()
	b.Write(data)
	_, tr := b.Sum()
	for g := range tr.CVs {
		off, end := Span(int64(n), g)
		bad := bytes.Clone(data[off:end])
		bad[len(bad)/3] ^= 0x10
		if tr.Check(g, bad) {
			t.Fatalf("group %d: a flipped bit passes", g)
		}
	}
	if tr.Check(1, data[0:GroupSize]) {
		t.Fatal("group 0's bytes pass as group 1 (the position must count)")
	}
	if tr.Check(0, data[:GroupSize-1]) || tr.Check(len(tr.CVs), nil) || tr.Check(-1, nil) {
		t.Fatal("a short group or a bad index passes")
	}
}

func TestVerifyRefusesAForgedTree(t *testing.T) {
	n := 4*GroupSize + 1
	data := randBytes(3, n)
	b := NewBuilder()
	b.Write(data)
	root, tr := b.Sum()
	obj := AppendTree(nil, tr)
	if int64(len(obj)) != Bytes(int64(n)) {
		t.Fatalf("object of %d bytes, Bytes says %d", len(obj), Bytes(int64(n)))
	}
	back, err := ParseTree(obj, int64(n))
	if err != nil || back.Verify(int64(n), root) != nil {
		t.Fatalf("round trip: %v", err)
	}
	obj[40] ^= 1
	forged, _ := ParseTree(obj, int64(n))
	if err := forged.Verify(int64(n), root); err == nil {
		t.Fatal("a forged tree verifies")
	}
	if _, err := ParseTree(obj[:len(obj)-1], int64(n)); err == nil {
		t.Fatal("a short object parses")
	}
	if _, err := ParseTree(nil, GroupSize); err == nil {
		t.Fatal("a one-group file has a tree object")
	}
	if err := back.Verify(int64(n)+GroupSize, root); err == nil {
		t.Fatal("a tree verifies for another size")
	}
}

func TestHave(t *testing.T) {
	h := NewHave(3*GroupSize + 1) // 4 groups
	if h.Len() != 4 || h.Full() || h.HasRange(0, 1) {
		t.Fatal("new Have is not empty")
	}
	h.Set(1)
	h.Set(2)
	if !h.HasRange(GroupSize, 3*GroupSize) || h.HasRange(GroupSize-1, 2*GroupSize) || h.HasRange(2*GroupSize, 3*GroupSize+1) {
		t.Fatal("HasRange")
	}
	if c, _ := h.Count(); c != 2 {
		t.Fatalf("count %d", c)
	}
	if got := h.AppendBits(nil, 0, 4); len(got) != 1 || got[0] != 0b0110 {
		t.Fatalf("bits %08b", got)
	}
	if m := h.Missing(10); len(m) != 2 || m[0] != 0 || m[1] != 3 {
		t.Fatalf("missing %v", m)
	}
	_, g1 := h.Count()
	h.Set(1)
	if _, g2 := h.Count(); g2 != g1 {
		t.Fatal("setting a set group is a change")
	}
	h.Clear(1)
	h.SetAll()
	if !h.Full() || !h.HasRange(0, 3*GroupSize+1) {
		t.Fatal("SetAll")
	}
	h.Set(99)
	h.Clear(-1)
}

func BenchmarkBuilder(b *testing.B) {
	data := randBytes(1, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		nb := NewBuilder()
		for off := 0; off < len(data); off += 1 << 20 {
			nb.Write(data[off : off+1<<20])
		}
		nb.Sum()
	}
}

func BenchmarkZeeboWhole(b *testing.B) {
	data := randBytes(1, 64<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		h := blake3.New()
		for off := 0; off < len(data); off += 1 << 20 {
			h.Write(data[off : off+1<<20])
		}
		h.Sum(nil)
	}
}

func BenchmarkGroupCV(b *testing.B) {
	data := randBytes(1, GroupSize)
	b.SetBytes(GroupSize)
	for b.Loop() {
		GroupCV(data, 7)
	}
}

func FuzzParseTree(f *testing.F) {
	data := randBytes(4, 3*GroupSize+9)
	b := NewBuilder()
	b.Write(data)
	root, tr := b.Sum()
	size := int64(len(data))
	f.Add(AppendTree(nil, tr))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseTree(in, size)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendTree(nil, got), in) {
			t.Fatal("not a mirror image of AppendTree")
		}
		if got.Verify(size, root) == nil && !bytes.Equal(in, AppendTree(nil, tr)) {
			t.Fatal("another tree verifies")
		}
	})
}
