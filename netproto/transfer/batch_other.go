//go:build !linux

package transfer

import (
	"net"
	"net/netip"
	"sync/atomic"
)

// offloadBatch has no batching outside Linux: link reads and writes one
// datagram per system call.
type offloadBatch struct {
	gso atomic.Bool // always false
	gro bool
}

const (
	maxGSOSegments = 1
	maxGSOBytes    = 65507
)

func newOffload(*net.UDPConn, bool) *offloadBatch { return nil }

func (o *offloadBatch) read(func([]byte, netip.AddrPort)) error { return nil }

func (o *offloadBatch) messages() int { return 0 }

func gsoControl(int) []byte { return nil }

func isGSOError(error) bool { return false }
