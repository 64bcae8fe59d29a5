package pathglob

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"lectures/**/*.pdf", "lectures/a.pdf", true},
		{"lectures/**/*.pdf", "lectures/w1/a.pdf", true},
		{"lectures/**/*.pdf", "lectures/w1/deep/a.pdf", true},
		{"lectures/**/*.pdf", "lectures/w1/a.txt", false},
		{"lectures/**/*.pdf", "other/w1/a.pdf", false},
		{"lectures/**/*.pdf", "lecturesx/a.pdf", false},
		{"**/*.pdf", "a.pdf", true},
		{"**/*.pdf", "x/y/z/a.pdf", true},
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"a/**", "a/b/c", true},
		{"a/**", "a", false},    // a last ** takes one element at least
		{"a/**/b", "a/b", true}, // elsewhere, zero
		{"a/**", "b/c", false},
		{"**/w1/**", "x/w1/y/z", true},
		{"**/w1/**", "x/w2/y/z", false},
		{"a/**/b/**/c", "a/b/c", true},
		{"a/**/b/**/c", "a/x/b/y/b/z/c", true},
		{"a/**/b/**/c", "a/x/b/y/c/d", false},
		// * and ? never cross a '/'.
		{"*.pdf", "a.pdf", true},
		{"*.pdf", "w1/a.pdf", false},
		{"lectures/*", "lectures/w1/a.pdf", false},
		{"lectures/*/a.pdf", "lectures/w1/a.pdf", true},
		{"a?b", "a/b", false},
		// ** inside an element is path.Match's * twice.
		{"a**", "abc", true},
		{"a**", "a/bc", false},
		{`\*\*/x`, "**/x", true},
		{`\*\*/x`, "a/x", false},
		{"[ab]/**/?.txt", "b/q/r/c.txt", true},
		{"a[^x]b", "a/b", false}, // a class never matches '/' (path.Match's does)
	} {
		got, err := Match(tt.pattern, tt.name)
		if err != nil || got != tt.want {
			t.Errorf("Match(%q, %q) = %v, %v; want %v", tt.pattern, tt.name, got, err, tt.want)
		}
		// Without "**" or a class it agrees with path.Match.
		if !HasAny(tt.pattern) && !strings.Contains(tt.pattern, "[") {
			if pm, _ := path.Match(tt.pattern, tt.name); pm != got {
				t.Errorf("Match(%q, %q) = %v, path.Match says %v", tt.pattern, tt.name, got, pm)
			}
		}
	}
}

func TestBadPattern(t *testing.T) {
	for _, p := range []string{"a/[", "**/[b", `x\`} {
		if _, err := Match(p, "zzz"); !errors.Is(err, path.ErrBadPattern) {
			t.Errorf("Match(%q) err = %v, want path.ErrBadPattern", p, err)
		}
	}
}

func TestPrefix(t *testing.T) {
	for _, tt := range []struct{ pattern, want string }{
		{"lectures/**/*.pdf", "lectures/"},
		{"lectures/w1/*.pdf", "lectures/w1/"},
		{"**/*.pdf", ""},
		{"*.pdf", ""},
		{"a.pdf", ""},
		{"a/b", "a/"},
		{`my\ notes/\[x\]/**`, "my notes/[x]/"},
		{"a/w[12]/**", "a/"},
	} {
		if got := Prefix(tt.pattern); got != tt.want {
			t.Errorf("Prefix(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
		// Whatever the pattern matches lies under its prefix.
		for _, name := range []string{"lectures/w1/a.pdf", "a/b", "my notes/[x]/y", "a/w1/z"} {
			if ok, _ := Match(tt.pattern, name); ok && !strings.HasPrefix(name, tt.want) {
				t.Errorf("Match(%q, %q) but not under Prefix %q", tt.pattern, name, tt.want)
			}
		}
	}
}

// TestMatchIsNotExponential: many "**" against a long name that almost
// matches stays quick (backtracking to the last "**" only).
func TestMatchIsNotExponential(t *testing.T) {
	pattern := strings.Repeat("**/a/", 40) + "b"
	name := strings.Repeat("a/", 400) + "c"
	if ok, err := Match(pattern, name); ok || err != nil {
		t.Fatalf("Match = %v, %v", ok, err)
	}
}

// FuzzMatch: Match never panics, agrees with path.Match on patterns
// without "**", and a match lies under Prefix.
func FuzzMatch(f *testing.F) {
	f.Add("lectures/**/*.pdf", "lectures/w1/a.pdf")
	f.Add("**/[a-", "x")
	f.Add(`a\/**`, "a/b")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		ok, err := Match(pattern, name)
		if err != nil {
			return
		}
		// path.Match lets a class match '/' ("[^a]"); Match never does.
		if !HasAny(pattern) && !strings.Contains(pattern, "[") {
			if pm, perr := path.Match(pattern, name); perr == nil && pm != ok {
				t.Fatalf("Match(%q, %q) = %v, path.Match %v", pattern, name, ok, pm)
			}
		}
		if ok && !strings.HasPrefix(name, Prefix(pattern)) {
			t.Fatalf("Match(%q, %q) but not under %q", pattern, name, Prefix(pattern))
		}
	})
}
