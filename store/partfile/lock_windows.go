//go:build windows

package partfile

import (
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive lock on the temporary file, so two processes
// never download into the same one. Closing the file releases it.
//
// Windows byte-range locks are mandatory: a locked range cannot be read or
// written through another handle. The lock therefore covers one byte far
// past any file fxsh writes (offset 2^63-2), which no read or write ever
// touches, the way SQLite locks a byte it never uses.
func lockFile(f *os.File) error {
	ol := new(windows.Overlapped)
	ol.Offset = 0xFFFFFFFE
	ol.OffsetHigh = 0x7FFFFFFF
	return windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
}
