package shell

import (
	"strings"
	"testing"
)

// TestBannerFits: the first line fits the terminal at any usual width, even
// with the long version a git checkout stamps, and always names fxsh and
// help.
func TestBannerFits(t *testing.T) {
	for _, v := range []string{"0.4.0", "0.0.0-20261204140541-2d30e700f4db", "(devel)"} {
		if b := banner(v, 0); b != "fxsh "+v+" — type help for commands, Ctrl-D to quit" {
			t.Errorf("no width limit: %q", b)
		}
		for _, w := range []int{30, 40, 60, 80, 200} {
			b := banner(v, w)
			if cells(b) > w-1 {
				t.Errorf("version %s at %d columns: %q is %d cells", v, w, b, cells(b))
			}
			if !strings.HasPrefix(b, "fxsh ") || !strings.Contains(b, "help") {
				t.Errorf("version %s at %d columns: %q", v, w, b)
			}
		}
	}
	if b := banner("0.0.0-20261204140541-2d30e700f4db", 60); !strings.Contains(b, "2d30e700f4db") {
		t.Errorf("at 60 columns the version's commit is lost: %q", b)
	}
}
