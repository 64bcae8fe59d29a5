//go:build !unix

package shell

// ignoreStop does nothing where there is no job-control stop signal
// (Windows: Ctrl-Z is an end-of-input character, not a signal).
func ignoreStop() {}
