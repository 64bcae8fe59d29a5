//go:build !windows

package shell

// NativeSyntax is the command language's syntax on this system: a backslash
// escapes, as in sh.
const NativeSyntax = SyntaxPOSIX
