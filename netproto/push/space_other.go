//go:build !unix && !windows

package push

// freeSpace cannot tell on this system: offers are not checked against it.
func freeSpace(string) (uint64, bool) { return 0, false }
