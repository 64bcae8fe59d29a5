//go:build !windows

package transfer

// underWine: only a Windows binary runs under Wine (wine_windows_test.go).
func underWine() bool { return false }
