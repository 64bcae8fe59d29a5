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

// ParseLine splits one input line into commands. Commands are separated by
// unquoted ';'. Words are separated by blanks; "…" quotes with backslash
// escapes (\" \\ \n \t), '…' quotes literally, a backslash outside quotes
// escapes the next character, and an unquoted '#' at the start of a word
// starts a comment that runs to the end of the line.
//
// Kept whole: a single-pass lexer whose state (quotes, escapes, comments)
// lives in one loop.
func ParseLine(line string) ([]Command, error) {
	if len(line) > MaxCommandLine {
		return nil, fmt.Errorf("line too long (%d bytes, at most %d)", len(line), MaxCommandLine)
	}
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
		case ch == '\\':
			inW = true
			if i+1 < len(line) {
				i++
				word.WriteByte(line[i])
			}
		case ch == '\'':
			inW = true
			j := strings.IndexByte(line[i+1:], '\'')
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

// Quote returns w quoted so that ParseLine reads it back as one word.
func Quote(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\r\n;#'\"\\") {
		return w
	}
	if !strings.ContainsAny(w, "'") {
		return "'" + w + "'"
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(w) + `"`
}

// partialWords splits the text before the cursor into words for completion:
// it returns the finished words, the word being typed (unquoted), that word
// as typed (raw, quotes and escapes included), and the quote left open in
// it (0 if none).
func partialWords(line string) (done []string, cur, raw string, quote byte) {
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
			if quote == '"' && ch == '\\' && i+1 < len(line) {
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
			if i+1 < len(line) {
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
