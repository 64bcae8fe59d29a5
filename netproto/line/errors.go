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

// ErrorMsg returns the ERR line for e. The text travels as words, so runs
// of white space in it come out as single spaces.
func ErrorMsg(e *Error) Msg {
	words := strings.Fields(e.Msg)
	args := make([]string, 0, 1+len(words))
	args = append(args, strconv.Itoa(e.Code))
	args = append(args, words...)
	return NewMsg(VerbErr, args...)
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
	return &Error{Code: code, Msg: strings.Join(m.Args[1:], " ")}, nil
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
