//go:build windows

package syserr

import (
	"syscall"

	"golang.org/x/sys/windows"
)

var (
	// WSAECONNREFUSED: connect found nothing listening. ERROR_CONNECTION_REFUSED
	// is the same answer through the non-socket APIs.
	connRefused = []error{windows.WSAECONNREFUSED, windows.ERROR_CONNECTION_REFUSED}
	// ERROR_DISK_FULL from WriteFile, ERROR_HANDLE_DISK_FULL from some
	// file systems and	// SetEndOfFile. syscall.ENOSPC is Go's own value (no Windows call
	// returns it), kept so an error made in Go code reads the same.
	noSpace = []error{windows.ERROR_DISK_FULL, windows.ERROR_HANDLE_DISK_FULL, syscall.ENOSPC}
)
