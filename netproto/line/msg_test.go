package line

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseMsg(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Msg
		n    int
	}{
		{"verb only", "PING\n", Msg{Verb: "PING"}, 5},
		{"crlf", "PING\r\n", Msg{Verb: "PING"}, 6},
		{"lower verb", "ping\n", Msg{Verb: "PING"}, 5},
		{"args and fields", "HELLO fxsh/1 role=server\n",
			Msg{Verb: "HELLO", Args: []string{"fxsh/1"}, Fields: []Field{{"role", "server"}}}, 25},
		{"extra spaces", "  LIST   glob=*.txt  \n",
			Msg{Verb: "LIST", Fields: []Field{{"glob", "*.txt"}}}, 22},
		{"empty value", "LIST glob=\n", Msg{Verb: "LIST", Fields: []Field{{"glob", ""}}}, 11},
		{"escapes", `F name=a\sb\nc\\d\te\r\x01 x=a=b` + "\n",
			Msg{Verb: "F", Fields: []Field{{"name", "a b\nc\\d\te\r\x01"}, {"x", "a=b"}}}, 33},
		{"escaped equals in arg", `X 400 a\eb` + "\n",
			Msg{Verb: "X", Args: []string{"400", "a=b"}}, 11},
		{"err text as is", "err  404   no \\s such=file \r\n",
			Msg{Verb: "ERR", Args: []string{"404", "no \\s such=file"}}, 29},
		{"err code only", "ERR 503\n", Msg{Verb: "ERR", Args: []string{"503"}}, 8},
		{"utf8", "SEARCH q=été\\s🎉\n", Msg{Verb: "SEARCH", Fields: []Field{{"q", "été 🎉"}}}, 21},
		{"only first line", "PING\nPONG\n", Msg{Verb: "PING"}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := ParseMsg([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseMsg(%q): %v", tt.in, err)
			}
			if n != tt.n {
				t.Errorf("n = %d, want %d", n, tt.n)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMsg(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseMsgErrors(t *testing.T) {
	tests := []struct {
		name, in, reason string
	}{
		{"empty", "\n", "empty line"},
		{"blank", "   \r\n", "empty line"},
		{"bad verb", "1PING\n", "invalid verb"},
		{"long verb", strings.Repeat("A", MaxVerb+1) + "\n", "invalid verb"},
		{"bad key", "LIST Glob=x\n", "invalid key"},
		{"empty key", "LIST =x\n", "invalid key"},
		{"dup key", "LIST a=1 a=2\n", "duplicate key"},
		{"bad utf8", "LIST q=\xff\n", "invalid UTF-8"},
		{"raw control", "LIST q=a\x01b\n", "raw control character"},
		{"raw nul", "LIST q=\x00\n", "raw control character"},
		{"raw cr mid", "LIST q=a\rb\n", "raw control character"},
		{"err text control", "ERR 400 a\x01\n", "raw control character"},
		{"err code escape", "ERR 4\\q00 x\n", "unknown escape"},
		{"dangling", "LIST q=ab\\\n", "dangling backslash"},
		{"unknown escape", "LIST q=\\q\n", "unknown escape"},
		{"short x", "LIST q=\\x1\n", "short \\x escape"},
		{"x printable", "LIST q=\\x41\n", "bad \\x escape"},
		{"x not hex", "LIST q=\\xzz\n", "bad \\x escape"},
		{"too many tokens", "A" + strings.Repeat(" x", MaxTokens) + "\n", "too many tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := ParseMsg([]byte(tt.in))
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseMsg(%q) err = %v, want *ProtocolError", tt.in, err)
			}
			if pe.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", pe.Reason, tt.reason)
			}
			if n != len(tt.in) {
				t.Errorf("n = %d, want the whole line %d", n, len(tt.in))
			}
		})
	}
	if _, _, err := ParseMsg([]byte("PING")); err != io.ErrUnexpectedEOF {
		t.Errorf("no LF: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestRoundTrip(t *testing.T) {
	values := []string{
		"plain", "with space", "a=b", "=", "back\\slash", "new\nline", "cr\rlf\r\n",
		"tab\tx", "nul\x00del\x7f", "emoji 🎉 and été", `\s literal`, "   ", "x\\e",
		"日本語/ファイル名.txt",
	}
	for _, v := range values {
		t.Run(v, func(t *testing.T) {
			m := NewMsg("F", v, "second").With("name", v).With("empty", "")
			b, err := AppendMsg(nil, m)
			if err != nil {
				t.Fatalf("AppendMsg: %v", err)
			}
			if bytes.Count(b, []byte("\n")) != 1 || bytes.ContainsAny(b[:len(b)-1], "\r\n") {
				t.Fatalf("encoded line %q holds a raw CR or LF", b)
			}
			got, n, err := ParseMsg(b)
			if err != nil {
				t.Fatalf("ParseMsg(%q): %v", b, err)
			}
			if n != len(b) || !reflect.DeepEqual(got, m) {
				t.Errorf("round trip of %q via %q = %#v (n=%d)", v, b, got, n)
			}
		})
	}
}

func TestAppendMsgErrors(t *testing.T) {
	tests := []struct {
		name string
		m    Msg
	}{
		{"no verb", Msg{}},
		{"bad verb", NewMsg("ping")},
		{"empty arg", NewMsg("ERR", "")},
		{"bad key", NewMsg("X").With("Key", "v")},
		{"dup key", NewMsg("X").With("k", "1").With("k", "2")},
		{"bad utf8 arg", NewMsg("X", "\xff")},
		{"bad utf8 value", NewMsg("X").With("k", "\xfe")},
		{"too many", NewMsg("X", make([]string, MaxTokens)...)},
		{"err field", NewMsg("ERR", "400").With("k", "v")},
		{"err three args", NewMsg("ERR", "400", "a", "b")},
		{"err text control", NewMsg("ERR", "400", "a\nb")},
		{"err text spaces", NewMsg("ERR", "400", " a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendMsg([]byte("keep"), tt.m)
			if err == nil {
				t.Fatalf("AppendMsg(%#v) = %q, want error", tt.m, b)
			}
			if string(b) != "keep" {
				t.Errorf("AppendMsg left %q in the buffer, want it untouched", b)
			}
		})
	}
}

func TestGetters(t *testing.T) {
	m, _, err := ParseMsg([]byte("REGISTER 7 addr=:5000 n=12 bad=x1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Value("addr"); v != ":5000" {
		t.Errorf("Value(addr) = %q", v)
	}
	if n, err := m.Int("n"); err != nil || n != 12 {
		t.Errorf("Int(n) = %d, %v", n, err)
	}
	if _, err := m.Int("bad"); err == nil || !strings.Contains(err.Error(), `"x1"`) {
		t.Errorf("Int(bad) err = %v, want it to quote the value", err)
	}
	if _, err := m.Int("missing"); err == nil {
		t.Error("Int(missing) succeeded")
	}
	if n, err := m.OptInt("missing", 5); err != nil || n != 5 {
		t.Errorf("OptInt(missing) = %d, %v", n, err)
	}
	if _, err := m.Require("missing"); err == nil {
		t.Error("Require(missing) succeeded")
	}
	if m.Arg(0) != "7" || m.Arg(1) != "" || m.Arg(-1) != "" {
		t.Errorf("Arg: %q %q", m.Arg(0), m.Arg(1))
	}
	if s := m.String(); s != "REGISTER 7 addr=:5000 n=12 bad=x1" {
		t.Errorf("String() = %q", s)
	}
}

func TestWithDoesNotAlias(t *testing.T) {
	base := NewMsg("X").With("a", "1")
	m1 := base.With("b", "2")
	m2 := base.With("c", "3")
	if m1.Value("b") != "2" || m2.Value("c") != "3" || m1.Value("c") != "" {
		t.Errorf("With aliases: m1=%v m2=%v", m1, m2)
	}
}

func FuzzParseMsg(f *testing.F) {
	seeds := []Msg{
		NewMsg("PING"),
		NewMsg("HELLO", Version).With("role", "server").With("nonce", "00ff"),
		NewMsg("F").With("name", "dir/a b=c\\d\n🎉.txt").WithInt("size", 12).With("hash", "blake3:00"),
		ErrorMsg(Errorf(CodeSyntax, "unknown verb %q", "X=Y")),
		NewMsg("SEARCH").With("q", "été \t x").WithInt("max", 5),
	}
	for _, m := range seeds {
		b, err := AppendMsg(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("LIST q=\\x1f\\e \r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, n, err := ParseMsg(in)
		if err != nil {
			if n < 0 || n > len(in) {
				t.Fatalf("n = %d out of range", n)
			}
			return
		}
		if n <= 0 || n > len(in) || in[n-1] != '\n' {
			t.Fatalf("n = %d does not end a line in %q", n, in)
		}
		b, err := AppendMsg(nil, m)
		if err != nil {
			t.Fatalf("AppendMsg of parsed %#v: %v", m, err)
		}
		m2, n2, err := ParseMsg(b)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b, err)
		}
		if n2 != len(b) || !reflect.DeepEqual(m, m2) {
			t.Fatalf("not a mirror: %#v -> %q -> %#v", m, b, m2)
		}
		if b2, _ := AppendMsg(nil, m2); !bytes.Equal(b, b2) {
			t.Fatalf("encoding not canonical: %q vs %q", b, b2)
		}
	})
}
