// Command fxsh is a file-sharing shell: a master that indexes file servers,
// file servers that serve over a reliable chunked UDP protocol, and a client
// that downloads several files at once — all from one interactive prompt or
// a script. See README.md.
package main

import (
	"os"

	"github.com/fxshell/fxsh/shell"
)

func main() { os.Exit(shell.Main()) }
