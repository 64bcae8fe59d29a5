//go:build unix

package shareindex

import (
	"io/fs"
	"syscall"
)

// fileID returns the device and inode numbers of fi, so a file replaced by
// another with the same size and mtime is still noticed.
func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // int32 on some platforms
	}
	return 0, 0
}
