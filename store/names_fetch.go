package store

import (
	"fmt"
	"unicode"
)

// fetchProblem says why a name that is otherwise safe could not be typed
// or fetched safely by a person at a shell, or returns "". These names are
// refused everywhere NameProblem is asked (F lines at the master, the
// share index, the download side), so a peer cannot make a name that
// reads as an option, hides characters, or passes for another:
//
//   - a leading '-': `get -f` is an option, not the file "-f";
//   - a backslash or a drive prefix ("C:\win", "C:x"): separators and
//     roots on Windows, so the name means a path there;
//   - invisible characters: format characters (Unicode Cf: zero-width
//     joiners and spaces U+200B-U+200D, U+FEFF, U+2060, the soft hyphen,
//     tags ...), the Hangul fillers and the braille blank, which display
//     as nothing and make two names that look alike differ;
//   - spaces other than U+0020 (U+00A0, U+2000-U+200A, U+3000 ...), which
//     look like a space and are not one;
//   - a word mixing Latin letters with Cyrillic or Greek ones, the
//     confusables that make "pаper.pdf" (Cyrillic а) pass for "paper.pdf";
//     words in one script each ("Отчёт-report.pdf") are fine.
//
// Names with glob characters ("[draft] notes?.txt") are fine: `get` looks
// a name up exactly before it treats it as a glob. Names reserved on
// Windows only (CON, aux.txt) are fine too: a Windows downloader refuses
// them itself.
func fetchProblem(name string) string {
	switch {
	case name[0] == '-':
		return "leading '-' (it reads as an option)"
	case len(name) >= 2 && name[1] == ':' && ('a' <= name[0]|0x20 && name[0]|0x20 <= 'z'):
		return "drive prefix"
	}
	var word [3]bool // scripts seen in the current word: Latin, Cyrillic, Greek
	for _, r := range name {
		switch {
		case r == '\\':
			return "backslash (a separator on Windows)"
		case unicode.Is(unicode.Cf, r) || invisible(r):
			return fmt.Sprintf("invisible character U+%04X", r)
		case r != ' ' && unicode.Is(unicode.Zs, r):
			return fmt.Sprintf("space character U+%04X that is not a space", r)
		}
		if !unicode.IsLetter(r) && !unicode.Is(unicode.Mn, r) {
			word = [3]bool{}
			continue
		}
		switch {
		case unicode.Is(unicode.Latin, r):
			word[0] = true
		case unicode.Is(unicode.Cyrillic, r):
			word[1] = true
		case unicode.Is(unicode.Greek, r):
			word[2] = true
		}
		if word[0] && (word[1] || word[2]) {
			return "a word mixing Latin with Cyrillic or Greek letters (it passes for another name)"
		}
	}
	return ""
}

// invisible reports the characters outside Cf that display as nothing.
func invisible(r rune) bool {
	switch r {
	case '\u034f', // combining grapheme joiner
		'\u115f', '\u1160', '\u3164', '\uffa0', // Hangul fillers
		'\u2800': // braille blank
		return true
	}
	return false
}
