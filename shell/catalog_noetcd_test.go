//go:build noetcd

package shell

import (
	"strings"
	"testing"
)

// TestNoEtcdCatalog: a build without the etcd catalog says so when asked for
// one, after checking the --store syntax as the full build does, and the
// in-memory master still starts.
func TestNoEtcdCatalog(t *testing.T) {
	ui := newFakeUI(false)
	s := testShell(t, ui)
	t.Cleanup(s.closeRoles)
	if runLines(t, s, "serve master 127.0.0.1:0 --store etcd://127.0.0.1:2379/lab2") {
		t.Fatal("serve master --store etcd://… succeeded in a noetcd build")
	}
	if e := ui.stderr(); !strings.Contains(e, "built without the etcd catalog (-tags noetcd)") ||
		!strings.Contains(e, "without --store keeps the catalog in memory") {
		t.Errorf("stderr does not say etcd is not in this build:\n%s", e)
	}
	if runLines(t, s, "serve master 127.0.0.1:0 --store 'etcd://h:1/a b'") {
		t.Fatal("a bad --store was accepted")
	}
	if e := ui.stderr(); !strings.Contains(e, "bad etcd prefix") {
		t.Errorf("a bad prefix is not reported as such:\n%s", e)
	}
	if !runLines(t, s, "serve master 127.0.0.1:0", "status") {
		t.Fatalf("serve master in memory: %s", ui.stderr())
	}
	if o := ui.stdout(); !strings.Contains(o, "catalog in memory") {
		t.Errorf("status:\n%s", o)
	}
}
