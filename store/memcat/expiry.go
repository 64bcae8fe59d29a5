package memcat

import "container/heap"

// expiry is a min-heap of servers by deadline; server.heapIdx is a
// server's place in it, -1 when absent.
type expiry []*server

func (h expiry) Len() int           { return len(h) }
func (h expiry) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h expiry) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *expiry) Push(x any) {
	s := x.(*server)
	s.heapIdx = len(*h)
	*h = append(*h, s)
}
func (h *expiry) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.heapIdx = -1
	return s
}

// set adds s or moves it after its deadline changed.
func (h *expiry) set(s *server) {
	if s.heapIdx >= 0 {
		heap.Fix(h, s.heapIdx)
		return
	}
	heap.Push(h, s)
}

func (h *expiry) remove(s *server) {
	if s.heapIdx >= 0 {
		heap.Remove(h, s.heapIdx)
	}
}
