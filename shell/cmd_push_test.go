package shell

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidPeerName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"bob", true},
		{"Room-2.b_3", true},
		{strings.Repeat("x", 32), true},
		{strings.Repeat("x", 33), false},
		{"", false},
		{"127.0.0.1:5000", false},
		{"bob smith", false},
		{"böb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validPeerName(tt.name); got != tt.ok {
				t.Errorf("validPeerName(%q) = %v, want %v", tt.name, got, tt.ok)
			}
		})
	}
}

// TestPushManual runs a master and a receiver in one shell and a sender in
// another: with autoaccept off the offer waits until accept or refuse.
func TestPushManual(t *testing.T) {
	rxUI := newFakeUI(false)
	rx := testShell(t, rxUI)
	t.Cleanup(rx.closeRoles)
	inbox := filepath.Join(t.TempDir(), "inbox")
	if !runLines(t, rx, "serve master 127.0.0.1:0", "set autoaccept off", "receive "+inbox+" --as bob") {
		t.Fatalf("receiver: %s", rxUI.stderr())
	}
	txUI := newFakeUI(false)
	tx := testShell(t, txUI)
	tx.opts.Masters = rx.masters()
	src := filepath.Join(t.TempDir(), "gift.bin")
	data := bytes.Repeat([]byte("fxsh push "), 50_000)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// Accepted by hand: the file arrives, the sender's job succeeds.
	if !runLines(t, tx, "send "+src+" bob") {
		t.Fatalf("send: %s", txUI.stderr())
	}
	waitFor(t, "the offer", func() bool { return strings.Contains(rxUI.stdout(), "accept 1 or refuse 1") })
	if !runLines(t, rx, "offers", "accept 1", "wait") {
		t.Fatalf("accept: %s", rxUI.stderr())
	}
	if !strings.Contains(rxUI.stdout(), "gift.bin") {
		t.Errorf("offers did not list gift.bin:\n%s", rxUI.stdout())
	}
	if !runLines(t, tx, "wait") {
		t.Fatalf("sender's job: %s", txUI.stderr())
	}
	if got, err := os.ReadFile(filepath.Join(inbox, "gift.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received file: %v (%d bytes, want %d)", err, len(got), len(data))
	}
	if j := tx.jobs.Get(1); j == nil || j.Kind != "send" {
		t.Fatalf("sender's job 1: %+v", j)
	} else if st, _ := j.State(); st != JobDone {
		t.Errorf("send job %v", st)
	}

	// Refused by hand: the sender's job fails with the reason.
	src2 := filepath.Join(filepath.Dir(src), "other.bin")
	if err := os.WriteFile(src2, data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	if !runLines(t, tx, "send "+src2+" bob") {
		t.Fatalf("send: %s", txUI.stderr())
	}
	waitFor(t, "the second offer", func() bool { return strings.Contains(rxUI.stdout(), "accept 2 or refuse 2") })
	if !runLines(t, rx, "refuse 2 not today") {
		t.Fatalf("refuse: %s", rxUI.stderr())
	}
	if runLines(t, tx, "wait 2") {
		t.Fatal("wait for a refused push succeeded")
	}
	if e := txUI.stderr(); !strings.Contains(e, "bob refused other.bin: not today") {
		t.Errorf("sender's stderr:\n%s", e)
	}
	if _, err := os.Stat(filepath.Join(inbox, "other.bin")); !os.IsNotExist(err) {
		t.Errorf("refused file exists: %v", err)
	}
	// Unknown offers and a shell that is not receiving fail clearly.
	if runLines(t, rx, "accept 9") || !strings.Contains(rxUI.stderr(), "no offer 9 waiting") {
		t.Errorf("accept 9: %s", rxUI.stderr())
	}
	if runLines(t, tx, "accept 1") || !strings.Contains(txUI.stderr(), "not receiving") {
		t.Errorf("accept without receive: %s", txUI.stderr())
	}
}
