package shareindex

import (
	"fmt"
	"github.com/fxshell/fxsh/store"
	"strings"
)

// CheckName reports whether name can be sent to peers safely: a relative,
// '/'-separated name of valid UTF-8 with no control characters, no
// backslash (a separator on Windows), no empty, "." or ".." component and at
// most store.MaxNameLen bytes (the line protocol's limit, so every indexed
// name can be registered). The error wraps ErrUnsafeName and quotes the name.
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
		return "backslash" // a separator on Windows: the name would not survive there
	}
	return ""
}
