package transfer

import (
	"testing"

	"github.com/fxshell/fxsh/netproto/chunk"
)

func TestChunkMap(t *testing.T) {
	have := chunk.NewChunkBitmap(12)
	for _, i := range []int{0, 1, 2, 3, 5} {
		have.Set(i)
	}
	f := &fetcher{nchunks: 12, have: have}
	f.sw = newSwarm(have, 4096)
	live, gone := newWorker(), newWorker()
	live.claims = []claim{{lo: 4, hi: 8, next: 8}}
	gone.claims, gone.gone = []claim{{lo: 8, hi: 10, next: 10}}, true
	f.sw.add(&live)
	f.sw.add(&gone)
	const H, F, M = CellHave, CellInFlight, CellMissing
	for _, tt := range []struct {
		cells int
		want  []uint8
	}{
		{12, []uint8{H, H, H, H, F, H, F, F, M, M, M, M}},  // chunk 5 stored inside the claim
		{6, []uint8{H, H, F, F, M, M}},                     // two chunks a cell
		{100, []uint8{H, H, H, H, F, H, F, F, M, M, M, M}}, // never more cells than chunks
	} {
		got := f.chunkMap(tt.cells)
		if string(got) != string(tt.want) {
			t.Errorf("%d cells: %v, want %v", tt.cells, got, tt.want)
		}
	}
	if (&fetcher{}).chunkMap(64) != nil {
		t.Error("an empty file has a map")
	}
}
