package partfile

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fxshell/fxsh/internal/syserr"
	"github.com/fxshell/fxsh/store"
)

// Errors. Match them with errors.Is.
var (
	ErrUnsafeName   = errors.New("unsafe file name")
	ErrNotValidHere = errors.New("is not a valid file name on this system")
	ErrExists       = errors.New("file already exists")
	ErrHashMismatch = errors.New("hash mismatch")
	ErrNoSpace      = errors.New("no space left on device")
	ErrIncomplete   = errors.New("download incomplete")
	ErrBadChunk     = errors.New("bad chunk")
	ErrBadHash      = store.ErrBadHash
	ErrBusy         = errors.New("already being downloaded by another process")
	ErrClosed       = errors.New("download closed")
)

// noSpaceError is a write that failed for lack of room (ENOSPC or a quota on Unix, ERROR_DISK_FULL on Windows).
type noSpaceError struct{ err error }

func (e *noSpaceError) Error() string {
	msg := e.err.Error()
	if strings.Contains(msg, "no space left on device") {
		return msg
	}
	return "no space left on device: " + msg
}

func (e *noSpaceError) Is(target error) bool { return target == ErrNoSpace }
func (e *noSpaceError) Unwrap() error        { return e.err }

// wrapIO adds context to a file system error and makes a full disk match
// ErrNoSpace.
func wrapIO(op string, err error) error {
	if syserr.NoSpace(err) {
		err = &noSpaceError{err}
	}
	return fmt.Errorf("%s: %w", op, err)
}
