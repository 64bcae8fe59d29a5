//go:build unix

package syserr

import "syscall"

var (
	connRefused = []error{syscall.ECONNREFUSED}
	noSpace     = []error{syscall.ENOSPC, syscall.EDQUOT}
)
