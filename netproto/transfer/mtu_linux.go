//go:build linux

package transfer

import (
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// routeMTU is the MTU the kernel holds for the route to ap (the device's,
// or a smaller one learnt from ICMP), 0 if unknown. It connects a UDP
// socket, which sends nothing.
func routeMTU(ap netip.AddrPort) int {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return 0
	}
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	mtu := 0
	_ = raw.Control(func(fd uintptr) {
		var v int
		var err error
		if ap.Addr().Unmap().Is4() {
			v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU)
		} else {
			v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU)
		}
		if err == nil {
			mtu = v
		}
	})
	return mtu
}
