//go:build unix

package push

import "syscall"

// freeSpace returns the bytes an unprivileged user may still write in
// dir's file system, or ok false if it cannot tell.
func freeSpace(dir string) (free uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
