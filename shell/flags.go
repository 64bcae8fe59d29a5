package shell

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
)

// DefaultMaster is the master used when none is given.
const DefaultMaster = "127.0.0.1:1234"

// flags are the parsed command line.
type flags struct {
	opts    Options
	command string // -c
	script  string // SCRIPT
	noColor bool
	version bool
	help    bool
}

// parseFlags reads the global flags; getenv supplies FXSH_MASTER and FXSH_KEY.
func parseFlags(args []string, getenv func(string) string) (flags, error) {
	var fl flags
	fs := flag.NewFlagSet("fxsh", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	master := fs.String("master", "", "")
	fs.StringVar(&fl.opts.Dir, "dir", ".", "")
	key := fs.String("key", "", "")
	fs.StringVar(&fl.command, "c", "", "")
	fs.BoolVar(&fl.noColor, "no-color", false, "")
	fs.BoolVar(&fl.opts.NoRC, "norc", false, "")
	fs.BoolVar(&fl.version, "version", false, "")
	fs.BoolVar(&fl.help, "help", false, "")
	fs.BoolVar(&fl.help, "h", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fl.help = true
			return fl, nil
		}
		return fl, err
	}
	switch rest := fs.Args(); {
	case len(rest) > 1:
		return fl, fmt.Errorf("one script at a time, not %q", rest)
	case len(rest) == 1 && fl.command != "":
		return fl, errors.New("-c and a script file cannot be used together")
	case len(rest) == 1:
		fl.script = rest[0]
	}
	m := *master
	if m == "" {
		m = getenv("FXSH_MASTER")
	}
	// No master, or "auto": find one on the LAN (discover.go), unless
	// FXSH_DISCOVERY=off; the default stays in Masters until then.
	fl.opts.MasterGiven = m != "" && m != "auto"
	fl.opts.Discover = !fl.opts.MasterGiven && getenv("FXSH_DISCOVERY") != discoveryOff
	if !fl.opts.MasterGiven {
		m = DefaultMaster
	}
	for _, a := range strings.Split(m, ",") {
		if a = strings.TrimSpace(a); a != "" {
			fl.opts.Masters = append(fl.opts.Masters, a)
		}
	}
	fl.opts.Key = *key
	if fl.opts.Key == "" {
		fl.opts.Key = getenv("FXSH_KEY")
	}
	if fl.opts.Dir == "" {
		fl.opts.Dir = "."
	}
	// A --dir written in a script or a start-up file reaches us unexpanded.
	dir, err := expandPath(fl.opts.Dir, func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}, homeOf)
	if err != nil {
		return fl, fmt.Errorf("--dir: %w", err)
	}
	fl.opts.Dir = dir
	return fl, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f any) bool {
	if file, ok := f.(*os.File); ok {
		return isatty.IsTerminal(file.Fd())
	}
	return false
}
