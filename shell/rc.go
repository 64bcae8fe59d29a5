package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// The start-up file: CONFIG/fxsh/fxshrc (CONFIG is os.UserConfigDir:
// $XDG_CONFIG_HOME or ~/.config on Linux, ~/Library/Application Support on
// macOS, %AppData% on Windows) holds commands run before the first one,
// interactive or script, unless --norc. A failed line stops it: a script
// does not start (`fxsh: fxshrc line N: …`, exit status 1); the prompt
// starts after a warning. A key set in it (`key SECRET`) is refused when
// the file is open to group or others, as ssh refuses such a private key.

func rcCommands() []*cmdSpec {
	return []*cmdSpec{{
		name: "key", group: "Shell", usage: "key [SECRET]", maxArgs: 1,
		summary: "show whether a shared key is set, or set it for what starts afterwards",
		detail: "The key is never shown. It can change only while no role runs and no job is active.\n" +
			"In the start-up file (fxshrc), a key is refused unless only you can read the file\n" +
			"(chmod 600; not checked on Windows, which has no such mode bits).\n" +
			"A typed key line is not saved in the history.",
		example: "key correct-horse-battery-staple",
		run:     cmdKey,
	}}
}

// rcState says whether the start-up file is running, for the key command.
// It is used by the command goroutine only.
type rcState struct {
	running bool
	open    string // why a key in it is refused ("" = it is private)
}

// rcPath is the start-up file's path.
func rcPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "fxsh", "fxshrc"), nil
}

// rcOpenToOthers says why a file's mode is too open to hold a key, or "".
// Windows has no group/other mode bits (os.Stat reports 0666 for every
// writable file), so there the check is skipped.
func rcOpenToOthers(path string, fi fs.FileInfo) string {
	if runtime.GOOS == "windows" {
		return ""
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("%s is open to group/others (mode %04o); chmod 600 it", path, perm)
	}
	return ""
}

// runRC runs the start-up file, if there is one. It returns false when a
// script must not start.
func (s *Shell) runRC(ctx context.Context, interactive bool) bool {
	path, err := rcPath()
	if err != nil {
		return true // no config folder (no HOME): nothing to run
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	fail := func(n int, err error) bool {
		where := "fxshrc"
		if n > 0 {
			where = fmt.Sprintf("fxshrc line %d", n)
		}
		if interactive {
			s.warn("%s: %v (the rest of %s is skipped)", where, err, path)
			return true
		}
		s.reportAt(where, err)
		s.failed.Store(true)
		return false
	}
	if err != nil {
		return fail(0, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(0, err)
	}
	s.rc = rcState{running: true, open: rcOpenToOthers(path, fi)}
	defer func() { s.rc = rcState{} }()
	r := newPlainUI(f, io.Discard, io.Discard)
	for n := 1; ; n++ {
		if s.quitting() || ctx.Err() != nil {
			return !s.quitting() || interactive
		}
		line, err := r.ReadLine()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return fail(n, err)
		}
		cmds, err := s.syntax.Parse(line)
		if err != nil {
			return fail(n, err)
		}
		for _, c := range cmds {
			err := s.exec(ctx, c)
			if err == nil || c.MayFail {
				continue
			}
			if errors.Is(err, errReported) {
				err = errors.New("failed")
			}
			return fail(n, err)
		}
	}
}

func cmdKey(_ context.Context, s *Shell, c *call) error {
	if len(c.args) == 0 {
		if s.opts.Key == "" {
			s.out("key: none (open network: anyone can join)\n")
		} else {
			s.out("key: set\n")
		}
		return nil
	}
	if s.rc.running && s.rc.open != "" {
		return fmt.Errorf("refused: %s", s.rc.open)
	}
	if s.serving() || len(s.jobs.Active()) > 0 {
		return errors.New("stop the roles and jobs first: they keep the key they started with")
	}
	if c.args[0] == "" {
		return errors.New("an empty key: leave the key out for an open network")
	}
	s.opts.Key = c.args[0]
	s.dropClient()
	return nil
}

// hasKeyCommand reports whether a line sets a key, so it is kept out of
// the history file.
func hasKeyCommand(cmds []Command) bool {
	for _, c := range cmds {
		if len(c.Words) > 1 && c.Words[0] == "key" {
			return true
		}
	}
	return false
}
