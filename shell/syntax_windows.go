package shell

// NativeSyntax is the command language's syntax on this system: on Windows
// a backslash separates paths (C:\Users\me), so it is not an escape.
const NativeSyntax = SyntaxWindows
