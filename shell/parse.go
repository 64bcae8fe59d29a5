package shell

import (
	"errors"
	"fmt"
	"strings"
)

// MaxWords is the most words one command may have; MaxCommandLine the longest
// command line (in bytes) the shell accepts from a script or the prompt.
const (
	MaxWords       = 4096
	MaxCommandLine = 64 << 10
)

// A Command is one parsed command: its words, and whether it was written
// "-cmd" (may fail without stopping a script).
type Command struct {
	Words   []string
	MayFail bool
}

// errUnterminated is returned for a quote that is never closed.
var errUnterminated = errors.New("unterminated quote")

// A Syntax is how the command language reads a backslash. Everything else
// is the same in both: blanks separate words, an unquoted ';' separates
// commands, '…' and "…" quote (adjacent pieces join into one word), and an
// unquoted '#' at the start of a word starts a comment.
type Syntax uint8

const (
	// SyntaxPOSIX: as in sh, a backslash outside quotes escapes the next
	// character, and inside "…" it escapes " and \ (and writes \n, \t).
	// The default off Windows.
	SyntaxPOSIX Syntax = iota
	// SyntaxWindows: a backslash is an ordinary character, as in cmd and
	// PowerShell, so C:\Users\me\f.txt is typed as it is; '…' and "…"
	// hold anything but their own quote, so a word with both quotes is
	// written in pieces: 'say "hi" '"it's". The default on Windows
	// (syntax_windows.go).
	SyntaxWindows
)

// help is the line `help` prints about quoting.
func (sy Syntax) help() string {
	if sy == SyntaxWindows {
		return `Quoting: '…' or "…" keep blanks, ; and # in a word; \ is an ordinary character, so ` +
			`paths are typed as they are (send C:\Users\me\f.txt bob); a word with both quotes is ` +
			`written in pieces ('say "hi" '"it's").`
	}
	return `Quoting: '…' or "…" keep blanks, ; and # in a word; \ escapes the next character ` +
		`(a\ b), and inside "…" writes \" \\ \n \t.`
}

// ParseLine splits one input line into commands in this system's syntax
// (NativeSyntax).
func ParseLine(line string) ([]Command, error) { return NativeSyntax.Parse(line) }

// Quote returns w quoted so that ParseLine reads it back as one word.
func Quote(w string) string { return NativeSyntax.Quote(w) }

// Parse splits one input line into commands. Commands are separated by
// unquoted ';'. Words are separated by blanks; '…' quotes literally; in
// SyntaxPOSIX "…" quotes with backslash escapes (\" \\ \n \t) and a
// backslash outside quotes escapes the next character, in SyntaxWindows "…"
// quotes literally and a backslash is a character like any other; an
// unquoted '#' at the start of a word starts a comment that runs to the end
// of the line.
//
// Kept whole: a single-pass lexer whose state (quotes, escapes, comments)
// lives in one loop.
func (sy Syntax) Parse(line string) ([]Command, error) {
	if len(line) > MaxCommandLine {
		return nil, fmt.Errorf("line too long (%d bytes, at most %d)", len(line), MaxCommandLine)
	}
	escapes := sy != SyntaxWindows
	var (
		cmds  []Command
		words []string
		word  strings.Builder
		inW   bool // a word has started (possibly empty, from "")
	)
	endWord := func() error {
		if inW {
			if len(words) >= MaxWords {
				return fmt.Errorf("too many words (at most %d)", MaxWords)
			}
			words = append(words, word.String())
			word.Reset()
			inW = false
		}
		return nil
	}
	endCmd := func() {
		if len(words) > 0 {
			c := Command{Words: words}
			if w := c.Words[0]; len(w) > 1 && w[0] == '-' {
				c.MayFail = true
				c.Words[0] = w[1:]
			}
			cmds = append(cmds, c)
		}
		words = nil
	}
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n':
			if err := endWord(); err != nil {
				return nil, err
			}
		case ch == ';':
			if err := endWord(); err != nil {
				return nil, err
			}
			endCmd()
		case ch == '#' && !inW:
			i = len(line)
		case ch == '\\' && escapes:
			inW = true
			if i+1 < len(line) {
				i++
				word.WriteByte(line[i])
			}
		case ch == '\'' || ch == '"' && !escapes:
			inW = true
			j := strings.IndexByte(line[i+1:], ch)
			if j < 0 {
				return nil, errUnterminated
			}
			word.WriteString(line[i+1 : i+1+j])
			i += j + 1
		case ch == '"':
			inW = true
			closed := false
			for i++; i < len(line); i++ {
				c := line[i]
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' && i+1 < len(line) {
					i++
					switch line[i] {
					case 'n':
						word.WriteByte('\n')
					case 't':
						word.WriteByte('\t')
					case '"', '\\':
						word.WriteByte(line[i])
					default:
						word.WriteByte('\\')
						word.WriteByte(line[i])
					}
					continue
				}
				word.WriteByte(c)
			}
			if !closed {
				return nil, errUnterminated
			}
		default:
			inW = true
			word.WriteByte(ch)
		}
	}
	if err := endWord(); err != nil {
		return nil, err
	}
	endCmd()
	return cmds, nil
}

// specialChars are the characters that cannot stand unquoted in a word
// (a backslash only in SyntaxPOSIX).
const specialChars = " \t\r\n;#'\""

// Quote returns w quoted so that sy.Parse reads it back as one word.
func (sy Syntax) Quote(w string) string {
	if sy == SyntaxWindows {
		switch {
		case w != "" && !strings.ContainsAny(w, specialChars):
			return w
		case !strings.Contains(w, `"`):
			return `"` + w + `"`
		case !strings.Contains(w, "'"):
			return "'" + w + "'"
		}
		q, open := quoteWindows(w, 0)
		if open != 0 {
			q += string(open)
		}
		return q
	}
	if w != "" && !strings.ContainsAny(w, specialChars+"\\") {
		return w
	}
	if !strings.ContainsAny(w, "'") {
		return "'" + w + "'"
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(w) + `"`
}

// quoteWindows writes w for SyntaxWindows, which has no escapes, going on
// from the quote open (0, ' or "): plain text stays as it is (or inside
// the open quote), a special character opens a quote, and a quote
// character closes the open quote and opens the other kind. It returns the
// text and the quote left open (the caller closes it, or leaves it open
// for a completed folder name that goes on).
func quoteWindows(w string, open byte) (string, byte) {
	if !strings.ContainsAny(w, specialChars) {
		return w, open
	}
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c == '\'' || c == '"':
			want := byte('"') // a ' is written inside "…", a " inside '…'
			if c == '"' {
				want = '\''
			}
			if open != want {
				if open != 0 {
					b.WriteByte(open)
				}
				b.WriteByte(want)
				open = want
			}
		case open == 0 && strings.IndexByte(specialChars, c) >= 0:
			open = '"' // as cmd and PowerShell users write it
			b.WriteByte(open)
		}
		b.WriteByte(c)
	}
	return b.String(), open
}

// partialWords splits the text before the cursor into words for completion:
// it returns the finished words, the word being typed (unquoted), that word
// as typed (raw, quotes and escapes included), and the quote left open in
// it (0 if none).
func (sy Syntax) partialWords(line string) (done []string, cur, raw string, quote byte) {
	escapes := sy != SyntaxWindows
	var (
		word  strings.Builder
		inW   bool
		start int // where the current word begins in line
	)
	for i := 0; i < len(line); i++ {
		ch := line[i]
		if quote != 0 {
			if ch == quote {
				quote = 0
				continue
			}
			if escapes && quote == '"' && ch == '\\' && i+1 < len(line) {
				i++
				ch = line[i]
			}
			word.WriteByte(ch)
			continue
		}
		if !inW {
			start = i
		}
		switch ch {
		case ' ', '\t':
			if inW {
				done = append(done, word.String())
				word.Reset()
				inW = false
			}
		case ';':
			if inW {
				word.Reset()
				inW = false
			}
			done = nil
		case '\'', '"':
			quote = ch
			inW = true
		case '\\':
			inW = true
			if !escapes {
				word.WriteByte(ch)
			} else if i+1 < len(line) {
				i++
				word.WriteByte(line[i])
			}
		default:
			inW = true
			word.WriteByte(ch)
		}
	}
	if !inW {
		start = len(line)
	}
	return done, word.String(), line[start:], quote
}
