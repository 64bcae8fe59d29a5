//go:build !unix && !windows

package partfile

import "os"

// lockFile does nothing where flock is missing; the shell's job table still
// keeps one download per name in a process.
func lockFile(*os.File) error { return nil }
