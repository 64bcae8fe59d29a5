package store

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest file name fxsh offers, takes or registers, in
// bytes: far above real paths, far below the line protocol's line
// (netproto/line.MaxName is this limit on the wire).
const MaxNameLen = 1024

// Suffixes of the files a download keeps beside its final name, hidden
// (".NAME.fxpart", store/partfile). A download refuses a name ending in one,
// so a peer cannot make one download clobber another's temporary files;
// the shared-folder index leaves them out, so a shared folder that is also
// a download folder never offers half-written files.
const (
	PartSuffix  = ".fxpart"  // the data being downloaded
	StateSuffix = ".fxstate" // which chunks are on disk
	TmpSuffix   = ".fxtmp"   // a state file being replaced
)

// IsPartial reports whether base (a file name without folders) is one of
// a download's own files.
func IsPartial(base string) bool {
	return strings.HasPrefix(base, ".") &&
		(strings.HasSuffix(base, PartSuffix) || strings.HasSuffix(base, StateSuffix) || strings.HasSuffix(base, TmpSuffix))
}

// IsPathEscape reports whether err is os.Root refusing a path that leaves
// its folder (through "..", an absolute path or a symbolic link). The os
// package does not export that error, so its text is matched here, the one
// place that does (TestIsPathEscape pins it against the real os.Root).
func IsPathEscape(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) { // *fs.PathError, *os.LinkError, wrapped
		if err.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}

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
