package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

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

// linecheck FILE MAXLINES MAXCOLS [PATTERN MIN]: FILE (stdout, stderr or
// a file) has at most MAXLINES lines (0: any number), none wider than
// MAXCOLS columns (runes), and at least MIN of them match PATTERN.
func cmdLinecheck(ts *testscript.TestScript, neg bool, args []string) {
	if neg || (len(args) != 3 && len(args) != 5) {
		ts.Fatalf("usage: linecheck FILE MAXLINES MAXCOLS [PATTERN MIN]")
	}
	text := ts.ReadFile(args[0]) // stdout and stderr name the last command's
	maxLines, err1 := strconv.Atoi(args[1])
	maxCols, err2 := strconv.Atoi(args[2])
	if err1 != nil || err2 != nil {
		ts.Fatalf("linecheck: MAXLINES and MAXCOLS are numbers")
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if maxLines > 0 && len(lines) > maxLines {
		ts.Logf("%s", text)
		ts.Fatalf("%d lines, at most %d wanted", len(lines), maxLines)
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > maxCols {
			ts.Fatalf("a line of %d columns (at most %d): %q", n, maxCols, l)
		}
	}
	if len(args) == 5 {
		re, err := regexp.Compile(args[3])
		ts.Check(err)
		min, err := strconv.Atoi(args[4])
		ts.Check(err)
		n := 0
		for _, l := range lines {
			if re.MatchString(l) {
				n++
			}
		}
		if n < min {
			ts.Fatalf("%d lines match %q, at least %d wanted", n, args[3], min)
		}
		ts.Logf("%d lines, %d match %q", len(lines), n, args[3])
	}
}
