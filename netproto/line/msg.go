package line

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Token limits. They keep a parsed Msg small whatever the line holds.
const (
	MaxVerb   = 16  // bytes in a verb
	MaxKey    = 32  // bytes in a field key
	MaxTokens = 256 // tokens (verb, arguments and fields) on one line
)

// Msg is one protocol line: VERB, positional arguments, key=value fields.
// The zero Msg is not valid: a Msg needs a verb.
type Msg struct {
	Verb   string   // upper-case ASCII letters, digits and '_'; starts with a letter
	Args   []string // non-empty values
	Fields []Field  // distinct keys, in line order
}

// Field is one key=value pair.
type Field struct {
	Key   string // lower-case ASCII letters, digits and '_'; starts with a letter
	Value string // any UTF-8, possibly empty
}

// NewMsg returns a Msg with the given verb and positional arguments.
func NewMsg(verb string, args ...string) Msg {
	return Msg{Verb: verb, Args: args}
}

// With returns a copy of m with key=value appended. It never modifies m's
// backing arrays, so chains of With on a shared Msg are safe.
func (m Msg) With(key, value string) Msg {
	m.Fields = append(m.Fields[:len(m.Fields):len(m.Fields)], Field{key, value})
	return m
}

// WithInt is With for an integer value.
func (m Msg) WithInt(key string, v int64) Msg {
	return m.With(key, strconv.FormatInt(v, 10))
}

// Get returns the value of key and whether it is present.
func (m Msg) Get(key string) (string, bool) {
	for _, f := range m.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// Value returns the value of key, or "" when it is absent.
func (m Msg) Value(key string) string {
	v, _ := m.Get(key)
	return v
}

// Arg returns the i-th positional argument, or "" when there is none.
func (m Msg) Arg(i int) string {
	if i < 0 || i >= len(m.Args) {
		return ""
	}
	return m.Args[i]
}

// Int returns the value of key as a decimal integer. A missing or malformed
// value is a *ProtocolError.
func (m Msg) Int(key string) (int64, error) {
	v, ok := m.Get(key)
	if !ok {
		return 0, &ProtocolError{Reason: "missing field", Input: key}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, &ProtocolError{Reason: "field " + key + ": not an integer", Input: v}
	}
	return n, nil
}

// OptInt is Int with a default for an absent key.
func (m Msg) OptInt(key string, def int64) (int64, error) {
	if _, ok := m.Get(key); !ok {
		return def, nil
	}
	return m.Int(key)
}

// Require returns the value of key, or a *ProtocolError when it is absent.
func (m Msg) Require(key string) (string, error) {
	v, ok := m.Get(key)
	if !ok {
		return "", &ProtocolError{Reason: "missing field", Input: key}
	}
	return v, nil
}

// String returns m as it appears on the wire, without the LF, or a
// description of why it cannot be encoded.
func (m Msg) String() string {
	b, err := AppendMsg(nil, m)
	if err != nil {
		return fmt.Sprintf("<invalid %s: %v>", m.Verb, err)
	}
	return string(b[:len(b)-1])
}

// AppendMsg appends m as one LF-terminated line to b. It fails on an
// invalid verb or key, an empty argument, a duplicate key, invalid UTF-8 or
// more than MaxTokens tokens; it does not check the line length (Writer
// does). Values are escaped: space \s, LF \n, CR \r, TAB \t, backslash \\,
// other C0 controls and DEL \xHH, and '=' \e in positional arguments only
// (a field splits at its first '=', so its value may hold '=' as is).
func AppendMsg(b []byte, m Msg) ([]byte, error) {
	if !validVerb(m.Verb) {
		return b, &ProtocolError{Reason: "invalid verb", Input: m.Verb}
	}
	if 1+len(m.Args)+len(m.Fields) > MaxTokens {
		return b, &ProtocolError{Reason: "too many tokens", Input: m.Verb}
	}
	start := len(b)
	b = append(b, m.Verb...)
	if m.Verb == VerbErr {
		return appendErr(b, start, m)
	}
	for _, a := range m.Args {
		if a == "" {
			return b[:start], &ProtocolError{Reason: "empty argument", Input: m.Verb}
		}
		if !utf8.ValidString(a) {
			return b[:start], &ProtocolError{Reason: "invalid UTF-8", Input: a}
		}
		b = append(b, ' ')
		b = appendEscaped(b, a, true)
	}
	for i, f := range m.Fields {
		if !validKey(f.Key) {
			return b[:start], &ProtocolError{Reason: "invalid key", Input: f.Key}
		}
		for _, g := range m.Fields[:i] {
			if g.Key == f.Key {
				return b[:start], &ProtocolError{Reason: "duplicate key", Input: f.Key}
			}
		}
		if !utf8.ValidString(f.Value) {
			return b[:start], &ProtocolError{Reason: "invalid UTF-8", Input: f.Value}
		}
		b = append(b, ' ')
		b = append(b, f.Key...)
		b = append(b, '=')
		b = appendEscaped(b, f.Value, false)
	}
	return append(b, '\n'), nil
}

// appendErr writes "ERR <code> <text>": the text, the second argument,
// runs to the end of the line as is, so that people reading the wire see
// plain messages; it may not hold control characters or start or end with
// a space (ErrorMsg makes it so).
func appendErr(b []byte, start int, m Msg) ([]byte, error) {
	if len(m.Args) > 2 || len(m.Fields) > 0 {
		return b[:start], &ProtocolError{Reason: "ERR takes a code and a text", Input: m.Verb}
	}
	if len(m.Args) > 0 {
		if m.Args[0] == "" || !utf8.ValidString(m.Args[0]) {
			return b[:start], &ProtocolError{Reason: "bad ERR code", Input: m.Args[0]}
		}
		b = append(b, ' ')
		b = appendEscaped(b, m.Args[0], true)
	}
	if len(m.Args) == 2 {
		text := m.Args[1]
		if text == "" || text[0] == ' ' || text[len(text)-1] == ' ' || !utf8.ValidString(text) || hasControl(text) {
			return b[:start], &ProtocolError{Reason: "bad ERR text", Input: text}
		}
		b = append(b, ' ')
		b = append(b, text...)
	}
	return append(b, '\n'), nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

const hexDigits = "0123456789abcdef"

func appendEscaped(b []byte, s string, arg bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b = append(b, `\s`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c == '\\':
			b = append(b, `\\`...)
		case c == '=' && arg:
			b = append(b, `\e`...)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return b
}

// ParseMsg parses the first line of b, which must end in LF (a CR before
// it is dropped), and returns the message and the bytes consumed. Without
// an LF in b it returns io.ErrUnexpectedEOF; it does not bound the line
// length (Reader does). Runs of spaces separate tokens; the verb is
// accepted in any case and returned in upper case. Bad input is a
// *ProtocolError; the line is consumed either way, so a caller can answer
// and go on with the next line.
func ParseMsg(b []byte) (Msg, int, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return Msg{}, 0, io.ErrUnexpectedEOF
	}
	n := i + 1
	body := b[:i]
	if len(body) > 0 && body[len(body)-1] == '\r' {
		body = body[:len(body)-1]
	}
	m, err := parseBody(body)
	return m, n, err
}

func parseBody(body []byte) (Msg, error) {
	if !utf8.Valid(body) {
		return Msg{}, &ProtocolError{Reason: "invalid UTF-8", Input: string(body)}
	}
	var m Msg
	tokens := 0
	for len(body) > 0 {
		if body[0] == ' ' {
			body = body[1:]
			continue
		}
		end := bytes.IndexByte(body, ' ')
		if end < 0 {
			end = len(body)
		}
		tok := body[:end]
		body = body[end:]
		tokens++
		if tokens > MaxTokens {
			return Msg{}, &ProtocolError{Reason: "too many tokens", Input: string(tok)}
		}
		if m.Verb == "" {
			v := string(bytes.ToUpper(tok))
			if !validVerb(v) {
				return Msg{}, &ProtocolError{Reason: "invalid verb", Input: string(tok)}
			}
			m.Verb = v
			if v == VerbErr {
				return parseErr(m, body)
			}
			continue
		}
		if eq := bytes.IndexByte(tok, '='); eq >= 0 {
			key := string(tok[:eq])
			if !validKey(key) {
				return Msg{}, &ProtocolError{Reason: "invalid key", Input: string(tok)}
			}
			if _, dup := m.Get(key); dup {
				return Msg{}, &ProtocolError{Reason: "duplicate key", Input: key}
			}
			val, err := unescape(tok[eq+1:])
			if err != nil {
				return Msg{}, err
			}
			m.Fields = append(m.Fields, Field{key, val})
			continue
		}
		arg, err := unescape(tok)
		if err != nil {
			return Msg{}, err
		}
		m.Args = append(m.Args, arg)
	}
	if m.Verb == "" {
		return Msg{}, &ProtocolError{Reason: "empty line", Input: ""}
	}
	return m, nil
}

// parseErr reads the rest of an ERR line: a code token and the text up to
// the end of the line, taken as is but for surrounding spaces.
func parseErr(m Msg, rest []byte) (Msg, error) {
	rest = bytes.Trim(rest, " ")
	if len(rest) == 0 {
		return m, nil
	}
	code, text, _ := bytes.Cut(rest, []byte(" "))
	c, err := unescape(code)
	if err != nil {
		return Msg{}, err
	}
	m.Args = append(m.Args, c)
	if text = bytes.Trim(text, " "); len(text) > 0 {
		if hasControl(string(text)) {
			return Msg{}, &ProtocolError{Reason: "raw control character", Input: string(text)}
		}
		m.Args = append(m.Args, string(text))
	}
	return m, nil
}

func unescape(tok []byte) (string, error) {
	if bytes.IndexByte(tok, '\\') < 0 {
		for _, c := range tok {
			if c < 0x20 || c == 0x7f {
				return "", &ProtocolError{Reason: "raw control character", Input: string(tok)}
			}
		}
		return string(tok), nil
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c < 0x20 || c == 0x7f {
			return "", &ProtocolError{Reason: "raw control character", Input: string(tok)}
		}
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 >= len(tok) {
			return "", &ProtocolError{Reason: "dangling backslash", Input: string(tok)}
		}
		i++
		switch tok[i] {
		case 's':
			out = append(out, ' ')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case '\\':
			out = append(out, '\\')
		case 'e':
			out = append(out, '=')
		case 'x':
			if i+2 >= len(tok) {
				return "", &ProtocolError{Reason: "short \\x escape", Input: string(tok)}
			}
			v, ok := unhex(tok[i+1], tok[i+2])
			if !ok || (v >= 0x20 && v != 0x7f) {
				// \x is for control characters only, so a decoded value
				// is always valid UTF-8 and has one spelling.
				return "", &ProtocolError{Reason: "bad \\x escape", Input: string(tok)}
			}
			out = append(out, v)
			i += 2
		default:
			return "", &ProtocolError{Reason: "unknown escape", Input: string(tok)}
		}
	}
	return string(out), nil
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexVal(a)
	y, ok2 := hexVal(b)
	return x<<4 | y, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func validVerb(s string) bool {
	if s == "" || len(s) > MaxVerb || !('A' <= s[0] && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validKey(s string) bool {
	if s == "" || len(s) > MaxKey || !('a' <= s[0] && s[0] <= 'z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ErrLineTooLong is returned by Reader when a line exceeds its limit and by
// Writer when a message would.
var ErrLineTooLong = errors.New("line too long")
