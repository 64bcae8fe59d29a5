package line

import (
	"bufio"
	"fmt"
	"io"
)

// Writer writes protocol lines, buffered until Flush.
type Writer struct {
	bw  *bufio.Writer
	max int
	buf []byte
	// Trace, if set, is called with every line written, LF included. The
	// slice is only valid during the call.
	Trace func(line []byte)
}

// NewWriter returns a Writer that refuses lines longer than max bytes,
// terminator included (MaxLine when max <= 0), since the peer would.
func NewWriter(w io.Writer, max int) *Writer {
	if max <= 0 {
		max = MaxLine
	}
	return &Writer{bw: bufio.NewWriter(w), max: max}
}

// WriteMsg encodes m and buffers it. Nothing is buffered when it fails.
func (w *Writer) WriteMsg(m Msg) error {
	b, err := AppendMsg(w.buf[:0], m)
	w.buf = b[:0]
	if err != nil {
		return fmt.Errorf("encoding %s: %w", m.Verb, err)
	}
	if len(b) > w.max {
		return fmt.Errorf("encoding %s: %w", m.Verb, ErrLineTooLong)
	}
	if w.Trace != nil {
		w.Trace(b)
	}
	if _, err := w.bw.Write(b); err != nil {
		return fmt.Errorf("writing %s: %w", m.Verb, err)
	}
	return nil
}

// Flush writes buffered lines to the underlying writer.
func (w *Writer) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	return nil
}
