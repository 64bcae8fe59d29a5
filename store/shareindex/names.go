package shareindex

import (
	"fmt"
	"github.com/fxshell/fxsh/store"
	"strings"
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
	if p := store.NameProblem(name, MaxNameLen); p != "" {
		return p
	}
	if strings.ContainsRune(name, '\\') {
		return "backslash" // a separator on Windows: the name would not survive there
	}
	return ""
}

// isOwnTemp reports whether base is one of fxsh's partial-download files.
func isOwnTemp(base string) bool {
	return strings.HasPrefix(base, ".") &&
		(strings.HasSuffix(base, partSuffix) || strings.HasSuffix(base, stateSuffix) ||
			strings.HasSuffix(base, tmpSuffix))
}
