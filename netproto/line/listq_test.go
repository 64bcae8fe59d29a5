package line

import (
	"strings"
	"testing"

	"github.com/fxshell/fxsh/store"
)

// TestListQueryRoundTrip encodes queries, writes them as lines, reads them
// back and compares: the two sides are mirror images.
func TestListQueryRoundTrip(t *testing.T) {
	for _, q := range []ListQuery{
		{},
		{Glob: "*.pdf", Max: 10},
		{Folder: true},
		{Folder: true, Prefix: "lectures/"},
		{Folder: true, Prefix: "my notes/week 1/", After: store.Cursor{Name: "my notes/week 1/a=b.txt"}, Max: 500},
		{Folder: true, Prefix: "a/", After: store.Cursor{Name: "a/x", Hash: testHash}, Max: MaxResults},
	} {
		b, err := AppendMsg(nil, ListQueryMsg(q))
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		m, _, err := ParseMsg(b)
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		got, err := ParseListQuery(m)
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if got != q {
			t.Errorf("%q: got %+v, want %+v", b, got, q)
		}
	}
}

// TestListQueryLimits pins every refusal and the cap on max.
func TestListQueryLimits(t *testing.T) {
	long := strings.Repeat("a", MaxName) + "/"
	for _, tt := range []struct {
		line, err string
		max       int
	}{
		{line: "LIST max=20000", max: MaxResults},
		{line: "LIST prefix= max=1", max: 1},
		{line: "LIST max=0", err: "max must be a number from 1 to 10000"},
		{line: "LIST max=-3", err: "max must be"},
		{line: "LIST max=x", err: "max must be"},
		{line: "LIST after=a", err: "after= needs prefix="},
		{line: "LIST glob=*.txt prefix=a/", err: "not both"},
		{line: "LIST prefix=a", err: `prefix must be a folder ending in "/"`},
		{line: "LIST prefix=/", err: "bad prefix: bad name: empty"},
		{line: "LIST prefix=../", err: "bad prefix"},
		{line: "LIST prefix=a//", err: "bad prefix"},
		{line: "LIST prefix=/etc/", err: "bad prefix"},
		{line: "LIST prefix=" + long, err: "bad prefix: bad name: longer than"},
		{line: "LIST prefix=a/ after=../x", err: "bad after"},
		{line: "LIST prefix=a/ afterhash=" + testHash, err: "afterhash= needs after="},
		{line: "LIST prefix=a/ after=a/b afterhash=blake3:00", err: "bad hash"},
	} {
		m, _, err := ParseMsg([]byte(tt.line + "\n"))
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		q, err := ParseListQuery(m)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.line, err)
		case tt.err == "" && q.Max != tt.max:
			t.Errorf("%q: max %d, want %d", tt.line, q.Max, tt.max)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: err %v, want %q", tt.line, err, tt.err)
		}
	}
}

// FuzzParseListQuery checks the LIST decoder: what it accepts has a max
// within MaxResults, a safe prefix and cursor, and encodes back to a line
// that decodes to the same query.
func FuzzParseListQuery(f *testing.F) {
	for _, q := range []ListQuery{
		{Glob: "docs/*.txt"},
		{Folder: true, Prefix: "lectures/week 1/", Max: 1000},
		{Folder: true, Prefix: "a/", After: store.Cursor{Name: "a/b/c.pdf", Hash: testHash}, Max: 2},
	} {
		b, err := AppendMsg(nil, ListQueryMsg(q))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("LIST prefix=../ after=../../x afterhash=blake3:zz max=99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, _, err := ParseMsg(in)
		if err != nil {
			return
		}
		q, err := ParseListQuery(m)
		if err != nil {
			return
		}
		if q.Max < 0 || q.Max > MaxResults {
			t.Fatalf("max %d accepted", q.Max)
		}
		if q.Folder {
			if CheckPrefix(q.Prefix) != nil || q.Glob != "" {
				t.Fatalf("bad folder query accepted: %+v", q)
			}
			if q.After.Name != "" && CheckName(q.After.Name, 0) != nil {
				t.Fatalf("bad cursor accepted: %q", q.After.Name)
			}
		}
		b, err := AppendMsg(nil, ListQueryMsg(q))
		if err != nil {
			t.Fatalf("encoding accepted %+v: %v", q, err)
		}
		m2, _, err := ParseMsg(b)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b, err)
		}
		q2, err := ParseListQuery(m2)
		if err != nil || q2 != q {
			t.Fatalf("round trip of %+v: %+v, %v", q, q2, err)
		}
	})
}
