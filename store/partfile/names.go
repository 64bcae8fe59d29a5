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
// inside a download folder on any system: relative, '/'-separated, valid
// UTF-8, no control characters, no backslash, no empty, "." or ".."
// component, no Windows device name (CON, NUL, COM1, LPT1, ... with any
// extension), no reserved suffix (store.PartSuffix ...), within
// store.MaxNameLen and MaxComponentLen. On Windows the characters <>:"|?* and components ending in a dot or a space
// are refused too. The error wraps ErrUnsafeName and quotes the name.
func CheckName(name string) error {
	if reason := nameProblem(name); reason != "" {
		return fmt.Errorf("%w %q: %s", ErrUnsafeName, name, reason)
	}
	return nil
}

func nameProblem(name string) string {
	if p := store.NameProblem(name, store.MaxNameLen); p != "" {
		return p
	}
	if strings.ContainsRune(name, '\\') {
		return "backslash"
	}
	if runtime.GOOS == "windows" {
		for _, r := range name {
			if strings.ContainsRune(`<>:"|?*`, r) {
				return fmt.Sprintf("%q not allowed on Windows", r)
			}
		}
	}
	for c := range strings.SplitSeq(name, "/") {
		switch {
		case c == "":
			return "empty component"
		case c == "." || c == "..":
			return fmt.Sprintf("%q component", c)
		case len(c) > MaxComponentLen:
			return fmt.Sprintf("component longer than %d bytes", MaxComponentLen)
		case isDeviceName(c):
			return fmt.Sprintf("%q is a Windows device name", c)
		case runtime.GOOS == "windows" && (strings.HasSuffix(c, ".") || strings.HasSuffix(c, " ")):
			return "component ending in a dot or space"
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
func sideName(name, suffix string) string {
	dir, base := path.Split(name)
	side := "." + base + suffix
	if len(side) > MaxComponentLen {
		sum := sha256.Sum256([]byte(base))
		side = ".fx-" + hex.EncodeToString(sum[:20]) + suffix
	}
	return dir + side
}
