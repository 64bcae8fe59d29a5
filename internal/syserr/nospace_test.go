package syserr

import (
	"fmt"
	"os"
	"testing"
)

// TestNoSpaceValues: each system's full-disk errno, as the os package
// returns it inside a PathError, reads as NoSpace.
func TestNoSpaceValues(t *testing.T) {
	for _, errno := range noSpace {
		err := fmt.Errorf("writing chunk 3: %w", &os.PathError{Op: "write", Path: "f", Err: errno})
		if !NoSpace(err) {
			t.Errorf("%v: not recognised as a full disk", err)
		}
		if ConnRefused(err) {
			t.Errorf("%v: reads as a refusal", err)
		}
	}
}
