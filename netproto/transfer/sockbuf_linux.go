//go:build linux

package transfer

import (
	"net"

	"golang.org/x/sys/unix"
)

// setSocketBuffers asks for want bytes each way (forcing past
// net.core.rmem_max where the process may) and returns the usable receive
// buffer: Linux reports twice the payload it accounts for.
func setSocketBuffers(c *net.UDPConn, want int) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return 256 << 10
	}
	got := 0
	_ = raw.Control(func(fd uintptr) {
		s := int(fd)
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, want) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, want)
		}
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, want) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, want)
		}
		if v, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil {
			got = v / 2
		}
	})
	if got <= 0 {
		return 256 << 10
	}
	return got
}
