package line

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	long := "LIST q=" + strings.Repeat("x", 100) + "\n"
	tests := []struct {
		name  string
		in    string
		max   int
		lines []string
		err   error
	}{
		{"two lines", "PING\r\nBYE\n", 0, []string{"PING\r\n", "BYE\n"}, io.EOF},
		{"exactly max", "PING\n", 5, []string{"PING\n"}, io.EOF},
		{"one over max", "PINGS\n", 5, nil, ErrLineTooLong},
		{"over bufio minimum", long, 50, nil, ErrLineTooLong},
		{"under limit", long, 200, []string{long}, io.EOF},
		{"default limit", strings.Repeat("a", MaxLine) + "\n", 0, nil, ErrLineTooLong},
		{"partial", "PING\nPO", 0, []string{"PING\n"}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(iotest.OneByteReader(strings.NewReader(tt.in)), tt.max)
			var traced []string
			r.Trace = func(b []byte) { traced = append(traced, string(b)) }
			var got []string
			var err error
			for {
				var b []byte
				if b, err = r.ReadLine(); err != nil {
					break
				}
				got = append(got, string(b))
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
			if strings.Join(got, "|") != strings.Join(tt.lines, "|") {
				t.Errorf("lines = %q, want %q", got, tt.lines)
			}
			if strings.Join(traced, "|") != strings.Join(tt.lines, "|") {
				t.Errorf("traced = %q, want %q", traced, tt.lines)
			}
		})
	}
}

func TestReaderStaysInStep(t *testing.T) {
	r := NewReader(strings.NewReader("PING\nLIST =bad\nPEERS\n"), 0)
	want := []string{"PING", "", "PEERS"}
	for i, w := range want {
		m, err := r.ReadMsg()
		if w == "" {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("line %d: err = %v, want *ProtocolError", i, err)
			}
			continue
		}
		if err != nil || m.Verb != w {
			t.Fatalf("line %d: %v, %v; want %s", i, m, err, w)
		}
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, 20)
	var traced []string
	w.Trace = func(b []byte) { traced = append(traced, string(b)) }
	if err := w.WriteMsg(NewMsg("PING")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMsg(NewMsg("LIST").With("glob", strings.Repeat("x", 20))); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: err = %v, want ErrLineTooLong", err)
	}
	if err := w.WriteMsg(NewMsg("bad")); err == nil {
		t.Error("invalid verb accepted")
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q before Flush", buf.String())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "PING\n" {
		t.Errorf("wrote %q, want only PING", buf.String())
	}
	if len(traced) != 1 || traced[0] != "PING\n" {
		t.Errorf("traced %q", traced)
	}
}

func TestTraceHooks(t *testing.T) {
	if in, out := TraceHooks(nil, "y", "x"); in != nil || out != nil {
		t.Error("nil fn gave hooks")
	}
	var evs []TraceEvent
	in, out := TraceHooks(func(e TraceEvent) { evs = append(evs, e) }, "6.7.8.9:10", "1.2.3.4:5")
	in([]byte("PING\r\n"))
	out([]byte("PONG\n"))
	if len(evs) != 2 || evs[0].Line != "PING" || evs[0].End != "\r\n" || evs[0].Dir != In || evs[1].Line != "PONG" ||
		evs[1].End != "\n" || evs[1].Dir != Out || evs[1].Remote != "1.2.3.4:5" || evs[1].Local != "6.7.8.9:10" || evs[0].Time.IsZero() {
		t.Errorf("events %+v", evs)
	}
}

func TestError(t *testing.T) {
	e := Errorf(CodeSyntax, " unknown verb %q in  line\n", "A=B\\s")
	m := ErrorMsg(e)
	b, err := AppendMsg(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if want := `ERR 400 unknown verb "A=B\\s" in  line` + "\n"; string(b) != want {
		t.Errorf("wire %q, want %q", b, want)
	}
	m2, _, err := ParseMsg(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseError(m2)
	if err != nil {
		t.Fatal(err)
	}
	if got.Code != 400 || got.Msg != `unknown verb "A=B\\s" in  line` || got.Error() != `400 unknown verb "A=B\\s" in  line` {
		t.Errorf("ParseError = %+v", got)
	}
	for _, bad := range []Msg{NewMsg("OK"), NewMsg("ERR"), NewMsg("ERR", "x"), NewMsg("ERR", "99")} {
		if _, err := ParseError(bad); err == nil {
			t.Errorf("ParseError(%v) succeeded", bad)
		}
	}
	pe := &ProtocolError{Reason: "bad", Input: strings.Repeat("q", 200) + "\n"}
	if s := pe.Error(); len(s) > 120 || !strings.HasPrefix(s, `bad: "qqq`) {
		t.Errorf("ProtocolError.Error() = %q", s)
	}
}
