package line

import "time"

// Direction says which way a traced line went.
type Direction int8

// Directions of a TraceEvent.
const (
	In  Direction = iota // received from Remote
	Out                  // sent to Remote
)

func (d Direction) String() string {
	if d == In {
		return "<-"
	}
	return "->"
}

// TraceEvent is one protocol line seen by a role, for "trace on".
type TraceEvent struct {
	Time   time.Time
	Dir    Direction
	Local  string // this end's address (for a capture)
	Remote string // the peer's address
	Line   string // the raw line without its terminator
	End    string // the terminator that was stripped: "\n", "\r\n" or ""
}

// TraceHooks returns Reader and Writer trace hooks that report lines
// exchanged between local and remote to fn, or nils when fn is nil so that
// an untraced connection copies nothing.
func TraceHooks(fn func(TraceEvent), local, remote string) (in, out func([]byte)) {
	if fn == nil {
		return nil, nil
	}
	mk := func(d Direction) func([]byte) {
		return func(b []byte) {
			n := len(b)
			for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
				b = b[:len(b)-1]
			}
			end := ""
			switch n - len(b) {
			case 1:
				end = "\n"
			case 2:
				end = "\r\n"
			}
			fn(TraceEvent{Time: time.Now(), Dir: d, Local: local, Remote: remote, Line: string(b), End: end})
		}
	}
	return mk(In), mk(Out)
}
