package partfile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/fxshell/fxsh/store"
	"path"
	"runtime"
	"strings"
)

// Name limits.
const (
	// MaxComponentLen is the longest folder or file name in a name, in
	// bytes: what common file systems allow.
	MaxComponentLen = 255
)

// CheckName reports whether name, as reported by a peer, is safe to create
// inside a download folder and valid as a file name on this system:
// CheckNameFor(name, runtime.GOOS).
func CheckName(name string) error { return CheckNameFor(name, runtime.GOOS) }

// CheckNameFor reports whether name can be created inside a download folder
// on the system goos (a runtime.GOOS value). Two kinds of refusal:
//
//   - ErrUnsafeName, on every system: a name that is absolute, not
//     '/'-separated and clean (backslash, empty, "." or ".." component),
//     not valid UTF-8, with control characters, longer than store.MaxNameLen or
//     with a component longer than MaxComponentLen, or ending in one of
//     fxsh's own suffixes. No peer should send these.
//   - ErrNotValidHere, on Windows only: a Windows device name (CON, NUL,
//     AUX, COM1, LPT1, ... with any extension), the characters <>:"|?*, or a
//     component ending in a dot or a space. These are fine names on Linux
//     and macOS, so they are shared and listed; a Windows downloader saves
//     them under another name instead (get NAME --as NEWNAME).
//
// The error quotes the name.
func CheckNameFor(name, goos string) error {
	if reason := nameProblem(name); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrUnsafeName, name, reason)
	}
	if goos == "windows" {
		if reason := windowsProblem(name); reason != "" {
			return fmt.Errorf("%q %w: %s", name, ErrNotValidHere, reason)
		}
	}
	return nil
}

// nameProblem says why name is unsafe everywhere, or "".
func nameProblem(name string) string {
	if p := store.NameProblem(name, store.MaxNameLen); p != "" {
		return p
	}
	if strings.ContainsRune(name, '\\') {
		return "backslash"
	}
	for c := range strings.SplitSeq(name, "/") {
		switch {
		case c == "":
			return "empty component"
		case c == "." || c == "..":
			return fmt.Sprintf("%q component", c)
		case len(c) > MaxComponentLen:
			return fmt.Sprintf("component longer than %d bytes", MaxComponentLen)
		}
	}
	base := path.Base(name)
	for _, s := range []string{store.PartSuffix, store.StateSuffix, store.TmpSuffix} {
		if strings.HasSuffix(base, s) {
			return fmt.Sprintf("%q is a reserved suffix", s)
		}
	}
	return ""
}

// windowsProblem says why Windows cannot hold a file under name, or "".
func windowsProblem(name string) string {
	for _, r := range name {
		if strings.ContainsRune(`<>:"|?*`, r) {
			return fmt.Sprintf("%q is not allowed in Windows file names", r)
		}
	}
	for c := range strings.SplitSeq(name, "/") {
		switch {
		case isDeviceName(c):
			stem, _, _ := strings.Cut(c, ".")
			return fmt.Sprintf("%q is a Windows device name", strings.TrimRight(stem, " "))
		case strings.HasSuffix(c, ".") || strings.HasSuffix(c, " "):
			return "Windows drops a dot or space at the end of a name"
		}
	}
	return ""
}

// isDeviceName reports whether Windows would take component c for a
// device: the part before the first dot, without trailing spaces, is one
// of the reserved names, in any case.
func isDeviceName(c string) bool {
	stem, _, _ := strings.Cut(c, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$":
		return true
	}
	if len(stem) >= 4 && (strings.HasPrefix(stem, "COM") || strings.HasPrefix(stem, "LPT")) {
		switch stem[3:] {
		case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³":
			return true
		}
	}
	return false
}

// sideName returns the name of a file kept beside the final name: a hidden
// ".BASE" + suffix in the same folder, or, when that would be too long for
// a file system, a hidden name made from a hash of BASE.
//
// Names that differ only in case ("Report.TXT", "report.txt") are one file
// on a case-insensitive file system (Windows, macOS by default), so their
// side files must differ in something case cannot change: a BASE that is
// not foldStable gets "~" and 16 hex digits of its exact bytes' hash before
// the suffix. A foldStable BASE has no "~", so its side name can never
// equal a tagged one however the file system folds case; and two tagged
// ones are equal only if the hashes are.
func sideName(name, suffix string) string {
	dir, base := path.Split(name)
	sum := sha256.Sum256([]byte(base))
	side := "." + base
	if !foldStable(base) {
		side += "~" + hex.EncodeToString(sum[:8])
	}
	side += suffix
	if len(side) > MaxComponentLen {
		side = ".fx~" + hex.EncodeToString(sum[:20]) + suffix
	}
	return dir + side
}

// foldStable reports whether no other name folds to the same file as s on
// a case-insensitive file system: s is ASCII without upper-case letters
// (and without "~", which marks sideName's tags). Non-ASCII letters have
// case mappings (and file systems that differ on them), so they count as
// unstable.
func foldStable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || 'A' <= c && c <= 'Z' || c == '~' {
			return false
		}
	}
	return true
}
