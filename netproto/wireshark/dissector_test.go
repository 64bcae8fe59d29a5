package wireshark

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fxshell/fxsh/netproto/chunk"
	"github.com/fxshell/fxsh/netproto/pcap"
)

// tshark runs tshark with the dissector on a capture and returns its
// standard output. Without tshark the test is skipped, unless
// FXSH_REQUIRE_TSHARK=1 (CI) makes it fail.
func tshark(t *testing.T, capture string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("FXSH_REQUIRE_TSHARK") == "1" {
			t.Fatal("tshark is required (FXSH_REQUIRE_TSHARK=1) but not installed")
		}
		t.Skip("no tshark")
	}
	abs, err := filepath.Abs("fxsh.lua")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"-n", "-X", "lua_script:" + abs, "-r", capture}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.Contains(stderr.String(), "Lua: Error") {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	return string(out)
}

var (
	client = netip.MustParseAddrPort("127.0.0.1:40000")
	server = netip.MustParseAddrPort("127.0.0.1:5000")
	master = netip.MustParseAddrPort("[::1]:1234")
)

const xfer = 0x1122334455667788

func packet(h chunk.Header, payload []byte, c *chunk.Cipher) []byte {
	h.Transfer = xfer
	return chunk.AppendPacket(nil, h, payload, c)
}

// TestDissector writes one packet of every kind, some broken on purpose,
// and checks what the dissector makes of each, field by field.
func TestDissector(t *testing.T) {
	path := filepath.Join(t.TempDir(), "all.pcap")
	w, err := pcap.Create(path, pcap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	req := chunk.Request{Size: 100_000, ChunkSize: 1200, Window: 64, Cookie: []byte("0123456789abcdefghij"),
		Ranges: []chunk.Range{{First: 0, Count: 3}, {First: 10, Count: 74}}, AckDelay: 8000}
	copy(req.Hash[:], "hash of the file, 32 bytes long.")
	ack := chunk.Ack{Cumulative: 5, Base: 7, Largest: 99, Delay: 120, Window: 64, NBits: 10, Bits: []byte{0b1011_0110, 0b01}}
	sealer, err := chunk.NewCipher([]byte("a shared key of at least 16 bytes"), xfer, chunk.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := packet(chunk.Header{Kind: chunk.KindData, Chunk: 3}, []byte("chunk bytes"), nil)
	corrupt[len(corrupt)-1] ^= 1
	badAck := chunk.AppendAck(nil, &chunk.Ack{Window: 64, NBits: 9000})
	pkts := []struct {
		from, to netip.AddrPort
		b        []byte
	}{
		{client, server, packet(chunk.Header{Kind: chunk.KindRequest, Number: 7}, chunk.AppendRequest(nil, &req), nil)},
		{server, client, packet(chunk.Header{Kind: chunk.KindRetry}, chunk.AppendRetry(nil, &chunk.Retry{Cookie: req.Cookie, MaxChunkSize: 64512}), nil)},
		{server, client, packet(chunk.Header{Kind: chunk.KindData, Flags: chunk.FlagRetransmit | chunk.FlagAckNow | chunk.FlagAckDelay, Chunk: 41}, []byte("chunk bytes"), nil)},
		{client, server, packet(chunk.Header{Kind: chunk.KindAck}, chunk.AppendAck(nil, &ack), nil)},
		{client, server, packet(chunk.Header{Kind: chunk.KindDone}, chunk.AppendDone(nil, &chunk.Done{Reason: chunk.DoneComplete}), nil)},
		{server, client, packet(chunk.Header{Kind: chunk.KindError}, chunk.AppendError(nil, &chunk.Error{Code: chunk.CodeBusy, Value: 500, Text: "too many transfers"}), nil)},
		{server, client, packet(chunk.Header{Kind: chunk.KindData, Chunk: 9, Number: 1}, []byte("secret chunk"), sealer)},
		{server, client, corrupt},
		{client, server, packet(chunk.Header{Kind: chunk.KindAck}, badAck, nil)},
		{client, server, packet(chunk.Header{Kind: chunk.KindData}, nil, nil)[:20]},
		{client, server, packet(chunk.Header{Kind: chunk.KindRequest, Flags: chunk.FlagTree}, chunk.AppendRequest(nil, &req), nil)},
		{server, client, packet(chunk.Header{Kind: chunk.KindError}, chunk.AppendError(nil, &chunk.Error{Code: chunk.CodeNotYet, Value: 17}), nil)},
		{server, client, packet(chunk.Header{Kind: chunk.KindError}, chunk.AppendError(nil, &chunk.Error{Code: chunk.CodeLeaving, Text: "the server is leaving"}), nil)},
		{server, client, packet(chunk.Header{Kind: chunk.KindError}, chunk.AppendError(nil, &chunk.Error{Code: chunk.CodeLeaving + 1}), nil)},
	}
	for _, p := range pkts {
		w.UDP(p.from, p.to, p.b)
	}
	w.TCP(client, master, []byte("SEARCH q=week\\s3 max=5\n"))
	w.TCP(master, client, []byte("ERR 400 SEARCH needs q=WORDS\n"))
	w.TCP(client, master, []byte("F name=a\\qb size=1\n"))
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}

	fields := []string{"fxsh.kind", "fxsh.flags.retransmit", "fxsh.flags.ack_now", "fxsh.flags.sealed", "fxsh.flags.tree", "fxsh.flags.ack_delay", "fxsh.req.ack_delay", "fxsh.transfer", "fxsh.chunk", "fxsh.pn",
		"fxsh.crc.status", "fxsh.req.size", "fxsh.req.chunk_size", "fxsh.req.window", "fxsh.req.cookie_len", "fxsh.req.range.first", "fxsh.req.range.count",
		"fxsh.retry.cookie", "fxsh.retry.max_chunk", "fxsh.data.len", "fxsh.ack.cumulative", "fxsh.ack.base", "fxsh.ack.delay", "fxsh.ack.bits",
		"fxsh.ack.held", "fxsh.ack.missing", "fxsh.done.reason", "fxsh.error.code", "fxsh.error.value", "fxsh.error.text", "fxsh.tag",
		"fxshline.verb", "fxshline.q", "fxshline.max", "fxshline.err.code", "fxshline.err.text", "fxshline.name", "_ws.expert.message"}
	args := []string{"-T", "fields", "-E", "separator=|", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	lines := strings.Split(strings.TrimRight(tshark(t, path, args...), "\n"), "\n")
	if len(lines) != len(pkts)+3 {
		t.Fatalf("%d lines for %d packets:\n%s", len(lines), len(pkts)+3, strings.Join(lines, "\n"))
	}
	get := func(i int, field string) string {
		cols := strings.Split(lines[i], "|")
		for k, f := range fields {
			if f == field && k < len(cols) {
				return cols[k]
			}
		}
		return "?"
	}
	want := []struct {
		pkt         int
		field, want string
	}{
		{0, "fxsh.kind", "1"}, {0, "fxsh.transfer", "0x1122334455667788"}, {0, "fxsh.pn", "7"}, {0, "fxsh.crc.status", "good"},
		{0, "fxsh.req.size", "100000"}, {0, "fxsh.req.chunk_size", "1200"}, {0, "fxsh.req.window", "64"}, {0, "fxsh.req.cookie_len", "20"},
		{0, "fxsh.req.range.first", "0,10"}, {0, "fxsh.req.range.count", "3,74"}, {0, "fxsh.req.ack_delay", "8000"},
		{1, "fxsh.kind", "2"}, {1, "fxsh.retry.cookie", "303132333435363738396162636465666768696a"}, {1, "fxsh.retry.max_chunk", "64512"},
		{2, "fxsh.kind", "3"}, {2, "fxsh.chunk", "41"}, {2, "fxsh.flags.retransmit", "1"}, {2, "fxsh.flags.ack_now", "1"}, {2, "fxsh.flags.ack_delay", "1"}, {2, "fxsh.data.len", "11"},
		{2, "_ws.expert.message", "chunk 41 sent again"},
		{3, "fxsh.kind", "4"}, {3, "fxsh.ack.cumulative", "5"}, {3, "fxsh.ack.base", "7"}, {3, "fxsh.ack.delay", "120"},
		{3, "fxsh.ack.bits", "0110110110"}, {3, "fxsh.ack.held", "8,9,11,12,14,15"}, {3, "fxsh.ack.missing", "7,10,13,16"},
		{4, "fxsh.kind", "5"}, {4, "fxsh.done.reason", "0"},
		{5, "fxsh.kind", "6"}, {5, "fxsh.error.code", "2"}, {5, "fxsh.error.value", "500"}, {5, "fxsh.error.text", "too many transfers"},
		{5, "_ws.expert.message", "busy: too many transfers"},
		{6, "fxsh.kind", "3"}, {6, "fxsh.flags.sealed", "1"}, {6, "fxsh.chunk", "9"}, {6, "fxsh.data.len", ""}, {6, "fxsh.crc.status", "not used (sealed)"},
		{7, "fxsh.crc.status", "bad"}, {7, "_ws.expert.message", "CRC32C mismatch: the receiver drops this packet"},
		{8, "fxsh.kind", "4"}, {8, "_ws.expert.message", "bitmap longer than 8192 bits"},
		{9, "_ws.expert.message", "shorter than the 32-byte header"},
		{14, "fxshline.verb", "SEARCH"}, {14, "fxshline.q", "week 3"}, {14, "fxshline.max", "5"},
		{15, "fxshline.verb", "ERR"}, {15, "fxshline.err.code", "400"}, {15, "fxshline.err.text", "SEARCH needs q=WORDS"},
		{10, "fxsh.kind", "1"}, {10, "fxsh.flags.tree", "1"}, {10, "fxsh.req.size", "100000"}, {0, "fxsh.flags.tree", "0"},
		{11, "fxsh.error.code", "8"}, {11, "fxsh.error.value", "17"},
		{12, "fxsh.error.code", "9"}, {12, "fxsh.error.text", "the server is leaving"},
		{12, "_ws.expert.message", "server leaving (it stops serving: the client drops it, or fails at once): the server is leaving"},
		{13, "fxsh.error.code", "10"}, {13, "_ws.expert.message", "unknown error code"},
		{16, "fxshline.verb", "F"}, {16, "_ws.expert.message", "unknown escape \\q"},
	}
	for _, wt := range want {
		if got := get(wt.pkt, wt.field); got != wt.want && !(wt.field == "_ws.expert.message" && strings.Contains(got, wt.want)) {
			t.Errorf("packet %d: %s = %q, want %q", wt.pkt, wt.field, got, wt.want)
		}
	}
	if got := get(6, "fxsh.tag"); len(got) != 32 {
		t.Errorf("sealed packet: tag %q, want 16 bytes", got)
	}
}
