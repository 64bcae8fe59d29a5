//go:build !unix

package shell

import "os"

// resizeSignals: without SIGWINCH the width is read again at every redraw
// (five times a second during wait), which is as prompt as it gets.
func resizeSignals() (c <-chan os.Signal, stop func()) {
	return nil, func() {}
}
