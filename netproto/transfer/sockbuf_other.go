//go:build !linux

package transfer

import "net"

// setSocketBuffers asks for want bytes each way; without a portable way to
// read the result back it assumes a conservative 256 KiB.
func setSocketBuffers(c *net.UDPConn, want int) int {
	_ = c.SetReadBuffer(want)
	_ = c.SetWriteBuffer(want)
	return 256 << 10
}
