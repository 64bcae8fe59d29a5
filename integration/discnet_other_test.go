//go:build !linux

package integration

import (
	"errors"
	"os"

	"github.com/rogpeppe/go-internal/testscript"
)

// Network namespaces are Linux's: elsewhere the discovery stories skip
// (and fail under FXSH_REQUIRE_NETNS=1).
func discnetCondition() (bool, error) {
	if os.Getenv("FXSH_REQUIRE_NETNS") == "1" {
		return false, errors.New("FXSH_REQUIRE_NETNS=1 but network namespaces are Linux only")
	}
	return false, nil
}

func cmdDiscnet(ts *testscript.TestScript, neg bool, args []string) {
	ts.Fatalf("discnet: network namespaces are Linux only")
}
