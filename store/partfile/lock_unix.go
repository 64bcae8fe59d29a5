//go:build unix

package partfile

import (
	"os"
	"syscall"
)

// lockFile takes an advisory lock on the temporary file, so two processes
// never download into the same one. Closing the file releases it.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
