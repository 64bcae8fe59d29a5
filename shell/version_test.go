package shell

import (
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	got := versionText()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("--version printed %d lines:\n%s", len(lines), got)
	}
	if !regexp.MustCompile(`^fxsh \d+\.\d+\.\d+\S*$`).MatchString(lines[0]) || lines[0] != "fxsh "+Version {
		t.Errorf("line 1 = %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], "commit ") || !strings.HasPrefix(lines[2], "built ") {
		t.Errorf("lines 2-3 = %q, %q", lines[1], lines[2])
	}
	if want := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH; lines[3] != want {
		t.Errorf("line 4 = %q, want %q", lines[3], want)
	}
	want := "catalogs memory, etcd"
	if !etcdCatalogBuilt {
		want = "catalogs memory (built without etcd: -tags noetcd)"
	}
	if lines[4] != want {
		t.Errorf("line 5 = %q, want %q", lines[4], want)
	}
}
