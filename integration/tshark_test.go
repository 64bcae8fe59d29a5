package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"
)

// tshark in stories: `[!tshark] skip` skips a story when tshark is not
// installed, but fails it when FXSH_REQUIRE_TSHARK=1, as CI sets. Stories
// find the dissector at $FXSH_DISSECTOR and give tshark a HOME of their own.

func tsharkCondition() (bool, error) {
	if _, err := exec.LookPath("tshark"); err == nil {
		return true, nil
	}
	if os.Getenv("FXSH_REQUIRE_TSHARK") == "1" {
		return false, fmt.Errorf("FXSH_REQUIRE_TSHARK=1 but tshark is not installed (apt-get install tshark)")
	}
	return false, nil
}

func setupTshark(e *testscript.Env) {
	if abs, err := filepath.Abs("../netproto/wireshark/fxsh.lua"); err == nil {
		e.Setenv("FXSH_DISSECTOR", abs)
	}
}
