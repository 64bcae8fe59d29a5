package transfer

// MapCells is how many cells Progress.Map draws the file in: a bar that
// fits an 80-column line beside its labels.
const MapCells = 64

// Cell states of Progress.Map.
const (
	CellMissing  uint8 = 0 // some chunk is missing and asked of no live source
	CellInFlight uint8 = 1 // the missing chunks are asked of a live source (requested, on their way)
	CellHave     uint8 = 2 // every chunk is stored
)

// chunkMap draws the fetch's chunks into at most n cells, each covering an
// equal run of chunks. It costs O(cells + claims) plus the bitmap words
// scanned. Called with f.mu held.
func (f *fetcher) chunkMap(n int) []uint8 {
	total := f.nchunks
	if total <= 0 || n <= 0 {
		return nil
	}
	n = min(n, total)
	per := (total + n - 1) / n
	n = (total + per - 1) / per
	cells := make([]uint8, n)
	for c := range cells {
		lo, hi := c*per, min((c+1)*per, total)
		if f.have.NextMissing(lo) >= hi {
			cells[c] = CellHave
		}
	}
	if f.sw == nil {
		return cells
	}
	for _, w := range f.sw.workers {
		if w.gone {
			continue
		}
		for _, cl := range w.claims {
			for c := cl.lo / per; c < n && c*per < cl.hi; c++ {
				if cells[c] == CellMissing {
					cells[c] = CellInFlight
				}
			}
		}
	}
	return cells
}
