package line

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Reader reads protocol lines of bounded length.
type Reader struct {
	br  *bufio.Reader
	max int
	// Trace, if set, is called with every line read, terminator included,
	// before it is parsed. The slice is only valid during the call.
	Trace func(line []byte)
}

// NewReader returns a Reader of lines at most max bytes long, terminator
// included (MaxLine when max <= 0).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = MaxLine
	}
	// bufio's smallest buffer is 16 bytes; shorter limits are checked below.
	return &Reader{br: bufio.NewReaderSize(r, max), max: max}
}

// ReadLine returns the next line with its LF. The slice is valid until the
// next read. A line longer than the limit is ErrLineTooLong, after which the
// stream cannot be trusted to be in step and should be closed. A clean end of
// input is io.EOF; input that ends inside a line is io.ErrUnexpectedEOF.
func (r *Reader) ReadLine() ([]byte, error) {
	b, err := r.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, ErrLineTooLong
	case err == io.EOF && len(b) == 0:
		return nil, io.EOF
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, fmt.Errorf("reading line: %w", err)
	}
	if len(b) > r.max {
		return nil, ErrLineTooLong
	}
	if r.Trace != nil {
		r.Trace(b)
	}
	return b, nil
}

// ReadMsg reads and parses the next line. A *ProtocolError leaves the
// stream in step: the next call reads the next line.
func (r *Reader) ReadMsg() (Msg, error) {
	b, err := r.ReadLine()
	if err != nil {
		return Msg{}, err
	}
	m, _, err := ParseMsg(b)
	return m, err
}
