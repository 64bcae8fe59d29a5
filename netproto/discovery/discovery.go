// Package discovery lets an fxsh master be found on the local network with
// no address typed: DNS-SD (RFC 6763) over multicast DNS (RFC 6762).
//
// Announce runs a responder for one master: a service instance of type
// _fxsh._tcp whose SRV record names the master's TCP port and a host name
// of its own (fxsh-<random>.local, so two laptops with one host name never
// answer for each other), and whose TXT record (txt.go: Info, ParseTXT)
// says the master's version, whether it requires a key, and its catalog
// kind. The key itself is never in any record. Its Close says goodbye: the
// records again with TTL 0 (RFC 6762 §10.1), so browsers' caches drop the
// master at once.
//
// Browse asks for _fxsh._tcp instances and returns the masters that answer
// within a bounded time: it stops Settle after the first answer (long
// enough for other responders' random 20–120 ms delay), or at Timeout when
// none answers, and keeps at most MaxMasters.
//
// Discovery is not authentication: anyone on the LAN can announce a
// master. With a shared key the client's handshake (netproto/line's
// challenge-response) makes the master prove it holds the key before
// anything is sent, so a rogue announcement leads only to a refused
// connection.
//
// The mDNS wire work is github.com/pion/mdns/v2 (see the README's
// comparison). Its sockets are opened here: one per IP family bound to
// port 5353 with the address reuse that Go's net package sets for a
// multicast address (SO_REUSEADDR, and SO_REUSEPORT on the BSDs and macOS),
// so an fxsh master shares the port with mDNSResponder, Avahi and other
// fxsh processes on the same machine; queries leave from an ephemeral port,
// so answers to them come back to this process alone.
package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/mdns/v2"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Service is the DNS-SD service type of an fxsh master.
const Service = "_fxsh._tcp"

// Browse's bounds.
const (
	// DefaultTimeout is how long Browse waits for a first answer before it
	// gives up (the shell then falls back to 127.0.0.1:1234). An answer on
	// a LAN takes milliseconds; a second is long enough for a busy Wi-Fi
	// and short enough for a script that has no master at all.
	DefaultTimeout = time.Second
	// DefaultSettle is how long Browse keeps listening after the first
	// answer, for other masters: responders delay a shared answer by a
	// random 20–120 ms (RFC 6762 §6), and a first query may be lost.
	DefaultSettle = 300 * time.Millisecond
	// MaxMasters is the most masters one Browse keeps: a hostile LAN can
	// answer with any number of instances.
	MaxMasters = 32
	// MaxInstance is the longest instance name (one DNS label).
	MaxInstance = 63
)

// ErrNoSocket is returned when neither an IPv4 nor an IPv6 mDNS socket
// could be opened (port 5353 held without address reuse, no network).
var ErrNoSocket = errors.New("no mDNS socket")

// Master is one announced master.
type Master struct {
	Instance string         // the DNS-SD instance name, e.g. "fxsh master on lab-pc port 1234 [3f2a]"
	Addr     netip.AddrPort // where its TCP line protocol listens
	Info     Info           // from its TXT record
	After    time.Duration  // from the start of Browse to its first answer
}

// String is "ADDR (INSTANCE; INFO)".
func (m Master) String() string {
	return fmt.Sprintf("%s (%q: %s)", m.Addr, m.Instance, m.Info)
}

// AnnounceConfig says what to announce.
type AnnounceConfig struct {
	// Addr is the master's listening address. An unspecified IP announces
	// the addresses of every multicast interface; a specific IP announces
	// that address on the interface that holds it. A loopback IP cannot
	// be reached from the LAN: Announce refuses it (ErrLoopback).
	Addr netip.AddrPort
	Info Info
	// Host names the instance ("fxsh master on HOST port N [xxxx]"); ""
	// takes os.Hostname.
	Host string
	// Interfaces limits the announcement; nil means every multicast
	// interface that is up (never loopback).
	Interfaces []net.Interface
}

// ErrLoopback: a master listening on loopback only is not announced.
var ErrLoopback = errors.New("the master listens on loopback only")

// Announcer answers for one master until Close, which says goodbye.
type Announcer struct {
	conn     *mdns.Conn
	v4       *ipv4.PacketConn // the sockets conn answers on (nil: that family is not open)
	v6       *ipv6.PacketConn
	ifaces   []net.Interface // where it answers (nil: every multicast interface)
	goodbye  []byte          // the instance's records with TTL 0 (goodbyeMessage)
	instance string
	once     sync.Once
	err      error
}

// Announce starts answering DNS-SD queries for a master.
func Announce(cfg AnnounceConfig) (*Announcer, error) {
	ip := cfg.Addr.Addr().Unmap()
	if ip.IsLoopback() {
		return nil, ErrLoopback
	}
	ifaces := cfg.Interfaces
	if ip.IsValid() && !ip.IsUnspecified() {
		ifc, err := interfaceOf(ip, ifaces)
		if err != nil {
			return nil, err
		}
		ifaces = []net.Interface{ifc}
	}
	tag := randomHex(2)
	host := cfg.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	instance := instanceName(host, cfg.Addr.Port(), tag)
	target := "fxsh-" + randomHex(4) + ".local"
	opts := []mdns.ServerOption{
		mdns.WithLoggerFactory(quietLogs()),
		mdns.WithLocalNames(target),
		mdns.WithService(mdns.ServiceInstance{
			Instance: instance,
			Service:  Service,
			Host:     target + ".",
			Port:     cfg.Addr.Port(),
			Text:     txtEntries(cfg.Info.TXT()),
		}),
	}
	if ip.IsValid() && !ip.IsUnspecified() {
		opts = append(opts, mdns.WithLocalAddress(net.IP(ip.AsSlice())))
	}
	bye, err := goodbyeMessage(instance, target+".", cfg.Addr.Port(), cfg.Info.TXT())
	if err != nil {
		return nil, fmt.Errorf("announcing: %w", err)
	}
	conn, v4, v6, err := open(ifaces, opts...)
	if err != nil {
		return nil, fmt.Errorf("announcing: %w", err)
	}
	return &Announcer{conn: conn, v4: v4, v6: v6, ifaces: ifaces, goodbye: bye, instance: instance}, nil
}

// Instance is the announced instance name.
func (a *Announcer) Instance() string { return a.instance }

// Close stops answering and says goodbye: it multicasts the instance's
// PTR, SRV and TXT records with TTL 0 (RFC 6762 §10.1) on every interface
// it answered on, so that the caches of the LAN's browsers (mDNSResponder,
// Avahi, Windows) drop the master within a second instead of listing it
// for the records' 120 s. pion/mdns/v2 sends no goodbye itself (neither
// Unregister nor Close does, v2.2.2), so it is sent here on the sockets
// this package opened. Best effort, once: a lost goodbye leaves the entry
// to expire with its TTL. Close may be called more than once.
func (a *Announcer) Close() error {
	a.once.Do(func() {
		a.conn.Unregister(a.instance, Service) // no answer for it from now on
		sendGoodbye(a.goodbye, a.v4, a.v6, a.ifaces)
		a.err = a.conn.Close()
	})
	return a.err
}

// goodbyeMessage is an unsolicited mDNS response withdrawing an instance:
// its PTR (SERVICE.local. → INSTANCE.SERVICE.local.), SRV (→ target:port)
// and TXT records, each with TTL 0. The names are written as pion/mdns
// writes them when answering (the instance's dots and backslashes
// escaped), so they match the records cached.
func goodbyeMessage(instance, target string, port uint16, txt []string) ([]byte, error) {
	svc, err := dnsmessage.NewName(Service + ".local.")
	if err != nil {
		return nil, err
	}
	inst, err := dnsmessage.NewName(strings.NewReplacer(`\`, `\\`, ".", `\.`).Replace(instance) + "." + Service + ".local.")
	if err != nil {
		return nil, err
	}
	host, err := dnsmessage.NewName(target)
	if err != nil {
		return nil, err
	}
	hdr := func(n dnsmessage.Name, t dnsmessage.Type) dnsmessage.ResourceHeader {
		return dnsmessage.ResourceHeader{Name: n, Type: t, Class: dnsmessage.ClassINET, TTL: 0}
	}
	return (&dnsmessage.Message{
		Header: dnsmessage.Header{Response: true, Authoritative: true},
		Answers: []dnsmessage.Resource{
			{Header: hdr(svc, dnsmessage.TypePTR), Body: &dnsmessage.PTRResource{PTR: inst}},
			{Header: hdr(inst, dnsmessage.TypeSRV), Body: &dnsmessage.SRVResource{Port: port, Target: host}},
			{Header: hdr(inst, dnsmessage.TypeTXT), Body: &dnsmessage.TXTResource{TXT: txt}},
		},
	}).Pack()
}

// The mDNS groups and port (RFC 6762 §3).
var (
	mdnsGroup4 = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	mdnsGroup6 = &net.UDPAddr{IP: net.ParseIP("ff02::fb"), Port: 5353}
)

// sendGoodbye multicasts msg from v4 and v6 on each interface among ifaces
// (nil: all) that pion answers on too: up, multicast, not loopback, with an
// address of that family. It returns the datagrams sent.
func sendGoodbye(msg []byte, v4 *ipv4.PacketConn, v6 *ipv6.PacketConn, ifaces []net.Interface) int {
	if ifaces == nil {
		ifaces, _ = net.Interfaces()
	}
	sent := 0
	for i := range ifaces {
		ifc := &ifaces[i]
		if !multicastLAN(ifc) {
			continue
		}
		has4, has6 := familiesOf(ifc)
		if has4 && v4 != nil && v4.SetMulticastInterface(ifc) == nil {
			if _, err := v4.WriteTo(msg, nil, mdnsGroup4); err == nil {
				sent++
			}
		}
		if has6 && v6 != nil && v6.SetMulticastInterface(ifc) == nil {
			if _, err := v6.WriteTo(msg, nil, mdnsGroup6); err == nil {
				sent++
			}
		}
	}
	return sent
}

// multicastLAN says whether ifc is an interface mDNS runs on: up,
// multicast, not loopback (as pion/mdns chooses without loopback).
func multicastLAN(ifc *net.Interface) bool {
	return ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagMulticast != 0 && ifc.Flags&net.FlagLoopback == 0
}

// familiesOf says whether ifc has an IPv4 and an IPv6 address.
func familiesOf(ifc *net.Interface) (has4, has6 bool) {
	addrs, err := ifc.Addrs()
	if err != nil {
		return false, false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if n.IP.To4() != nil {
				has4 = true
			} else {
				has6 = true
			}
		}
	}
	return has4, has6
}

// BrowseConfig bounds a Browse; zero values take the defaults.
type BrowseConfig struct {
	Timeout    time.Duration // DefaultTimeout
	Settle     time.Duration // DefaultSettle
	Interfaces []net.Interface
}

// Browse asks the LAN for masters. It returns those that answered, sorted
// by instance name (none is not an error), after Settle past the first
// answer or at Timeout, or when ctx ends.
func Browse(ctx context.Context, cfg BrowseConfig) ([]Master, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	conn, _, _, err := open(cfg.Interfaces, mdns.WithLoggerFactory(quietLogs()))
	if err != nil {
		return nil, fmt.Errorf("browsing: %w", err)
	}
	defer conn.Close()

	var (
		mu    sync.Mutex // protects found and first
		found = map[string]*candidate{}
		first = make(chan struct{})
	)
	start := time.Now()
	conn.OnServiceDiscovered(func(ev mdns.ServiceEvent) {
		mu.Lock()
		defer mu.Unlock()
		name := ev.Instance.Instance
		c := found[name]
		if c == nil {
			if len(found) >= MaxMasters || len(name) > MaxInstance {
				return
			}
			info, err := ParseTXT(txtStrings(ev.Instance.Text))
			if err != nil {
				return // not an fxsh master we understand
			}
			c = &candidate{instance: name, info: info, after: time.Since(start)}
			found[name] = c
			if len(found) == 1 {
				close(first)
			}
		}
		c.add(netip.AddrPortFrom(ev.Addr, ev.Instance.Port))
	})
	bctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := conn.Browse(bctx, Service); err != nil {
		return nil, fmt.Errorf("browsing: %w", err)
	}
	select {
	case <-first:
		t := time.NewTimer(cfg.Settle)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	case <-bctx.Done():
	}
	cancel()
	conn.OnServiceDiscovered(nil)

	mu.Lock()
	defer mu.Unlock()
	out := make([]Master, 0, len(found))
	for _, c := range found {
		out = append(out, Master{Instance: c.instance, Addr: c.best(), Info: c.info, After: c.after})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, ctx.Err()
}

// candidate collects the addresses one instance answered with.
type candidate struct {
	instance string
	info     Info
	after    time.Duration
	addrs    []netip.AddrPort
}

// maxAddrs bounds the addresses kept per instance.
const maxAddrs = 8

func (c *candidate) add(a netip.AddrPort) {
	if !a.Addr().IsValid() || a.Port() == 0 || len(c.addrs) >= maxAddrs {
		return
	}
	for _, o := range c.addrs {
		if o == a {
			return
		}
	}
	c.addrs = append(c.addrs, a)
}

// best picks the address to dial: IPv4 first (every laptop has it, and
// it needs no zone), then a global IPv6, then a link-local one.
func (c *candidate) best() netip.AddrPort {
	rank := func(a netip.AddrPort) int {
		ip := a.Addr().Unmap()
		switch {
		case ip.Is4() && !ip.IsLinkLocalUnicast():
			return 0
		case ip.Is4():
			return 1
		case !ip.IsLinkLocalUnicast():
			return 2
		}
		return 3
	}
	var best netip.AddrPort
	for _, a := range c.addrs {
		if !best.IsValid() || rank(a) < rank(best) {
			best = a
		}
	}
	if best.IsValid() && best.Addr().Is4In6() {
		best = netip.AddrPortFrom(best.Addr().Unmap(), best.Port())
	}
	return best
}

// open starts a pion mdns.Conn on port 5353 for IPv4 and IPv6, whichever
// can be opened, and returns the sockets it answers on (closed by its
// Close).
func open(ifaces []net.Interface, opts ...mdns.ServerOption) (*mdns.Conn, *ipv4.PacketConn, *ipv6.PacketConn, error) {
	var v4 *ipv4.PacketConn
	var v6 *ipv6.PacketConn
	var errs []error
	if l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(224, 0, 0, 0), Port: 5353}); err == nil {
		v4 = ipv4.NewPacketConn(l)
	} else {
		errs = append(errs, err)
	}
	if l, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP("ff02::"), Port: 5353}); err == nil {
		v6 = ipv6.NewPacketConn(l)
	} else {
		errs = append(errs, err)
	}
	if v4 == nil && v6 == nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrNoSocket, errors.Join(errs...))
	}
	if ifaces != nil {
		opts = append(opts, mdns.WithInterfaces(ifaces...))
	}
	conn, err := mdns.NewServer(v4, v6, opts...)
	if err != nil {
		if v4 != nil {
			v4.Close()
		}
		if v6 != nil {
			v6.Close()
		}
		return nil, nil, nil, err
	}
	return conn, v4, v6, nil
}

// interfaceOf finds the interface (among ifaces, or all) holding ip.
func interfaceOf(ip netip.Addr, ifaces []net.Interface) (net.Interface, error) {
	if ifaces == nil {
		var err error
		if ifaces, err = net.Interfaces(); err != nil {
			return net.Interface{}, fmt.Errorf("listing interfaces: %w", err)
		}
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, ok := a.(*net.IPNet); ok {
				if x, ok := netip.AddrFromSlice(p.IP); ok && x.Unmap() == ip.WithZone("") {
					return ifc, nil
				}
			}
		}
	}
	return net.Interface{}, fmt.Errorf("no interface holds %s", ip)
}

// instanceName is "fxsh master on HOST port N [TAG]", the host cut so the
// whole fits one DNS label. The tag keeps two masters apart whose host
// names and ports are equal (two lab PCs cloned from one image).
func instanceName(host string, port uint16, tag string) string {
	host = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, host)
	if h, _, ok := strings.Cut(host, "."); ok {
		host = h
	}
	if host == "" {
		host = "unknown"
	}
	tail := fmt.Sprintf(" port %d [%s]", port, tag)
	head := "fxsh master on "
	if room := MaxInstance - len(head) - len(tail); len(host) > room {
		host = host[:room]
		for len(host) > 0 && !validUTF8Tail(host) {
			host = host[:len(host)-1]
		}
	}
	return head + host + tail
}

// validUTF8Tail reports whether s does not end inside a UTF-8 sequence.
func validUTF8Tail(s string) bool {
	for i := len(s) - 1; i >= 0 && i >= len(s)-4; i-- {
		b := s[i]
		if b < 0x80 {
			return true
		}
		if b >= 0xC0 { // a lead byte: is the sequence whole?
			n := 2
			switch {
			case b >= 0xF0:
				n = 4
			case b >= 0xE0:
				n = 3
			}
			return len(s)-i == n
		}
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func txtEntries(ss []string) []mdns.TXTEntry {
	out := make([]mdns.TXTEntry, 0, len(ss))
	for _, s := range ss {
		k, v, _ := strings.Cut(s, "=")
		out = append(out, mdns.NewTXTString(k, v))
	}
	return out
}

func txtStrings(es []mdns.TXTEntry) []string {
	if len(es) > MaxTXTStrings {
		es = es[:MaxTXTStrings+1] // ParseTXT refuses it
	}
	out := make([]string, 0, len(es))
	for _, e := range es {
		if e.Value == nil {
			out = append(out, e.Key)
			continue
		}
		out = append(out, e.Key+"="+string(e.Value))
	}
	return out
}

// quietLogs keeps pion's logger silent: roles never print; what matters
// reaches the caller as an error or as no answer.
func quietLogs() logging.LoggerFactory {
	return &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled, ScopeLevels: map[string]logging.LogLevel{}}
}
