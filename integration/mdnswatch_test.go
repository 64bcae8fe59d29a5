package integration

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
)

// mdnsWatch is the program `mdnswatch TIMEOUT READYFILE`, which stories run
// inside a network namespace (`exec ip netns exec $NSC mdnswatch 30s
// watch.ready &watch&`): it joins the IPv4 mDNS group on every multicast
// interface there, writes READYFILE once listening, and prints a line
// `ptr "INSTANCE" ttl N` for each _fxsh._tcp PTR record it hears, until a
// goodbye (TTL 0: exit status 0) or TIMEOUT (exit status 1). It only
// listens, and only where the story put it.
func mdnsWatch() int {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mdnswatch TIMEOUT READYFILE")
		return 2
	}
	timeout, err := time.ParseDuration(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mdnswatch:", err)
		return 2
	}
	// A multicast address: Go sets SO_REUSEADDR, so the port is shared
	// with fxsh's own mDNS sockets, as discovery.open does.
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(224, 0, 0, 0), Port: 5353})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mdnswatch:", err)
		return 2
	}
	defer l.Close()
	pc := ipv4.NewPacketConn(l)
	ifaces, err := net.Interfaces()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mdnswatch:", err)
		return 2
	}
	joined := 0
	for i := range ifaces {
		ifc := &ifaces[i]
		if ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagMulticast != 0 && ifc.Flags&net.FlagLoopback == 0 &&
			pc.JoinGroup(ifc, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251)}) == nil {
			joined++
		}
	}
	if joined == 0 {
		fmt.Fprintln(os.Stderr, "mdnswatch: no multicast interface joined")
		return 2
	}
	if err := os.WriteFile(os.Args[2], []byte("ready\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "mdnswatch:", err)
		return 2
	}
	l.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 9000)
	for {
		n, _, err := l.ReadFromUDP(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mdnswatch: no goodbye:", err)
			return 1
		}
		var m dnsmessage.Message
		if m.Unpack(buf[:n]) != nil || !m.Header.Response {
			continue
		}
		bye := false
		for _, a := range m.Answers {
			ptr, ok := a.Body.(*dnsmessage.PTRResource)
			if !ok || !strings.EqualFold(a.Header.Name.String(), "_fxsh._tcp.local.") {
				continue
			}
			inst := strings.TrimSuffix(ptr.PTR.String(), "._fxsh._tcp.local.")
			fmt.Printf("ptr %q ttl %d\n", inst, a.Header.TTL)
			bye = bye || a.Header.TTL == 0
		}
		if bye {
			return 0
		}
	}
}
