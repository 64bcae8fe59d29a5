package shell

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// compCtx is what a command's completer sees.
type compCtx struct {
	argIndex int      // index of the word being completed among the arguments
	prev     []string // the arguments before it
	cur      string   // the partial word (unquoted)
}

// completer implements readline.AutoCompleter over the command table:
// command names for the first word, then each command's own completion for
// every argument (not only the first).
type completer struct {
	get func() *Shell
}

// Do returns the candidate suffixes for the word before pos and the length
// of the partial word they extend.
func (c *completer) Do(line []rune, pos int) ([][]rune, int) {
	s := c.get()
	if s == nil || pos > len(line) {
		return nil, 0
	}
	cands, cur := s.completions(string(line[:pos]))
	out := make([][]rune, 0, len(cands))
	for _, cand := range cands {
		out = append(out, []rune(cand[len(cur):]))
	}
	return out, len([]rune(cur))
}

// completions returns full candidates (escaped for the line) for the text
// before the cursor, and the partial word they complete.
func (s *Shell) completions(before string) ([]string, string) {
	done, cur := partialWords(before)
	var cands []string
	if len(done) == 0 {
		dash := strings.HasPrefix(cur, "-")
		for _, n := range s.commandNames() {
			if dash {
				n = "-" + n
			}
			cands = append(cands, n)
		}
	} else {
		name := strings.TrimPrefix(done[0], "-")
		spec, ok := s.byName[name]
		if !ok || spec.complete == nil {
			return nil, cur
		}
		cands = spec.complete(s, &compCtx{argIndex: len(done) - 1, prev: done[1:], cur: cur})
	}
	var out []string
	seen := map[string]bool{}
	for _, cand := range cands {
		if !strings.HasPrefix(cand, cur) || seen[cand] {
			continue
		}
		seen[cand] = true
		w := escapeWord(cand)
		if !strings.HasSuffix(cand, "/") {
			w += " "
		}
		out = append(out, w)
	}
	sort.Strings(out)
	// The partial word as typed is compared unescaped; candidates carry the
	// escaped form of what follows.
	return out, escapeWord(cur)
}

// escapeWord escapes characters the parser treats specially.
func escapeWord(w string) string {
	if !strings.ContainsAny(w, " \t;#'\"\\") {
		return w
	}
	var b strings.Builder
	for _, r := range w {
		if strings.ContainsRune(" \t;#'\"\\", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// localPaths completes a local file or folder path.
func localPaths(cur string) []string {
	dir, base := filepath.Split(cur)
	read := dir
	if read == "" {
		read = "."
	}
	if strings.HasPrefix(read, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			read = filepath.Join(h, read[2:])
		}
	}
	ents, err := os.ReadDir(read)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, base) || strings.HasPrefix(n, ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		p := dir + n
		if e.IsDir() {
			p += "/"
		} else if e.Type()&os.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(read, n)); err == nil && st.IsDir() {
				p += "/"
			}
		}
		out = append(out, p)
		if len(out) >= 1000 {
			break
		}
	}
	return out
}

// remoteNames completes names from the last catalog answer.
func (s *Shell) remoteNames(cur string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, n := range s.lastNames {
		if strings.HasPrefix(n, cur) {
			out = append(out, n)
		}
	}
	return out
}
