//go:build linux

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGivenFxsh: a binary given with -fxsh is named by the commit its
// --version prints, not by the tree the bench runs in.
func TestGivenFxsh(t *testing.T) {
	dir := t.TempDir()
	write := func(name, version string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\nprintf '"+version+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stamped := write("stamped", `fxsh 0.1.0\ncommit a620fcc0123\nbuilt 2026-12-04\n`)
	if got := givenFxsh(context.Background(), stamped, "tree1"); got != stamped+" at a620fcc0123" {
		t.Errorf("stamped: %q", got)
	}
	bare := write("bare", `fxsh 0.1.0\ncommit unknown\n`)
	if got := givenFxsh(context.Background(), bare, "tree1"); !strings.Contains(got, "its commit unknown; this tree at tree1") {
		t.Errorf("unstamped: %q", got)
	}
	if got := givenFxsh(context.Background(), filepath.Join(dir, "missing"), "tree1"); !strings.Contains(got, "unknown") {
		t.Errorf("missing binary: %q", got)
	}
}
