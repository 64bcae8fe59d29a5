package integration

import (
	"io"
	"os"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/fxshell/fxsh/store"
)

// Commands for the modified-file story (testdata/modified.txtar).

// overwrite DST SRC rewrites DST in place with SRC's bytes, as a database or
// `dd conv=notrunc` does: the same inode, never truncated first, written in
// 1 MiB pieces from the start, then cut to SRC's length if DST was longer.
// (cp truncates first, which a server notices at once as a short read.)
func cmdOverwrite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: overwrite DST SRC")
	}
	data := []byte(ts.ReadFile(args[1]))
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_WRONLY, 0)
	ts.Check(err)
	defer f.Close()
	for off := 0; off < len(data); off += 1 << 20 {
		_, err := f.WriteAt(data[off:min(off+1<<20, len(data))], int64(off))
		ts.Check(err)
	}
	fi, err := f.Stat()
	ts.Check(err)
	if fi.Size() > int64(len(data)) {
		ts.Check(f.Truncate(int64(len(data))))
	}
	ts.Check(f.Close())
}

// shorthash VAR FILE sets VAR to FILE's content hash as list shows it: the
// first 12 hex digits.
func cmdShorthash(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: shorthash VAR FILE")
	}
	f, err := os.Open(ts.MkAbs(args[1]))
	ts.Check(err)
	defer f.Close()
	h := store.NewHash()
	_, err = io.Copy(h, f)
	ts.Check(err)
	ts.Setenv(args[0], strings.TrimPrefix(store.FormatHash(h.Sum(nil)), store.HashPrefix)[:12])
}
