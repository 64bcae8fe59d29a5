package shareindex

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest name, in bytes, the index offers. It matches the
// line protocol's name limit, so every indexed name can be registered.
const MaxNameLen = 1024

// Suffixes of fxsh's own partial-download files. A shared folder that is
// also a download folder must not offer half-written files, so names ending
// in these are left out silently.
const (
	partSuffix  = ".fxpart"
	stateSuffix = ".fxstate"
	tmpSuffix   = ".fxtmp"
)

// CheckName reports whether name can be sent to peers safely: a relative,
// '/'-separated name of valid UTF-8 with no control characters, no
// backslash (a separator on Windows), no empty, "." or ".." component and at
// most MaxNameLen bytes. The error wraps ErrUnsafeName and quotes the name.
func CheckName(name string) error {
	if reason := nameProblem(name); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrUnsafeName, name, reason)
	}
	return nil
}

func nameProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > MaxNameLen:
		return fmt.Sprintf("longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return "not valid UTF-8"
	case name[0] == '/':
		return "absolute"
	}
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return "control character"
		case r == '\\':
			return "backslash"
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
	return ""
}

// isOwnTemp reports whether base is one of fxsh's partial-download files.
func isOwnTemp(base string) bool {
	return strings.HasPrefix(base, ".") &&
		(strings.HasSuffix(base, partSuffix) || strings.HasSuffix(base, stateSuffix) ||
			strings.HasSuffix(base, tmpSuffix))
}
