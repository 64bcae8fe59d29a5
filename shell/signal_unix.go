//go:build unix

package shell

import (
	"os/signal"
	"syscall"
)

// ignoreStop ignores SIGTSTP, so Ctrl-Z does not stop a process that serves
// others.
func ignoreStop() { signal.Ignore(syscall.SIGTSTP) }
