//go:build !linux

package transfer

import "net/netip"

// routeMTU is unknown outside Linux: ChooseChunkSize then keeps the chunk
// size that fits any path.
func routeMTU(netip.AddrPort) int { return 0 }
