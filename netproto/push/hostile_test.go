package push

// Issue 18, pushes: what a student could do to a receiver through the
// master. Each test fails on the code before issue 18.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxshell/fxsh/netproto/download"
	"github.com/fxshell/fxsh/store"
)

// rawSender is a hostile sender: a raw connection from ip that sends OFFER
// lines and reads nothing but what it needs.
func rawSender(t *testing.T, masterAddr, ip string) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", masterAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r := bufio.NewReader(nc)
	fmt.Fprintf(nc, "HELLO fxsh/1 role=client\n")
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "HI ") {
		t.Fatalf("HELLO: %q %v", l, err)
	}
	return nc, r
}

var fakeHash = store.HashBytes([]byte("not served")).String()

// Finding 5: 1,000 relayed offers made the receiver answer each until its
// own connection passed the master's request rate and was closed (ERR
// 429); stale offers then kept it refusing every push. Now a sender's
// offers are rate-limited at the receiver (refused while a refusal budget
// lasts, then dropped unanswered), the receiver keeps its registration,
// and an honest offer from another host still waits for the user.
func TestOfferFlood(t *testing.T) {
	m := startMaster(t)
	rx := startReceiver(t, m, false)
	const conns, per = 63, 16 // the master's MaxOffers per connection
	start := time.Now()
	for range conns {
		nc, _ := rawSender(t, m, "127.0.0.3")
		var b strings.Builder
		for i := range per {
			fmt.Fprintf(&b, "OFFER to=bob name=spam%d.bin size=1000 hash=%s from=:7000\n", i, fakeHash)
		}
		nc.Write([]byte(b.String()))
	}
	waitFor(t, "the flood to be handled", func() bool { n, _ := rx.Handled(); return n >= conns*per })
	took := time.Since(start)
	count := map[EventKind]int{}
	rx.mu.Lock()
	for _, ev := range rx.events {
		count[ev.Kind]++
	}
	rx.mu.Unlock()
	t.Logf("%d offers from one host in %v: %d waiting, %d refused, %d dropped unanswered; master lost %d times",
		conns*per, took.Round(time.Millisecond), count[OfferWaiting], count[OfferRefused], count[OfferDropped], count[MasterLost])
	if count[MasterLost] > 0 {
		t.Errorf("the receiver lost its master connection %d times during the flood", count[MasterLost])
	}
	if count[OfferWaiting] > MaxWaitingPerSender {
		t.Errorf("%d offers from one host waiting, want at most %d", count[OfferWaiting], MaxWaitingPerSender)
	}
	if count[OfferRefused] > SenderOfferBurst+RefuseBurst+int(took.Seconds()*RefuseRate)+2 {
		t.Errorf("%d refusals: more answers than the refusal budget", count[OfferRefused])
	}
	// An honest sender on another host is still heard, and its offer
	// waits for the user (autoaccept is off).
	nc, r := rawSender(t, m, "127.0.0.4")
	fmt.Fprintf(nc, "OFFER to=bob name=homework.pdf size=1000 hash=%s from=:7000\n", fakeHash)
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "OK offer=") {
		t.Fatalf("honest offer: %q", l)
	}
	waitFor(t, "the honest offer", func() bool {
		for _, p := range rx.Waiting() {
			if p.Name == "homework.pdf" {
				return true
			}
		}
		return false
	})
}

// Finding 5: an OFFER may claim up to 2^50 bytes; one larger than the
// free space is refused before anything is pulled, even with autoaccept.
func TestOfferLargerThanFreeSpace(t *testing.T) {
	free, ok := freeSpace(t.TempDir())
	if !ok {
		t.Skip("free space unknown on this system")
	}
	m := startMaster(t)
	rx := startReceiver(t, m, true)
	nc, r := rawSender(t, m, "127.0.0.3")
	size := min(free+1<<30, 1<<50)
	fmt.Fprintf(nc, "OFFER to=bob name=huge.bin size=%d hash=%s from=:7000\n", size, fakeHash)
	r.ReadString('\n') // OK offer=1
	l, _ := r.ReadString('\n')
	if !strings.HasPrefix(l, "REFUSE offer=1 reason=not\\senough\\sspace:") {
		t.Errorf("sender got %q, want a refusal for space", l)
	}
	for _, k := range rx.kinds() {
		if k == OfferAccepted {
			t.Error("the huge offer was accepted")
		}
	}
}

// Finding 5: failed pushes left 315 MB of hidden partial files. Now a
// failed pull removes its partial file.
func TestFailedPushLeavesNothing(t *testing.T) {
	rx, o, res := acceptedPush(t, "gone.bin")
	// Part of the file arrives, then the pull is cancelled.
	ctx, cancel := context.WithCancel(ctxT(t))
	go func() {
		for ctx.Err() == nil {
			if des, _ := os.ReadDir(rx.dir); len(des) > 0 {
				time.Sleep(20 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := rx.Pull(ctx, o, download.Request{}); err == nil {
		t.Log("the pull finished before the cancel; nothing to check")
		return
	}
	result(t, res)
	des, _ := os.ReadDir(rx.dir)
	var left []string
	for _, d := range des {
		left = append(left, d.Name())
	}
	if len(left) > 0 {
		t.Errorf("a failed push left %v in %s", left, filepath.Base(rx.dir))
	}
}

// acceptedPush sends a file named name to a receiver that waits for the
// user, accepts the offer by hand and returns the receiver, the offer and
// the sender's result.
func acceptedPush(t *testing.T, name string) (*receiver, *Offer, <-chan error) {
	t.Helper()
	m := startMaster(t)
	rx := startReceiver(t, m, false)
	tx := newSender(t, m)
	res := tx.send(t, name, Push{})
	waitFor(t, "the offer", func() bool { return len(rx.Waiting()) == 1 })
	o, err := rx.Accept(ctxT(t), rx.Waiting()[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return rx, o, res
}
