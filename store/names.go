package store

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NameProblem says why name is not a safe file name to offer to peers or to
// take from them, or returns "" if it is. The rules every part of fxsh
// shares: a relative, '/'-separated name of valid UTF-8, at most max bytes,
// with no control characters (C0, DEL, C1), no bidirectional controls (they
// make a name display as another), no line separators and no empty, "." or
// ".." component, and nothing a person could not type or fetch safely
// (fetchProblem: a leading '-', a backslash or drive prefix, invisible
// characters, lookalike spaces and scripts). The shared-folder index and
// the download side add the rules of the file systems they read and write
// (the Windows device names on Windows, ...).
func NameProblem(name string, max int) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > max:
		return fmt.Sprintf("longer than %d bytes", max)
	case !utf8.ValidString(name):
		return "not valid UTF-8"
	case name[0] == '/':
		return "absolute"
	}
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return "control character"
		case unicode.Is(unicode.Bidi_Control, r):
			return "control character" // bidirectional: it makes a name display as another
		case r == '\u2028' || r == '\u2029':
			return "line separator"
		}
	}
	for c := range strings.SplitSeq(name, "/") {
		switch c {
		case "":
			return "empty component"
		case ".", "..":
			return fmt.Sprintf("%q component", c)
		}
	}
	return fetchProblem(name)
}
