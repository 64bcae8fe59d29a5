package integration

import (
	"os"

	"github.com/rogpeppe/go-internal/testscript"
)

// Commands for the verified-streaming stories (testdata/hostile_source.txtar).

// rot FILE flips one byte in every 64 KiB of FILE in place and gives it its
// modification time back: the same inode, size and mtime, so the file
// server that indexed it keeps offering it under its old hash — a source
// that sends bytes that are not the file's, as a hostile peer would.
func cmdRot(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: rot FILE")
	}
	path := ts.MkAbs(args[0])
	fi, err := os.Stat(path)
	ts.Check(err)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	ts.Check(err)
	b := make([]byte, 1)
	for off := int64(1000); off < fi.Size(); off += 64 << 10 {
		_, err := f.ReadAt(b, off)
		ts.Check(err)
		b[0] ^= 0x5a
		_, err = f.WriteAt(b, off)
		ts.Check(err)
	}
	ts.Check(f.Close())
	ts.Check(os.Chtimes(path, fi.ModTime(), fi.ModTime()))
}
