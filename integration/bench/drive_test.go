//go:build linux

package main

import (
	"context"
	"strings"
	"testing"
)

// TestServerReadyLine: the line the bench waits for before it starts
// clients matches what fxsh prints for one shared file and for several
// (the many-clients and soak cases share one file).
func TestServerReadyLine(t *testing.T) {
	for _, tt := range []struct {
		line string
		udp  string
	}{
		{"sharing 1 file from /var/tmp/fxsh-bench/src/64MiBx1 on udp 127.0.0.1:39565", "127.0.0.1:39565"},
		{"sharing 3 files from /var/tmp/fxsh-bench/src/256MiBx3 on udp 127.0.0.1:4000 (master 127.0.0.1:1234)", "127.0.0.1:4000"},
	} {
		m := reFxshShare.FindStringSubmatch(tt.line)
		if m == nil || m[2] != tt.udp {
			t.Errorf("%q: got %q, want the udp address %s", tt.line, m, tt.udp)
		}
	}
	if reFxshShare.MatchString("sharing 1 filesystem on udp 1.2.3.4:5") {
		t.Error("matched a word that only starts with file")
	}
}

// TestParseCounters reads a client's stats table (the last one printed).
func TestParseCounters(t *testing.T) {
	out := "COUNTER  VALUE\nduplicates  3\nnot yet replies  1\n" +
		"COUNTER  VALUE\nretransmits  2\nduplicates  12\ntimeouts (PTO)  4\nbusy replies  5\nnot yet replies  7\ngroups read back  1\n" +
		"datagrams sent  100\nchunks sent  60\nchunks received  80\n"
	got := parseCounters(out)
	want := clientCounters{notYet: 7, dups: 12, timeouts: 4, busy: 5, retransmits: 2, readBack: 1, datagramsSent: 100, chunksSent: 60, chunksReceived: 80}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestAskAllWaits: askAll returns once every shell has answered, however
// slowly (here 300 ms, more than the fixed wait it replaced).
func TestAskAllWaits(t *testing.T) {
	b := &bench{fxsh: "/bin/sh"}
	var ps []*shellProc
	for range 3 {
		p, err := b.startShell(context.Background(), t.TempDir(), nil, "-c", `while read l; do sleep 0.3; echo "jobs: $l"; done`)
		if err != nil {
			t.Fatal(err)
		}
		defer p.quit()
		ps = append(ps, p)
	}
	askAll(ps, "one", reStatusEnd)
	askAll(ps, "two", reStatusEnd)
	for i, p := range ps {
		if out := p.output(); !strings.Contains(out, "jobs: one\njobs: two\n") {
			t.Errorf("shell %d: %q", i, out)
		}
	}
}
