package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ProtocolError reports a payload that breaks the format. Data holds at most
// the first 16 bytes of the bad input.
type ProtocolError struct {
	What string
	Data []byte
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("chunk: %s: %q", e.What, e.Data)
}

func protoErr(what string, b []byte) error {
	if len(b) > 16 {
		b = b[:16]
	}
	return &ProtocolError{What: what, Data: append([]byte(nil), b...)}
}

// errTruncated is what every payload parser returns for a short payload.
var errTruncated = errors.New("chunk: payload truncated")

// Range is a run of chunk indexes [First, First+Count).
type Range struct {
	First, Count uint32
}

// End is one past the last chunk of r.
func (r Range) End() uint64 { return uint64(r.First) + uint64(r.Count) }

// Request is the payload of a REQUEST: the file, how to cut it, how much the
// client can take in flight, the echoed cookie, and the chunks it wants from
// this server. A REQUEST on a live transfer replaces the wanted ranges and
// the window.
//
//	0   32  content hash of the whole file (BLAKE3, see store.Sum)
//	32  8   file size in bytes
//	40  4   chunk size in bytes
//	44  4   receive window (chunks in flight)
//	48  1   cookie length L (0 before the first RETRY)
//	49  L   cookie
//	+0  2   range count N
//	+2  8N  ranges: first chunk (4), count (4), ascending, disjoint
//	+0  4   optional: max ACK delay, µs (1..MaxAnnouncedAckDelay); absent
//	        when 0. Older servers ignore bytes after the ranges.
type Request struct {
	Hash      [32]byte
	Size      int64
	ChunkSize uint32
	Window    uint32
	Cookie    []byte  // aliases the parsed bytes
	Ranges    []Range // allocated: at most MaxRequestRanges
	// AckDelay is the longest the client may hold an ACK back, µs; 0: not
	// announced (the sender assumes the default MaxAckDelay).
	AckDelay uint32
}

// MaxAnnouncedAckDelay bounds Request.AckDelay (µs): a client may not make
// its sender wait longer than 25 ms for an ACK before a probe timeout.
const MaxAnnouncedAckDelay = 25000

// Chunks is the number of chunks of the file the request describes.
func (r *Request) Chunks() uint64 {
	if r.ChunkSize == 0 || r.Size <= 0 {
		return 0
	}
	return (uint64(r.Size) + uint64(r.ChunkSize) - 1) / uint64(r.ChunkSize)
}

// Validate checks r against the limits and its own file geometry.
func (r *Request) Validate() error {
	if r.Size < 0 || r.Size > MaxFileSize {
		return fmt.Errorf("chunk: request: file size %d out of range", r.Size)
	}
	if r.ChunkSize < MinChunkSize || r.ChunkSize > MaxChunkSize {
		return fmt.Errorf("chunk: request: chunk size %d outside [%d, %d]", r.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	n := r.Chunks()
	if n > MaxChunks {
		return fmt.Errorf("chunk: request: %d chunks (max %d)", n, uint64(MaxChunks))
	}
	if r.Window == 0 || r.Window > MaxWindow {
		return fmt.Errorf("chunk: request: window %d outside [1, %d]", r.Window, MaxWindow)
	}
	if len(r.Cookie) > MaxCookieLen {
		return fmt.Errorf("chunk: request: cookie of %d bytes (max %d)", len(r.Cookie), MaxCookieLen)
	}
	if len(r.Ranges) > MaxRequestRanges {
		return fmt.Errorf("chunk: request: %d ranges (max %d)", len(r.Ranges), MaxRequestRanges)
	}
	if r.AckDelay > MaxAnnouncedAckDelay {
		return fmt.Errorf("chunk: request: ACK delay %d µs (max %d)", r.AckDelay, MaxAnnouncedAckDelay)
	}
	var end uint64
	for i, rg := range r.Ranges {
		if rg.Count == 0 {
			return fmt.Errorf("chunk: request: range %d is empty", i)
		}
		if i > 0 && uint64(rg.First) < end {
			return fmt.Errorf("chunk: request: range %d overlaps or is out of order", i)
		}
		end = rg.End()
		if end > n {
			return fmt.Errorf("chunk: request: range %d ends at chunk %d past the file's %d", i, end, n)
		}
	}
	return nil
}

const requestFixed = 32 + 8 + 4 + 4 + 1

// AppendRequest appends r's encoding.
func AppendRequest(b []byte, r *Request) []byte {
	b = append(b, r.Hash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
	b = binary.BigEndian.AppendUint32(b, r.ChunkSize)
	b = binary.BigEndian.AppendUint32(b, r.Window)
	cookie := r.Cookie
	if len(cookie) > 255 {
		cookie = cookie[:255] // unparseable anyway: past MaxCookieLen
	}
	b = append(b, byte(len(cookie)))
	b = append(b, cookie...)
	n := len(r.Ranges)
	if n > 1<<16-1 {
		n = 1<<16 - 1
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, rg := range r.Ranges[:n] {
		b = binary.BigEndian.AppendUint32(b, rg.First)
		b = binary.BigEndian.AppendUint32(b, rg.Count)
	}
	if r.AckDelay != 0 {
		b = binary.BigEndian.AppendUint32(b, r.AckDelay)
	}
	return b
}

// ParseRequest decodes and validates a REQUEST payload.
func ParseRequest(b []byte) (Request, int, error) {
	var r Request
	if len(b) < requestFixed {
		return r, 0, errTruncated
	}
	copy(r.Hash[:], b)
	size := binary.BigEndian.Uint64(b[32:])
	if size > MaxFileSize {
		return r, 0, protoErr("request: file size out of range", b[32:40])
	}
	r.Size = int64(size)
	r.ChunkSize = binary.BigEndian.Uint32(b[40:])
	r.Window = binary.BigEndian.Uint32(b[44:])
	cl := int(b[48])
	if cl > MaxCookieLen {
		return r, 0, protoErr("request: cookie too long", b[48:])
	}
	off := requestFixed
	if len(b) < off+cl+2 {
		return r, 0, errTruncated
	}
	if cl > 0 {
		r.Cookie = b[off : off+cl : off+cl]
	}
	off += cl
	nr := int(binary.BigEndian.Uint16(b[off:]))
	off += 2
	if nr > MaxRequestRanges {
		return r, 0, protoErr("request: too many ranges", b[off-2:])
	}
	if len(b) < off+8*nr {
		return r, 0, errTruncated
	}
	if nr > 0 {
		r.Ranges = make([]Range, nr)
		for i := range r.Ranges {
			r.Ranges[i] = Range{
				First: binary.BigEndian.Uint32(b[off:]),
				Count: binary.BigEndian.Uint32(b[off+4:]),
			}
			off += 8
		}
	}
	if len(b) >= off+4 {
		// Optional (a zero there is no field: it is not part of the REQUEST).
		if r.AckDelay = binary.BigEndian.Uint32(b[off:]); r.AckDelay != 0 {
			off += 4
		}
	}
	if err := r.Validate(); err != nil {
		return r, 0, err
	}
	return r, off, nil
}

// Retry is the payload of a RETRY: the cookie the client must echo in its
// next REQUEST, and the largest chunk size this server accepts.
//
//	0  1  cookie length L (1..MaxCookieLen)
//	1  L  cookie
//	+0 4  server's maximum chunk size
type Retry struct {
	Cookie       []byte // aliases the parsed bytes
	MaxChunkSize uint32
}

// Validate checks r against the limits.
func (r *Retry) Validate() error {
	if len(r.Cookie) == 0 || len(r.Cookie) > MaxCookieLen {
		return fmt.Errorf("chunk: retry: cookie of %d bytes outside [1, %d]", len(r.Cookie), MaxCookieLen)
	}
	if r.MaxChunkSize < MinChunkSize || r.MaxChunkSize > MaxChunkSize {
		return fmt.Errorf("chunk: retry: max chunk size %d outside [%d, %d]", r.MaxChunkSize, MinChunkSize, MaxChunkSize)
	}
	return nil
}

// AppendRetry appends r's encoding.
func AppendRetry(b []byte, r *Retry) []byte {
	cookie := r.Cookie
	if len(cookie) > 255 {
		cookie = cookie[:255]
	}
	b = append(b, byte(len(cookie)))
	b = append(b, cookie...)
	return binary.BigEndian.AppendUint32(b, r.MaxChunkSize)
}

// ParseRetry decodes and validates a RETRY payload.
func ParseRetry(b []byte) (Retry, int, error) {
	var r Retry
	if len(b) < 1 {
		return r, 0, errTruncated
	}
	cl := int(b[0])
	if len(b) < 1+cl+4 {
		return r, 0, errTruncated
	}
	r.Cookie = b[1 : 1+cl : 1+cl]
	r.MaxChunkSize = binary.BigEndian.Uint32(b[1+cl:])
	if err := r.Validate(); err != nil {
		return Retry{}, 0, err
	}
	return r, 1 + cl + 4, nil
}

// DoneReason says why a transfer ended.
type DoneReason uint8

// Done reasons.
const (
	DoneComplete DoneReason = 0 // the client has every chunk it wanted from this server
	DoneCancel   DoneReason = 1 // the client gave up (cancel, another source finished it)
	DoneEcho     DoneReason = 2 // the server confirms a DONE it received
)

// Done is the payload of a DONE: one byte, the reason.
type Done struct {
	Reason DoneReason
}

// Validate checks d's reason.
func (d *Done) Validate() error {
	if d.Reason > DoneEcho {
		return fmt.Errorf("chunk: done: unknown reason %d", d.Reason)
	}
	return nil
}

// AppendDone appends d's encoding.
func AppendDone(b []byte, d *Done) []byte { return append(b, byte(d.Reason)) }

// ParseDone decodes and validates a DONE payload.
func ParseDone(b []byte) (Done, int, error) {
	if len(b) < 1 {
		return Done{}, 0, errTruncated
	}
	d := Done{Reason: DoneReason(b[0])}
	if err := d.Validate(); err != nil {
		return Done{}, 0, err
	}
	return d, 1, nil
}

// ErrorCode is the reason carried by an ERROR.
type ErrorCode uint16

// Error codes.
const (
	CodeNotFound        ErrorCode = 1 // no file with that hash and size here
	CodeBusy            ErrorCode = 2 // over a cap; Value = retry after this many ms
	CodeBadRequest      ErrorCode = 3 // the request broke the rules
	CodeChunkSize       ErrorCode = 4 // chunk size not accepted; Value = the server's maximum
	CodeUnknownTransfer ErrorCode = 5 // no such transfer (server restarted or dropped it): send REQUEST again
	CodeUnauthorized    ErrorCode = 6 // key required, or the packet did not open under the key
	CodeInternal        ErrorCode = 7 // the server failed (read error)
	// CodeNotYet: a partial source (a peer still downloading) was asked
	// for chunks of groups it has not checked yet; Value = the first such
	// chunk. It serves the rest of the REQUEST.
	CodeNotYet ErrorCode = 8
	// CodeLeaving: the server is stopping (quit, unshare, a signal) and
	// ends every transfer it runs; sent a few times (it may be lost).
	// The client drops the source at once and goes on with the others, or
	// fails now instead of after its source timeout. Value is 0.
	CodeLeaving ErrorCode = 9
)

// maxErrorCode is the highest code Validate accepts.
const maxErrorCode = CodeLeaving

func (c ErrorCode) String() string {
	switch c {
	case CodeNotFound:
		return "not found"
	case CodeBusy:
		return "busy"
	case CodeBadRequest:
		return "bad request"
	case CodeChunkSize:
		return "chunk size not accepted"
	case CodeUnknownTransfer:
		return "unknown transfer"
	case CodeUnauthorized:
		return "unauthorized"
	case CodeInternal:
		return "internal error"
	case CodeNotYet:
		return "not yet"
	case CodeLeaving:
		return "server leaving"
	}
	return "code " + itoa(uint64(c))
}

// Error is the payload of an ERROR; as a Go error it is "the peer said no".
//
//	0  2  code
//	2  4  value (code-specific: retry-after ms for busy, max chunk size)
//	6  1  text length L (≤ MaxErrorText)
//	7  L  UTF-8 text
type Error struct {
	Code  ErrorCode
	Value uint32
	Text  string
}

func (e *Error) Error() string {
	if e.Text == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Text
}

// Validate checks e's code and text.
func (e *Error) Validate() error {
	if e.Code < CodeNotFound || e.Code > maxErrorCode {
		return fmt.Errorf("chunk: error: unknown code %d", e.Code)
	}
	if len(e.Text) > MaxErrorText || !utf8.ValidString(e.Text) {
		return fmt.Errorf("chunk: error: text of %d bytes is too long or not UTF-8", len(e.Text))
	}
	for _, r := range e.Text {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("chunk: error: control character in text")
		}
	}
	return nil
}

// AppendError appends e's encoding.
func AppendError(b []byte, e *Error) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(e.Code))
	b = binary.BigEndian.AppendUint32(b, e.Value)
	t := e.Text
	if len(t) > 255 {
		t = t[:255]
	}
	b = append(b, byte(len(t)))
	return append(b, t...)
}

// ParseError decodes and validates an ERROR payload.
func ParseError(b []byte) (Error, int, error) {
	if len(b) < 7 {
		return Error{}, 0, errTruncated
	}
	tl := int(b[6])
	if tl > MaxErrorText {
		return Error{}, 0, protoErr("error: text too long", b[6:])
	}
	if len(b) < 7+tl {
		return Error{}, 0, errTruncated
	}
	e := Error{
		Code:  ErrorCode(binary.BigEndian.Uint16(b)),
		Value: binary.BigEndian.Uint32(b[2:]),
		Text:  string(b[7 : 7+tl]),
	}
	if err := e.Validate(); err != nil {
		return Error{}, 0, err
	}
	return e, 7 + tl, nil
}
