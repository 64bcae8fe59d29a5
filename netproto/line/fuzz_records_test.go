package line

import (
	"bytes"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unicode"

	"github.com/fxshell/fxsh/store"
)

// FuzzParseFile checks the F record decoder: any record it accepts carries
// a name that is safe to write under a download folder, a valid hash and
// size, and encodes back (FileMsg) to a record that decodes to the same
// entry. A client trusts these checks with names a master relays from
// strangers.
func FuzzParseFile(f *testing.F) {
	for _, e := range []store.Entry{
		{File: store.File{Name: "dir/a b=c\\🎉.txt", Size: 42, Type: "text", MTime: time.Unix(1700000000, 0), Hash: testHash},
			Servers: []string{"10.0.0.1:5000", "[::1]:5001"}},
		{File: store.File{Name: "x", Type: "tar.gz", Hash: testHash}},
		{File: store.File{Name: "../etc/passwd", Size: 1, Type: "bin", Hash: testHash}},
		{File: store.File{Name: "a\x00b/\u202e.exe", Size: -1, Type: "a/b", Hash: "blake3:00"}},
	} {
		b, err := AppendMsg(nil, FileMsg(e))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("F name=a size=1 type=t mtime=1 hash=" + testHash + " servers=,, extra=1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, _, err := ParseMsg(in)
		if err != nil {
			return
		}
		e, err := ParseFile(m, 0)
		if err != nil {
			return
		}
		if !filepath.IsLocal(e.Name) || filepath.Clean(e.Name) != e.Name || len(e.Name) > MaxName {
			t.Fatalf("unsafe name accepted: %q", e.Name)
		}
		for _, r := range e.Name {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
				t.Fatalf("name with control character accepted: %q", e.Name)
			}
		}
		if CheckHash(e.Hash) != nil || e.Size < 0 || CheckType(e.Type) != nil || len(e.Servers) > MaxServers {
			t.Fatalf("bad record accepted: %+v", e)
		}
		b, err := AppendMsg(nil, FileMsg(e))
		if err != nil {
			t.Fatalf("encoding accepted %+v: %v", e, err)
		}
		m2, _, err := ParseMsg(b)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b, err)
		}
		e2, err := ParseFile(m2, 0)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("not a mirror: %+v -> %q -> %+v, %v", e, b, e2, err)
		}
		if b2, _ := AppendMsg(nil, FileMsg(e2)); !bytes.Equal(b, b2) {
			t.Fatalf("encoding not canonical: %q vs %q", b, b2)
		}
	})
}
