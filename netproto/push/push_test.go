package push

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/netproto/master"
	"github.com/fxshell/fxsh/netproto/masterclient"
	"github.com/fxshell/fxsh/store/memcat"
)

const wait = 20 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// startMaster runs a master on loopback for the test.
func startMaster(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cat := memcat.New(time.Minute)
	srv := master.New(master.Config{Catalog: cat})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		cat.Close()
	})
	return ln.Addr().String()
}

// receiver is a Receiver in a temporary folder that pulls every offer it
// accepts by itself, and records its events.
type receiver struct {
	*Receiver
	dir string

	mu     sync.Mutex
	events []Event
	pulls  chan error
}

func startReceiver(t *testing.T, masterAddr string, auto bool) *receiver {
	t.Helper()
	r := &receiver{dir: t.TempDir(), pulls: make(chan error, 16)}
	rx, err := StartReceiver(ctxT(t), ReceiverConfig{
		Dir: r.dir, Name: "bob", Masters: []string{masterAddr},
		AutoAccept: func() bool { return auto },
		OnEvent: func(ev Event) {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
			if ev.Kind == OfferAccepted {
				go r.pull(t, ev.Offer)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Receiver = rx
	t.Cleanup(func() { rx.Close(context.Background()) })
	if err := rx.WaitRegistered(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *receiver) pull(t *testing.T, o *Offer) {
	_, err := r.Pull(ctxT(t), o, download.Request{})
	r.pulls <- err
}

func (r *receiver) kinds() []EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ks []EventKind
	for _, ev := range r.events {
		ks = append(ks, ev.Kind)
	}
	return ks
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// sender is a Sender and a client of the master, with a file to push.
type sender struct {
	*Sender
	cl   *masterclient.Client
	dir  string
	data []byte
}

func newSender(t *testing.T, masterAddr string) *sender {
	t.Helper()
	cl, err := masterclient.Dial(ctxT(t), masterclient.Config{Masters: []string{masterAddr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return &sender{Sender: NewSender(ctxT(t), SenderConfig{}), cl: cl, dir: t.TempDir(),
		data: bytes.Repeat([]byte("fxsh push "), 100_000)}
}

// send pushes a file of s.data named name to bob in the background.
func (s *sender) send(t *testing.T, name string, p Push) <-chan error {
	t.Helper()
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, s.data, 0o644); err != nil {
		t.Fatal(err)
	}
	p.Path, p.Name, p.To = path, name, "bob"
	done := make(chan error, 1)
	go func() { done <- s.Send(ctxT(t), s.cl, p) }()
	return done
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(wait):
		t.Fatal("no result")
		return nil
	}
}

// TestPushAccepted: an offer the receiver accepts by itself is pulled,
// checked and reported to the sender, whose progress reaches the size.
func TestPushAccepted(t *testing.T) {
	m := startMaster(t)
	rx := startReceiver(t, m, true)
	tx := newSender(t, m)
	var done atomic.Int64
	var mu sync.Mutex
	var sevs []SendEventKind
	res := tx.send(t, "gift.bin", Push{
		Progress: func(n int64) { done.Store(n) },
		OnEvent: func(ev SendEvent) {
			mu.Lock()
			sevs = append(sevs, ev.Kind)
			mu.Unlock()
			if ev.Kind == Serving && (ev.Size != int64(len(tx.data)) || ev.Counters == nil) {
				t.Errorf("serving event %+v", ev)
			}
		},
	})
	if err := result(t, rx.pulls); err != nil {
		t.Fatalf("pull: %v", err)
	}
	if err := result(t, res); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(rx.dir, "gift.bin")); err != nil || !bytes.Equal(got, tx.data) {
		t.Fatalf("received: %v (%d bytes, want %d)", err, len(got), len(tx.data))
	}
	if done.Load() != int64(len(tx.data)) {
		t.Errorf("progress %d, want %d", done.Load(), len(tx.data))
	}
	mu.Lock()
	if want := []SendEventKind{Serving, Offered, Accepted}; !equalKinds(sevs, want) {
		t.Errorf("send events %v, want %v", sevs, want)
	}
	mu.Unlock()
	if n, a := rx.Counts(); n != 0 || a != 0 {
		t.Errorf("after the pull: %d waiting, %d active", n, a)
	}

	// The same name again: refused by the receiver's check, and the
	// sender is told why.
	err := result(t, tx.send(t, "gift.bin", Push{}))
	if err == nil || !strings.Contains(err.Error(), "bob refused gift.bin: gift.bin already exists in the receiver's folder") {
		t.Errorf("second push: %v", err)
	}
	waitFor(t, "the refusal event", func() bool { return containsKind(rx.kinds(), OfferRefused) })
}

// TestPushWaiting: without AutoAccept an offer waits for Accept or Refuse.
func TestPushWaiting(t *testing.T) {
	m := startMaster(t)
	rx := startReceiver(t, m, false)
	tx := newSender(t, m)

	res := tx.send(t, "one.bin", Push{})
	waitFor(t, "offer 1", func() bool { return len(rx.Waiting()) == 1 })
	if _, err := rx.Refuse(ctxT(t), "1", "not today"); err != nil {
		t.Fatal(err)
	}
	if err := result(t, res); err == nil || err.Error() != "bob refused one.bin: not today" {
		t.Errorf("refused push: %v", err)
	}
	if _, err := rx.Refuse(ctxT(t), "1", "again"); err == nil || !strings.Contains(err.Error(), "no offer 1 waiting") {
		t.Errorf("second refuse: %v", err)
	}

	res = tx.send(t, "two.bin", Push{})
	waitFor(t, "offer 2", func() bool { return len(rx.Waiting()) == 1 })
	p := rx.Waiting()[0]
	if p.ID != "2" || p.Name != "two.bin" || p.Size != int64(len(tx.data)) || p.Arrived.IsZero() {
		t.Fatalf("waiting %+v", p)
	}
	o, err := rx.Accept(ctxT(t), "2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rx.Accept(ctxT(t), "2"); err == nil || !strings.Contains(err.Error(), "offer 2 is already accepted") {
		t.Errorf("second accept: %v", err)
	}
	if _, err := rx.Pull(ctxT(t), o, download.Request{}); err != nil {
		t.Fatalf("pull: %v", err)
	}
	if err := result(t, res); err != nil {
		t.Fatalf("accepted push: %v", err)
	}

	// The receiver leaves with an offer waiting: the sender is told.
	res = tx.send(t, "three.bin", Push{})
	waitFor(t, "offer 3", func() bool { return len(rx.Waiting()) == 1 })
	rx.Close(ctxT(t))
	if err := result(t, res); err == nil || err.Error() != "bob went away before answering" {
		t.Errorf("push to a receiver that left: %v", err)
	}
}

// TestPushFailedPull: a pull that fails is reported to the sender with
// the receiver's reason.
func TestPushFailedPull(t *testing.T) {
	rx, o, res := acceptedPush(t, "gone.bin")
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel() // the receiver cancels the pull
	if _, err := rx.Pull(ctx, o, download.Request{}); err == nil || !strings.Contains(err.Error(), "pushed by") {
		t.Errorf("cancelled pull: %v", err)
	}
	if err := result(t, res); err == nil || err.Error() != "bob could not receive gone.bin: cancelled by the receiver" {
		t.Errorf("sender: %v", err)
	}
}

// TestSenderServesOnlyOffered: the push server answers only for files
// being pushed, and stops when the last push ends.
func TestSenderServesOnlyOffered(t *testing.T) {
	s := NewSender(ctxT(t), SenderConfig{})
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	hash, size, mtime, err := hashFile(ctxT(t), path)
	if err != nil {
		t.Fatal(err)
	}
	ps, release, err := s.serve(Push{Path: path}, hash, size, mtime)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := ps.open(hash); err != nil {
		t.Errorf("open offered: %v", err)
	} else {
		f.Close()
	}
	if _, err := ps.open("blake3:" + strings.Repeat("0", 64)); !errors.Is(err, errNotOffered) {
		t.Errorf("open other: %v", err)
	}
	// Changed since it was offered: not served.
	if err := os.WriteFile(path, []byte("xy"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.open(hash); err == nil || !strings.Contains(err.Error(), "changed since it was offered") {
		t.Errorf("open changed: %v", err)
	}
	release()
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		t.Error("push server still running after its last push")
	}
	select {
	case <-ps.done:
	default:
		t.Error("push server not stopped")
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\n  b\tc"); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
	if got := oneLine(strings.Repeat("x", 500)); len(got) != MaxFailureText+len("…") {
		t.Errorf("oneLine of 500 bytes: %d bytes", len(got))
	}
}

func equalKinds[K comparable](a, b []K) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func containsKind(ks []EventKind, k EventKind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}
