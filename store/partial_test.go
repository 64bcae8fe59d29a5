package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestIsPathEscape pins the one place that recognises os.Root refusing a
// path outside its folder: by "..", and through a symbolic link.
func TestIsPathEscape(t *testing.T) {
	dir := t.TempDir()
	inside := filepath.Join(dir, "in")
	if err := os.Mkdir(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(inside)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = root.Open("../x")
	if !IsPathEscape(err) {
		t.Errorf("Open(../x): %v not recognised", err)
	}
	if !IsPathEscape(fmt.Errorf("opening: %w", err)) {
		t.Error("a wrapped escape not recognised")
	}
	if err := os.Symlink(dir, filepath.Join(inside, "up")); err == nil {
		if _, err := root.Open("up/in"); !IsPathEscape(err) {
			t.Errorf("Open through a link out: %v not recognised", err)
		}
	}
	if _, err := root.Open("missing"); IsPathEscape(err) {
		t.Errorf("a missing file taken for an escape: %v", err)
	}
	if IsPathEscape(nil) {
		t.Error("nil taken for an escape")
	}
}

func TestIsPartial(t *testing.T) {
	tests := []struct {
		base string
		want bool
	}{
		{".a.bin" + PartSuffix, true},
		{".a.bin" + StateSuffix, true},
		{".a.bin" + TmpSuffix, true},
		{"a.bin" + PartSuffix, false}, // not hidden: not one of ours
		{".a.bin", false},
		{"notes.txt", false},
	}
	for _, tt := range tests {
		if got := IsPartial(tt.base); got != tt.want {
			t.Errorf("IsPartial(%q) = %v, want %v", tt.base, got, tt.want)
		}
	}
}
