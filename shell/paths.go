package shell

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
)

// ExpandPath expands a LOCAL path argument the way a POSIX shell would
// before fxsh ever saw it: a leading "~" or "~/…" becomes the home folder,
// "~user/…" that user's home, and "$VAR" or "${VAR}" anywhere becomes the
// variable's value. fxsh's own parser removes quotes before commands run, so
// expansion cannot tell 'quoted' text apart; a "$" not followed by a name
// (letters, digits, '_') or "{" stays as it is, and "$$" is one literal "$"
// (the way to write a file name holding "$NAME").
//
// An unset variable or an unknown user is an error naming it, never a silent
// empty string: `get x -o $DL` with DL unset must not download into ".".
// Remote names (get NAME, list GLOB) are never expanded: they are the
// catalog's words, not this machine's paths.
func ExpandPath(p string) (string, error) {
	return expandPath(p, os.LookupEnv, homeOf)
}

// homeOf returns the home folder of user name ("" = the current user).
func homeOf(name string) (string, error) {
	if name == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home folder for ~: %w", err)
		}
		return h, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return "", fmt.Errorf("~%s: no such user", name)
	}
	return u.HomeDir, nil
}

// errEmptyPath is returned for a path that expands to nothing.
var errEmptyPath = errors.New("empty path")

// expandPath is ExpandPath with the environment and the home lookup given,
// so tests need not touch the process's.
func expandPath(p string, lookup func(string) (string, bool), home func(string) (string, error)) (string, error) {
	out, err := expandVars(p, lookup)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(p, "~") {
		// The user part ends at the first separator; it is taken from
		// the text as typed, so a variable cannot smuggle in a "~".
		rest := p[1:]
		i := strings.IndexFunc(rest, isPathSep)
		if i < 0 {
			i = len(rest)
		}
		who := rest[:i]
		if !strings.Contains(who, "$") {
			h, err := home(who)
			if err != nil {
				return "", err
			}
			tail, err := expandVars(rest[i:], lookup)
			if err != nil {
				return "", err
			}
			out = h + tail
		}
	}
	if out == "" && p != "" {
		return "", fmt.Errorf("%q: %w", p, errEmptyPath)
	}
	return out, nil
}

func isPathSep(r rune) bool { return r == '/' || r == filepath.Separator }

// expandVars replaces $NAME and ${NAME}; "$$" is a literal "$".
func expandVars(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch c := s[i+1]; {
		case c == '$':
			b.WriteByte('$')
			i++
		case c == '{':
			j := strings.IndexByte(s[i+2:], '}')
			if j < 0 {
				return "", fmt.Errorf("%q: unterminated ${", s)
			}
			name := s[i+2 : i+2+j]
			if !validVarName(name) {
				return "", fmt.Errorf("%q: bad variable name %q", s, name)
			}
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("$%s is not set", name)
			}
			b.WriteString(v)
			i += 2 + j
		case isVarChar(c):
			j := i + 1
			for j < len(s) && isVarChar(s[j]) {
				j++
			}
			name := s[i+1 : j]
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("$%s is not set", name)
			}
			b.WriteString(v)
			i = j - 1
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), nil
}

func isVarChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func validVarName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if !isVarChar(n[i]) {
			return false
		}
	}
	return true
}

// expandPaths expands every path in ps (see ExpandPath).
func expandPaths(ps []string) ([]string, error) {
	out := make([]string, len(ps))
	for i, p := range ps {
		e, err := ExpandPath(p)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}
