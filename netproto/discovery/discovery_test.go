package discovery

import (
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/dns/dnsmessage"
)

func TestTXTRoundTrip(t *testing.T) {
	for _, in := range []Info{
		{Version: "0.1.0", KeyRequired: true, Catalog: CatalogEtcd},
		{Version: "v1.2.3-0.20261204-abcdef", Catalog: CatalogMemory},
		{},
	} {
		txt := in.TXT()
		got, err := ParseTXT(txt)
		if err != nil {
			t.Fatalf("ParseTXT(%q): %v", txt, err)
		}
		if got != in {
			t.Errorf("round trip of %+v gave %+v", in, got)
		}
	}
	// What is announced is exactly these four keys: never a key's value.
	txt := Info{Version: "0.1.0", KeyRequired: true, Catalog: "memory"}.TXT()
	want := []string{"txtvers=1", "version=0.1.0", "key=required", "catalog=memory"}
	if !reflect.DeepEqual(txt, want) {
		t.Errorf("TXT = %q, want %q", txt, want)
	}
	// Values that would not parse back are cleaned, not announced.
	odd := Info{Version: "1 2=3\n" + strings.Repeat("x", 100)}
	if _, err := ParseTXT(odd.TXT()); err != nil {
		t.Errorf("a cleaned record does not parse: %v", err)
	}
}

func TestParseTXTRefuses(t *testing.T) {
	tests := []struct {
		txt  []string
		want string
	}{
		{[]string{"version=1"}, "no txtvers"},
		{[]string{"txtvers=2"}, "txtvers"},
		{[]string{"txtvers=1", "key=maybe"}, "want required or none"},
		{[]string{"txtvers=1", "KEY=none", "key=required"}, "twice"},
		{[]string{"txtvers=1", "version=a b"}, "bad value"},
		{[]string{"txtvers=1", "version=" + strings.Repeat("9", MaxTXTValue+1)}, "bad value"},
		{make([]string, MaxTXTStrings+1), "strings"},
	}
	for _, tt := range tests {
		_, err := ParseTXT(tt.txt)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseTXT(%q) = %v, want an error with %q", tt.txt, err, tt.want)
		}
	}
	// Unknown keys are a newer master's: ignored.
	if _, err := ParseTXT([]string{"txtvers=1", "future=yes", "flag"}); err != nil {
		t.Errorf("unknown keys: %v", err)
	}
}

func FuzzParseTXT(f *testing.F) {
	f.Add(strings.Join(Info{Version: "0.1.0", KeyRequired: true, Catalog: "etcd"}.TXT(), "\x00"))
	f.Add(strings.Join(Info{}.TXT(), "\x00"))
	f.Add("txtvers=1\x00key=none\x00key=none")
	f.Fuzz(func(t *testing.T, s string) {
		txt := strings.Split(s, "\x00")
		info, err := ParseTXT(txt)
		if err != nil {
			return
		}
		// What parsed is announced again unchanged.
		again, err := ParseTXT(info.TXT())
		if err != nil || again != info {
			t.Fatalf("%q parsed to %+v, which announces %q: %+v, %v", txt, info, info.TXT(), again, err)
		}
	})
}

func TestInstanceName(t *testing.T) {
	tests := []struct{ host, want string }{
		{"lab-pc.example.org", "fxsh master on lab-pc port 1234 [abcd]"},
		{"", "fxsh master on unknown port 1234 [abcd]"},
		{"a\x00b\nc", "fxsh master on abc port 1234 [abcd]"},
	}
	for _, tt := range tests {
		if got := instanceName(tt.host, 1234, "abcd"); got != tt.want {
			t.Errorf("instanceName(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
	for _, host := range []string{strings.Repeat("x", 200), strings.Repeat("é", 100), strings.Repeat("日本", 40)} {
		got := instanceName(host, 65535, "abcd")
		if len(got) > MaxInstance || !utf8.ValidString(got) || !strings.HasSuffix(got, " port 65535 [abcd]") {
			t.Errorf("instanceName(%d bytes) = %q (%d bytes)", len(host), got, len(got))
		}
	}
}

func TestBestAddress(t *testing.T) {
	c := &candidate{}
	for _, a := range []string{"[fe80::1%eth0]:1234", "[2001:db8::1]:1234", "169.254.1.1:1234", "192.0.2.1:1234", "[::ffff:192.0.2.9]:1234"} {
		c.add(netip.MustParseAddrPort(a))
	}
	if got := c.best().String(); got != "192.0.2.1:1234" {
		t.Errorf("best = %s, want the routable IPv4 address", got)
	}
	c = &candidate{}
	c.add(netip.MustParseAddrPort("[fe80::1%eth0]:1234"))
	c.add(netip.MustParseAddrPort("[2001:db8::1]:1234"))
	if got := c.best().String(); got != "[2001:db8::1]:1234" {
		t.Errorf("best = %s, want the global IPv6 address", got)
	}
	c = &candidate{}
	for i := range 2 * maxAddrs {
		c.add(netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 1))
	}
	c.add(netip.AddrPort{})
	if len(c.addrs) != maxAddrs {
		t.Errorf("kept %d addresses, at most %d", len(c.addrs), maxAddrs)
	}
}

func TestAnnounceRefusesLoopback(t *testing.T) {
	for _, a := range []string{"127.0.0.1:1234", "[::1]:1234"} {
		if _, err := Announce(AnnounceConfig{Addr: netip.MustParseAddrPort(a)}); err != ErrLoopback {
			t.Errorf("Announce(%s) = %v, want ErrLoopback", a, err)
		}
	}
}

// TestGoodbyeMessage: what Close multicasts withdraws the instance's PTR,
// SRV and TXT records (TTL 0), named as pion/mdns names them in answers.
func TestGoodbyeMessage(t *testing.T) {
	txt := Info{Version: "0.1.0", Catalog: CatalogMemory}.TXT()
	inst := instanceName("lab-pc", 1234, "abcd")
	b, err := goodbyeMessage(inst, "fxsh-0123abcd.local.", 1234, txt)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	if !m.Header.Response || !m.Header.Authoritative || m.Header.ID != 0 || len(m.Questions) != 0 {
		t.Errorf("header %+v, %d questions: want an unsolicited authoritative response", m.Header, len(m.Questions))
	}
	full := inst + "._fxsh._tcp.local."
	want := map[dnsmessage.Type]string{
		dnsmessage.TypePTR: "_fxsh._tcp.local. -> " + full,
		dnsmessage.TypeSRV: full + " -> fxsh-0123abcd.local.:1234",
		dnsmessage.TypeTXT: full + " -> " + strings.Join(txt, ","),
	}
	if len(m.Answers) != len(want) {
		t.Fatalf("%d answers, want %d", len(m.Answers), len(want))
	}
	for _, a := range m.Answers {
		if a.Header.TTL != 0 || a.Header.Class != dnsmessage.ClassINET {
			t.Errorf("%v: TTL %d class %v, want TTL 0 IN", a.Header.Type, a.Header.TTL, a.Header.Class)
		}
		var got string
		switch body := a.Body.(type) {
		case *dnsmessage.PTRResource:
			got = a.Header.Name.String() + " -> " + body.PTR.String()
		case *dnsmessage.SRVResource:
			got = a.Header.Name.String() + " -> " + body.Target.String() + ":" + strconv.Itoa(int(body.Port))
		case *dnsmessage.TXTResource:
			got = a.Header.Name.String() + " -> " + strings.Join(body.TXT, ",")
		}
		if got != want[a.Header.Type] {
			t.Errorf("%v record %q, want %q", a.Header.Type, got, want[a.Header.Type])
		}
	}
	// A dot in the instance is escaped, as pion escapes it (RFC 6763 §4.3).
	b, err = goodbyeMessage("a.b", "h.local.", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	if got := m.Answers[0].Body.(*dnsmessage.PTRResource).PTR.String(); got != `a\.b._fxsh._tcp.local.` {
		t.Errorf("escaped instance %q", got)
	}
}

// TestGoodbyeInterfaces: goodbyes go only where pion answers: up,
// multicast, not loopback.
func TestGoodbyeInterfaces(t *testing.T) {
	for _, tt := range []struct {
		flags net.Flags
		want  bool
	}{
		{net.FlagUp | net.FlagMulticast | net.FlagBroadcast, true},
		{net.FlagUp | net.FlagMulticast | net.FlagLoopback, false},
		{net.FlagMulticast, false},
		{net.FlagUp | net.FlagPointToPoint, false},
	} {
		if got := multicastLAN(&net.Interface{Name: "x0", Flags: tt.flags}); got != tt.want {
			t.Errorf("multicastLAN(%v) = %v, want %v", tt.flags, got, tt.want)
		}
	}
}
