package line

import (
	"fmt"
	"strconv"
	"strings"
)

// Error is a refusal the peer sent on purpose: "ERR <code> <text>".
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%03d %s", e.Code, e.Msg) }

// Errorf returns an *Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ErrorMsg returns the ERR line for e. The text runs to the end of the
// line unescaped, so control characters in it become spaces and
// surrounding spaces are dropped.
func ErrorMsg(e *Error) Msg {
	text := strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(e.Msg, "?")))
	if text == "" {
		return NewMsg(VerbErr, strconv.Itoa(e.Code))
	}
	return NewMsg(VerbErr, strconv.Itoa(e.Code), text)
}

// ParseError returns the *Error an ERR line carries.
func ParseError(m Msg) (*Error, error) {
	if m.Verb != VerbErr {
		return nil, &ProtocolError{Reason: "not an ERR line", Input: m.Verb}
	}
	code, err := strconv.Atoi(m.Arg(0))
	if err != nil || code < 100 || code > 999 {
		return nil, &ProtocolError{Reason: "bad error code", Input: m.Arg(0)}
	}
	return &Error{Code: code, Msg: m.Arg(1)}, nil
}

// maxQuoted bounds how much of a bad input a ProtocolError repeats, so an
// error message stays one readable line.
const maxQuoted = 80

// ProtocolError is garbage the peer sent: the reason and the offending
// input, which Error quotes with %q.
type ProtocolError struct {
	Reason string
	Input  string
}

func (e *ProtocolError) Error() string {
	in := e.Input
	if len(in) > maxQuoted {
		in = in[:maxQuoted] + "..."
	}
	return fmt.Sprintf("%s: %q", e.Reason, in)
}
