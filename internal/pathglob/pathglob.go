// Package pathglob matches '/'-separated file names against patterns that
// reach across folders.
//
// A pattern is split at '/' into elements. An element "**" matches zero or
// more whole elements of the name (any depth of folders); every other
// element matches exactly one element of the name with path.Match's
// syntax (so '*', '?' and a class never cross a '/', "[a-z]" is a class
// and '\' escapes; path.Match itself lets "[^a]" match a '/'). A last element "**" after a folder ("a/**") takes at least one
// element, as in .gitignore: everything inside a, not a file named "a". "**" next to other characters ("a**") is two '*' of
// path.Match: one element. Prefix gives the folder a pattern cannot leave,
// so that a caller lists only that folder before matching.
package pathglob

import (
	"path"
	"strings"
)

// Any is the element that matches any number of folders.
const Any = "**"

// HasAny reports whether pattern has an element "**".
func HasAny(pattern string) bool {
	for el := range strings.SplitSeq(pattern, "/") {
		if el == Any {
			return true
		}
	}
	return false
}

// Valid checks pattern's syntax: path.ErrBadPattern for a malformed
// element.
func Valid(pattern string) error {
	for el := range strings.SplitSeq(pattern, "/") {
		if el == Any {
			continue
		}
		if _, err := path.Match(el, ""); err != nil {
			return err
		}
	}
	return nil
}

// Match reports whether name matches pattern. A malformed pattern is
// path.ErrBadPattern, whatever the name.
//
// The elements are matched as a wildcard string whose only wildcard is
// "**": on a mismatch the match goes back to the last "**" and lets it take
// one more element, so a match costs at most elements(pattern) ×
// elements(name) element comparisons, never exponential time.
func Match(pattern, name string) (bool, error) {
	if err := Valid(pattern); err != nil {
		return false, err
	}
	pat := strings.Split(pattern, "/")
	if n := len(pat); n > 1 && pat[n-1] == Any {
		pat = append(pat[:n-1], "*", Any) // inside the folder: one element at least
	}
	elems := strings.Split(name, "/")
	pi, ni := 0, 0
	star, starN := -1, 0 // the last "**" seen, and the name element it stops before
	for ni < len(elems) {
		if pi < len(pat) && pat[pi] == Any {
			star, starN = pi, ni
			pi++
			continue
		}
		if pi < len(pat) {
			if ok, _ := path.Match(pat[pi], elems[ni]); ok {
				pi++
				ni++
				continue
			}
		}
		if star < 0 {
			return false, nil
		}
		starN++
		pi, ni = star+1, starN
	}
	for pi < len(pat) && pat[pi] == Any {
		pi++
	}
	return pi == len(pat), nil
}

// Prefix returns the folder every name matching pattern lies under: its
// leading elements without metacharacters, escapes resolved, joined and
// ending in "/"; "" when the first element already has one (or the
// pattern is a single element).
func Prefix(pattern string) string {
	els := strings.Split(pattern, "/")
	var b strings.Builder
	for _, el := range els[:len(els)-1] {
		lit, ok := literal(el)
		if !ok {
			break
		}
		b.WriteString(lit + "/")
	}
	return b.String()
}

// literal returns el with its escapes resolved when it has no '*', '?' or
// '[' outside an escape.
func literal(el string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(el); i++ {
		switch c := el[i]; c {
		case '*', '?', '[':
			return "", false
		case '\\':
			if i+1 < len(el) {
				i++
			}
			b.WriteByte(el[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}
