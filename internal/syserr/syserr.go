// Package syserr tells which kind of system error an error is, the same way
// on every system fxsh builds for. syscall's errno values are per system:
// syscall.ECONNREFUSED exists on Windows but is an invented value that no
// Windows call returns (a refused TCP connect is WSAECONNREFUSED, 10061), and
// a full disk is ERROR_DISK_FULL there, not ENOSPC. So code that wants to
// say "no master at …" or "free space and get it again" asks this package
// instead of comparing errno values itself.
//
// ConnRefused and NoSpace are the two questions; the per-system answers are
// in syserr_unix.go and syserr_windows.go.
package syserr

import "errors"

// ConnRefused reports whether err is a connection that nobody accepted:
// nothing listens at the address (or a firewall answered for it).
func ConnRefused(err error) bool { return anyIs(err, connRefused) }

// NoSpace reports whether err is a write that failed for lack of room: a
// full disk or a full quota.
func NoSpace(err error) bool { return anyIs(err, noSpace) }

func anyIs(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
