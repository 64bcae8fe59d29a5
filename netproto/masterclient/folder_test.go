package masterclient

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fxshell/fxsh/netproto/line"
	"github.com/fxshell/fxsh/store/catalogtest"
)

// TestListFolderTranscript reads a folder in two pages, each continued
// after the last record of the one before.
func TestListFolderTranscript(t *testing.T) {
	h1, h2 := catalogtest.Hash("1"), catalogtest.Hash("2")
	dial, done := fakeMaster(t, `
C: HELLO fxsh/1 role=client
`+hi+`
C: LIST prefix=my\snotes/ max=1000
S: FOUND n=2 more=1
S: F name=my\snotes/a.txt size=1 type=text mtime=1700000000 hash=`+h1+` servers=10.0.0.1:5000
S: F name=my\snotes/w1/b.txt size=2 type=text mtime=1700000000 hash=`+h1+` servers=10.0.0.1:5000
S: END
C: LIST prefix=my\snotes/ after=my\snotes/w1/b.txt afterhash=`+h1+` max=1000
S: FOUND n=1
S: F name=my\snotes/w1/b.txt size=2 type=text mtime=1700000000 hash=`+h2+` servers=10.0.0.2:5000
S: END
`)
	ctx := context.Background()
	c, err := Dial(ctx, Config{Masters: []string{"m:1"}, Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	es, err := c.ListFolder(ctx, "my notes/", 100)
	if err != nil || len(es) != 3 || es[2].Hash != h2 || es[1].Name != "my notes/w1/b.txt" {
		t.Fatalf("ListFolder = %+v, %v", es, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestListFolderDistrusts refuses pages a master should not send: a name
// outside the folder (an older master that ignores prefix=), a page that
// goes back (it would never end), and more than the caller's limit.
func TestListFolderDistrusts(t *testing.T) {
	h := catalogtest.Hash("1")
	rec := func(name string) string {
		return "S: F name=" + name + " size=1 type=text mtime=1700000000 hash=" + h + " servers=10.0.0.1:5000\n"
	}
	for _, tt := range []struct {
		name, answer, want string
		limit              int
	}{
		{"outside", "S: FOUND n=1\n" + rec("etc/passwd") + "S: END", `folder listing: a name outside "d/": "etc/passwd"`, 10},
		{"backwards", "S: FOUND n=2 more=1\n" + rec("d/b") + rec("d/a") + "S: END", `folder listing: a name out of order: "d/a"`, 10},
		{"too big", "S: FOUND n=2 more=1\n" + rec("d/a") + rec("d/b") + "S: END", `folder too big: more than 1 files under "d/"`, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dial, _ := fakeMaster(t, "C: HELLO fxsh/1 role=client\n"+hi+"\nC: LIST prefix=d/ max=1000\n"+tt.answer)
			ctx := context.Background()
			c, err := Dial(ctx, Config{Masters: []string{"m:1"}, Dial: dial})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.ListFolder(ctx, "d/", tt.limit)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ListFolder = %v, want %q", err, tt.want)
			}
			var pe *line.ProtocolError
			if tt.name != "too big" && !errors.As(err, &pe) {
				t.Errorf("%v is not a *line.ProtocolError", err)
			}
		})
	}
}
