package transfer

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store/tree"
)

// readSink is a memSink that reads back and forgets (a ReadSink).
type readSink struct{ *memSink }

func (s readSink) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copy(p, s.data[off:]), nil
}

func (s readSink) Forget(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.have[i] = false
}

func treeOf(t testing.TB, content []byte) *tree.Tree {
	t.Helper()
	b := tree.NewBuilder()
	b.Write(content)
	_, tr := b.Sum()
	if len(tr.CVs) == 0 {
		t.Fatal("test file of one group")
	}
	return tr
}

// liarLibrary serves content with one byte flipped in every group.
func liarLibrary(content []byte) *library {
	bad := bytes.Clone(content)
	for off := 1000; off < len(bad); off += tree.GroupSize {
		bad[off] ^= 0x55
	}
	l := &library{files: map[string][]byte{hashOf(content): bad}}
	return l
}

// TestVerifyNamesTheLiar: one of three sources serves wrong bytes. The
// client checks each group on arrival, drops that source at its first bad
// group with an error naming it and the group, refetches the group from
// the others and ends byte-identical, without a whole-file check.
func TestVerifyNamesTheLiar(t *testing.T) {
	for _, cs := range []int{1200, 8192, 64512} {
		t.Run(strconv.Itoa(cs), func(t *testing.T) {
			content := randomBytes(6<<20+777, 21)
			_, good1 := startServer(t, newLibrary(content), ServerConfig{})
			_, liar := startServer(t, liarLibrary(content), ServerConfig{})
			_, good2 := startServer(t, newLibrary(content), ServerConfig{})
			ms := newMemSink(int64(len(content)), cs)
			groups := tree.NewHave(int64(len(content)))
			conn := listen(t)
			defer conn.Close()
			counters := NewCounters(nil)
			res, err := Fetch(fetchCtx(t, 60*time.Second), conn,
				Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: cs, Sources: []string{good1, liar, good2}},
				readSink{ms}, ClientConfig{Tree: treeOf(t, content), Groups: groups, Counters: counters, SourceTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ms.data, content) {
				t.Fatal("content differs")
			}
			if !groups.Full() {
				t.Fatal("complete, but not every group is checked")
			}
			st := counters.Snapshot()
			if st.LiarsDropped != 1 || st.GroupsFailed < 1 {
				t.Fatalf("liars dropped %d, groups failed %d", st.LiarsDropped, st.GroupsFailed)
			}
			for _, s := range res.Sources {
				t.Logf("%s %s %d bytes: %v", s.Addr, s.State, s.Bytes, s.Err)
				var bg *BadGroupError
				if isLiar := s.Addr == liar; isLiar != errors.As(s.Err, &bg) {
					t.Errorf("source %s (liar %v): %v", s.Addr, isLiar, s.Err)
				}
			}
			if st.GroupsVerified < int64(tree.Groups(int64(len(content)))) {
				t.Errorf("%d groups verified of %d", st.GroupsVerified, tree.Groups(int64(len(content))))
			}
		})
	}
}

// TestVerifyResume: chunks already on disk are not trusted: a group whose
// bytes on disk are wrong (a state file that lies, a disk that flipped a
// bit) is checked at the start, forgotten and fetched again.
func TestVerifyResume(t *testing.T) {
	content := randomBytes(3<<20+5, 5)
	const cs = 8192
	_, addr := startServer(t, newLibrary(content), ServerConfig{})
	ms := newMemSink(int64(len(content)), cs)
	ms.preload(content, func(i int) bool { return i < len(ms.have)/2 })
	ms.data[2*tree.GroupSize+10] ^= 1 // group 2 is wrong on disk
	conn := listen(t)
	defer conn.Close()
	counters := NewCounters(nil)
	_, err := Fetch(fetchCtx(t, 30*time.Second), conn,
		Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: cs, Sources: []string{addr}},
		readSink{ms}, ClientConfig{Tree: treeOf(t, content), Counters: counters})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ms.data, content) {
		t.Fatal("content differs")
	}
	st := counters.Snapshot()
	if st.GroupsFailed != 1 || st.GroupsReadBack < int64(len(content)/2/tree.GroupSize) || st.LiarsDropped != 0 {
		t.Fatalf("failed %d, read back %d, liars %d", st.GroupsFailed, st.GroupsReadBack, st.LiarsDropped)
	}
	if !ms.requested[2*tree.GroupSize/cs] {
		t.Fatal("the bad group was not fetched again")
	}
}

// TestVerifyCleanReadsNothingBack: on a clean path every group is checked
// from the receive buffers: nothing is read back.
func TestVerifyCleanReadsNothingBack(t *testing.T) {
	content := randomBytes(8<<20+3, 8)
	_, addr := startServer(t, newLibrary(content), ServerConfig{})
	ms := newMemSink(int64(len(content)), 64512)
	conn := listen(t)
	defer conn.Close()
	counters := NewCounters(nil)
	_, err := Fetch(fetchCtx(t, 30*time.Second), conn,
		Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: 64512, Sources: []string{addr}},
		readSink{ms}, ClientConfig{Tree: treeOf(t, content), Counters: counters})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ms.data, content) {
		t.Fatal("content differs")
	}
	if st := counters.Snapshot(); st.GroupsReadBack != 0 || st.GroupsVerified != int64(tree.Groups(int64(len(content)))) {
		t.Fatalf("read back %d, verified %d", st.GroupsReadBack, st.GroupsVerified)
	}
}

// TestTrickleWakesLittle: a download that trickles (a server sending a
// 64 KiB chunk every 30 ms) checks its groups on the receive loop, and its
// control loop sleeps until something is due instead of waking every
// controlTick (which a trickle of thirty such downloads paid for in CPU).
func TestTrickleWakesLittle(t *testing.T) {
	content := randomBytes(1<<20+3, 9)
	_, addr := startServer(t, newLibrary(content), ServerConfig{Impair: impair(t, ImpairSettings{Rate: 2 << 20})})
	ms := newMemSink(int64(len(content)), 64512)
	conn := listen(t)
	defer conn.Close()
	counters := NewCounters(nil)
	start := time.Now()
	_, err := Fetch(fetchCtx(t, 30*time.Second), conn,
		Request{Hash: hashOf(content), Size: int64(len(content)), ChunkSize: 64512, Sources: []string{addr}},
		readSink{ms}, ClientConfig{Tree: treeOf(t, content), Counters: counters})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if !bytes.Equal(ms.data, content) {
		t.Fatal("content differs")
	}
	st := counters.Snapshot()
	t.Logf("%v: %d wake-ups, %d of %d groups checked inline, %d chunks", elapsed, st.Wakeups, st.GroupsInline, st.GroupsVerified, st.ChunksReceived)
	if elapsed < 300*time.Millisecond {
		t.Fatalf("took %v: the rate cap did not hold", elapsed)
	}
	if ticks := int64(elapsed / controlTick); st.Wakeups == 0 || st.Wakeups > ticks/4 {
		t.Errorf("the control loop woke %d times in %v (a fixed tick: %d)", st.Wakeups, elapsed, ticks)
	}
	if st.GroupsVerified != int64(tree.Groups(int64(len(content)))) || st.GroupsInline < st.GroupsVerified/2 {
		t.Errorf("verified %d groups, %d of them inline", st.GroupsVerified, st.GroupsInline)
	}
}
