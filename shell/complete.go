package shell

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
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
	cands, raw := s.completions(string(line[:pos]))
	out := make([][]rune, 0, len(cands))
	for _, cand := range cands {
		out = append(out, []rune(cand[len(raw):]))
	}
	return out, len([]rune(raw))
}

// completions returns the candidates for the word before the cursor, each
// as the whole word would stand on the line (the text typed, then the rest
// quoted the way the typed part is: escaped outside quotes, inside an open
// quote kept inside it and the quote closed), and the word as typed.
// readline appends what follows the typed text.
func (s *Shell) completions(before string) ([]string, string) {
	done, cur, raw, quote := s.syntax.partialWords(before)
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
		if s.syntax == SyntaxPOSIX && quote == '\'' && strings.ContainsRune(cand[len(cur):], '\'') {
			continue // no way to write ' inside '…'
		}
		seen[cand] = true
		rest, open := s.syntax.quoteRest(cand[len(cur):], quote)
		w := raw + rest
		if !isFolderWord(cand) { // a folder: the word goes on
			if open != 0 {
				w += string(open)
			}
			w += " "
		}
		out = append(out, w)
	}
	sort.Strings(out)
	return out, raw
}

// quoteRest writes the rest of a completed word so that the parser reads
// it back, going on from the quote left open in the typed part, and returns
// the quote open at its end. SyntaxPOSIX: inside "…" with \ and \" escaped,
// inside '…' as it is, outside quotes with special characters escaped (the
// quote stays as it was). SyntaxWindows has no escapes: a special character
// opens a quote (C:\Program" Files\"), a quote switches to the other kind.
func (sy Syntax) quoteRest(rest string, quote byte) (string, byte) {
	if sy == SyntaxWindows {
		return quoteWindows(rest, quote)
	}
	switch quote {
	case '"':
		return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(rest), quote
	case '\'':
		return rest, quote
	}
	return escapeWord(rest), 0
}

// isFolderWord: a completed word naming a folder ends in a separator, and
// the word goes on after it (no closing quote, no blank).
func isFolderWord(w string) bool {
	return strings.HasSuffix(w, "/") || filepath.Separator == '\\' && strings.HasSuffix(w, `\`)
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
	if strings.HasPrefix(read, "~/") || filepath.Separator == '\\' && strings.HasPrefix(read, `~\`) {
		if h, err := os.UserHomeDir(); err == nil {
			read = filepath.Join(h, read[2:])
		}
	}
	ents, err := os.ReadDir(read)
	if err != nil {
		return nil
	}
	// A folder ends in the system's separator (\ on Windows), unless the
	// path typed so far is written with / (which Windows takes too).
	sep := string(filepath.Separator)
	if strings.Contains(cur, "/") && !strings.Contains(cur, sep) {
		sep = "/"
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, base) || strings.HasPrefix(n, ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		p := dir + n
		if e.IsDir() {
			p += sep
		} else if e.Type()&os.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(read, n)); err == nil && st.IsDir() {
				p += sep
			}
		}
		out = append(out, p)
		if len(out) >= 1000 {
			break
		}
	}
	return out
}

// Remote name completion asks the master for the whole list (one LIST, at
// most the master's cap of names) and keeps it remoteNamesTTL, so Tab works
// before any list and a burst of Tabs costs one query. A master slower than
// remoteNamesTimeout, or gone, leaves the names already known.
const (
	remoteNamesTTL     = 5 * time.Second
	remoteNamesTimeout = 1500 * time.Millisecond
)

// remoteNames completes names from the master (cached) and from the last
// list or search answer.
func (s *Shell) remoteNames(cur string) []string {
	s.refreshRemoteNames()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, names := range [][]string{s.remoteCache, s.lastNames} {
		for _, n := range names {
			if strings.HasPrefix(n, cur) {
				out = append(out, n)
			}
		}
	}
	return out
}

// refreshRemoteNames fetches every name from the master if the cache is
// older than remoteNamesTTL.
func (s *Shell) refreshRemoteNames() {
	s.mu.Lock()
	fresh := time.Since(s.remoteAt) < remoteNamesTTL
	if !fresh {
		s.remoteAt = time.Now() // one query at a time, even if it fails
	}
	s.mu.Unlock()
	if fresh {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, remoteNamesTimeout)
	defer cancel()
	cl, err := s.client(ctx)
	if err != nil {
		return
	}
	entries, _, err := cl.List(ctx, "", 0)
	if err != nil {
		return
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	s.mu.Lock()
	s.remoteCache = names
	s.remoteAt = time.Now()
	s.mu.Unlock()
}
