//go:build unix

package shell

import (
	"os"
	"os/signal"
	"syscall"
)

// resizeSignals reports window size changes (SIGWINCH) until stop is called.
func resizeSignals() (c <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	return ch, func() { signal.Stop(ch) }
}
