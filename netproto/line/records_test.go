package line

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
)

var testHash = "blake3:" + strings.Repeat("ab", 32)

func TestFileRecord(t *testing.T) {
	e := store.Entry{
		File: store.File{Name: "dir/a b=c[1]🎉.txt", Size: 42, Type: "text",
			MTime: time.Unix(1700000000, 0).UTC(), Hash: testHash},
		Servers: []string{"10.0.0.1:5000", "[::1]:5001"},
	}
	b, err := AppendMsg(nil, FileMsg(e))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := ParseMsg(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseFile(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("round trip via %q = %+v, want %+v", b, got, e)
	}
}

func TestFileRecordLimits(t *testing.T) {
	// The longest name, made of the characters that escape to two bytes,
	// with MaxServers IPv6 addresses must still fit in one line.
	var srv []string
	for range MaxServers + 5 {
		srv = append(srv, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
	}
	e := store.Entry{File: store.File{Name: strings.Repeat(" ", MaxName-1) + "x", Size: MaxSize,
		Type: strings.Repeat("t", MaxType), MTime: time.Unix(1<<40, 0), Hash: testHash}, Servers: srv}
	m := FileMsg(e)
	b, err := AppendMsg(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxLine {
		t.Errorf("largest F record is %d bytes, over MaxLine", len(b))
	}
	got, err := ParseFile(m, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Servers) != MaxServers {
		t.Errorf("servers = %d, want truncated to %d", len(got.Servers), MaxServers)
	}
}

func TestParseFileErrors(t *testing.T) {
	good := FileMsg(store.Entry{File: store.File{Name: "a", Size: 1, Type: "bin", MTime: time.Unix(1, 0), Hash: testHash}})
	tests := []struct {
		name string
		m    Msg
	}{
		{"wrong verb", NewMsg("P")},
		{"no name", NewMsg("F").With("size", "1").With("mtime", "1").With("hash", testHash)},
		{"bad size", NewMsg("F").With("name", "a").With("size", "x")},
		{"neg size", NewMsg("F").With("name", "a").With("size", "-1").With("type", "bin").With("mtime", "1").With("hash", testHash)},
		{"no mtime", NewMsg("F").With("name", "a").With("size", "1").With("hash", testHash)},
		{"bad hash", NewMsg("F").With("name", "a").With("size", "1").With("type", "bin").With("mtime", "1").With("hash", "md5:00")},
		{"bad name", NewMsg("F").With("name", "../a").With("size", "1").With("type", "bin").With("mtime", "1").With("hash", testHash)},
		{"no type", NewMsg("F").With("name", "a").With("size", "1").With("mtime", "1").With("hash", testHash)},
		{"too many servers", good.With("servers", strings.Repeat("a:1,", MaxServers)+"a:1")},
	}
	if _, err := ParseFile(good, 0); err != nil {
		t.Fatalf("good record: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := ParseFile(tt.m, 0); err == nil {
				t.Errorf("ParseFile(%v) = %+v, want error", tt.m, e)
			}
		})
	}
}

func TestPeerRecord(t *testing.T) {
	s := store.Server{Addr: "127.0.0.1:5000", Role: store.RoleReceiver, Name: "bob smith", Files: 3,
		Registered: time.Unix(1700000000, 0).UTC(), LastSeen: time.Unix(1700000010, 0).UTC()}
	b, err := AppendMsg(nil, PeerMsg(s))
	if err != nil {
		t.Fatal(err)
	}
	m, _, _ := ParseMsg(b)
	got, err := ParsePeer(m)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("round trip via %q = %+v, %v", b, got, err)
	}
	for _, bad := range []Msg{NewMsg("F"), NewMsg("P").With("addr", "a"), NewMsg("P").With("addr", "a").With("role", "server").With("files", "-1")} {
		if _, err := ParsePeer(bad); err == nil {
			t.Errorf("ParsePeer(%v) succeeded", bad)
		}
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a.txt", true},
		{"dir/sub/a b=c.txt", true},
		{"[draft] notes?.txt", true}, // get looks names up exactly first
		{"CON", true},                // reserved on Windows only: a Windows downloader refuses it
		{"aux.txt", true},
		{"Отчёт-report.pdf", true}, // one script a word
		{"a-b/-c", true},           // only a leading '-' reads as an option
		{"❤\ufe0f.txt", true},      // a variation selector is part of the emoji
		{"back\\slash", false},
		{"C:\\win", false},
		{"C:win", false},
		{"-f", false},
		{"--dir", false},
		{"a\u200db", false},       // zero-width joiner
		{"\ufeffa.txt", false},    // byte-order mark
		{"a\u200bb", false},       // zero-width space
		{"a\u00adb", false},       // soft hyphen
		{"a\u3164b", false},       // Hangul filler
		{"a\u00a0b", false},       // no-break space
		{"p\u0430per.pdf", false}, // Cyrillic а in a Latin word
		{"\u03bfk.txt", false},    // Greek ο + Latin k
		{"🎉/été", true},
		{"..a/b..", true},
		{"", false},
		{"/etc/passwd", false},
		{"../x", false},
		{"a/../../x", false},
		{"a/..", false},
		{"..", false},
		{".", false},
		{"./a", false},
		{"a//b", false},
		{"a/", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\x7fb", false},
		{"a\u0085b", false},          // C1 control
		{"evil\u202etxt.exe", false}, // right-to-left override
		{"\xff", false},
		{strings.Repeat("a", MaxName), true},
		{strings.Repeat("a", MaxName+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName(tt.name, 0)
			if (err == nil) != tt.ok {
				t.Errorf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			var pe *ProtocolError
			if err != nil && !errors.As(err, &pe) {
				t.Errorf("err %T is not a *ProtocolError", err)
			}
		})
	}
	if err := CheckName("abcdef", 5); err == nil {
		t.Error("CheckName ignores its max")
	}
}

func TestCheckHashAndType(t *testing.T) {
	for _, h := range []string{"", "blake3:", testHash[:70], testHash + "0", strings.ToUpper(testHash), "sha1:" + testHash[7:]} {
		if CheckHash(h) == nil {
			t.Errorf("CheckHash(%q) accepted", h)
		}
	}
	if err := CheckHash(testHash); err != nil {
		t.Errorf("CheckHash(good) = %v", err)
	}
	for _, ty := range []string{"", "a b", strings.Repeat("x", MaxType+1), "é"} {
		if CheckType(ty) == nil {
			t.Errorf("CheckType(%q) accepted", ty)
		}
	}
	for _, ty := range []string{"text", "jpg", "tar.gz", "c++", "x-y_z"} {
		if err := CheckType(ty); err != nil {
			t.Errorf("CheckType(%q) = %v", ty, err)
		}
	}
}
