package partfile

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"testing"
)

func sampleStates() []State {
	var h [32]byte
	for i := range h {
		h[i] = byte(i * 7)
	}
	return []State{
		{Size: 0, ChunkSize: MinChunkSize, Hash: h, Have: nil},
		{Size: 1, ChunkSize: 1200, Hash: h, Have: []byte{1}},
		{Size: 8 * 1200, ChunkSize: 1200, Hash: h, Have: []byte{0xa5}},
		{Size: 9*1200 + 1, ChunkSize: 1200, Hash: h, Have: []byte{0xff, 0x03}},
		{Size: 1 << 30, ChunkSize: MaxChunkSize, Hash: h, Have: []byte{0x0f, 0x00}},
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range sampleStates() {
		b := AppendState([]byte("prefix"), s)
		got, n, err := ParseState(b[len("prefix"):])
		if err != nil {
			t.Fatalf("ParseState(%+v): %v", s, err)
		}
		if n != len(b)-len("prefix") {
			t.Errorf("used %d of %d bytes", n, len(b)-len("prefix"))
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("round trip: got %+v, want %+v", got, s)
		}
	}
}

// reseal recomputes the checksum after a test edits the bytes.
func reseal(b []byte) []byte {
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crc32c))
	return b
}

func TestParseStateRejects(t *testing.T) {
	good := AppendState(nil, sampleStates()[3])
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", good[:StateHeaderLen-1]},
		{"truncated bitmap", good[:len(good)-1]},
		{"bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return reseal(b) })},
		{"other version (SHA-256)", edit(func(b []byte) []byte { b[4] = 1; return reseal(b) })},
		{"next version", edit(func(b []byte) []byte { b[4] = StateVersion + 1; return reseal(b) })},
		{"reserved set", edit(func(b []byte) []byte { b[6] = 1; return reseal(b) })},
		{"checksum", edit(func(b []byte) []byte { b[20] ^= 1; return b })},
		{"size past max", edit(func(b []byte) []byte { binary.BigEndian.PutUint64(b[8:], MaxSize+1); return reseal(b) })},
		{"chunk size zero", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[16:], 0); return reseal(b) })},
		{"chunk size too big", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[16:], MaxChunkSize+1); return reseal(b) })},
		{"count mismatch", edit(func(b []byte) []byte {
			// 16 chunks also need a 2-byte bitmap, but the size says 10.
			binary.BigEndian.PutUint32(b[52:], 16)
			return reseal(b)
		})},
		{"count huge", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[52:], 1<<31); return reseal(b) })},
		{"bits past the end", edit(func(b []byte) []byte { b[57] = 0x07; return reseal(b) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, _, err := ParseState(tt.in); err == nil {
				t.Errorf("ParseState accepted %+v", s)
			}
		})
	}
}

func TestBitmapFirstMissing(t *testing.T) {
	tests := []struct {
		set  []int
		n    int
		from int
		want int
	}{
		{nil, 0, 0, 0},
		{nil, 10, 0, 0},
		{[]int{0, 1, 2}, 10, 0, 3},
		{[]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 10, 0, 10},
		{[]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 40, 3, 17},
		{[]int{5}, 10, 5, 6},
		{[]int{1}, 10, 0, 0},
	}
	for _, tt := range tests {
		m := make(bitmap, bitmapLen(tt.n))
		for _, i := range tt.set {
			m.set(i)
		}
		if got := m.firstMissing(tt.from, tt.n); got != tt.want {
			t.Errorf("firstMissing(%v, from %d, n %d) = %d, want %d", tt.set, tt.from, tt.n, got, tt.want)
		}
	}
}

func FuzzParseState(f *testing.F) {
	for _, s := range sampleStates() {
		f.Add(AppendState(nil, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, n, err := ParseState(b)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed an invalid state: %v", err)
		}
		if again := AppendState(nil, s); !bytes.Equal(again, b[:n]) {
			t.Fatalf("not a mirror image:\n in %x\nout %x", b[:n], again)
		}
	})
}
