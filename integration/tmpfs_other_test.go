//go:build !linux

package integration

import "github.com/rogpeppe/go-internal/testscript"

// canMountTmpfs is false off Linux: the full-disk stories skip.
func canMountTmpfs() bool { return false }

// cmdMountTmpfs fails: only Linux mounts a tmpfs from a test.
func cmdMountTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	ts.Fatalf("mounttmpfs: needs Linux (guard the story with [tmpfs])")
}
