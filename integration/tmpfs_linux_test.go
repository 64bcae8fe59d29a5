//go:build linux

package integration

import (
	"os"
	"regexp"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"
)

// A full disk in stories: `[!tmpfs] skip` skips a story where this process
// cannot mount a file system (not root, or a container without
// CAP_SYS_ADMIN); `mounttmpfs DIR SIZE` then gives the story a real folder
// that fills up.

// canMountTmpfs reports whether mounting a tmpfs works here, by trying one.
func canMountTmpfs() bool {
	if os.Geteuid() != 0 {
		return false
	}
	dir, err := os.MkdirTemp("", "fxsh-tmpfs-probe")
	if err != nil {
		return false
	}
	defer os.Remove(dir)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		return false
	}
	return syscall.Unmount(dir, syscall.MNT_DETACH) == nil
}

// mounttmpfs DIR SIZE mounts a tmpfs of SIZE bytes (k, m, g suffixes, as
// mount(8) takes them) on DIR, creating it, and unmounts it when the story
// ends.
func cmdMountTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mounttmpfs DIR SIZE")
	}
	if !regexp.MustCompile(`^[1-9][0-9]*[kmg]?$`).MatchString(args[1]) {
		ts.Fatalf("mounttmpfs: size %q: want a number with an optional k, m or g", args[1])
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+args[1]); err != nil {
		ts.Fatalf("mounting a tmpfs on %s (the story needs [tmpfs]): %v", args[0], err)
	}
	ts.Defer(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			ts.Logf("unmounting %s: %v", dir, err)
		}
	})
}
